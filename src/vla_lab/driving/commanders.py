"""Commanders: who says what the car should do next, as one short text command.

One family serves both places a command is made: the drive loop's Commander (a slow voice the
Field Agent reads at 0.5-1 Hz, `runtime/drive.py`) and the labelling job that writes a command
for every sample of a dataset (`python -m vla_lab.label`). Each takes a `Frame` and returns
`(command, reasoning)`:

- `ScriptedCommander`: a fixed schedule of `(time_s, command)` (demos, command-following tests);
- `RuleCommander`: `RuleLabeler` on the logged future, an oracle: the command a perfect Commander
  would have given; its reasoning is the numbers it decided on;
- `VLMCommander`: a vision-language model on the frame alone (`models/vlm_labeler.py`).

`needs_image` says whether the frame's image must be decoded for it. Built from config by
`vla_lab.runtime.commanders.build_commander` (`conf/commander/`, `conf/labeler/`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from vla_lab.driving.commands import RuleLabeler


@dataclass(frozen=True)
class Frame:
    """What a Commander sees at time `t_s`: the front frame (H, W, 3) uint8 (None when the
    Commander does not need it), and for the oracle the logged future (`fut_xyz` (64, 3),
    `fut_rot` (64, 3, 3) in the t0 frame) and the speed `v0`."""

    t_s: float
    clip_id: str
    t0_us: int
    image: np.ndarray | None
    fut_xyz: np.ndarray
    fut_rot: np.ndarray
    v0: float


class ScriptedCommander:
    """The last `(time_s, command)` of `schedule` whose time has come at the frame's time."""

    needs_image = False

    def __init__(self, schedule: Sequence[Mapping[str, Any]]) -> None:
        entries = sorted((float(e["time_s"]), str(e["command"])) for e in schedule)
        if not entries:
            raise ValueError("commander.schedule is empty; give [{time_s: 0.0, command: ...}]")
        self.schedule = entries

    def command(self, frame: Frame) -> tuple[str, str]:
        current = self.schedule[0][1]
        for time_s, text in self.schedule:
            if time_s <= frame.t_s:
                current = text
        return current, ""


class RuleCommander:
    """The command of the logged future (`RuleLabeler`): what the driver actually did next."""

    needs_image = False

    def __init__(self, thresholds: Mapping[str, float] | None = None) -> None:
        self.rule = RuleLabeler(**dict(thresholds or {}))

    def command(self, frame: Frame) -> tuple[str, str]:
        return self.label(frame.fut_xyz, frame.fut_rot, frame.v0)

    def label(self, fut_xyz: np.ndarray, fut_rot: np.ndarray, v0: float) -> tuple[str, str]:
        """(command, reasoning) of one future (T, 3) / (T, 3, 3) in the t0 frame, as RuleLabeler
        reads it: yaw and lateral offset at the horizon, end speed from the last two points."""
        read = self.rule.readings(fut_xyz, fut_rot)
        reasoning = (
            f"yaw change {read['yaw']:+.2f} rad, lateral offset {read['lateral']:+.1f} m, speed "
            f"{v0:.1f} -> {read['v_end']:.1f} m/s over {len(fut_xyz) * self.rule.dt:.1f} s"
        )
        return self.rule.label(fut_xyz, fut_rot, v0), reasoning


class VLMCommander:
    """A vision-language model's command from the frame alone (its reasoning is kept)."""

    needs_image = True

    def __init__(self, vlm: Any) -> None:
        self.vlm = vlm

    def command(self, frame: Frame) -> tuple[str, str]:
        return self.vlm.label(frame.image)
