"""The driving world's scenarios: how an episode is drawn, what its Commander says, and what
following those commands means.

- `straight`: a straight road, keep the lane.
- `curves`: bends from the first seconds (|kappa| up to `max_curvature`), keep the lane; a car
  that does not steer leaves the road.
- `overtake`: a stopped truck in the ego lane 55-80 m ahead on a gently curving road; the
  Commander says "Change lane to the left" (or right, from the left lane) when the gap falls
  below `change_gap_m`, "Change lane to the right" once the ego's rear is past the truck by
  `return_gap_m`, and "Keep lane" once back in its lane.
- `stop`: the same truck, and "Stop" when the gap falls below `stop_gap_m`.

Commands are the RuleLabeler's vocabulary (`vla_lab.driving.commands.RuleLabeler.commands`). The
Commander reads the true state (as a scripted Commander may) and is polled by the world at
`commander_hz` in simulated time; each phase, once reached, is kept.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from vla_lab.driving.commands import RuleLabeler
from vla_lab.sim.driving.render import LOOKAHEAD_M, Look
from vla_lab.sim.driving.road import N_LANES, Box, Road

SCENARIOS = ("straight", "curves", "overtake", "stop")
COMMANDS = RuleLabeler.commands
EGO_FOOTPRINT = (4.6, 1.9, 1.0)  # length, width, rear overhang behind the rear axle (m)
TRUCK_SIZE = (9.0, 2.5, 3.2)  # length, width, height (m)
START_S_M = 30.0  # road behind the start, for the history and the first view
IN_LANE_M = 1.0  # the ego centre within this of a lane centre is in that lane


@dataclass(frozen=True)
class Episode:
    """One drawn episode: the road, where the ego starts, its cruise speed, the trucks."""

    scenario: str
    road: Road
    lane: int
    speed_mps: float
    trucks: tuple[Box, ...]
    truck_s: tuple[float, ...]  # arc length of each truck's back
    look: Look
    speed_swing: tuple[float, float, float] = (0.0, 1.0, 0.0)  # amplitude, omega, phase

    def cruise_speed(self, t_s: float) -> float:
        """The speed the expert aims at `t_s` seconds into the episode (before obstacles)."""
        amp, omega, phase = self.speed_swing
        return self.speed_mps + amp * (np.sin(omega * t_s + phase) - np.sin(phase))


def draw_episode(
    scenario: str,
    rng: np.random.Generator,
    duration_s: float,
    speed_range: tuple[float, float],
    max_curvature: float,
    max_accel: float = 0.0,
) -> Episode:
    """Episode of `scenario` from `rng`; `max_accel` > 0 makes the cruise speed swing slowly
    (|a| <= max_accel) inside `speed_range`, as a recorded human drive would."""
    if scenario not in SCENARIOS:
        raise ValueError(f"scenario {scenario!r} is not one of {SCENARIOS}")
    margin = 0.1 * (speed_range[1] - speed_range[0])  # room for the expert's tracking error
    lo, hi = speed_range[0] + margin, speed_range[1] - margin
    swing = (0.0, 1.0, 0.0)
    if max_accel > 0:
        omega = 2 * np.pi / rng.uniform(8.0, 14.0)
        amp = min(max_accel / omega, (hi - lo) / 4)
        swing = (float(amp), float(omega), float(rng.uniform(0, 2 * np.pi)))
        lo, hi = lo + 2 * amp, hi - 2 * amp  # sin(.) - sin(phase) spans [-2, 2] amplitudes
    speed = float(rng.uniform(lo, hi))
    length = START_S_M + (speed + 2 * swing[0]) * duration_s + LOOKAHEAD_M[1] + 20.0
    curvature = {"straight": 0.0, "curves": max_curvature}.get(scenario, 0.5 * max_curvature)
    road = Road.draw(
        rng,
        length,
        curvature,
        straight_share=0.0 if scenario == "curves" else 0.3,
        first_curved_at_m=START_S_M + 5.0 if scenario == "curves" else None,
    )
    lane = int(rng.integers(N_LANES))
    trucks, truck_s = (), ()
    if scenario in ("overtake", "stop"):
        s = START_S_M + float(rng.uniform(55.0, 80.0))
        x, y, yaw = road.pose(np.array(s), Road.lane_centre(lane))
        trucks = (Box(float(x), float(y), float(yaw), *TRUCK_SIZE, rear_m=0.0),)
        truck_s = (s,)
    return Episode(scenario, road, lane, speed, trucks, truck_s, Look.draw(rng), swing)


@dataclass
class ScenarioCommander:
    """The scenario's own schedule of commands, from the true state (see the module docstring)."""

    episode: Episode
    change_gap_m: float = 35.0
    return_gap_m: float = 6.0
    stop_gap_m: float = 35.0
    phase: int = 0

    def command(self, s_m: float, d_m: float) -> str:
        """The command for an ego whose rear axle is at Frenet (s_m, d_m)."""
        episode, length, _, rear = self.episode, *EGO_FOOTPRINT
        if episode.scenario in ("overtake", "stop"):
            gap = episode.truck_s[0] - (s_m + length - rear)
            near = self.stop_gap_m if episode.scenario == "stop" else self.change_gap_m
            if self.phase == 0 and gap < near:
                self.phase = 1
            passed = s_m - rear > episode.truck_s[0] + TRUCK_SIZE[0] + self.return_gap_m
            if episode.scenario == "overtake" and self.phase == 1 and passed:
                self.phase = 2
            home = abs(d_m - Road.lane_centre(episode.lane)) < 0.5
            if self.phase == 2 and home:
                self.phase = 3
        out, back = ("left", "right") if episode.lane == 0 else ("right", "left")
        return COMMANDS[_PHASES[episode.scenario][self.phase].format(out=out, back=back)]


_PHASES = {  # RuleLabeler command keys per phase
    "straight": ("keep_lane",),
    "curves": ("keep_lane",),
    "overtake": ("keep_lane", "change_lane_{out}", "change_lane_{back}", "keep_lane"),
    "stop": ("keep_lane", "stop"),
}


def command_followed(episode: Episode, s_m: np.ndarray, d_m: np.ndarray, v_mps: np.ndarray) -> bool:
    """Whether the drive (rear-axle Frenet s, d and speed per step) did what it was told:
    keep lane = the centre never leaves the start lane; overtake = past the truck and back in
    the start lane at the end; stop = below 0.5 m/s at the end with the front still short of
    the truck. Collisions are judged by NC, not here."""
    home = np.abs(d_m - Road.lane_centre(episode.lane)) < IN_LANE_M
    if episode.scenario in ("straight", "curves"):
        return bool(home.all())
    length, _, rear = EGO_FOOTPRINT
    if episode.scenario == "overtake":
        passed = s_m[-1] - rear > episode.truck_s[0] + TRUCK_SIZE[0]
        return bool(passed and home[-1])
    stopped = v_mps[-1] < RuleLabeler.stop_speed
    return bool(stopped and s_m[-1] + length - rear < episode.truck_s[0])


def in_any_lane(d_m: np.ndarray, tolerance_m: float = 0.5) -> np.ndarray:
    """Per step: the ego centre within `tolerance_m` of some lane centre (lane keeping)."""
    centres = np.array([Road.lane_centre(k) for k in range(N_LANES)])
    return np.abs(np.asarray(d_m)[..., None] - centres).min(-1) < tolerance_m
