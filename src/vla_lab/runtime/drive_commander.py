"""The Commander of a drive: a slow, strategic voice that publishes one text command at a time.

The driving plan's Commander is a large VLM at 0.5-1 Hz; the Field Agent reads whatever it said
last. The Commanders (scripted, rule, vlm) are `vla_lab.driving.commanders`, chosen by
`commander.name` (conf/commander/*.yaml). `CommanderThread` runs one on its own thread at
`commander_hz`, reading the latest `Frame` and publishing `Command`s; the Agent never waits for it.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from typing import Any

from vla_lab.driving.commanders import Frame
from vla_lab.runtime.drive_clock import LatestSlot, RealtimeClock, ReplayClock

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Command:
    """A published command: when (drive time), from which frame, and how long it took."""

    text: str
    t_s: float
    frame_t_s: float
    compute_ms: float
    reasoning: str = ""


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
