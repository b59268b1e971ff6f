"""The last line between the Field Agent and the vehicle: clamp its plan, or brake instead of it.

The agent's plan is 64 steps of raw controls (acceleration in m/s^2, curvature in 1/m, the
unicycle space of `vla_lab.driving.unicycle`). `SafetyLayer.check` returns the plan the vehicle may
execute and the names of the events that changed it:

- `accel_above_max`, `accel_below_min`, `curvature_above_max`: values outside the configured
  bounds, clamped to them (the rest of the plan is kept);
- `deadline_brake`: the plan came later than the control period allows, so it describes a past
  the vehicle has already driven through; `nonfinite_brake`: the plan holds NaN or inf. Either
  way the whole plan is replaced by a braking profile: `-brake_decel` until the speed reaches
  zero (when the speed is known), then 0, with the curvature held at the last safe plan's first
  one (`brake_curvature: hold`) or straightened (`zero`).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import numpy as np

from vla_lab.driving.unicycle import ACCEL_BOUND_MPS2, CURVATURE_BOUND_PER_M

CLAMP_EVENTS = ("accel_above_max", "accel_below_min", "curvature_above_max")
BRAKE_EVENTS = ("deadline_brake", "nonfinite_brake")
EVENTS = CLAMP_EVENTS + BRAKE_EVENTS
BRAKE_CURVATURES = ("hold", "zero")


@dataclass
class SafetyLayer:
    """Bounds in the units of the controls: `max_accel` > 0 and `min_accel` < 0 (the hardest
    braking allowed) in m/s^2, `max_abs_curvature` in 1/m, `brake_decel` > 0 in m/s^2 (the
    braking profile's deceleration, within `-min_accel`). `dt`: the plan's step, s."""

    max_accel: float = 3.0
    min_accel: float = -6.0
    max_abs_curvature: float = 0.2
    brake_decel: float = 4.0
    brake_curvature: str = "hold"
    dt: float = 0.1
    counts: Counter = field(default_factory=Counter, init=False)
    last_curvature: float = field(default=0.0, init=False)

    def __post_init__(self) -> None:
        problems = []
        if not 0.0 < self.max_accel <= ACCEL_BOUND_MPS2:
            problems.append(f"max_accel={self.max_accel} must be in (0, {ACCEL_BOUND_MPS2}]")
        if not -ACCEL_BOUND_MPS2 <= self.min_accel < 0.0:
            problems.append(f"min_accel={self.min_accel} must be in [-{ACCEL_BOUND_MPS2}, 0)")
        if not 0.0 < self.max_abs_curvature <= CURVATURE_BOUND_PER_M:
            problems.append(
                f"max_abs_curvature={self.max_abs_curvature} must be in "
                f"(0, {CURVATURE_BOUND_PER_M}]"
            )
        if not 0.0 < self.brake_decel <= -self.min_accel:
            problems.append(
                f"brake_decel={self.brake_decel} must be in (0, -min_accel={-self.min_accel}]"
            )
        if self.brake_curvature not in BRAKE_CURVATURES:
            problems.append(f"brake_curvature={self.brake_curvature!r}: use {BRAKE_CURVATURES}")
        if problems:
            raise ValueError("safety: " + "; ".join(problems) + " (conf/drive.yaml safety.*)")

    def reset(self) -> None:
        """A new drive: no held curvature (counts are kept; they sum over the run)."""
        self.last_curvature = 0.0

    def check(
        self,
        controls: np.ndarray,
        latency_s: float,
        deadline_s: float,
        v0: float | None = None,
    ) -> tuple[np.ndarray, list[str]]:
        """The plan (T, 2) [a, kappa] the vehicle may execute, and the events (names in
        `EVENTS`) that changed `controls`; the events are also added to `counts`. `v0` (m/s):
        the current speed, so that a braking profile stops at standstill instead of reversing."""
        controls = np.asarray(controls, dtype=np.float64)
        if controls.ndim != 2 or controls.shape[1] != 2:
            raise ValueError(f"controls must be (T, 2) [accel, curvature], got {controls.shape}")
        events = []
        if latency_s > deadline_s:
            events.append("deadline_brake")
        if not np.isfinite(controls).all():
            events.append("nonfinite_brake")
        if events:
            safe = self.brake_profile(len(controls), v0)
        else:
            accel, curvature = controls[:, 0], controls[:, 1]
            if (accel > self.max_accel).any():
                events.append("accel_above_max")
            if (accel < self.min_accel).any():
                events.append("accel_below_min")
            if (np.abs(curvature) > self.max_abs_curvature).any():
                events.append("curvature_above_max")
            safe = np.stack(
                [
                    np.clip(accel, self.min_accel, self.max_accel),
                    np.clip(curvature, -self.max_abs_curvature, self.max_abs_curvature),
                ],
                axis=-1,
            )
            self.last_curvature = float(safe[0, 1])
        self.counts.update(events)
        return safe, events

    def brake_profile(self, n_steps: int, v0: float | None = None) -> np.ndarray:
        """(n_steps, 2): `-brake_decel` (then 0 once a known `v0` has reached standstill) and
        the held or zero curvature."""
        accel = np.full(n_steps, -self.brake_decel)
        if v0 is not None and np.isfinite(v0):
            # Step i decelerates by brake_decel * dt from v_i; the one that would cross zero
            # takes only what is left, so the plan ends at v = 0 exactly.
            speed_before = float(v0) - self.brake_decel * self.dt * np.arange(n_steps)
            accel = 0.0 - np.clip(speed_before / self.dt, 0.0, self.brake_decel)
        curvature = self.last_curvature if self.brake_curvature == "hold" else 0.0
        return np.stack([accel, np.full(n_steps, curvature)], axis=-1)
