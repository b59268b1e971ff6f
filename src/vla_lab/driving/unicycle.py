"""The Alpamayo-R1 unicycle action space: ego trajectories <-> normalised (acceleration, curvature).

AR1 predicts 64 steps of (a, kappa) at dt = 0.1 s in the ego frame at t0 (x forward, y left,
theta0 = 0) and integrates them into poses. Ground truth controls come from a Tikhonov-regularised
least-squares fit of the recorded poses (heading, then speed, then acceleration, then curvature).
Equations and defaults follow NVlabs/alpamayo `src/alpamayo_r1/action_space/` (Apache-2.0); the
fits here are re-derived so that the data-dependent normal equations are solved as banded systems
vectorised over the batch, and the constant ones with one inverse shared by the batch.

The metrics that judge the trajectories (ADE/FDE, comfort, the constant-velocity baseline) are in
`vla_lab.driving.metrics`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from functools import lru_cache
from typing import ClassVar

import torch
from torch import Tensor

log = logging.getLogger(__name__)

ACCEL_BOUND_MPS2 = 9.8
CURVATURE_BOUND_PER_M = 0.33
INTEGRATORS = ("ar1", "euler")
_MAX_RIDGE_RETRIES = 8
_BANDED_FROM_BATCH = 64


def yaw_from_rot(rot: Tensor) -> Tensor:
    """Heading (...,) of rotation matrices (..., 3, 3), the convention AR1 uses for poses."""
    return torch.atan2(rot[..., 1, 0], rot[..., 0, 0])


def rot_from_yaw(yaw: Tensor) -> Tensor:
    """Flat-ground rotation matrices (..., 3, 3) for headings (...,)."""
    cos, sin = torch.cos(yaw), torch.sin(yaw)
    zero, one = torch.zeros_like(yaw), torch.ones_like(yaw)
    rows = [(cos, -sin, zero), (sin, cos, zero), (zero, zero, one)]
    return torch.stack([torch.stack(row, dim=-1) for row in rows], dim=-2)


def unwrap_yaw(yaw: Tensor) -> Tensor:
    """Headings (..., T) made continuous in time: each step is taken into (-pi, pi]."""
    step = torch.diff(yaw, dim=-1)
    step = torch.atan2(torch.sin(step), torch.cos(step))
    return torch.cat([yaw[..., :1], yaw[..., :1] + torch.cumsum(step, dim=-1)], dim=-1)


@dataclass(frozen=True)
class UnicycleActionSpace:
    """Trajectories <-> normalised controls [a, kappa] of shape (..., n_steps, 2).

    `integrator="ar1"` is AR1's scheme (trapezoid positions, heading exact for constant a and
    kappa); `"euler"` is plain forward Euler, with the fit that inverts it. Smoothness weights
    are `lambda / dt^(2k)` for a k-th order difference; the ridges keep fits finite when a
    trajectory does not pin the unknowns (standing still pins no curvature).
    """

    dt: float = 0.1
    n_steps: int = 64
    accel_mean: float = 0.02902694707164455
    accel_std: float = 0.6810426736454882
    curvature_mean: float = 0.0002692167976330542
    curvature_std: float = 0.026148280660833106
    integrator: str = "ar1"
    theta_lambda: float = 1e-6
    theta_ridge: float = 1e-8
    v_lambda: float = 1e-6
    v_ridge: float = 1e-4
    accel_lambda: float = 1e-4
    accel_ridge: float = 1e-4
    curvature_lambda: float = 1e-4
    curvature_ridge: float = 1e-4

    action_dim: ClassVar[int] = 2

    def __post_init__(self) -> None:
        if self.integrator not in INTEGRATORS:
            raise ValueError(f"integrator={self.integrator!r}; expected one of {INTEGRATORS}")
        if self.dt <= 0 or self.n_steps < 3 or self.accel_std <= 0 or self.curvature_std <= 0:
            raise ValueError(
                f"UnicycleActionSpace needs dt > 0, n_steps >= 3 and positive stds; got "
                f"dt={self.dt}, n_steps={self.n_steps}, accel_std={self.accel_std}, "
                f"curvature_std={self.curvature_std}"
            )

    def normalize(self, controls: Tensor) -> Tensor:
        """Raw [a (m/s^2), kappa (1/m)] (..., 2) -> the model's normalised units."""
        mean, std = self._stats(controls)
        return (controls - mean) / std

    def denormalize(self, action: Tensor) -> Tensor:
        """Normalised (..., 2) -> raw [a (m/s^2), kappa (1/m)]."""
        mean, std = self._stats(action)
        return action * std + mean

    def within_bounds(self, action: Tensor) -> Tensor:
        """(...,) bool: every step of a normalised action inside |a| <= 9.8, |kappa| <= 0.33.

        AR1 checks these bounds; it never clips to them.
        """
        accel, curvature = self.denormalize(action).unbind(-1)
        inside = (accel.abs() <= ACCEL_BOUND_MPS2) & (curvature.abs() <= CURVATURE_BOUND_PER_M)
        return inside.all(dim=-1)

    def controls_to_states(self, controls: Tensor, v0: Tensor) -> Tensor:
        """Integrate raw controls (..., N, 2) from speed v0 (...,) at the t0 origin.

        Returns states [x, y, theta, v] (..., N + 1, 4) at t0..tN; differentiable, no loop.
        """
        dt = self.dt
        accel, curvature = controls.unbind(-1)
        v = torch.cat([v0[..., None], v0[..., None] + torch.cumsum(accel * dt, dim=-1)], dim=-1)
        if self.integrator == "ar1":
            turn = curvature * (v[..., :-1] * dt + accel * dt**2 / 2)
        else:
            turn = curvature * v[..., :-1] * dt
        zero = torch.zeros_like(v[..., :1])
        theta = torch.cat([zero, torch.cumsum(turn, dim=-1)], dim=-1)
        vx, vy = v * torch.cos(theta), v * torch.sin(theta)
        if self.integrator == "ar1":
            dx, dy = (vx[..., :-1] + vx[..., 1:]) * dt / 2, (vy[..., :-1] + vy[..., 1:]) * dt / 2
        else:
            dx, dy = vx[..., :-1] * dt, vy[..., :-1] * dt
        x = torch.cat([zero, torch.cumsum(dx, dim=-1)], dim=-1)
        y = torch.cat([zero, torch.cumsum(dy, dim=-1)], dim=-1)
        return torch.stack([x, y, theta, v], dim=-1)

    def action_to_traj(
        self, action: Tensor, hist_xyz: Tensor, hist_rot: Tensor, v0: Tensor | None = None
    ) -> tuple[Tensor, Tensor]:
        """Normalised action (..., N, 2) -> future poses xyz (..., N, 3), rot (..., N, 3, 3).

        Differentiable in `action`; keeps its dtype. The start speed is `estimate_v0(history)`
        unless `v0` is given. As in AR1, x and y start at 0, z stays at the t0 height and the
        rotations are flat (yaw only).
        """
        if v0 is None:
            v0 = self.estimate_v0(hist_xyz, hist_rot)
        states = self.controls_to_states(self.denormalize(action), v0.to(action.dtype))
        x, y, theta, _ = states[..., 1:, :].unbind(-1)
        z = hist_xyz[..., -1:, 2].to(action.dtype).expand_as(x)
        return torch.stack([x, y, z], dim=-1), rot_from_yaw(theta)

    @torch.no_grad()
    def estimate_v0(self, hist_xyz: Tensor, hist_rot: Tensor) -> Tensor:
        """Ego speed (...,) at t0: the last value of a smooth speed fit to the history poses.

        Always the trapezoid position model (AR1's), whichever integrator: it estimates the
        physical speed, and both directions of the action space use the same value.
        """
        xy = hist_xyz[..., :2].float()
        theta = unwrap_yaw(yaw_from_rot(hist_rot.float()))
        speed = _fit_speed(xy.diff(dim=-2), theta, self.dt, "ar1", self.v_lambda, self.v_ridge)
        return speed[..., -1]

    @torch.no_grad()
    def traj_to_action(
        self,
        hist_xyz: Tensor,
        hist_rot: Tensor,
        fut_xyz: Tensor,
        fut_rot: Tensor,
        v0: Tensor | None = None,
    ) -> Tensor:
        """Recorded poses -> the normalised action (..., N, 2) that reproduces them (float32).

        History (..., H, 3) / (..., H, 3, 3) ends at t0; future (..., N, 3) / (..., N, 3, 3).
        The start speed is `estimate_v0(history)` unless `v0` is given (then pass the same to
        `action_to_traj`).
        """
        if fut_xyz.shape[-2] != self.n_steps:
            raise ValueError(
                f"future trajectory has {fut_xyz.shape[-2]} poses; this action space expects "
                f"n_steps={self.n_steps}"
            )
        dt, n = self.dt, self.n_steps
        device = fut_xyz.device
        # Heading: theta0 = 0 is pinned; the future yaws are unwrapped among themselves (AR1).
        theta_meas = unwrap_yaw(yaw_from_rot(fut_rot.float()))
        theta_fit = _fixed_fit_operator(
            n, 3, self.theta_lambda / dt**6, self.theta_ridge, True, device
        )
        theta = torch.cat([torch.zeros_like(theta_meas[..., :1]), theta_meas @ theta_fit], -1)
        # Speed, with v0 pinned to the history estimate.
        xy = torch.cat([hist_xyz[..., -1:, :2], fut_xyz[..., :2]], dim=-2).float()
        v0 = self.estimate_v0(hist_xyz, hist_rot) if v0 is None else v0.float()
        v = _fit_speed(xy.diff(dim=-2), theta, dt, self.integrator, self.v_lambda, self.v_ridge, v0)
        accel_fit = _fixed_fit_operator(
            n, 2, self.accel_lambda / dt**4, self.accel_ridge, False, device
        )
        accel = (v.diff(dim=-1) / dt) @ accel_fit
        # Curvature: kappa_t * s_t = dtheta_t, s_t the distance the integrator covers in step t.
        s = v[..., :-1] * dt + (accel * dt**2 / 2 if self.integrator == "ar1" else 0.0)
        bands = _smoothness_bands(n, 2, self.curvature_lambda / dt**4, device) + _diagonal(s * s)
        curvature = _solve_banded(bands, s * theta.diff(dim=-1), self.curvature_ridge, "curvature")
        return self.normalize(torch.stack([accel, curvature], dim=-1))

    def _stats(self, like: Tensor) -> tuple[Tensor, Tensor]:
        mean = torch.tensor([self.accel_mean, self.curvature_mean], dtype=like.dtype)
        std = torch.tensor([self.accel_std, self.curvature_std], dtype=like.dtype)
        return mean.to(like.device), std.to(like.device)


def _fit_speed(
    dxy: Tensor,
    theta: Tensor,
    dt: float,
    integrator: str,
    smooth_lambda: float,
    ridge: float,
    v0: Tensor | None = None,
) -> Tensor:
    """Signed speeds v_0..v_N (..., N + 1) from displacements dxy (..., N, 2), headings theta.

    Least squares on the position model (trapezoid: v_t u_t + v_t+1 u_t+1 = 2 dp_t / dt; Euler:
    v_t u_t = dp_t / dt, u = (cos, sin) theta) plus a third-difference smoothness term. With u
    unit vectors the data Gram matrix is tridiagonal: 2 (1 at the ends) on the diagonal and
    cos(theta_t+1 - theta_t) beside it; with the smoothness term the system is heptadiagonal.
    `v0` given: v_0 is pinned and moved to the right-hand side.
    """
    n = dxy.shape[-2] + 1
    u = torch.stack([torch.cos(theta), torch.sin(theta)], dim=-1)
    zero = torch.zeros_like(theta[..., :1])
    if integrator == "ar1":
        g = 2 / dt * dxy
        rhs = (u[..., :-1, :] * g).sum(-1)
        rhs = torch.cat([rhs, zero], -1) + torch.cat([zero, (u[..., 1:, :] * g).sum(-1)], -1)
        diag = torch.full_like(theta, 2.0)
        diag[..., [0, -1]] = 1.0
        beside = torch.cat([zero, torch.cos(theta.diff(dim=-1))], dim=-1)
    else:
        rhs = torch.cat([(u[..., :-1, :] * dxy / dt).sum(-1), zero], dim=-1)
        diag = torch.cat([torch.ones_like(theta[..., 1:]), zero], dim=-1)
        beside = torch.zeros_like(theta)
    bands = _smoothness_bands(n, 3, smooth_lambda / dt**6, theta.device)
    bands = bands + torch.stack([diag, beside, *[torch.zeros_like(diag)] * 2], dim=-1)
    if v0 is None:
        return _solve_banded(bands, rhs, ridge, "speed")
    # Row i of the band holds M[i, i-k]; column 0 of M appears in rows 1..3 at k = i.
    coupling = torch.stack([bands[..., i, i] for i in (1, 2, 3)], dim=-1)
    rhs = rhs[..., 1:].clone()
    rhs[..., :3] -= coupling * v0[..., None]
    v = _solve_banded(bands[..., 1:, :], rhs, ridge, "speed")
    return torch.cat([v0[..., None], v], dim=-1)


def _diagonal(values: Tensor) -> Tensor:
    """Band storage (..., n, 3) of a diagonal matrix, for a pentadiagonal system."""
    zeros = torch.zeros_like(values)
    return torch.stack([values, zeros, zeros], dim=-1)


@lru_cache(maxsize=32)
def _difference_gram(n: int, order: int, weight: float) -> Tensor:
    """weight * D^T D (n, n) in float64 for the order-th forward difference D over n values."""
    d = torch.diff(torch.eye(n, dtype=torch.float64), n=order, dim=0)
    return weight * d.T @ d


@lru_cache(maxsize=32)
def _smoothness_bands(n: int, order: int, weight: float, device: torch.device) -> Tensor:
    """Lower band storage (n, order + 1), [i, k] = M[i, i - k], of weight * D^T D (float32)."""
    gram = _difference_gram(n, order, weight)
    bands = [torch.cat([gram.new_zeros(k), gram.diagonal(-k)]) for k in range(order + 1)]
    return torch.stack(bands, dim=-1).float().to(device)


@lru_cache(maxsize=32)
def _fixed_fit_operator(
    n: int, order: int, weight: float, ridge: float, pinned_zero: bool, device: torch.device
) -> Tensor:
    """The (n, n) matrix X with fit = target @ X for a smoothed fit whose system is constant.

    Minimises ||x - target||^2 + weight ||D x||^2 + ridge ||x||^2; with `pinned_zero` a fixed
    x_0 = 0 precedes the n unknowns inside the smoothness term (the heading's theta0), which
    removes a row and a column and adds nothing to the right-hand side. Inverted once in float64.
    """
    skip = int(pinned_zero)
    smooth = _difference_gram(n + skip, order, weight)[skip:, skip:]
    system = torch.eye(n, dtype=torch.float64) * (1 + ridge) + smooth
    return torch.linalg.inv(system).T.float().to(device)


def _solve_banded(bands: Tensor, rhs: Tensor, ridge: float, what: str) -> Tensor:
    """Solve (M + ridge I) x = rhs for symmetric banded M given as lower bands (..., n, p + 1).

    A system whose Cholesky factorisation breaks down (a pivot <= 0 or NaN) is solved again with
    its ridge multiplied by 10, as AR1 does; only the failed items are redone.
    """
    lead = rhs.shape[:-1]
    bands = bands.expand(*lead, *bands.shape[-2:]).reshape(-1, *bands.shape[-2:])
    rhs = rhs.reshape(-1, rhs.shape[-1])
    # The banded pass costs a fixed ~n * p^2 small ops; a dense factorisation ~n^3 / 3 flops per
    # item. Below this batch size dense is faster (one trajectory: ~1 ms instead of ~10).
    solve = _dense_solve if rhs.shape[0] < _BANDED_FROM_BATCH else _banded_solve
    x = torch.empty_like(rhs)
    todo = torch.arange(rhs.shape[0], device=rhs.device)
    for attempt in range(_MAX_RIDGE_RETRIES + 1):
        if attempt:
            ridge = ridge * 10 if ridge > 0 else 1e-8
            log.warning(
                "%s fit: %d systems singular, retrying with ridge %g", what, len(todo), ridge
            )
        shifted = bands[todo].clone()
        shifted[..., 0] += ridge
        solution, ok = solve(shifted, rhs[todo])
        x[todo[ok]] = solution[ok]
        todo = todo[~ok]
        if todo.numel() == 0:
            return x.reshape(*lead, -1)
    raise ValueError(
        f"{what} fit: {todo.numel()} of {rhs.shape[0]} trajectories have normal equations that "
        f"stay singular up to ridge {ridge:g}; their poses probably hold NaN or inf"
    )


def _dense_solve(bands: Tensor, rhs: Tensor) -> tuple[Tensor, Tensor]:
    """`_banded_solve` through a dense batched Cholesky (which reads the lower triangle only)."""
    lower = sum(torch.diag_embed(bands[..., k:, k], offset=-k) for k in range(bands.shape[-1]))
    factor, info = torch.linalg.cholesky_ex(lower)
    return torch.cholesky_solve(rhs[..., None], factor)[..., 0], info == 0


def _banded_solve(bands: Tensor, rhs: Tensor) -> tuple[Tensor, Tensor]:
    """Solutions (B, n) of band systems (B, n, p + 1) and whether each factorisation held (B,)."""
    rows, ok = _banded_cholesky(bands)
    return _banded_cholesky_solve(rows, rhs), ok


def _banded_cholesky(bands: Tensor) -> tuple[list[list[Tensor]], Tensor]:
    """Cholesky factor of SPD band matrices (B, n, p + 1), rows as [L[i, i - k] for k], and ok (B,).

    One pass over the n rows, each step vectorised over the batch: O(B n p^2) instead of the
    O(B n^3) of a dense factorisation.
    """
    n, p = bands.shape[-2], bands.shape[-1] - 1
    a = bands.permute(1, 2, 0)  # (n, p + 1, B): a[i, k] is one (B,) vector
    rows: list[list[Tensor]] = []
    ok = torch.ones(bands.shape[0], dtype=torch.bool, device=bands.device)
    for i in range(n):
        reach = min(i, p)
        row = [a[i, 0]] * (reach + 1)
        for k in range(reach, 0, -1):  # columns j = i - k, left to right
            j, acc = i - k, a[i, k]
            for m in range(k + 1, reach + 1):
                acc = torch.addcmul(acc, row[m], rows[j][m - k], value=-1)
            row[k] = acc / rows[j][0]
        pivot = a[i, 0]
        for k in range(1, reach + 1):
            pivot = torch.addcmul(pivot, row[k], row[k], value=-1)
        ok &= pivot > 0
        row[0] = pivot.clamp_min(torch.finfo(pivot.dtype).tiny).sqrt()
        rows.append(row)
    return rows, ok


def _banded_cholesky_solve(rows: list[list[Tensor]], rhs: Tensor) -> Tensor:
    """Solve L L^T x = rhs (B, n) with the factor rows of `_banded_cholesky`."""
    n = len(rows)
    b = rhs.unbind(-1)
    y: list[Tensor] = []
    for i, row in enumerate(rows):
        acc = b[i]
        for k in range(1, len(row)):
            acc = torch.addcmul(acc, row[k], y[i - k], value=-1)
        y.append(acc / row[0])
    p = max(len(row) for row in rows) - 1
    x: list[Tensor] = [y[0]] * n
    for i in range(n - 1, -1, -1):
        acc = y[i]
        for k in range(1, min(p, n - 1 - i) + 1):
            acc = torch.addcmul(acc, rows[i + k][k], x[i + k], value=-1)
        x[i] = acc / rows[i][0]
    return torch.stack(x, dim=-1)
