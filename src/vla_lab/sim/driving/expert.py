"""The driving world's scripted expert: pure pursuit on the (target) lane centre, speed control,
and the command's manoeuvre, read from the world's true state.

Lateral: the reference path is the target lane's centre, reached from wherever the car was when
the command came over a smooth ramp of `max(25 m, 3 s)` starting at the pure-pursuit point (a
lane change; an overtake is the Commander's two lane changes); the car steers with pure pursuit
(curvature 2 y / L^2 to the reference point about 1 s ahead). Longitudinal: the episode's
cruise speed, and a constant-deceleration stop `STOP_MARGIN_M` short of a truck on the
reference path; the acceleration moves at most `JERK_STEP_MPS2` per step, inside the comfort
bounds.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from vla_lab.driving.commands import RuleLabeler
from vla_lab.sim.driving.road import N_LANES, Road
from vla_lab.sim.driving.scenarios import EGO_FOOTPRINT
from vla_lab.sim.driving.world import RoadWorld

BRAKE_MPS2 = 2.0
STOP_MARGIN_M = 4.0
JERK_STEP_MPS2 = 0.3
_SPEED_GAIN = 1.0  # 1/s
_ACCEL_RANGE = (-3.5, 1.5)
_LANE_STEP = {
    RuleLabeler.commands["change_lane_left"]: 1,
    RuleLabeler.commands["change_lane_right"]: -1,
}


class RoadExpert:
    """An `Agent` that drives the world `world_of()` returns; `noise` (normalised units) adds a
    slowly varying (AR(1), 1 s correlation) perturbation, for recordings of imperfect drives."""

    def __init__(
        self,
        world_of: Callable[[], RoadWorld],
        noise: float = 0.0,
        rng: np.random.Generator | None = None,
    ) -> None:
        self.world_of, self.noise = world_of, float(noise)
        self.rng = rng if rng is not None else np.random.default_rng(0)
        self.reset()

    def reset(self) -> None:
        self.command: str | None = None
        self.ramp = (0.0, 1.0, 0.0, 0.0)  # s start, length, d from, d to
        self.accel = 0.0
        self.perturbation = np.zeros(2)

    def act(self, observation: Any = None) -> np.ndarray:
        """Normalised (a, kappa) (2,) float32 for the world's current state."""
        world = self.world_of()
        x, y, yaw, v = world.state
        s, d = world.s[-1], world.d[-1]
        lookahead = float(np.clip(v, 6.0, 14.0))
        if world.command != self.command:
            self._new_command(world.command, s + lookahead, d, v)
        target_s = s + lookahead
        tx, ty, _ = world.episode.road.pose(np.array(target_s), self._reference(target_s))
        dx, dy = float(tx) - x, float(ty) - y
        lateral = -np.sin(yaw) * dx + np.cos(yaw) * dy
        kappa = 2.0 * lateral / (dx * dx + dy * dy)
        wanted = float(np.clip(self._accel(world, s, v), *_ACCEL_RANGE))
        self.accel += float(np.clip(wanted - self.accel, -JERK_STEP_MPS2, JERK_STEP_MPS2))
        raw = torch.tensor([self.accel, kappa], dtype=torch.float64)
        action = world.action_space.normalize(raw).numpy()
        if self.noise > 0:
            self.perturbation = 0.9 * self.perturbation + self.noise * np.sqrt(
                0.19
            ) * self.rng.standard_normal(2)
            action = action + self.perturbation
        return action.astype(np.float32)

    def _new_command(self, command: str, s: float, d: float, v: float) -> None:
        lane = int(np.argmin([abs(d - Road.lane_centre(k)) for k in range(N_LANES)]))
        target = int(np.clip(lane + _LANE_STEP.get(command, 0), 0, N_LANES - 1))
        start = d if self.command is None else self._reference(s)  # the path stays continuous
        self.ramp = (s, max(25.0, 3.0 * v), start, Road.lane_centre(target))
        self.command = command

    def _reference(self, s: float) -> float:
        """Offset d of the reference path at arc length `s` (a smoothstep ramp)."""
        start, length, d_from, d_to = self.ramp
        u = float(np.clip((s - start) / length, 0.0, 1.0))
        return d_from + (d_to - d_from) * u * u * (3 - 2 * u)

    def _accel(self, world: RoadWorld, s: float, v: float) -> float:
        """Towards the cruise speed; braking at v^2 / 2 gap once that exceeds 0.7 `BRAKE_MPS2`
        for a truck on the reference path, so the car stops `STOP_MARGIN_M` short of it."""
        accel = _SPEED_GAIN * (world.episode.cruise_speed(world.t_s) - v)
        length, _, rear = EGO_FOOTPRINT
        for truck, truck_s in zip(world.episode.trucks, world.episode.truck_s, strict=True):
            _, truck_d = world.episode.road.frenet(truck.x, truck.y, truck_s)
            if truck_s < s or abs(self._reference(truck_s) - float(truck_d)) > 2.5:
                continue
            gap = truck_s - (s + length - rear) - STOP_MARGIN_M
            if gap <= 0.5:
                accel = min(accel, -_SPEED_GAIN * v)
            elif v * v / (2 * gap) > 0.7 * BRAKE_MPS2:
                accel = min(accel, -v * v / (2 * gap))
        return accel
