"""The Commander of a drive: a slow, strategic voice that publishes one text command at a time.

The driving plan's Commander is a large VLM at 0.5-1 Hz; the Field Agent reads whatever it said
last. Three Commanders, chosen by `commander.name` (conf/commander/*.yaml):

- `scripted`: a fixed schedule of `(time_s, command)` (demos, tests of command following);
- `rule`: `RuleLabeler` on the logged future of the latest frame, an oracle for replays: the
  command a perfect Commander would have given;
- `vlm`: `VLMLabeler` on the latest frame (`tiny: true` for an offline random-weight SmolVLM).

`CommanderThread` runs one on its own thread at `commander_hz`, reading the latest `Frame` and
publishing `Command`s; the Agent never waits for it.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from vla_lab.driving.commands import RuleLabeler
from vla_lab.runtime.drive_clock import LatestSlot, RealtimeClock, ReplayClock

log = logging.getLogger(__name__)

COMMANDERS = ("scripted", "rule", "vlm")


@dataclass(frozen=True)
class Frame:
    """What the sensors give at drive time `t_s`: the front frame (H, W, 3) uint8, and for the
    oracle the logged future (`fut_xyz` (64, 3), `fut_rot` (64, 3, 3) in the t0 frame) and `v0`."""

    t_s: float
    clip_id: str
    t0_us: int
    image: np.ndarray
    fut_xyz: np.ndarray
    fut_rot: np.ndarray
    v0: float


@dataclass(frozen=True)
class Command:
    """A published command: when (drive time), from which frame, and how long it took."""

    text: str
    t_s: float
    frame_t_s: float
    compute_ms: float
    reasoning: str = ""


class ScriptedCommander:
    """The last `(time_s, command)` of `schedule` whose time has come at the frame's time."""

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

    def __init__(self, thresholds: Mapping[str, float] | None = None) -> None:
        self.labeler = RuleLabeler(**dict(thresholds or {}))

    def command(self, frame: Frame) -> tuple[str, str]:
        return self.labeler.label(frame.fut_xyz, frame.fut_rot, frame.v0), ""


class VLMCommander:
    """A vision-language model's command from the frame alone (its reasoning is logged)."""

    def __init__(self, vlm: Any) -> None:
        self.vlm = vlm

    def command(self, frame: Frame) -> tuple[str, str]:
        return self.vlm.label(frame.image)


def build_commander(options: Mapping[str, Any], cache_dir: str) -> Any:
    """The Commander of `options` (the resolved `commander` config); `vlm` loads its model."""
    options = dict(options)
    name = options.pop("name", None)
    options.pop("initial_command", None)
    if name == "scripted":
        return ScriptedCommander(options.get("schedule") or [])
    if name == "rule":
        return RuleCommander(options.get("thresholds"))
    if name == "vlm":
        from vla_lab.models.vlm_labeler import VLMLabeler

        if options.pop("tiny", False):
            from vla_lab.models.backbones.smolvlm_tiny import build_tiny_smolvlm

            options["model_id"] = str(build_tiny_smolvlm(cache_dir))
        return VLMCommander(VLMLabeler(**options))
    raise ValueError(f"commander.name={name!r}; expected one of {COMMANDERS} (conf/commander/)")


class CommanderThread(threading.Thread):
    """Runs `commander` at `hz` on `clock`: each tick reads `frames`' latest and publishes into
    `commands`. A tick that overruns the period is followed at once by the next (no bursts to
    catch up). An exception ends the thread and is kept in `error` for the Agent to raise."""

    def __init__(
        self,
        commander: Any,
        hz: float,
        clock: RealtimeClock | ReplayClock,
        frames: LatestSlot[Frame],
        commands: LatestSlot[Command],
    ) -> None:
        super().__init__(name="commander", daemon=True)
        if hz <= 0:
            raise ValueError(f"commander_hz={hz} must be > 0")
        self.commander = commander
        self.period_s = 1.0 / float(hz)
        self.clock = clock
        self.frames = frames
        self.commands = commands
        self.published: list[Command] = []
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            next_t = 0.0
            while self.clock.sleep_until(next_t):
                frame = self.frames.get()
                if frame is not None:
                    start = time.perf_counter()
                    text, reasoning = self.commander.command(frame)
                    compute_ms = (time.perf_counter() - start) * 1e3
                    command = Command(text, self.clock.now(), frame.t_s, compute_ms, reasoning)
                    self.commands.put(command)
                    self.published.append(command)
                next_t = max(next_t + self.period_s, self.clock.now())
        except BaseException as error:  # reported by the Agent's loop, which owns the run
            log.exception("commander failed")
            self.error = error
