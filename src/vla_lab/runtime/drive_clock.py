"""Time and shared state of a drive: the clock both loops tick on and the slots they share.

The Agent and the Commander run on their own threads and never wait for each other: each reads
the other's latest output from a `LatestSlot` (lock-protected, overwritten, never queued). They
tick on one clock. `RealtimeClock` is the wall clock; `ReplayClock` is advanced by the Agent
after each step, so a replay runs as fast as the machine allows (tests, batch evaluation) while
the Commander still ticks at its rate in the drive's own time.
"""

from __future__ import annotations

import threading
import time


class LatestSlot[T]:
    """The newest value a producer published (None before the first); readers never block on
    the producer, only on the lock for a copy of a reference."""

    def __init__(self, value: T | None = None) -> None:
        self._lock = threading.Lock()
        self._value = value

    def put(self, value: T) -> None:
        with self._lock:
            self._value = value

    def get(self) -> T | None:
        with self._lock:
            return self._value


class RealtimeClock:
    """Seconds since `start()` on the monotonic wall clock."""

    def __init__(self) -> None:
        self._start = time.monotonic()
        self._closed = threading.Event()

    def start(self) -> None:
        self._start = time.monotonic()

    def now(self) -> float:
        return time.monotonic() - self._start

    def sleep_until(self, t_s: float) -> bool:
        """Wait until `t_s`; False (at once) when the clock was closed, the drive is over."""
        remaining = t_s - self.now()
        if remaining > 0:
            self._closed.wait(remaining)
        return not self._closed.is_set()

    def close(self) -> None:
        self._closed.set()


class ReplayClock:
    """The drive's time, moved by `advance` (the Agent, after each step)."""

    def __init__(self) -> None:
        self._now = 0.0
        self._closed = False
        self._changed = threading.Condition()

    def start(self) -> None:
        self.advance(0.0)

    def now(self) -> float:
        with self._changed:
            return self._now

    def advance(self, t_s: float) -> None:
        with self._changed:
            self._now = max(self._now, float(t_s))
            self._changed.notify_all()

    def sleep_until(self, t_s: float) -> bool:
        with self._changed:
            self._changed.wait_for(lambda: self._closed or self._now >= t_s)
            return not self._closed

    def close(self) -> None:
        with self._changed:
            self._closed = True
            self._changed.notify_all()
