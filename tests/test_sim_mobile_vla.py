"""The Mobile VLA box course world: determinism, expert, trivial baselines, recordings as data."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import pytest

import vla_lab.sim  # noqa: F401  (registers the gymnasium ids)
from vla_lab.data import load_datamodule
from vla_lab.data.mobile_vla.scenario import build_instruction, parse_scenario
from vla_lab.sim.base import Agent, EpisodeSpec, episode_specs
from vla_lab.sim.mobile_vla.env import CAMERA_KEY, BoxCourseEnv
from vla_lab.sim.mobile_vla.expert import KEYS
from vla_lab.sim.mobile_vla.recorder import record_episode, record_episodes

ENV_ID = "vla_lab/MobileVLABoxCourse-v0"
SPECS = episode_specs(BoxCourseEnv.scenarios, 50, seed=100)  # every scenario, 50 episodes


class Constant:
    """A trivial agent that presses the same action every step."""

    def __init__(self, action) -> None:
        self.action = np.asarray(action, dtype=np.float32)

    def reset(self) -> None:
        pass

    def act(self, observation: dict[str, Any]) -> np.ndarray:
        return self.action


def run(env: gym.Env, spec: EpisodeSpec, agent: Agent | None = None, **expert) -> dict:
    """One episode; ``agent`` defaults to the env's expert (with ``expert`` options)."""
    observation, _ = env.reset(seed=spec.seed, options={"scenario": spec.scenario})
    agent = agent or env.unwrapped.expert(seed=spec.seed, **expert)
    agent.reset()
    frames, done = [observation[CAMERA_KEY]], False
    while not done:
        observation, _, terminated, truncated, _ = env.step(agent.act(observation))
        frames.append(observation[CAMERA_KEY])
        done = terminated or truncated
    world = env.unwrapped
    return {**world.episode_metrics(), "reason": world.failure_reason(), "frames": frames}


def success_rate(env: gym.Env, specs: list[EpisodeSpec], agent=None, **expert) -> float:
    return float(np.mean([run(env, spec, agent, **expert)["success"] for spec in specs]))


@pytest.fixture(scope="module")
def env() -> gym.Env:
    return gym.make(ENV_ID)


def test_spaces_are_what_a_mobile_vla_policy_reads(env):
    observation, _ = env.reset(seed=0, options={"scenario": "2box_hori_right"})
    assert set(env.observation_space.spaces) == {"observation.images.front", "task"}
    assert (
        observation[CAMERA_KEY].shape == (96, 128, 3) and observation[CAMERA_KEY].dtype == np.uint8
    )
    assert observation["task"] == build_instruction(parse_scenario("2box_hori_right"))
    assert "right" in observation["task"] and env.observation_space.contains(observation)
    assert env.action_space.shape == (3,) and env.action_space.dtype == np.float32
    assert np.array_equal(env.render(), observation[CAMERA_KEY])


def test_same_seed_replays_the_same_episode(env):
    spec = EpisodeSpec(0, "2box_vert_left", 7)
    first, second = run(env, spec, noise=0.3), run(env, spec, noise=0.3)
    assert len(first["frames"]) == len(second["frames"])
    assert all(np.array_equal(a, b) for a, b in zip(first["frames"], second["frames"], strict=True))
    assert {k: v for k, v in first.items() if k != "frames"} == {
        k: v for k, v in second.items() if k != "frames"
    }
    other = run(env, EpisodeSpec(0, "2box_vert_left", 8), noise=0.3)
    assert not np.array_equal(other["frames"][0], first["frames"][0])


def test_expert_succeeds_in_every_scenario_on_the_shortest_path(env):
    results = [run(env, spec) for spec in SPECS]
    assert {spec.scenario for spec in SPECS} == set(BoxCourseEnv.scenarios)
    assert np.mean([r["success"] for r in results]) >= 0.95
    assert all(r["path_length_ratio"] == pytest.approx(1.0, abs=1e-6) for r in results)
    assert max(r["steps"] for r in results) < env.unwrapped.max_steps


def test_trivial_agents_fail_and_the_instruction_matters(env, tmp_path):
    forward = success_rate(env, SPECS, Constant(KEYS["forward"]))
    recorded = [record_episode(env.unwrapped, spec, 40).actions for spec in SPECS[:16]]
    mean = success_rate(env, SPECS, Constant(np.concatenate(recorded).mean(0)))
    blind = [run(env, spec, side="left") for spec in SPECS]
    left_only = float(np.mean([r["success"] for r in blind]))
    assert forward <= 0.2 and mean <= 0.2
    assert left_only <= 0.6
    for spec, result in zip(SPECS, blind, strict=True):  # it fails exactly where it must go right
        assert result["reason"] == ("" if spec.scenario.endswith("left") else "wrong_side")


@pytest.mark.parametrize(
    ("key", "reason"),
    [("forward", "collision"), ("left", "off_course"), ("stop", "timeout")],
)
def test_failures_are_named(env, key, reason):
    result = run(env, EpisodeSpec(0, "1box_vert_left", 3), Constant(KEYS[key]))
    assert (result["success"], result["reason"]) == (0.0, reason)
    if reason == "timeout":
        assert result["steps"] == env.unwrapped.max_steps
    else:
        assert result[reason] == 1.0


def test_turning_pans_the_camera(env):
    observation, _ = env.reset(seed=1, options={"scenario": "1box_vert_left"})
    before = _red_columns(observation[CAMERA_KEY]).mean()
    observation, *_ = env.step(KEYS["turn_left"])
    assert _red_columns(observation[CAMERA_KEY]).mean() > before + 10  # box slides right
    assert env.unwrapped.pose.yaw == pytest.approx(1.15 * 0.3, abs=1e-6)


def _red_columns(image: np.ndarray) -> np.ndarray:
    red = (image[..., 0] > 200) & (image[..., 1] < 60) & (image[..., 2] < 60)
    return np.flatnonzero(red.any(axis=0))


def test_a_non_finite_action_is_refused_naming_it(env):
    env.reset(seed=0)
    with pytest.raises(ValueError, match=r"finite.*nan"):
        env.step(np.array([1.15, np.nan, 0.0], dtype=np.float32))


def test_recordings_load_through_the_data_source(tmp_path: Path):
    paths = record_episodes(tmp_path / "direct", 8, seed=5, num_frames=12, height=48, width=64)
    recorded = {Path(p).name for p in paths}
    options = {"num_episodes": 8, "num_frames": 12, "height": 48, "width": 64, "seed": 5}
    datamodule = load_datamodule(
        "mobile_vla_synthetic",
        root=str(tmp_path / "synthetic"),
        image_size=[48, 64],
        synthetic={**options, "short_fraction": 0.0},
        num_workers=0,
    )
    datamodule.setup("fit")
    episodes = datamodule.source.episodes()
    assert {Path(e.path).name for e in episodes} == recorded  # same seeds, same episodes
    env = BoxCourseEnv(48, 64)
    for spec, info in zip(
        episode_specs(env.scenarios, len(env.scenarios), seed=5), episodes, strict=True
    ):
        observation, _ = env.reset(seed=spec.seed, options={"scenario": spec.scenario})
        assert info.scenario["scenario"] == spec.scenario
        assert info.instruction == observation["task"]
        first = datamodule.source.dataset([info], [0], [0])[0]
        assert first["task"] == observation["task"]
        served = first[CAMERA_KEY][0].permute(1, 2, 0).numpy() * 255  # RGB again after BGR on disk
        np.testing.assert_allclose(served, observation[CAMERA_KEY], atol=1)
