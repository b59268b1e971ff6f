"""`RoadEnv`: the driving road as a closed-loop gymnasium world ("vla_lab/DrivingRoad-v0").

Observations are PhysicalAI-AV samples without the future, computed as the dataset computes
them: `observation.images.front_wide` uint8 (H, W, 3) RGB rendered from the ego's actual pose
(64 x 96 by default, the synthetic clips' size), `observation.state` float32 [v0, a0, kappa0]
(or the subset `state` names) by the dataset's estimator (`vla_lab.driving.ego_state`),
`trajectory.history_xyz` (16, 3) and `trajectory.history_rot` (16, 3, 3) in the current ego
frame, and `task`, the Commander's current command. The action is ONE step of the model's
action in dataset units: normalised (a, kappa) (2,), denormalised with `action_space` (the data
config's `action_space` dict) and integrated for dt = 0.1 s by its own integrator. A policy with
n_action_steps = 1 replans every step (10 Hz); executing k plan steps per plan is 10/k Hz.

The reward is the metres of route progress of the step; what counts is `episode_metrics()`
(`scoring.score`: success, PDMS and its parts, lane keeping, command following) once the episode
ends: terminated on a collision or far off the road, truncated after `duration_s`.
"""

from __future__ import annotations

import string
from collections.abc import Sequence
from typing import Any, ClassVar

import gymnasium as gym
import numpy as np

from vla_lab import features as ft
from vla_lab.driving.ego_state import STATE_NAMES, ego_state, state_columns
from vla_lab.driving.unicycle import UnicycleActionSpace
from vla_lab.sim.base import Agent, SimEnv
from vla_lab.sim.driving import scoring
from vla_lab.sim.driving.expert import RoadExpert
from vla_lab.sim.driving.render import render
from vla_lab.sim.driving.scenarios import SCENARIOS, Episode, draw_episode
from vla_lab.sim.driving.world import N_HISTORY, RoadWorld

COMMANDERS = ("scripted",)
_CHARSET = string.ascii_letters + string.digits + " .,'-"  # what a command is written in


class RoadEnv(SimEnv):
    """See the module docstring. `scenario` is the default for `reset` without one."""

    scenarios: ClassVar[tuple[str, ...]] = SCENARIOS
    score_metric: ClassVar[str] = "pdms"  # the worst failures have the lowest PDMS

    def __init__(
        self,
        scenario: str = "curves",
        image_size: Sequence[int] = (64, 96),
        duration_s: float = 20.0,
        commander: str = "scripted",
        commander_hz: float = 1.0,
        action_space: dict | None = None,
        state: Sequence[str] = STATE_NAMES,
        speed_range: Sequence[float] = (7.0, 11.0),
        max_curvature: float = 0.025,
        success_pdms: float = scoring.SUCCESS_PDMS,
        render_mode: str | None = "rgb_array",
    ) -> None:
        if scenario not in SCENARIOS:
            raise ValueError(f"RoadEnv: scenario={scenario!r}; expected one of {SCENARIOS}")
        if commander not in COMMANDERS:
            raise ValueError(f"RoadEnv: commander={commander!r}; expected one of {COMMANDERS}")
        if commander_hz <= 0 or duration_s <= 0:
            raise ValueError(
                f"RoadEnv: need commander_hz, duration_s > 0; got {commander_hz}, {duration_s}"
            )
        self.scenario = scenario
        self.image_size = (int(image_size[0]), int(image_size[1]))
        self.unicycle = UnicycleActionSpace(**dict(action_space or {}))
        self.max_steps = round(duration_s / self.unicycle.dt)
        self.commander_hz = float(commander_hz)
        self.state_columns = state_columns(state, "RoadEnv: state")
        self.speed_range = (float(speed_range[0]), float(speed_range[1]))
        self.max_curvature = float(max_curvature)
        self.success_pdms = float(success_pdms)
        self.render_mode = render_mode
        height, width = self.image_size
        self.observation_space = gym.spaces.Dict(
            {
                ft.DRIVING_CAMERA: gym.spaces.Box(0, 255, (height, width, 3), np.uint8),
                ft.STATE: gym.spaces.Box(-np.inf, np.inf, (len(state),), np.float32),
                ft.HISTORY_XYZ: gym.spaces.Box(-np.inf, np.inf, (N_HISTORY, 3), np.float32),
                ft.HISTORY_ROT: gym.spaces.Box(-1.0, 1.0, (N_HISTORY, 3, 3), np.float32),
                ft.TASK: gym.spaces.Text(max_length=64, charset=_CHARSET),
            }
        )
        self.action_space = gym.spaces.Box(-np.inf, np.inf, (2,), np.float32)
        self.world: RoadWorld | None = None
        self._frame: np.ndarray | None = None
        self._metrics: dict[str, float] | None = None

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        super().reset(seed=seed)
        scenario = (options or {}).get("scenario", self.scenario)
        rng = np.random.default_rng(seed) if seed is not None else self.np_random
        episode = draw_episode(
            scenario,
            rng,
            self.max_steps * self.unicycle.dt,
            self.speed_range,
            self.max_curvature,
        )
        self.world = RoadWorld(episode, self.unicycle, self.commander_hz)
        self._metrics = None
        return self._observation(), {"scenario": scenario, "command": self.world.command}

    def step(self, action: np.ndarray) -> tuple[dict[str, Any], float, bool, bool, dict]:
        world = self._require_world()
        action = np.asarray(action, dtype=np.float64).reshape(2)
        if not np.isfinite(action).all():
            raise ValueError(
                f"RoadEnv.step: action {action.tolist()} is not finite; expected one step of "
                "normalised (a, kappa)"
            )
        before = world.s[-1]
        world.step(action)
        terminated = world.collided or world.off_road
        truncated = not terminated and world.steps >= self.max_steps
        if terminated or truncated:
            self._metrics = scoring.score(
                world, self._expert_progress(world.episode), self.success_pdms
            )
        info = {"command": world.command, "t_s": world.t_s}
        return self._observation(), float(world.s[-1] - before), terminated, truncated, info

    def render(self) -> np.ndarray | None:
        return self._frame

    def episode_metrics(self) -> dict[str, float]:
        if self._metrics is None:
            raise RuntimeError("RoadEnv.episode_metrics: the episode has not ended yet")
        return dict(self._metrics)

    def failure_reason(self) -> str:
        return scoring.failure_reason(self.episode_metrics())

    def expert(self) -> Agent:
        return RoadExpert(self._require_world)

    def _observation(self) -> dict[str, Any]:
        world = self._require_world()
        x, y, yaw, _ = world.state
        episode = world.episode
        self._frame = render(
            episode.road, (x, y, yaw), world.s[-1], self.image_size, episode.look, episode.trucks
        )
        hist_xyz, hist_rot = world.history()
        state = ego_state(hist_xyz[None], hist_rot[None], self.unicycle)[0, self.state_columns]
        return {
            ft.DRIVING_CAMERA: self._frame,
            ft.STATE: state,
            ft.HISTORY_XYZ: hist_xyz,
            ft.HISTORY_ROT: hist_rot,
            ft.TASK: world.command,
        }

    def _expert_progress(self, episode: Episode) -> float:
        """Route progress of the noiseless expert on this episode (no pixels): EP's yardstick."""
        reference = RoadWorld(episode, self.unicycle, self.commander_hz)
        expert = RoadExpert(lambda: reference)
        while reference.steps < self.max_steps and not (reference.collided or reference.off_road):
            reference.step(expert.act())
        return reference.s[-1] - reference.s[reference.first]

    def _require_world(self) -> RoadWorld:
        if self.world is None:
            raise RuntimeError("RoadEnv: call reset() before step() or expert()")
        return self.world
