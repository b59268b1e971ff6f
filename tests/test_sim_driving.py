"""The driving road as a closed-loop world: seeded episodes, the expert's PDM score, the PDMS
maths, trivial drivers, and recordings that load as PhysicalAI-AV clips."""

from __future__ import annotations

import time

import numpy as np
import pytest
import torch

from vla_lab import features as ft
from vla_lab.data.physical_ai_av.clips import PhysicalAIAVClips
from vla_lab.data.synthetic.physical_ai_av import write_synthetic_av
from vla_lab.driving import pdms
from vla_lab.driving.unicycle import UnicycleActionSpace
from vla_lab.sim.base import episode_specs
from vla_lab.sim.driving.env import RoadEnv
from vla_lab.sim.driving.render import render
from vla_lab.sim.runner import TIMING_COLUMNS, run_episode

SPACE = UnicycleActionSpace()


def drive(env: RoadEnv, agent, seed: int, scenario: str) -> dict[str, float]:
    observation, _ = env.reset(seed=seed, options={"scenario": scenario})
    agent.reset()
    done = False
    while not done:
        observation, _, terminated, truncated, _ = env.step(agent.act(observation))
        done = terminated or truncated
    return env.episode_metrics()


def expert_pdms(episodes: int) -> list[dict[str, float]]:
    env = RoadEnv()
    specs = episode_specs(RoadEnv.scenarios, episodes, seed=100)
    return [drive(env, env.expert(), spec.seed, spec.scenario) for spec in specs]


class Constant:
    """A trivial driver: the same raw (a, kappa) every step, in the model's normalised units."""

    def __init__(self, accel: float, curvature: float) -> None:
        self.action = SPACE.normalize(torch.tensor([accel, curvature])).numpy()

    def reset(self) -> None:
        pass

    def act(self, observation) -> np.ndarray:
        return self.action


class NoSteering:
    """The expert's speed control with a zero-curvature plan."""

    def __init__(self, env: RoadEnv) -> None:
        self.expert, self.straight = env.expert(), SPACE.normalize(torch.zeros(2))[1].item()

    def reset(self) -> None:
        self.expert.reset()

    def act(self, observation) -> np.ndarray:
        action = self.expert.act(observation).copy()
        action[1] = self.straight
        return action


def test_observations_are_dataset_samples_and_a_seed_repeats_the_episode():
    env = RoadEnv()
    runs = []
    for _ in range(2):
        observation, _ = env.reset(seed=7, options={"scenario": "overtake"})
        expert, frames = env.expert(), [observation[ft.DRIVING_CAMERA]]
        for _ in range(20):
            observation, *_ = env.step(expert.act(observation))
            frames.append(observation[ft.DRIVING_CAMERA])
        runs.append((np.stack(frames), observation[ft.STATE], env.world.states.copy()))
    assert np.array_equal(runs[0][0], runs[1][0]) and np.array_equal(runs[0][2], runs[1][2])
    assert observation[ft.DRIVING_CAMERA].shape == (64, 96, 3)
    assert observation[ft.DRIVING_CAMERA].dtype == np.uint8
    assert observation[ft.STATE].shape == (3,) and observation[ft.STATE].dtype == np.float32
    assert observation[ft.HISTORY_XYZ].shape == (16, 3)
    assert observation[ft.HISTORY_ROT].shape == (16, 3, 3)
    np.testing.assert_allclose(observation[ft.HISTORY_XYZ][-1], 0.0, atol=1e-6)  # ego frame
    assert observation[ft.TASK] == "Keep lane"
    assert env.observation_space.contains(observation)
    assert 6.0 < observation[ft.STATE][0] < 12.0  # v0 of the history fit, m/s
    other, _ = env.reset(seed=8, options={"scenario": "overtake"})
    assert not np.array_equal(other[ft.DRIVING_CAMERA], runs[0][0][0])


def test_the_view_is_rendered_from_the_ego_pose_and_shows_the_truck():
    env = RoadEnv()
    env.reset(seed=3, options={"scenario": "stop"})
    world, episode = env.world, env.world.episode
    x, y, yaw, _ = world.state
    args = (episode.road, world.s[-1], (64, 96), episode.look, episode.trucks)
    centred = render(episode.road, (x, y, yaw), *args[1:])
    turned = render(episode.road, (x, y, yaw + 0.1), *args[1:])
    assert np.abs(centred.astype(int) - turned).mean() > 5
    near_s = episode.truck_s[0] - 15.0
    tx, ty, tyaw = episode.road.pose(np.array(near_s), 0.0 + episode.lane * 3.6)
    close = render(episode.road, (float(tx), float(ty), float(tyaw)), near_s, *args[2:])
    box = np.all(np.abs(close.astype(int) - episode.look.box) < 40, axis=-1)
    assert box.sum() > 60  # the truck fills a block of the view


def test_expert_scores_pdms_above_0_95_and_follows_every_command():
    metrics = expert_pdms(len(RoadEnv.scenarios) * 2)
    assert np.mean([m["pdms"] for m in metrics]) >= 0.95
    assert all(m["command_followed"] == 1.0 and m["success"] == 1.0 for m in metrics)
    assert list(metrics[0])[0] == "success"


@pytest.mark.slow
def test_expert_scores_pdms_above_0_95_over_50_episodes():
    metrics = expert_pdms(50)
    assert np.mean([m["pdms"] for m in metrics]) >= 0.95


@pytest.mark.parametrize("driver", ["constant_velocity", "no_steering"])
def test_trivial_drivers_score_near_zero_on_curves(driver):
    env = RoadEnv()
    agent = Constant(0.0, 0.0) if driver == "constant_velocity" else NoSteering(env)
    metrics = [drive(env, agent, seed, "curves") for seed in range(4)]
    assert np.mean([m["pdms"] for m in metrics]) < 0.1
    assert env.failure_reason() == "off_road"


def test_pdms_formula_collision_and_off_road():
    assert pdms.pdms(1, 1, 1, 1, 1) == 1.0
    assert pdms.pdms(1, 1, 0, 1, 1) == pytest.approx(7 / 12)
    assert pdms.pdms(1, 1, 1, 0.5, 0) == pytest.approx(7.5 / 12)
    assert pdms.pdms(0, 1, 1, 1, 1) == 0.0 and pdms.pdms(1, 0, 1, 1, 1) == 0.0
    truck = pdms.box_corners(np.array([20.0]), np.array([0.0]), np.array([0.0]), 9.0, 2.5, 0.0)
    t = np.arange(50) * 0.1
    states = np.stack([10.0 * t, 0 * t, 0 * t, 0 * t + 10.0], axis=1)  # drives into the truck
    ego = pdms.box_corners(states[:, 0], states[:, 1], states[:, 2], 4.6, 1.9, 1.0)
    assert pdms.no_collision(ego, truck) == 0.0
    assert pdms.no_collision(ego[:5], truck) == 1.0
    assert pdms.time_to_collision_ok(states[:15], truck, (4.6, 1.9, 1.0), 0.1) == 0.0
    assert pdms.time_to_collision_ok(states[:5], truck, (4.6, 1.9, 1.0), 0.1) == 1.0
    beside = states.copy()
    beside[:, 1] = 3.6
    ego_beside = pdms.box_corners(beside[:, 0], beside[:, 1], beside[:, 2], 4.6, 1.9, 1.0)
    assert pdms.no_collision(ego_beside, truck) == 1.0
    offsets = np.tile([-0.9, -0.9, 0.9, 0.9], (10, 1))
    assert pdms.drivable_area_compliance(offsets, (-2.5, 6.1)) == 1.0
    offsets[4] -= 2.0  # one step with the right corners off the surface
    assert pdms.drivable_area_compliance(offsets, (-2.5, 6.1)) == 0.0
    assert pdms.ego_progress(50.0, 100.0) == 0.5 and pdms.ego_progress(120.0, 100.0) == 1.0
    assert pdms.ego_progress(0.0, 1.0) == 1.0  # the expert barely moved
    assert pdms.comfort_ok(states, 0.1) == 1.0


def test_recorded_drives_load_as_physical_ai_av_samples(tmp_path):
    root = write_synthetic_av(
        tmp_path / "av", num_clips=2, clip_seconds=9.0, scenarios=("curves", "overtake")
    )
    source = PhysicalAIAVClips(
        str(root),
        image_size=[64, 96],
        t0_mode="stride",
        t0_stride_s=0.5,
        state=["v0", "a0", "kappa0"],
        cache_dir=str(tmp_path / "cache"),
    )
    clips = source.episodes()
    assert len(clips) == 2 and source.skipped.total() == 0
    samples = source.dataset(clips, [0], list(range(64)))
    item = samples[0]
    expected = {ft.DRIVING_CAMERA, ft.STATE, ft.ACTION, ft.TASK, ft.HISTORY_XYZ, ft.HISTORY_ROT}
    assert expected <= set(item)
    assert item[ft.DRIVING_CAMERA].shape == (3, 64, 96) and item[ft.STATE].shape == (3,)
    assert item[ft.ACTION].shape == (64, 2) and item[ft.HISTORY_XYZ].shape == (16, 3)
    assert np.isfinite(item[ft.ACTION].numpy()).all()
    assert 3.0 < float(item[ft.STATE][0]) < 15.0


def test_a_slow_agent_changes_no_outcome():
    """The world's clock is its step count (10 Hz of simulated time), not the wall clock."""

    class Slow:
        def __init__(self, agent) -> None:
            self.agent = agent

        def reset(self) -> None:
            self.agent.reset()

        def act(self, observation) -> np.ndarray:
            time.sleep(0.004)
            return self.agent.act(observation)

    env = RoadEnv()
    [spec] = episode_specs(["overtake"], 1, seed=7)
    fast = run_episode(env, env.expert(), spec).row
    slow = run_episode(env, Slow(env.expert()), spec).row
    assert slow["policy_ms"] > fast["policy_ms"]
    assert {k: v for k, v in slow.items() if k not in TIMING_COLUMNS} == {
        k: v for k, v in fast.items() if k not in TIMING_COLUMNS
    }
