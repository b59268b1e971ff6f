"""The driving Field Agent: SmolVLA + unicycle integration layer, on synthetic AV clips."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from hydra.utils import instantiate

from vla_lab import features as ft
from vla_lab.data import datamodule_for
from vla_lab.driving.metrics import constant_velocity_rollout
from vla_lab.features import FUTURE_XYZ, HISTORY_ROT, HISTORY_XYZ
from vla_lab.models.lerobot.smolvla_unicycle import SmolVLAUnicycleModule, flow_loss_and_estimate
from vla_lab.runtime.checkpoint import load_checkpoint
from vla_lab.train import train

DEMO = ["experiment=av_smolvla_unicycle_demo", "hardware.num_workers=0", "hardware.batch_size=4"]


def attach(make_cfg, overrides: list[str] | None = None) -> tuple[SmolVLAUnicycleModule, dict]:
    """A fresh demo model sized by its data, and a validation batch."""
    cfg = make_cfg([*DEMO, *(overrides or [])])
    torch.manual_seed(0)
    module = instantiate(cfg.model)
    datamodule = datamodule_for(cfg.data, module)
    module.attach_dataset(datamodule.features, datamodule.stats)
    batch = next(iter(datamodule.dataloader("val")))
    return module, batch


@pytest.fixture()
def attached(make_cfg) -> tuple[SmolVLAUnicycleModule, dict]:
    return attach(make_cfg)


@pytest.mark.parametrize("t", [0.0, 1.0])
def test_flow_estimate_is_x_t_minus_t_times_the_velocity(attached, monkeypatch, t: float):
    """At t=0 the noisy input is the clean chunk itself; at t=1 it is pure noise, and the estimate
    is noise - v_pred. Either end pins the sign and scale of `x_t - t * v_pred`."""
    module, batch = attached
    policy = module.policy
    processed = module.preprocess(batch)
    actions = policy.prepare_action(processed)[..., :2]
    noise = torch.randn(*actions.shape[:2], policy.config.max_action_dim)
    monkeypatch.setattr(policy.model, "sample_noise", lambda shape, device: noise)
    monkeypatch.setattr(
        policy.model, "sample_time", lambda n, device: torch.full((n,), t, device=device)
    )
    velocity = []
    policy.model.action_out_proj.register_forward_hook(lambda m, i, out: velocity.append(out))
    _, estimate = flow_loss_and_estimate(policy, processed)
    expected = actions if t == 0.0 else (noise - velocity[0])[..., :2]
    torch.testing.assert_close(estimate, expected)


def test_actions_are_not_renormalised_so_the_expert_predicts_decodable_controls(attached):
    module, batch = attached
    processed = module.preprocess(batch)
    torch.testing.assert_close(processed["action"], batch["action"])


def test_training_logs_driving_metrics_and_the_checkpoint_predicts_trajectories(
    make_cfg, tmp_path: Path
):
    run = tmp_path / "run"
    metrics = train(make_cfg([*DEMO, "debug=limit", "trainer.max_epochs=1"], output_dir=run))
    for name in ("ade", "fde", "ade_1s", "ade_3s", "comfort", "baseline_ade", "trajectory_loss"):
        assert f"val/{name}" in metrics, sorted(metrics)
    assert 0.0 <= metrics["val/comfort"] <= 1.0
    # The single sample is one of the 6 (model.min_ade_samples): the best of them is no worse.
    assert metrics["val/min_ade@6"] <= metrics["val/ade"] + 1e-6 and "val/min_fde@6" in metrics
    module = load_checkpoint(run / "checkpoints" / "last.ckpt").module
    cfg = make_cfg(DEMO)
    batch = next(iter(datamodule_for(cfg.data, module).dataloader("val")))
    out = module.predict_trajectory(batch)
    n = len(batch["task"])
    assert out["action"].shape == (n, 64, 2) and out["future_xyz"].shape == (n, 64, 3)
    assert out["future_rot"].shape == (n, 64, 3, 3)
    again, _ = module.decode(out["action"], batch)
    torch.testing.assert_close(again, out["future_xyz"])
    assert batch[FUTURE_XYZ].shape == out["future_xyz"].shape


def test_a_chunk_size_other_than_the_action_space_steps_is_refused(make_cfg):
    cfg = make_cfg([*DEMO, "model.chunk_size=50"])
    with pytest.raises(Exception, match="n_steps=64"):  # wrapped by hydra's instantiate
        instantiate(cfg.model)


def test_k_samples_per_frame_stay_with_their_frame_and_differ_only_by_their_noise(
    attached, monkeypatch
):
    module, batch = attached
    n = len(batch["task"])
    samples = module.sample_trajectories(batch, 3)
    assert samples["action"].shape == (n, 3, 64, 2) and samples["future_rot"].shape == (
        n,
        3,
        64,
        3,
        3,
    )
    assert (samples["action"][:, 0] - samples["action"][:, 1]).abs().amax(dim=(1, 2)).min() > 0

    model = module.policy.model
    monkeypatch.setattr(model, "sample_noise", lambda shape, device: torch.zeros(shape))
    samples = module.sample_trajectories(batch, 3)
    single = module.predict_trajectory(batch)
    for k in range(3):  # the same noise: each frame's K samples are its own single prediction
        torch.testing.assert_close(samples["future_xyz"][:, k], single["future_xyz"])


def test_the_baseline_reads_v0_by_name_wherever_the_state_lists_it(make_cfg):
    module, batch = attach(make_cfg, ["data.source.state=[kappa0,v0]"])
    speed = torch.arange(len(batch["task"]), dtype=torch.float32) + 3.0
    batch[ft.STATE][:, 1] = speed
    torch.testing.assert_close(module.baseline_trajectory(batch), constant_velocity_rollout(speed))


def test_without_v0_in_the_state_the_baseline_drives_at_the_history_speed(make_cfg):
    module, batch = attach(make_cfg, ["data.source.state=[a0,kappa0]"])
    v0 = module.action_space.estimate_v0(batch[HISTORY_XYZ], batch[HISTORY_ROT])
    assert v0.min() > 1.0  # a moving car: the a0 column would be another speed altogether
    torch.testing.assert_close(module.baseline_trajectory(batch), constant_velocity_rollout(v0))


def test_min_ade_samples_below_one_is_refused(make_cfg):
    cfg = make_cfg([*DEMO, "model.min_ade_samples=0"])
    with pytest.raises(Exception, match="min_ade_samples=0"):
        instantiate(cfg.model)
