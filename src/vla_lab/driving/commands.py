"""What the Field Agent is told, in words: `RuleLabeler` turns a future trajectory into a text
command (turn, lane change, speed change), with thresholds in config: the labels a Commander would
have to give. `FOLLOW_THE_LANE` is the one command of Phase 1 of the driving plan.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

FOLLOW_THE_LANE = "Follow the lane"


@dataclass(frozen=True)
class RuleLabeler:
    """A command from the future trajectory, first match wins: stop, turn, lane change, slow
    down, accelerate, else keep lane.

    Yaw and lateral offset are read at the end of the horizon (ego frame at t0); speeds are the
    start speed `v0` and the end speed from the last two future points.
    """

    stop_speed: float = 0.5  # m/s: ends below this after moving faster than it
    turn_yaw: float = 0.5  # rad of heading change: a turn
    lane_change_offset: float = 2.5  # m of lateral offset with little heading change
    lane_change_max_yaw: float = 0.15  # rad, all along the horizon (a bend of the road is not one)
    speed_change: float = 2.0  # m/s: slow down / accelerate
    dt: float = 0.1

    commands = {
        "stop": "Stop",
        "turn_left": "Turn left",
        "turn_right": "Turn right",
        "change_lane_left": "Change lane to the left",
        "change_lane_right": "Change lane to the right",
        "slow_down": "Slow down",
        "accelerate": "Accelerate",
        "keep_lane": "Keep lane",
    }

    def readings(self, fut_xyz: np.ndarray, fut_rot: np.ndarray) -> dict[str, float]:
        """What the rules read from a future: yaw and lateral offset at the horizon, the largest
        |yaw| along it, and the end speed from the last two points."""
        yaws = np.arctan2(fut_rot[:, 1, 0], fut_rot[:, 0, 0])
        return {
            "yaw": float(yaws[-1]),
            "max_abs_yaw": float(np.abs(yaws).max()),
            "lateral": float(fut_xyz[-1, 1]),
            "v_end": float(np.linalg.norm(fut_xyz[-1, :2] - fut_xyz[-2, :2]) / self.dt),
        }

    def label(self, fut_xyz: np.ndarray, fut_rot: np.ndarray, v0: float) -> str:
        """The command for one future: `fut_xyz` (T, 3), `fut_rot` (T, 3, 3) in the t0 frame."""
        read = self.readings(fut_xyz, fut_rot)
        yaw, lateral, v_end = read["yaw"], read["lateral"], read["v_end"]
        if v_end < self.stop_speed <= v0:
            return self.commands["stop"]
        if abs(yaw) >= self.turn_yaw:
            return self.commands["turn_left" if yaw > 0 else "turn_right"]
        small_yaw = read["max_abs_yaw"] <= self.lane_change_max_yaw
        if abs(lateral) >= self.lane_change_offset and small_yaw:
            return self.commands["change_lane_left" if lateral > 0 else "change_lane_right"]
        if v_end - v0 <= -self.speed_change:
            return self.commands["slow_down"]
        if v_end - v0 >= self.speed_change:
            return self.commands["accelerate"]
        return self.commands["keep_lane"]
