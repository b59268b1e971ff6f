"""What the Field Agent is told: the text command of each sample.

Three sources, chosen by `data.source.commands.mode`:

- `fixed`: one command for every sample ("Follow the lane", Phase 1 of the driving plan);
- `rule`: `RuleLabeler` derives the command from the sample's own future (turn, lane change,
  speed change), with thresholds in config: the labels a Commander would have to give;
- `file`: a parquet of `clip_id, t0_us, command[, reasoning]` written by an auto-labeler
  (`python -m vla_lab.label`, or Alpamayo-R1's reasoning condensed to commands).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

FOLLOW_THE_LANE = "Follow the lane"
COMMAND_FILE_COLUMNS = ("clip_id", "t0_us", "command")
COMMAND_MODES = ("fixed", "rule", "file")


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


def read_command_file(path: str | Path) -> dict[tuple[str, int], str]:
    """`(clip_id, t0_us) -> command` from a labels parquet; names the file and missing columns."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"commands file {path} does not exist; write one with "
            "`python -m vla_lab.label data=<dataset> labeler=rule out=<parquet>`"
        )
    table = pd.read_parquet(path)
    missing = [c for c in COMMAND_FILE_COLUMNS if c not in table.columns]
    if missing:
        raise KeyError(
            f"commands file {path} lacks columns {missing}; expected "
            f"{list(COMMAND_FILE_COLUMNS)} (+ optional reasoning), found {list(table.columns)}"
        )
    return {
        (str(clip), int(t0)): str(command)
        for clip, t0, command in zip(table.clip_id, table.t0_us, table.command, strict=True)
    }


class Commands:
    """The command of a sample, from the configured source (see the module docstring).

    `command(clip_id, t0_us, fut_xyz, fut_rot, v0)` returns None when a `file` has no row for the
    sample (the caller skips and counts it).
    """

    def __init__(self, cfg: Mapping[str, Any] | None = None) -> None:
        cfg = dict(cfg or {})
        self.mode = str(cfg.pop("mode", "fixed"))
        if self.mode not in COMMAND_MODES:
            raise ValueError(
                f"data.source.commands.mode={self.mode!r}; expected one of {COMMAND_MODES}"
            )
        self.text = str(cfg.pop("text", FOLLOW_THE_LANE))
        self.file = cfg.pop("file", None)
        rule = dict(cfg.pop("rule", None) or {})
        if cfg:
            raise ValueError(
                f"data.source.commands has unknown keys {sorted(cfg)}; expected mode, text, "
                "file, rule"
            )
        self.labeler = RuleLabeler(**rule)
        self._table: dict[tuple[str, int], str] | None = None
        if self.mode == "file":
            if not self.file:
                raise ValueError("data.source.commands.mode=file needs commands.file=<parquet>")
            self._table = read_command_file(self.file)

    def command(
        self, clip_id: str, t0_us: int, fut_xyz: np.ndarray, fut_rot: np.ndarray, v0: float
    ) -> str | None:
        if self.mode == "fixed":
            return self.text
        if self.mode == "rule":
            return self.labeler.label(fut_xyz, fut_rot, v0)
        return self._table.get((clip_id, int(t0_us)))
