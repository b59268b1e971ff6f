"""The unicycle action space: round trips, agreement with AR1's least squares, metrics."""

from __future__ import annotations

import logging
import math
import pickle

import pytest
import torch
from omegaconf import OmegaConf

from vla_lab.driving import unicycle
from vla_lab.driving.metrics import ade, ade_at, comfort, constant_velocity_rollout, fde, fde_at
from vla_lab.driving.unicycle import UnicycleActionSpace, rot_from_yaw, unwrap_yaw, yaw_from_rot
from vla_lab.utils.config import CONF_DIR

DT = 0.1
F64 = torch.float64


def history(v0: torch.Tensor, accel: float = 0.0) -> tuple[torch.Tensor, torch.Tensor]:
    """16 straight poses ending at the origin, driven at speed v0 (...,) at t0, accel a."""
    t = (torch.arange(16, dtype=torch.float32) - 15) * DT
    xyz = torch.zeros(*v0.shape, 16, 3)
    xyz[..., 0] = v0[..., None] * t + accel * t**2 / 2
    return xyz, torch.eye(3).expand(*v0.shape, 16, 3, 3).clone()


def drive(space: UnicycleActionSpace, controls: torch.Tensor, v0: torch.Tensor):
    """History and future poses of raw controls (..., N, 2) integrated from speed v0."""
    hist_xyz, hist_rot = history(v0)
    fut_xyz, fut_rot = space.action_to_traj(space.normalize(controls), hist_xyz, hist_rot)
    return hist_xyz, hist_rot, fut_xyz, fut_rot


def smooth_controls(batch: int, n_steps: int = 64, seed: int = 0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    t = torch.arange(n_steps) * DT
    freq = 1.5 * torch.rand(batch, 2, 1, generator=generator)
    phase = 2 * math.pi * torch.rand(batch, 2, 1, generator=generator)
    amplitude = torch.tensor([[1.5], [0.02]])
    return (amplitude * torch.sin(freq * t + phase)).transpose(-1, -2)


def round_trip_ade(space: UnicycleActionSpace, controls, v0) -> torch.Tensor:
    hist_xyz, hist_rot, fut_xyz, fut_rot = drive(space, controls, v0)
    action = space.traj_to_action(hist_xyz, hist_rot, fut_xyz, fut_rot)
    xyz, _ = space.action_to_traj(action, hist_xyz, hist_rot)
    return ade(xyz, fut_xyz)


def named_drive(name: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Raw controls (64, 2) and v0 of a textbook manoeuvre."""
    accel, curvature = torch.zeros(64), torch.zeros(64)
    if name == "curve":
        curvature += 0.05  # 10 m/s on a 20 m radius
    elif name == "braking_to_stop":
        accel[:40] = -3.0  # 12 m/s to a stand-still at 4 s, then stand
    return torch.stack([accel, curvature], dim=-1), torch.tensor(12.0 if name != "curve" else 10.0)


@pytest.mark.parametrize("integrator", ["ar1", "euler"])
def test_round_trip_of_smooth_random_drives_stays_within_2cm(integrator):
    space = UnicycleActionSpace(integrator=integrator)
    v0 = 5 + 15 * torch.rand(80, generator=torch.Generator().manual_seed(1))
    errors = round_trip_ade(space, smooth_controls(80), v0)
    assert errors.max() < 0.02


@pytest.mark.parametrize("integrator", ["ar1", "euler"])
@pytest.mark.parametrize("name", ["straight", "curve", "braking_to_stop"])
def test_round_trip_of_textbook_manoeuvres_recovers_path_and_controls(integrator, name):
    space = UnicycleActionSpace(integrator=integrator)
    controls, v0 = named_drive(name)
    assert round_trip_ade(space, controls, v0) < 0.02
    hist_xyz, hist_rot, fut_xyz, fut_rot = drive(space, controls, v0)
    fitted = space.denormalize(space.traj_to_action(hist_xyz, hist_rot, fut_xyz, fut_rot))
    middle = slice(5, 30)  # away from the ends, where smoothing and the stop's kink bend the fit
    torch.testing.assert_close(fitted[middle], controls[middle], atol=0.05, rtol=0)
    if name == "curve":
        assert fitted[5:-5, 1].sub(0.05).abs().max() < 1e-3


def test_estimate_v0_reads_the_speed_at_t0_from_the_history():
    space = UnicycleActionSpace()
    v0 = torch.tensor([0.0, 5.0, 20.0])
    for accel in (0.0, 2.0):
        hist_xyz, hist_rot = history(v0, accel)
        torch.testing.assert_close(space.estimate_v0(hist_xyz, hist_rot), v0, atol=0.02, rtol=0)


def test_an_explicit_v0_replaces_the_history_estimate_in_both_directions():
    space = UnicycleActionSpace()
    controls, v0 = smooth_controls(2), torch.tensor([8.0, 16.0])
    hist_xyz, hist_rot = history(v0)
    still_xyz, still_rot = history(torch.zeros(2))  # a history that says "standing"
    fut_xyz, fut_rot = space.action_to_traj(space.normalize(controls), hist_xyz, hist_rot)
    action = space.traj_to_action(still_xyz, still_rot, fut_xyz, fut_rot, v0=v0)
    xyz, _ = space.action_to_traj(action, still_xyz, still_rot, v0=v0)
    assert ade(xyz, fut_xyz).max() < 0.02
    xyz, _ = space.action_to_traj(action, still_xyz, still_rot)
    assert ade(xyz, fut_xyz).min() > 1.0


def _least_squares(a, b, order, weight, ridge, pinned=None):
    """argmin ||a x - b||^2 + weight ||D x||^2 + ridge ||x_free||^2 with x_0 = pinned if given.

    Solved as one stacked float64 least-squares problem, not through normal equations.
    """
    n = a.shape[1]
    d = torch.diff(torch.eye(n, dtype=F64), n=order, dim=0)
    rows = torch.cat([a, weight**0.5 * d])
    target = torch.cat([b, torch.zeros(len(d), dtype=F64)])
    if pinned is not None:
        target, rows = target - rows[:, 0] * pinned, rows[:, 1:]
    rows = torch.cat([rows, ridge**0.5 * torch.eye(rows.shape[1], dtype=F64)])
    target = torch.cat([target, torch.zeros(rows.shape[1], dtype=F64)])
    x = torch.linalg.lstsq(rows, target[:, None]).solution[:, 0]
    return x if pinned is None else torch.cat([pinned.reshape(1), x])


def _trapezoid_rows(theta):
    n = len(theta) - 1
    a = torch.zeros(2 * n, n + 1, dtype=F64)
    for t in range(n):
        for j in (t, t + 1):
            a[2 * t, j], a[2 * t + 1, j] = math.cos(theta[j]), math.sin(theta[j])
    return a


def reference_traj_to_action(space, hist_xyz, hist_rot, fut_xyz, fut_rot):
    """AR1's ground-truth fit of one trajectory (ar1 integrator), written as plainly as possible."""
    hist_xyz, hist_rot, fut_xyz, fut_rot = (
        x.to(F64) for x in (hist_xyz, hist_rot, fut_xyz, fut_rot)
    )
    n, dt = space.n_steps, space.dt
    eye = torch.eye(n, dtype=F64)
    theta_meas = unwrap_yaw(yaw_from_rot(fut_rot))
    lead_zero = torch.cat([torch.zeros(n, 1, dtype=F64), eye], dim=1)
    theta = _least_squares(
        lead_zero, theta_meas, 3, space.theta_lambda / dt**6, space.theta_ridge, torch.zeros(())
    )
    hist_theta = unwrap_yaw(yaw_from_rot(hist_rot))
    hist_b = (2 / dt * hist_xyz[:, :2].diff(dim=0)).flatten()
    weight = space.v_lambda / dt**6
    v0 = _least_squares(_trapezoid_rows(hist_theta), hist_b, 3, weight, space.v_ridge)[-1]
    xy = torch.cat([hist_xyz[-1:, :2], fut_xyz[:, :2]])
    b = (2 / dt * xy.diff(dim=0)).flatten()
    v = _least_squares(_trapezoid_rows(theta), b, 3, weight, space.v_ridge, v0)
    accel = _least_squares(eye, v.diff() / dt, 2, space.accel_lambda / dt**4, space.accel_ridge)
    s = v[:-1] * dt + accel * dt**2 / 2
    weight = space.curvature_lambda / dt**4
    curvature = _least_squares(torch.diag(s), theta.diff(), 2, weight, space.curvature_ridge)
    return torch.stack([accel, curvature], dim=-1)


@pytest.mark.parametrize("batch", [3, 70])  # the dense small-batch path and the banded one
def test_traj_to_action_matches_ar1_least_squares_on_noisy_poses(batch):
    space = UnicycleActionSpace()
    generator = torch.Generator().manual_seed(2)
    v0 = 5 + 15 * torch.rand(batch, generator=generator)
    hist_xyz, hist_rot, fut_xyz, fut_rot = drive(space, smooth_controls(batch, seed=3), v0)
    # Noise makes the regularisers matter, so a wrong weight or a wrong band shows.
    fut_xyz = fut_xyz + 0.05 * torch.randn(fut_xyz.shape, generator=generator)
    yaw = yaw_from_rot(fut_rot) + 0.01 * torch.randn(fut_rot.shape[:-2], generator=generator)
    fut_rot = rot_from_yaw(yaw)
    fitted = space.denormalize(space.traj_to_action(hist_xyz, hist_rot, fut_xyz, fut_rot))
    for i in range(0, batch, max(1, batch // 5)):
        expected = reference_traj_to_action(space, hist_xyz[i], hist_rot[i], fut_xyz[i], fut_rot[i])
        torch.testing.assert_close(fitted[i, :, 0].double(), expected[:, 0], atol=2e-3, rtol=0)
        torch.testing.assert_close(fitted[i, :, 1].double(), expected[:, 1], atol=5e-5, rtol=0)


def _loop_states(controls, v0, integrator):
    """The integrators' recurrences stepped literally, for one trajectory."""
    x = y = theta = 0.0
    v = v0
    states = [(x, y, theta, v)]
    for accel, curvature in controls.tolist():
        v_next = v + accel * DT
        if integrator == "ar1":
            theta_next = theta + curvature * v * DT + curvature * accel * DT**2 / 2
            x += DT / 2 * (v * math.cos(theta) + v_next * math.cos(theta_next))
            y += DT / 2 * (v * math.sin(theta) + v_next * math.sin(theta_next))
        else:
            theta_next = theta + v * curvature * DT
            x += v * math.cos(theta) * DT
            y += v * math.sin(theta) * DT
        v, theta = v_next, theta_next
        states.append((x, y, theta, v))
    return torch.tensor(states, dtype=F64)


@pytest.mark.parametrize("integrator", ["ar1", "euler"])
def test_controls_to_states_follows_the_integrator_recurrence(integrator):
    space = UnicycleActionSpace(integrator=integrator)
    controls = smooth_controls(1)[0].double() * torch.tensor([1.0, 5.0], dtype=F64)
    states = space.controls_to_states(controls, torch.tensor(8.0, dtype=F64))
    torch.testing.assert_close(states, _loop_states(controls, 8.0, integrator))


def test_euler_and_ar1_integrate_the_same_controls_differently():
    controls, v0 = smooth_controls(4) * torch.tensor([1.0, 5.0]), torch.full((4,), 15.0)
    _, _, ar1_xyz, _ = drive(UnicycleActionSpace(), controls, v0)
    _, _, euler_xyz, _ = drive(UnicycleActionSpace(integrator="euler"), controls, v0)
    assert fde(ar1_xyz, euler_xyz).min() > 0.2


def test_action_to_traj_gradients_match_finite_differences():
    space = UnicycleActionSpace(n_steps=6)
    hist_xyz, hist_rot = history(torch.tensor([6.0, 14.0]))
    action = torch.randn(2, 6, 2, dtype=F64, generator=torch.Generator().manual_seed(4))
    action.requires_grad_(True)
    assert torch.autograd.gradcheck(
        lambda a: space.action_to_traj(a, hist_xyz, hist_rot), (action,)
    )


@pytest.mark.parametrize("lead", [(), (5,), (2, 3)])
def test_any_leading_batch_shape_gives_the_same_answer(lead):
    space = UnicycleActionSpace()
    count = math.prod(lead)
    controls = smooth_controls(max(count, 1))[:count].reshape(*lead, 64, 2)
    v0 = torch.linspace(5, 20, max(count, 1))[:count].reshape(lead)
    hist_xyz, hist_rot, fut_xyz, fut_rot = drive(space, controls, v0)
    action = space.traj_to_action(hist_xyz, hist_rot, fut_xyz, fut_rot)
    assert action.shape == (*lead, 64, 2) and action.dtype == torch.float32
    xyz, rot = space.action_to_traj(action, hist_xyz, hist_rot)
    assert xyz.shape == (*lead, 64, 3) and rot.shape == (*lead, 64, 3, 3)
    flat = space.traj_to_action(
        hist_xyz.reshape(-1, 16, 3),
        hist_rot.reshape(-1, 16, 3, 3),
        fut_xyz.reshape(-1, 64, 3),
        fut_rot.reshape(-1, 64, 3, 3),
    )
    torch.testing.assert_close(action.reshape(-1, 64, 2), flat)


def test_outputs_keep_the_t0_height_and_flat_rotations():
    space = UnicycleActionSpace()
    hist_xyz, hist_rot = history(torch.tensor(10.0))
    hist_xyz[..., 2] = 1.5
    xyz, rot = space.action_to_traj(torch.zeros(64, 2), hist_xyz, hist_rot)
    assert torch.all(xyz[:, 2] == 1.5)
    torch.testing.assert_close(rot, rot_from_yaw(yaw_from_rot(rot)))


def test_space_pickles_and_rejects_wrong_settings_and_lengths():
    space = pickle.loads(pickle.dumps(UnicycleActionSpace(integrator="euler")))
    assert space == UnicycleActionSpace(integrator="euler")
    with pytest.raises(ValueError, match="integrator"):
        UnicycleActionSpace(integrator="rk4")
    hist_xyz, hist_rot = history(torch.tensor(10.0))
    with pytest.raises(ValueError, match="n_steps=64"):
        space.traj_to_action(hist_xyz, hist_rot, torch.zeros(32, 3), torch.eye(3).expand(32, 3, 3))


@pytest.mark.parametrize("batch", [1, 70])
def test_standing_still_with_no_curvature_ridge_retries_and_stays_finite(batch, caplog):
    space = UnicycleActionSpace(curvature_ridge=0.0)
    hist_xyz, hist_rot = history(torch.zeros(batch))
    fut_xyz, fut_rot = torch.zeros(batch, 64, 3), torch.eye(3).expand(batch, 64, 3, 3)
    with caplog.at_level(logging.WARNING, logger="vla_lab.driving.unicycle"):
        action = space.traj_to_action(hist_xyz, hist_rot, fut_xyz, fut_rot)
    assert "retrying with ridge" in caplog.text
    assert torch.all(space.denormalize(action).abs() < 1e-6)


@pytest.mark.parametrize("batch", [2, 70])
def test_ridge_retry_redoes_only_the_failed_systems(batch):
    bands = torch.zeros(batch, 4, 2)
    bands[:, :, 0] = 2.0
    bands[0, :, 0] = torch.tensor([1.0, 1.0, 1.0, -5e-4])  # indefinite until ridge >= 5e-4
    rhs = torch.ones(batch, 4)
    x = unicycle._solve_banded(bands, rhs, 1e-4, "test")
    torch.testing.assert_close(x[0], 1 / (bands[0, :, 0] + 1e-3))
    torch.testing.assert_close(x[1:], torch.full((batch - 1, 4), 1 / (2 + 1e-4)))


def test_ade_and_fde_by_hand():
    pred = torch.zeros(2, 2)
    true = torch.tensor([[3.0, 4.0], [0.0, 0.0]])
    assert ade(pred, true) == 2.5 and fde(pred, true) == 0.0
    mask = torch.tensor([True, False])
    assert ade(pred, true, mask) == 5.0 and fde(pred, true, mask) == 5.0
    pred = torch.zeros(64, 3)
    true = constant_velocity_rollout(torch.tensor(1.0))  # 0.1 m further every step
    assert ade_at(pred, true, 0.5) == pytest.approx(0.3)  # mean of 0.1..0.5
    assert fde_at(pred, true, 3.0) == pytest.approx(3.0)


def test_constant_velocity_rollout_drives_straight_ahead():
    xyz = constant_velocity_rollout(torch.tensor([0.0, 10.0]), n_steps=64, dt=0.1)
    assert xyz.shape == (2, 64, 3)
    assert torch.all(xyz[0] == 0)
    torch.testing.assert_close(xyz[1, [0, -1], 0], torch.tensor([1.0, 64.0]))
    assert torch.all(xyz[..., 1:] == 0)


def test_comfort_flags_hard_braking_and_tight_turns_but_not_gentle_driving():
    space = UnicycleActionSpace()
    v0 = torch.full((3,), 15.0)
    controls = torch.zeros(3, 64, 2)
    controls[0, :20, 0] = -6.0  # emergency stop: 6 m/s^2
    controls[1, :, 0] = -1.0 * torch.sin(torch.arange(64) * 0.05)  # gentle, smooth slow-down
    controls[2, :, 1] = 0.07  # 15 m/s on a 14 m radius: yaw rate 1.05 rad/s
    _, _, xyz, rot = drive(space, controls, v0)
    assert comfort(xyz, yaw_from_rot(rot)).tolist() == [False, True, False]
    straight = constant_velocity_rollout(torch.tensor(20.0))
    assert comfort(straight, torch.zeros(64))


# The released Alpamayo-R1-10B normalisation constants, at full precision.
AR1_NORMALISATION = {
    "accel_mean": 0.02902694707164455,
    "accel_std": 0.6810426736454882,
    "curvature_mean": 0.0002692167976330542,
    "curvature_std": 0.026148280660833106,
}


def _rollout_gap_to_ar1(space: UnicycleActionSpace) -> float:
    """Largest distance (m) between `space`'s decoding of AR1-normalised actions and AR1's own,
    over a 6.4 s drive of ~90 m (v0 = 14 m/s)."""
    raw = smooth_controls(1)[0].double()
    mean = torch.tensor([AR1_NORMALISATION["accel_mean"], AR1_NORMALISATION["curvature_mean"]])
    std = torch.tensor([AR1_NORMALISATION["accel_std"], AR1_NORMALISATION["curvature_std"]])
    normalised = (raw - mean.double()) / std.double()
    ar1 = _loop_states(raw, 14.0, "ar1")[1:, :2]
    v0 = torch.tensor(14.0, dtype=F64)
    hist_xyz, hist_rot = history(v0)
    xyz, _ = space.action_to_traj(normalised, hist_xyz.double(), hist_rot.double(), v0=v0)
    assert float(ar1[-1, 0]) > 80.0
    return float((xyz[:, :2] - ar1).norm(dim=-1).max())


def test_normalisation_is_ar1s_at_full_precision_in_code_and_config():
    space = UnicycleActionSpace()
    configured = OmegaConf.load(CONF_DIR / "data" / "nvidia_av.yaml").source.action_space
    for name, value in AR1_NORMALISATION.items():
        assert getattr(space, name) == value and configured[name] == value
    assert _rollout_gap_to_ar1(space) < 1e-6
    # The rounded copies vla-lab used to carry move this drive by ~1.3 mm: the test can tell.
    rounded = UnicycleActionSpace(
        accel_mean=0.02903, accel_std=0.68104, curvature_mean=0.000269, curvature_std=0.026148
    )
    assert _rollout_gap_to_ar1(rounded) > 5e-4
