"""Trajectories per second of the unicycle action space vs the per-trajectory dense reference.

Both directions on one CPU thread, for a batch of synthetic drives (random smooth acceleration and
curvature, 5-20 m/s):
- traj_to_action: ours solves the speed and curvature fits as banded systems vectorised over the
  batch and the constant heading and acceleration fits with one shared inverse. The REFERENCE
  builds the dense normal equations of every fit per trajectory and factorises each with its own
  Cholesky, in a Python loop over trajectories (the formulation of AR1's action_space/utils.py).
- action_to_traj: ours is cumulative sums over the batch. The REFERENCE, per trajectory, fits v0
  from the history with dense normal equations and steps the recurrence in a Python loop.
Target: speed-up >= 10x for a batch of 4096. The two must agree (printed).

    python benchmarks/unicycle.py [--batch 4096] [--integrator ar1|euler]
"""

from __future__ import annotations

import argparse
import math
import time

import torch

from vla_lab.driving.unicycle import UnicycleActionSpace, rot_from_yaw, unwrap_yaw, yaw_from_rot

# ---------------------------------------------------------------- REFERENCE (per trajectory) --


def _reference_difference(n: int, order: int) -> torch.Tensor:
    return torch.diff(torch.eye(n), n=order, dim=0)


def _reference_speed(dxy, theta, dt, lam, ridge, integrator, v0=None) -> torch.Tensor:
    """Dense least squares for v_0..v_N of one trajectory; v0 pinned when given."""
    n_steps = dxy.shape[0]
    a = torch.zeros(2 * n_steps, n_steps + 1)
    rows, cols = torch.arange(n_steps), torch.arange(n_steps)
    a[2 * rows, cols], a[2 * rows + 1, cols] = torch.cos(theta[:-1]), torch.sin(theta[:-1])
    if integrator == "ar1":
        a[2 * rows, cols + 1], a[2 * rows + 1, cols + 1] = (
            torch.cos(theta[1:]),
            torch.sin(theta[1:]),
        )
        b = (2 / dt * dxy).flatten()
    else:
        b = (dxy / dt).flatten()
    d = _reference_difference(n_steps + 1, 3)
    system = a.T @ a + lam / dt**6 * d.T @ d
    rhs = a.T @ b
    if v0 is None:
        system = system + ridge * torch.eye(n_steps + 1)
        return torch.cholesky_solve(rhs[:, None], torch.linalg.cholesky(system))[:, 0]
    rhs = rhs[1:] - system[1:, 0] * v0
    reduced = system[1:, 1:] + ridge * torch.eye(n_steps)
    v = torch.cholesky_solve(rhs[:, None], torch.linalg.cholesky(reduced))[:, 0]
    return torch.cat([v0[None], v])


def _reference_weighted_fit(s, y, order, weight, ridge, pin_zero_first=False) -> torch.Tensor:
    """Dense min ||s x - y||^2 + weight ||D x||^2 + ridge ||x||^2 (x_0 = 0 before x if pinned)."""
    n = y.shape[0]
    a = torch.diag(s)
    if pin_zero_first:
        d = _reference_difference(n + 1, order)
        smooth = (d.T @ d)[1:, 1:]
    else:
        d = _reference_difference(n, order)
        smooth = d.T @ d
    ridge_now = ridge
    while True:  # AR1 retries a failed factorisation with 10x the ridge
        system = a.T @ a + weight * smooth + ridge_now * torch.eye(n)
        factor, info = torch.linalg.cholesky_ex(system)
        if info == 0:
            return torch.cholesky_solve((a.T @ y)[:, None], factor)[:, 0]
        ridge_now = ridge_now * 10 or 1e-8


def reference_estimate_v0(space: UnicycleActionSpace, hist_xyz, hist_rot) -> torch.Tensor:
    theta = unwrap_yaw(yaw_from_rot(hist_rot))
    dxy = hist_xyz[1:, :2] - hist_xyz[:-1, :2]
    return _reference_speed(dxy, theta, space.dt, space.v_lambda, space.v_ridge, "ar1")[-1]


def reference_traj_to_action(space: UnicycleActionSpace, hist_xyz, hist_rot, fut_xyz, fut_rot):
    """REFERENCE: one trajectory, dense normal equations, one Cholesky per fit."""
    dt, n = space.dt, space.n_steps
    theta_meas = unwrap_yaw(yaw_from_rot(fut_rot))
    weight = space.theta_lambda / dt**6
    fitted = _reference_weighted_fit(torch.ones(n), theta_meas, 3, weight, space.theta_ridge, True)
    theta = torch.cat([torch.zeros(1), fitted])
    xy = torch.cat([hist_xyz[-1:, :2], fut_xyz[:, :2]])
    v0 = reference_estimate_v0(space, hist_xyz, hist_rot)
    v = _reference_speed(
        xy[1:] - xy[:-1], theta, dt, space.v_lambda, space.v_ridge, space.integrator, v0
    )
    weight = space.accel_lambda / dt**4
    accel = _reference_weighted_fit(
        torch.ones(n), (v[1:] - v[:-1]) / dt, 2, weight, space.accel_ridge
    )
    s = v[:-1] * dt + (accel * dt**2 / 2 if space.integrator == "ar1" else 0.0)
    weight = space.curvature_lambda / dt**4
    curvature = _reference_weighted_fit(s, theta[1:] - theta[:-1], 2, weight, space.curvature_ridge)
    return space.normalize(torch.stack([accel, curvature], dim=-1))


def reference_action_to_traj(space: UnicycleActionSpace, action, hist_xyz, hist_rot):
    """REFERENCE: one trajectory, dense v0 fit, then the recurrence one step at a time."""
    dt = space.dt
    controls = space.denormalize(action)
    x = y = theta = 0.0
    v = float(reference_estimate_v0(space, hist_xyz, hist_rot))
    poses = []
    for accel, curvature in controls.tolist():
        v_next = v + accel * dt
        if space.integrator == "ar1":
            theta_next = theta + curvature * (v * dt + accel * dt**2 / 2)
            x += dt / 2 * (v * math.cos(theta) + v_next * math.cos(theta_next))
            y += dt / 2 * (v * math.sin(theta) + v_next * math.sin(theta_next))
        else:
            theta_next = theta + curvature * v * dt
            x += v * math.cos(theta) * dt
            y += v * math.sin(theta) * dt
        v, theta = v_next, theta_next
        poses.append((x, y, float(hist_xyz[-1, 2]), theta))
    poses = torch.tensor(poses)
    return poses[:, :3], rot_from_yaw(poses[:, 3])


# ------------------------------------------------------------------------------ benchmark --


def synthetic_drives(space: UnicycleActionSpace, batch: int, seed: int = 0):
    """Histories at constant speed 5-20 m/s and futures from smooth random controls."""
    generator = torch.Generator().manual_seed(seed)
    v0 = 5 + 15 * torch.rand(batch, generator=generator)
    steps = torch.arange(16, dtype=torch.float32) - 15
    hist_xyz = torch.zeros(batch, 16, 3)
    hist_xyz[..., 0] = v0[:, None] * space.dt * steps
    hist_rot = torch.eye(3).expand(batch, 16, 3, 3).contiguous()
    t = torch.arange(space.n_steps) * space.dt
    freq = 1.5 * torch.rand(batch, 2, 1, generator=generator)
    phase = 2 * math.pi * torch.rand(batch, 2, 1, generator=generator)
    amplitude = torch.tensor([1.5, 0.03])[:, None]
    controls = amplitude * torch.sin(freq * t + phase)  # (batch, 2, T)
    action = space.normalize(controls.transpose(-1, -2))
    fut_xyz, fut_rot = space.action_to_traj(action, hist_xyz, hist_rot)
    return hist_xyz, hist_rot, fut_xyz, fut_rot, action


def _best_of(repeats: int, fn) -> tuple[float, object]:
    best, result = math.inf, None
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - start)
    return best, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=4096)
    parser.add_argument("--integrator", choices=["ar1", "euler"], default="ar1")
    parser.add_argument("--repeats", type=int, default=3, help="best of, for the batched side")
    args = parser.parse_args()
    torch.set_num_threads(1)
    space = UnicycleActionSpace(integrator=args.integrator)
    hist_xyz, hist_rot, fut_xyz, fut_rot, _ = synthetic_drives(space, args.batch)
    items = list(zip(hist_xyz, hist_rot, fut_xyz, fut_rot, strict=True))

    fast_t2a_s, action = _best_of(
        args.repeats, lambda: space.traj_to_action(hist_xyz, hist_rot, fut_xyz, fut_rot)
    )
    ref_t2a_s, ref_action = _best_of(
        1, lambda: torch.stack([reference_traj_to_action(space, *item) for item in items])
    )
    fast_a2t_s, (xyz, _) = _best_of(
        args.repeats, lambda: space.action_to_traj(action, hist_xyz, hist_rot)
    )
    ref_a2t_s, ref_xyz = _best_of(
        1,
        lambda: torch.stack(
            [
                reference_action_to_traj(space, a, h, r)[0]
                for a, h, r in zip(action, hist_xyz, hist_rot, strict=True)
            ]
        ),
    )

    print(
        f"batch {args.batch}, integrator {args.integrator}, 1 CPU thread, torch {torch.__version__}"
    )
    print(f"{'operation':<16}{'ours (traj/s)':>16}{'reference (traj/s)':>20}{'speed-up':>10}")
    for name, fast_s, ref_s in [
        ("traj_to_action", fast_t2a_s, ref_t2a_s),
        ("action_to_traj", fast_a2t_s, ref_a2t_s),
    ]:
        print(
            f"{name:<16}{args.batch / fast_s:>16,.0f}{args.batch / ref_s:>20,.0f}"
            f"{ref_s / fast_s:>9.1f}x"
        )
    action_diff = (action - ref_action).abs().max().item()
    xyz_diff = (xyz - ref_xyz).abs().max().item()
    print(
        f"agreement: max |action - reference| {action_diff:.2e} (normalised units), "
        f"max |xyz - reference| {xyz_diff:.2e} m"
    )
    print(
        f"round trip (ours): max ADE {(xyz - fut_xyz)[..., :2].norm(dim=-1).mean(-1).max():.4f} m"
    )


if __name__ == "__main__":
    main()
