"""The rollout runner and its summaries, on a one-dimensional world small enough to reason about."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import pandas as pd
import pytest

from vla_lab.evaluation.rollouts import scenario_table, summarise, wilson_interval
from vla_lab.features import Feature
from vla_lab.sim.base import EpisodeSpec, SimEnv, episode_specs
from vla_lab.sim.runner import TIMING_COLUMNS, RolloutRunner, check_compatible, run_episode


class LineWorld(SimEnv):
    """Drive a point along a line to a goal the seed places; `near`/`far` scenarios."""

    scenarios = ("near", "far")
    score_metric = "progress"

    def __init__(self) -> None:
        self.observation_space = gym.spaces.Dict(
            {
                "observation.state": gym.spaces.Box(-np.inf, np.inf, (2,), np.float32),
                "task": gym.spaces.Text(32),
            }
        )
        self.action_space = gym.spaces.Box(-1.0, 1.0, (1,), np.float32)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        offset = 2.0 if options["scenario"] == "near" else 6.0
        self.x, self.steps = 0.0, 0
        self.goal = offset + float(self.np_random.uniform(-0.5, 0.5))
        return self._observation(), {}

    def step(self, action):
        self.x += float(action[0])
        self.steps += 1
        reached = abs(self.x - self.goal) < 0.25
        return self._observation(), 0.0, reached, self.steps >= 8, {}

    def episode_metrics(self) -> dict[str, float]:
        return {"success": float(abs(self.x - self.goal) < 0.25), "progress": self.x / self.goal}

    def failure_reason(self) -> str:
        return "" if abs(self.x - self.goal) < 0.25 else "timeout"

    def expert(self):
        return GoalSeeker(self)

    def render(self) -> np.ndarray:
        return np.zeros((8, 8, 3), np.uint8)

    def _observation(self) -> dict[str, Any]:
        return {"observation.state": np.array([self.x, self.goal], np.float32), "task": "reach"}


class GoalSeeker:
    """Steps towards the goal it is told (full speed, then the remainder)."""

    def __init__(self, env: LineWorld | None = None) -> None:
        self.calls = 0

    def reset(self) -> None:
        pass

    def act(self, observation: dict[str, Any]) -> np.ndarray:
        self.calls += 1
        x, goal = observation["observation.state"]
        return np.clip([goal - x], -1.0, 1.0).astype(np.float32)


class Faulty(GoalSeeker):
    """Misbehaves in the episodes whose goal it meets on its `bad_calls`-th call."""

    def __init__(self, failure: str) -> None:
        super().__init__()
        self.failure = failure

    def act(self, observation: dict[str, Any]) -> np.ndarray:
        action = super().act(observation)
        if self.calls == 3:
            if self.failure == "raise":
                raise RuntimeError("the policy crashed")
            return np.array([np.nan], np.float32)
        return action


def _specs(n: int = 6) -> list[EpisodeSpec]:
    return episode_specs(LineWorld.scenarios, n, seed=10)


def test_specs_interleave_scenarios_with_consecutive_seeds():
    specs = _specs(4)
    assert [(s.index, s.scenario, s.seed) for s in specs] == [
        (0, "near", 10),
        (1, "far", 11),
        (2, "near", 12),
        (3, "far", 13),
    ]


def test_the_expert_reaches_every_goal_and_doing_nothing_reaches_none():
    env = LineWorld()
    results = RolloutRunner(env, GoalSeeker()).run(_specs())
    assert results["success"].tolist() == [1.0] * 6
    assert (results["failure"] == "").all()

    class Idle(GoalSeeker):
        def act(self, observation):
            return np.zeros(1, np.float32)

    idle = RolloutRunner(env, Idle()).run(_specs())
    assert idle["success"].sum() == 0 and (idle["failure"] == "timeout").all()
    assert (idle["steps"] == 8).all()


@pytest.mark.parametrize("failure", ["raise", "nan"])
def test_a_failing_episode_is_recorded_and_the_runner_goes_on(failure: str):
    agent = Faulty(failure)
    results = RolloutRunner(LineWorld(), agent).run(_specs())
    first = results.iloc[0]
    assert first["success"] == 0.0
    expected = "error: RuntimeError: the policy crashed" if failure == "raise" else "non-finite"
    assert expected in first["failure"]
    assert results["success"].iloc[1:].tolist() == [1.0] * 5  # the others ran, and succeeded


def test_an_action_of_the_wrong_size_fails_its_episode():
    class Wide(GoalSeeker):
        def act(self, observation):
            return np.zeros(3, np.float32)

    row = run_episode(LineWorld(), Wide(), _specs(1)[0]).row
    assert row["success"] == 0.0 and "shape (3,)" in row["failure"]


def test_a_resumed_evaluation_equals_an_uninterrupted_one(tmp_path: Path):
    specs = _specs(6)
    whole = RolloutRunner(LineWorld(), GoalSeeker(), tmp_path / "whole.parquet").run(specs)

    class Killed(Exception):
        pass

    def kill_after_three(episode, results):
        if len(results) == 3:
            raise Killed

    path = tmp_path / "resumed.parquet"
    with pytest.raises(Killed):
        RolloutRunner(LineWorld(), GoalSeeker(), path, on_episode=kill_after_three).run(specs)
    assert len(pd.read_parquet(path)) == 3  # stored as they finished
    agent = GoalSeeker()
    resumed = RolloutRunner(LineWorld(), agent, path).run(specs)

    timing = list(TIMING_COLUMNS)
    pd.testing.assert_frame_equal(resumed.drop(columns=timing), whole.drop(columns=timing))
    assert agent.calls == sum(whole["steps"].iloc[3:])  # only the missing episodes ran


def test_results_of_another_evaluation_are_refused(tmp_path: Path):
    path = tmp_path / "episodes.parquet"
    RolloutRunner(LineWorld(), GoalSeeker(), path).run(_specs(2))
    with pytest.raises(ValueError, match="not an episode of this evaluation"):
        RolloutRunner(LineWorld(), GoalSeeker(), path).run(episode_specs(["far"], 2, seed=99))


def test_a_world_and_a_policy_that_do_not_fit_fail_naming_both():
    features = {
        "observation.images.front": Feature("image", (3, 8, 8)),
        "observation.state": Feature("float32", (2,)),
        "action": Feature("float32", (1,)),
    }
    keys = ["observation.images.front", "observation.state", "task"]
    with pytest.raises(ValueError, match=r"LineWorld and policy Toy.*observation.images.front"):
        check_compatible(LineWorld(), features, keys, "Toy")
    wide = {**features, "action": Feature("float32", (3,), ("x", "y", "z"))}
    with pytest.raises(ValueError, match="env takes actions of dimension 1, the policy writes 3"):
        check_compatible(LineWorld(), wide, ["observation.state", "task"], "Toy")
    check_compatible(LineWorld(), features, ["observation.state", "task"], "Toy")


def test_wilson_interval_matches_published_values():
    # Newcombe (1998), Table I: 81/263 -> 0.2553 to 0.3662; 15/148 -> 0.0624 to 0.1605.
    assert wilson_interval(81, 263) == pytest.approx((0.2553, 0.3662), abs=5e-5)
    assert wilson_interval(15, 148) == pytest.approx((0.0624, 0.1605), abs=5e-5)
    low, high = wilson_interval(10, 10)
    assert (low, high) == pytest.approx((0.7225, 1.0), abs=5e-5)  # not [1, 1]


def test_summary_and_scenario_table():
    results = RolloutRunner(LineWorld(), Faulty("raise")).run(_specs(4))
    summary = summarise(results)
    assert list(summary)[:3] == [
        "rollout/success_rate",
        "rollout/success_ci_low",
        "rollout/success_ci_high",
    ]
    assert summary["rollout/success_rate"] == 0.75 and summary["rollout/episodes"] == 4
    assert summary["rollout/failure/error"] == 0.25
    table = scenario_table(results).set_index("scenario")
    assert table.loc["near", "success_rate"] == 0.5 and table.loc["far", "success_rate"] == 1.0
    assert table.loc["all", "episodes"] == 4


@pytest.mark.parametrize(
    ("metric", "direction"), [("rollout/success_rate", "maximize"), ("val/mae", "minimize")]
)
def test_a_sweep_maximises_success_and_minimises_errors(metric: str, direction: str):
    from vla_lab.utils.config import compose_config

    cfg = compose_config(["hparams_search=mobile_vla_optuna", f"optimized_metric={metric}"])
    assert cfg.hydra.sweeper.direction == direction
