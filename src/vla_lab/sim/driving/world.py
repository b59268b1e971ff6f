"""The driving world's state and dynamics, without pixels: what the env renders and scores, and
what the expert's reference drive (for ego progress) runs on.

The ego is a unicycle (x, y, yaw, v) in world coordinates, advanced one action step of dt at a
time by `UnicycleActionSpace`'s own integrator (the AR1 scheme the model's plans use), from the
dataset's normalised (a, kappa). It keeps every pose since the start, preceded by a pre-roll:
the 15 poses of a car that followed the start lane's centre at the start speed, so the history
and the state estimator have a past from the first step.
"""

from __future__ import annotations

import numpy as np
import torch

from vla_lab.driving.pdms import box_corners, boxes_overlap
from vla_lab.driving.unicycle import UnicycleActionSpace, rot_from_yaw
from vla_lab.sim.driving.road import Road
from vla_lab.sim.driving.scenarios import EGO_FOOTPRINT, START_S_M, Episode, ScenarioCommander

N_HISTORY = 16
OFF_ROAD_END_M = 2.0  # a corner this far beyond the surface ends the episode


class RoadWorld:
    """One episode's true state; `step` advances it by one action of `action_space.dt`."""

    def __init__(
        self, episode: Episode, action_space: UnicycleActionSpace, commander_hz: float
    ) -> None:
        self.episode, self.action_space = episode, action_space
        self.dt = action_space.dt
        self.commander = ScenarioCommander(episode)
        self.command_every = max(1, round(1.0 / (commander_hz * self.dt)))
        road, v = episode.road, episode.speed_mps
        d = Road.lane_centre(episode.lane)
        s_past = START_S_M - v * self.dt * np.arange(N_HISTORY - 1, -1, -1)
        x, y, yaw = road.pose(s_past, d)
        # states (T, 4) [x, y, yaw, v]; s, d: the rear axle's Frenet coordinates per state.
        self.states = np.stack([x, y, yaw, np.full_like(x, v)], axis=1)
        self.s, self.d = list(s_past), [d] * N_HISTORY
        self.first = N_HISTORY - 1  # index of the episode's first state
        self.steps = 0
        self.command = self.commander.command(self.s[-1], self.d[-1])
        self.command_log = [(0, self.command)]  # (step it was issued at, command)
        self.collided = self.off_road = False

    @property
    def t_s(self) -> float:
        return self.steps * self.dt

    @property
    def state(self) -> np.ndarray:
        """Current [x, y, yaw, v]."""
        return self.states[-1]

    def step(self, action: np.ndarray) -> None:
        """Apply one normalised (a, kappa) for dt; then poll the Commander on its clock."""
        x, y, yaw, v = self.states[-1]
        controls = self.action_space.denormalize(torch.as_tensor(action, dtype=torch.float64))
        local = self.action_space.controls_to_states(
            controls.reshape(1, 2), torch.tensor(v, dtype=torch.float64)
        )[-1].numpy()
        c, s = np.cos(yaw), np.sin(yaw)
        new = [x + c * local[0] - s * local[1], y + s * local[0] + c * local[1], yaw + local[2]]
        self.states = np.vstack([self.states, [*new, local[3]]])
        s_new, d_new = self.episode.road.frenet(new[0], new[1], self.s[-1])
        self.s.append(float(s_new))
        self.d.append(float(d_new))
        self.steps += 1
        if self.steps % self.command_every == 0:
            self.command = self.commander.command(self.s[-1], self.d[-1])
            if self.command != self.command_log[-1][1]:
                self.command_log.append((self.steps, self.command))
        corners = self.corners(self.states[-1:])[0]
        trucks = np.array([b.corners() for b in self.episode.trucks]).reshape(-1, 4, 2)
        self.collided |= bool(boxes_overlap(corners[None], trucks).any())
        _, offsets = self.episode.road.frenet(corners[:, 0], corners[:, 1], self.s[-1])
        right, left = Road.surface_m()
        self.off_road |= bool(
            (offsets < right - OFF_ROAD_END_M).any() or (offsets > left + OFF_ROAD_END_M).any()
        )

    @staticmethod
    def corners(states: np.ndarray) -> np.ndarray:
        """Ego footprints (T, 4, 2) of states (T, 4)."""
        return box_corners(states[:, 0], states[:, 1], states[:, 2], *EGO_FOOTPRINT)

    def history(self) -> tuple[np.ndarray, np.ndarray]:
        """The last 16 poses (oldest first, the current one last) in the current ego frame:
        xyz (16, 3) and rot (16, 3, 3), float32, as `trajectory.history_*` of a sample."""
        x, y, yaw, _ = self.states[-N_HISTORY:].T
        x0, y0, yaw0 = x[-1], y[-1], yaw[-1]
        c, s = np.cos(yaw0), np.sin(yaw0)
        dx, dy = x - x0, y - y0
        xyz = np.stack([c * dx + s * dy, -s * dx + c * dy, np.zeros_like(x)], axis=1)
        rot = rot_from_yaw(torch.from_numpy(yaw - yaw0)).numpy()
        return xyz.astype(np.float32), rot.astype(np.float32)

    def command_at(self, t_s: float) -> str:
        """The command in force `t_s` seconds into the episode."""
        step = np.floor(t_s / self.dt + 1e-9)
        return [command for issued, command in self.command_log if issued <= step][-1]

    def driven(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The episode's states (T + 1, 4) from its start, and their Frenet s and d."""
        first = self.first
        return self.states[first:], np.array(self.s[first:]), np.array(self.d[first:])
