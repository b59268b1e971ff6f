"""Driving metrics people compare with the papers: minADE/minFDE over K samples (AR1's minADE6)
and the comfort signals on a steady curve."""

from __future__ import annotations

import torch

from vla_lab.driving.metrics import ade, comfort_signals, fde, min_ade_fde
from vla_lab.driving.unicycle import UnicycleActionSpace


def straight_truth(n_steps: int = 4) -> torch.Tensor:
    """(T, 2): 1 m further ahead every step."""
    x = torch.arange(1, n_steps + 1, dtype=torch.float32)
    return torch.stack([x, torch.zeros_like(x)], dim=-1)


def test_min_ade_picks_the_sample_with_the_lowest_ade_and_reports_its_fde():
    true = straight_truth()
    sideways = true + torch.tensor([0.0, 1.0])  # ADE 1, FDE 1: the lowest FDE of the three
    late = true.clone()
    late[-1, 1] = 3.0  # exact but the last step: ADE 0.75, FDE 3
    far = true + torch.tensor([0.0, 2.0])  # ADE 2, FDE 2
    # Two frames with the samples in different orders: each frame chooses its own best.
    pred = torch.stack([torch.stack([sideways, late, far]), torch.stack([far, sideways, far])])
    truth = torch.stack([true, true])

    min_ade, min_fde = min_ade_fde(pred, truth)

    torch.testing.assert_close(min_ade, torch.tensor([0.75, 1.0]))
    # The FDE of the sample chosen by ADE (as AR1), not the lowest FDE of any sample (1.0).
    torch.testing.assert_close(min_fde, torch.tensor([3.0, 1.0]))


def test_min_of_one_sample_is_that_sample_s_ade_and_fde():
    generator = torch.Generator().manual_seed(0)
    pred = torch.randn(5, 1, 64, 2, generator=generator)
    true = torch.randn(5, 64, 2, generator=generator)
    min_ade, min_fde = min_ade_fde(pred, true)
    torch.testing.assert_close(min_ade, ade(pred[:, 0], true))
    torch.testing.assert_close(min_fde, fde(pred[:, 0], true))


def test_lateral_acceleration_of_a_steady_curve_is_minus_v2_kappa_at_the_horizon_end():
    """AR1's finite differences: ~0 along the curve, -v^2 kappa at the last two steps."""
    space = UnicycleActionSpace()
    v, kappa = 10.0, 0.02
    controls = torch.tensor([0.0, kappa]).expand(1, space.n_steps, 2)
    states = space.controls_to_states(controls, torch.tensor([v]))[0, 1:]

    lat_accel = comfort_signals(states[:, :2], states[:, 2], space.dt)["lat_accel"]

    assert lat_accel[:-2].abs().max() < 1e-3
    torch.testing.assert_close(lat_accel[-2:], torch.full((2,), -(v**2) * kappa), atol=1e-3, rtol=0)
