"""The rollout runner: agents act in a simulated world, one seeded episode after another.

One runner serves closed-loop evaluation (`evaluate.py mode=closed_loop`), the training callback
(`vla_lab.callbacks.rollout`), the benchmarks and the tests. Each episode is independent of the
ones before it: the env is reset with the episode's seed and scenario, the agent forgets its
history, and torch's RNG (flow-matching noise) is seeded with the episode's seed inside a fork, so
a resumed evaluation equals an uninterrupted one and training's RNG stream is untouched.

An episode that goes wrong inside (the agent raises, returns a non-finite action or one of the
wrong size, the env raises) is recorded as a failure with its reason and the runner goes on.
Results are rows of a table (one per episode); with a `results_path` the table is rewritten
atomically after every episode, and a runner started on the same file continues where it stopped.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import pandas as pd
import torch

from vla_lab.sim.base import Agent, EpisodeSpec, SimEnv
from vla_lab.utils.io import atomic_write
from vla_lab.utils.logging import get_logger

log = get_logger(__name__)

# Columns every result row has, before the world's own metrics.
SPEC_COLUMNS = ("episode", "scenario", "seed")
# policy_ms: the agent's mean time per control step; policy_max_ms: its slowest step (a chunking
# policy's inference call); control_hz: the control rate the agent alone sustains (steps per
# second of agent time), what a robot's loop rate is judged against.
RESULT_COLUMNS = (
    *SPEC_COLUMNS,
    "success",
    "failure",
    "steps",
    "policy_ms",
    "policy_max_ms",
    "control_hz",
    "wall_s",
)
TIMING_COLUMNS = ("policy_ms", "policy_max_ms", "control_hz", "wall_s")  # wall-clock figures


def make_env(env_id: str, kwargs: dict[str, Any] | None = None) -> gym.Env:
    """The registered world `env_id` (importing `vla_lab.sim` registers ours)."""
    import vla_lab.sim  # noqa: F401  (registers the ids)

    if env_id not in gym.registry:
        known = sorted(k for k in gym.registry if k.startswith("vla_lab/"))
        raise KeyError(f"env.id={env_id!r} is not a registered gymnasium id; ours: {known}")
    return gym.make(env_id, disable_env_checker=True, **(kwargs or {}))


def world(env: gym.Env) -> SimEnv:
    """The `SimEnv` under gymnasium's wrappers (its metrics and expert are not wrapped)."""
    inner = env.unwrapped
    if not isinstance(inner, SimEnv):
        raise TypeError(f"{type(inner).__name__} is not a vla_lab SimEnv (no episode metrics)")
    return inner


@dataclass
class Episode:
    """One finished episode: the result row and, when asked for, the frames it rendered."""

    row: dict[str, Any]
    frames: list[np.ndarray]


def run_episode(
    env: gym.Env, agent: Agent, spec: EpisodeSpec, record_frames: bool = False
) -> Episode:
    """Roll `agent` out in `env` for the episode `spec`; a failure inside is a failed episode."""
    frames: list[np.ndarray] = []
    steps, policy_s, slowest_s, failure = 0, 0.0, 0.0, None
    start = time.perf_counter()
    with torch.random.fork_rng(devices=_cuda_devices()):
        torch.manual_seed(spec.seed)
        try:
            observation, _ = env.reset(seed=spec.seed, options={"scenario": spec.scenario})
            agent.reset()
            action_shape = env.action_space.shape
            while True:
                if record_frames:
                    frames.append(np.asarray(env.render()))
                tick = time.perf_counter()
                action = np.asarray(agent.act(observation), dtype=np.float32)
                elapsed = time.perf_counter() - tick
                policy_s += elapsed
                slowest_s = max(slowest_s, elapsed)
                failure = _action_problem(action, action_shape)
                if failure:
                    break
                observation, _, terminated, truncated, _ = env.step(action)
                steps += 1
                if terminated or truncated:
                    break
        except Exception as error:  # noqa: BLE001  (one episode's error must not end the run)
            failure = f"error: {type(error).__name__}: {error}"
            log.warning(
                "Episode %d (%s, seed %d) failed: %s", spec.index, spec.scenario, spec.seed, failure
            )
    row: dict[str, Any] = {"episode": spec.index, "scenario": spec.scenario, "seed": spec.seed}
    if failure is None:
        metrics = world(env).episode_metrics()
        row.update(success=float(metrics.pop("success")), failure=world(env).failure_reason())
    else:
        metrics = {}
        row.update(success=0.0, failure=failure)
    row.update(steps=steps, policy_ms=1e3 * policy_s / max(steps, 1), policy_max_ms=1e3 * slowest_s)
    row["control_hz"] = steps / policy_s if policy_s > 0 else float("nan")
    row["wall_s"] = time.perf_counter() - start
    row.update({name: float(value) for name, value in metrics.items()})  # the world's own win
    return Episode(row, frames)


class RolloutRunner:
    """Runs episodes of one world with one agent; see the module docstring.

    `on_episode(episode)` is called after each episode is stored (videos are written there).
    `record_frames(spec)` says whether to keep that episode's rendered frames.
    """

    def __init__(
        self,
        env: gym.Env,
        agent: Agent,
        results_path: str | Path | None = None,
        on_episode: Callable[[Episode, pd.DataFrame], None] | None = None,
        record_frames: Callable[[EpisodeSpec], bool] | None = None,
    ) -> None:
        self.env = env
        self.agent = agent
        self.results_path = Path(results_path) if results_path is not None else None
        self.on_episode = on_episode
        self.record_frames = record_frames or (lambda spec: False)

    def run(self, specs: Sequence[EpisodeSpec]) -> pd.DataFrame:
        """Every episode of `specs` not already in the results file; the whole table."""
        results = self._stored(specs)
        done = set(results["episode"].tolist()) if len(results) else set()
        if done:
            log.info(
                "Continuing %s: %d of %d episodes done", self.results_path, len(done), len(specs)
            )
        rows = results.to_dict("records")
        for spec in specs:
            if spec.index in done:
                continue
            episode = run_episode(self.env, self.agent, spec, self.record_frames(spec))
            rows.append(episode.row)
            if self.results_path is None and self.on_episode is None:
                continue  # nobody reads the table before the end
            results = pd.DataFrame(rows)
            if self.results_path is not None:
                atomic_write(self.results_path, lambda tmp, r=results: r.to_parquet(tmp))
            if self.on_episode is not None:
                self.on_episode(episode, results)
        if not rows:
            return results
        return pd.DataFrame(rows).sort_values("episode").reset_index(drop=True)

    def _stored(self, specs: Sequence[EpisodeSpec]) -> pd.DataFrame:
        """The rows already in the results file, checked to be episodes of these specs."""
        if self.results_path is None or not self.results_path.exists():
            return pd.DataFrame(columns=list(RESULT_COLUMNS))
        stored = pd.read_parquet(self.results_path)
        expected = {s.index: (s.scenario, s.seed) for s in specs}
        for row in stored[list(SPEC_COLUMNS)].itertuples(index=False):
            if expected.get(int(row.episode)) != (row.scenario, int(row.seed)):
                raise ValueError(
                    f"{self.results_path}: episode {row.episode} ({row.scenario}, seed "
                    f"{row.seed}) is not an episode of this evaluation (its env, episodes or "
                    "seed differ); give another output dir or delete the file to start over"
                )
        return stored


def check_compatible(
    env: gym.Env, features: dict[str, Any], model_keys: Iterable[str], model_name: str
) -> None:
    """Fail before any episode when the world does not serve what the model reads or does not
    take the actions it writes, naming both sides. `features`: the model's dataset features;
    `model_keys`: the sample keys it reads."""
    name = env.spec.id if env.spec is not None else type(world(env)).__name__
    space = env.observation_space
    served = set(space.spaces) if isinstance(space, gym.spaces.Dict) else set()
    missing = sorted(set(model_keys) - served)
    if missing:
        raise ValueError(
            f"env {name} and policy {model_name} do not fit: the policy reads {missing}, which "
            f"the env does not observe (it observes {sorted(served)})"
        )
    action_dim = features["action"].shape[-1]
    env_dim = math.prod(env.action_space.shape or ())
    if env_dim != action_dim:
        raise ValueError(
            f"env {name} and policy {model_name} do not fit: the env takes actions of dimension "
            f"{env_dim}, the policy writes {action_dim} ({features['action'].names or ''})"
        )
    state = features.get("observation.state")
    if state is not None and "observation.state" in served:
        env_state = space.spaces["observation.state"].shape
        if tuple(env_state) != tuple(state.shape[-1:]):
            raise ValueError(
                f"env {name} and policy {model_name} do not fit: observation.state is "
                f"{tuple(env_state)} in the env, {tuple(state.shape[-1:])} for the policy"
            )


def _action_problem(action: np.ndarray, shape: tuple[int, ...] | None) -> str | None:
    if shape is not None and action.shape != tuple(shape):
        return f"action of shape {action.shape}, the env takes {tuple(shape)}"
    if not np.isfinite(action).all():
        return f"non-finite action {action.tolist()}"
    return None


def _cuda_devices() -> list[int]:
    return [torch.cuda.current_device()] if torch.cuda.is_available() else []
