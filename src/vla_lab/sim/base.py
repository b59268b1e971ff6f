"""What every simulated world gives the rollout runner, and what drives it.

A world is a gymnasium env (`SimEnv`) whose observations are samples of the contract
(`vla_lab.features`) without the future: camera frames as uint8 (H, W, 3) RGB under
`observation.images.<camera>`, `observation.state` when the system has one, `task` (the
instruction or command), and namespaced extras the system's models read (the driving ego history).
Actions are the dataset's action units, one control step each, so a `Policy` drives a world
exactly as it drives the robot.

An episode is named by an `EpisodeSpec` (scenario and seed): `reset(seed=spec.seed,
options={"scenario": spec.scenario})` starts the same episode every time, so two checkpoints meet
the same episodes. When an episode ends (terminated or truncated) `episode_metrics()` says how it
went: `success` (0 or 1) first, then the system's own metrics (all floats), and
`failure_reason()` why it failed ("" on success).

An `Agent` is whatever acts: a `Policy`, a world's scripted expert (which reads the env's true
state), or a trivial baseline.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Protocol

import gymnasium as gym
import numpy as np


@dataclass(frozen=True)
class EpisodeSpec:
    """One seeded episode of a scenario; `index` orders the episodes of an evaluation."""

    index: int
    scenario: str
    seed: int


class Agent(Protocol):
    """Acts in a world one control step at a time (`vla_lab.runtime.policy.Policy` is one)."""

    def reset(self) -> None: ...

    def act(self, observation: dict[str, Any]) -> np.ndarray: ...


class SimEnv(gym.Env):
    """A simulated world; see the module docstring. Subclasses set `scenarios`, and
    `score_metric`: the metric that ranks failed episodes for the videos of the worst ones (lower
    is worse; PDMS for driving). `metadata["dt_s"]`: simulated seconds per step (the world's
    clock is the step count, never the wall clock)."""

    scenarios: ClassVar[tuple[str, ...]] = ()
    score_metric: ClassVar[str] = "success"
    metadata: ClassVar[dict[str, Any]] = {
        "render_modes": ["rgb_array"],
        "render_fps": 10,
        "dt_s": 0.1,
    }

    def episode_metrics(self) -> dict[str, float]:
        """The finished episode's metrics: `success` (0.0 or 1.0) first, then the world's own."""
        raise NotImplementedError

    def failure_reason(self) -> str:
        """Why the finished episode failed ("collision", "timeout", ...); "" when it succeeded."""
        raise NotImplementedError

    def expert(self) -> Agent:
        """The world's scripted expert for this env (it may read the env's true state)."""
        raise NotImplementedError


def episode_specs(
    scenarios: list[str] | tuple[str, ...], episodes: int, seed: int = 0
) -> list[EpisodeSpec]:
    """`episodes` seeded episodes, the scenarios interleaved (so any 8 consecutive episodes of a
    world with 8 scenarios cover all of them); episode i has seed `seed + i`."""
    if not scenarios or episodes < 1:
        raise ValueError(
            f"episode_specs needs scenarios and episodes >= 1; got {scenarios}, {episodes}"
        )
    return [EpisodeSpec(i, scenarios[i % len(scenarios)], seed + i) for i in range(episodes)]
