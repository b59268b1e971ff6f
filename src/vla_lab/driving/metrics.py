"""Trajectory metrics of the driving models: ADE/FDE (overall and by horizon), minADE/minFDE over
K samples, comfort, and the constant-velocity baseline every prediction is compared with.
Positions are (..., T, >=2) in the ego frame at t0; only XY counts.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

# NAVSIM / nuPlan comfort bounds (low, high), as AR1 uses them in
# finetune/rl/rewards/comfort_reward.py. There "jerk" is the second derivative of the speed |v|,
# "lon_jerk" that of the velocity component along the heading.
COMFORT_BOUNDS = {
    "lon_accel": (-4.05, 2.40),
    "lat_accel": (-4.89, 4.89),
    "jerk": (-8.37, 8.37),
    "lon_jerk": (-4.13, 4.13),
    "yaw_accel": (-1.93, 1.93),
    "yaw_rate": (-0.95, 0.95),
}


def ade(pred_xy: Tensor, true_xy: Tensor, mask: Tensor | None = None) -> Tensor:
    """Mean XY distance (...,) over steps; positions (..., T, >=2), mask (..., T) of valid steps."""
    dist = torch.linalg.vector_norm(pred_xy[..., :2] - true_xy[..., :2], dim=-1)
    if mask is None:
        return dist.mean(dim=-1)
    mask = mask.to(dist.dtype)
    return (dist * mask).sum(dim=-1) / mask.sum(dim=-1)  # NaN where no step is valid


def fde(pred_xy: Tensor, true_xy: Tensor, mask: Tensor | None = None) -> Tensor:
    """XY distance (...,) at the last step, or at the last valid step under `mask`."""
    dist = torch.linalg.vector_norm(pred_xy[..., :2] - true_xy[..., :2], dim=-1)
    if mask is None:
        return dist[..., -1]
    steps = torch.arange(1, dist.shape[-1] + 1, device=dist.device)
    last = (mask.long() * steps).argmax(dim=-1, keepdim=True)
    final = dist.gather(-1, last).squeeze(-1)
    return torch.where(mask.any(dim=-1), final, torch.full_like(final, float("nan")))


def min_ade_fde(pred_xy: Tensor, true_xy: Tensor) -> tuple[Tensor, Tensor]:
    """minADE and minFDE (...,) of K sampled trajectories (..., K, T, >=2) against the truth
    (..., T, >=2).

    As AR1 (`metrics/distance_metrics.py`, `compute_minade`), one sample is chosen per frame, the
    one with the lowest full-horizon ADE, and minFDE is that sample's FDE: not the lowest FDE of
    any sample (nuScenes takes the two minima separately, Argoverse chooses by FDE), so minFDE
    can exceed the best FDE in the set. Both describe the same trajectory, as a planner would
    commit to one.
    """
    true_xy = true_xy.unsqueeze(-3)
    ade_k, fde_k = ade(pred_xy, true_xy), fde(pred_xy, true_xy)
    best = ade_k.argmin(dim=-1, keepdim=True)
    return ade_k.gather(-1, best).squeeze(-1), fde_k.gather(-1, best).squeeze(-1)


# ADE/FDE are also reported over the first seconds of the future (the full horizon is `ade`).
HORIZONS_S = (0.5, 1.0, 3.0, 5.0)


def horizon_steps(seconds: float, dt: float) -> int:
    return max(1, round(seconds / dt))


def ade_at(pred_xy: Tensor, true_xy: Tensor, seconds: float, dt: float = 0.1) -> Tensor:
    """ADE over the first `seconds` of the horizon (0.5 s at dt = 0.1 is the first 5 steps)."""
    steps = horizon_steps(seconds, dt)
    return ade(pred_xy[..., :steps, :], true_xy[..., :steps, :])


def fde_at(pred_xy: Tensor, true_xy: Tensor, seconds: float, dt: float = 0.1) -> Tensor:
    """Distance at time `seconds` after t0 (step round(seconds / dt))."""
    steps = horizon_steps(seconds, dt)
    return fde(pred_xy[..., :steps, :], true_xy[..., :steps, :])


def _rate(values: Tensor, dt: float) -> Tensor:
    """Forward difference / dt, the last one repeated so the length stays T (as AR1 does)."""
    step = values.diff(dim=-1)
    return torch.cat([step, step[..., -1:]], dim=-1) / dt


def comfort_signals(xy: Tensor, yaw: Tensor, dt: float = 0.1) -> dict[str, Tensor]:
    """The kinematic signals (..., T) that the comfort bounds judge, from poses (..., T, >=2).

    Finite differences exactly as AR1's comfort reward (not NAVSIM's Savitzky-Golay
    derivatives, which smooth and so flag fewer trajectories): velocity from position steps,
    rotated into the heading for the longitudinal and lateral parts. As in AR1's code,
    `lat_accel` is the rate of the sideways velocity in the body frame, not the centripetal
    v^2 kappa that NAVSIM measures. On a steady curve (speed v, curvature kappa) it is ~0 up to
    the last two steps, and -v^2 kappa at those two: the velocity of the last step is the
    repeated chord of the step before, while the heading has turned one step further. So
    steady cornering with v^2 |kappa| >= 4.89 m/s^2 fails the lateral bound at the horizon end
    (with the sign opposite to the centripetal acceleration), and the yaw-rate bound over the
    whole horizon.
    """
    vx, vy = _rate(xy[..., 0], dt), _rate(xy[..., 1], dt)
    step = yaw.diff(dim=-1)
    step = torch.atan2(torch.sin(step), torch.cos(step))
    yaw_rate = torch.cat([step, step[..., -1:]], dim=-1) / dt
    cos, sin = torch.cos(yaw), torch.sin(yaw)
    lon_accel = _rate(vx * cos + vy * sin, dt)
    return {
        "lon_accel": lon_accel,
        "lat_accel": _rate(-vx * sin + vy * cos, dt),
        "jerk": _rate(_rate(torch.hypot(vx, vy), dt), dt),
        "lon_jerk": _rate(lon_accel, dt),
        "yaw_accel": _rate(yaw_rate, dt),
        "yaw_rate": yaw_rate,
    }


def comfort(xy: Tensor, yaw: Tensor, dt: float = 0.1) -> Tensor:
    """(...,) bool: every step strictly inside every bound of `COMFORT_BOUNDS`.

    The comfort score is the mean of this over trajectories. Pass the future poses only.
    """
    signals = comfort_signals(xy, yaw, dt)
    inside = [
        ((signals[k] > lo) & (signals[k] < hi)).all(-1) for k, (lo, hi) in COMFORT_BOUNDS.items()
    ]
    return torch.stack(inside, dim=-1).all(dim=-1)


def constant_velocity_rollout(v0: Tensor, n_steps: int = 64, dt: float = 0.1) -> Tensor:
    """Positions (..., n_steps, 3) driving straight ahead at speed v0 (...,): the CV baseline."""
    t = torch.arange(1, n_steps + 1, dtype=v0.dtype, device=v0.device) * dt
    x = v0[..., None] * t
    zero = torch.zeros_like(x)
    return torch.stack([x, zero, zero], dim=-1)


@dataclass
class FrameErrors:
    """Per-frame errors of K sampled plans (the one place driving metrics are assembled, for
    validation and for evaluation alike). `step_error` / `baseline_step_error` (N, T): XY distance
    at each step of the first sample (one prediction, as deployed) and of the baseline;
    `comfort` (N,) bool, of the first sample; `min_ade` / `min_fde` (N,): of the best of the
    `n_samples` samples by ADE (`min_ade_fde`)."""

    dt: float
    n_samples: int
    step_error: Tensor
    baseline_step_error: Tensor
    comfort: Tensor
    min_ade: Tensor
    min_fde: Tensor

    @classmethod
    def of(
        cls, samples_xy: Tensor, first_yaw: Tensor, true_xy: Tensor, baseline_xy: Tensor, dt: float
    ) -> FrameErrors:
        """From samples (N, K, T, >=2), the first sample's yaw (N, T), the logged future and the
        baseline (N, T, >=2)."""
        true_xy, pred_xy = true_xy[..., :2], samples_xy[:, 0, :, :2]
        min_ade, min_fde = min_ade_fde(samples_xy[..., :2], true_xy)
        return cls(
            dt=float(dt),
            n_samples=samples_xy.shape[1],
            step_error=torch.linalg.vector_norm(pred_xy - true_xy, dim=-1),
            baseline_step_error=torch.linalg.vector_norm(baseline_xy[..., :2] - true_xy, dim=-1),
            comfort=comfort(pred_xy, first_yaw, dt),
            min_ade=min_ade,
            min_fde=min_fde,
        )

    def horizons_s(self) -> list[float]:
        """`HORIZONS_S` within the plan, and the full horizon (6.4 s for 64 steps at 10 Hz)."""
        full = round(self.step_error.shape[-1] * self.dt, 6)
        return [s for s in HORIZONS_S if s < full] + [full]

    def per_frame(self, horizons: bool = False) -> dict[str, Tensor]:
        """Named per-frame values (N,), averaged over frames as `val/<name>`: ade, fde,
        min_ade@K, min_fde@K, comfort, baseline_ade/fde and, with `horizons`, ade_<s>s and
        fde_<s>s of the plan and the baseline at each of `horizons_s()`."""
        k = self.n_samples
        values = {f"min_ade@{k}": self.min_ade, f"min_fde@{k}": self.min_fde}
        values["comfort"] = self.comfort.float()
        for prefix, error in (("", self.step_error), ("baseline_", self.baseline_step_error)):
            values[f"{prefix}ade"] = error.mean(-1)
            values[f"{prefix}fde"] = error[:, -1]
            for seconds in self.horizons_s() if horizons else ():
                steps = horizon_steps(seconds, self.dt)
                values[f"{prefix}ade_{seconds:g}s"] = error[:, :steps].mean(-1)
                values[f"{prefix}fde_{seconds:g}s"] = error[:, steps - 1]
        return values
