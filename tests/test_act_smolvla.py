"""ACT and SmolVLA modules: losses, processors, camera renaming, fine-tuning, checkpoints."""

from __future__ import annotations

import json
from pathlib import Path

import lightning.pytorch as pl
import pytest
import torch
from omegaconf import OmegaConf
from torch.utils.data import DataLoader

from vla_lab import lerobot_api as lr
from vla_lab.features import Feature
from vla_lab.models.lerobot.act import ACTModule
from vla_lab.models.lerobot.loss import OBS_IMAGES
from vla_lab.models.lerobot.smolvla import SmolVLAModule
from vla_lab.utils.config import CONF_DIR

B, T, A, S = 3, 6, 4, 5
CAMERA = "observation.images.front"
OPTIMIZER = {"_target_": "torch.optim.AdamW", "_partial_": True, "lr": 1e-3}
FEATURES = {
    CAMERA: Feature("float32", (3, 32, 32)),
    "observation.state": Feature("float32", (S,)),
    "action": Feature("float32", (A,)),
    "task": Feature("string", ()),
}


def _stats(dim: int) -> dict[str, list[float]]:
    return {
        "mean": [0.1] * dim,
        "std": [0.5] * dim,
        "min": [-1.0] * dim,
        "max": [1.0] * dim,
        "q01": [-1.0] * dim,
        "q99": [1.0] * dim,
    }


STATS = {"action": _stats(A), "observation.state": _stats(S)}


def make_batch(seed: int = 0) -> dict:
    """A LeRobot-format batch: one observation frame, a chunk whose first sample ends early."""
    gen = torch.Generator().manual_seed(seed)
    pad = torch.zeros(B, T, dtype=torch.bool)
    pad[0, T // 2 :] = True
    return {
        CAMERA: torch.rand(B, 3, 32, 32, generator=gen),
        "observation.state": torch.randn(B, S, generator=gen),
        "action": torch.randn(B, T, A, generator=gen),
        "action_is_pad": pad,
        "task": ["pick up the red cube"] * B,
    }


def make_act(backbone: dict | None = None, **model) -> ACTModule:
    head = OmegaConf.load(CONF_DIR / "head" / "act.yaml")
    head.update(dim_model=32, n_heads=2, dim_feedforward=64, n_encoder_layers=1)
    head.update(n_vae_encoder_layers=1, latent_dim=4, dropout=0.0)
    module = ACTModule(
        backbone=OmegaConf.merge(
            OmegaConf.load(CONF_DIR / "backbone" / "resnet18.yaml"), backbone or {}
        ),
        head=head,
        finetune={"mode": "full", "train_vision": True, "lora": None},
        optimizer=OPTIMIZER,
        **{"chunk_size": T, "n_action_steps": T, **model},
    )
    module.attach_dataset(FEATURES, STATS)
    return module


def make_smolvla(cache_dir: Path, finetune: str = "full", backbone: dict | None = None, **model):
    base = OmegaConf.load(CONF_DIR / "backbone" / "smolvlm2_500m.yaml")
    tiny = OmegaConf.load(CONF_DIR / "backbone" / "smolvlm_tiny.yaml")
    tiny.pop("defaults")
    config = OmegaConf.merge(base, tiny, {"cache_dir": str(cache_dir)}, backbone or {})
    module = SmolVLAModule(
        backbone=config,
        head=OmegaConf.load(CONF_DIR / "head" / "flow.yaml"),
        finetune={**OmegaConf.load(CONF_DIR / "finetune" / f"{finetune}.yaml")},
        optimizer=OPTIMIZER,
        **{"chunk_size": T, "n_action_steps": T, **model},
    )
    module.attach_dataset(FEATURES, STATS)
    return module


def save_trained_checkpoint(module, path: Path) -> Path:
    """One optimizer step through Lightning, then its checkpoint (as train() would write it)."""
    module.run_config = {
        "model": {"_target_": f"{type(module).__module__}.{type(module).__name__}"}
    }
    trainer = pl.Trainer(
        max_steps=1,
        limit_val_batches=0,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        accelerator="cpu",
    )
    trainer.fit(module, DataLoader([make_batch(1)], batch_size=None))
    trainer.save_checkpoint(path)
    return path


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("smolvla_cache")


def test_act_masked_loss_averages_over_real_steps_only() -> None:
    module = make_act(loss="masked", kl_weight=10.0).eval()
    batch = make_batch()
    processed = module.preprocess(batch)
    inputs = {**processed, OBS_IMAGES: [processed[CAMERA]]}
    predicted = module.policy.model(inputs)[0]
    errors = [
        (predicted[b, t] - processed["action"][b, t]).abs().mean()
        for b in range(B)
        for t in range(T)
        if not batch["action_is_pad"][b, t]
    ]
    # eval mode: no VAE latent, so no KL term; the L1 ignores the 3 padded steps of sample 0.
    assert module.model_step(batch).loss.item() == pytest.approx(torch.stack(errors).mean().item())


def test_smolvla_masked_loss_ignores_padded_steps_and_padded_action_dims(cache_dir: Path) -> None:
    module = make_smolvla(cache_dir, loss="masked")
    processed = module.preprocess(make_batch())
    torch.manual_seed(3)
    loss, _ = module.masked_loss(processed)
    policy = module.policy
    torch.manual_seed(3)  # the same flow noise and time
    images, masks = policy.prepare_images(processed)
    per_element = policy.model.forward(
        images,
        masks,
        processed["observation.language.tokens"],
        processed["observation.language.attention_mask"],
        policy.prepare_state(processed),
        policy.prepare_action(processed),
    )
    assert per_element.shape == (B, T, 32)  # padded to max_action_dim
    real = per_element[:, :, :A][~processed["action_is_pad"]]
    assert loss.item() == pytest.approx(real.mean().item())


@pytest.mark.parametrize("family", ["act", "smolvla"])
def test_lerobot_loss_is_lerobots_own_number(cache_dir: Path, family: str) -> None:
    module = (
        make_act(loss="lerobot") if family == "act" else make_smolvla(cache_dir, loss="lerobot")
    )
    module.train()
    batch = make_batch()
    torch.manual_seed(5)
    ours = module.model_step(batch).loss
    torch.manual_seed(5)
    theirs, _ = module.policy.forward(module.preprocessor(dict(batch)))
    assert ours.item() == pytest.approx(theirs.item(), rel=1e-6)


@pytest.mark.parametrize("family", ["act", "smolvla"])
def test_a_raw_observation_with_a_task_string_is_processed_before_the_policy(
    cache_dir: Path, family: str
) -> None:
    module = make_act() if family == "act" else make_smolvla(cache_dir)
    batch = make_batch()
    observation = {CAMERA: batch[CAMERA], "observation.state": batch["observation.state"]}
    chunk = module.predict_action_chunk({**observation, "task": "pick up the red cube"})
    assert chunk.shape == (B, T, A) and torch.isfinite(chunk).all()
    assert "observation.language.tokens" not in observation  # tokenised by the preprocessor


def test_camera_mismatch_fails_at_start_up_listing_both_key_sets(
    cache_dir: Path, tmp_path: Path
) -> None:
    pretrained = tmp_path / "pretrained"
    pretrained.mkdir()
    lr.SmolVLAConfig(
        input_features={
            "observation.images.camera1": lr.PolicyFeature(lr.FeatureType.VISUAL, (3, 32, 32)),
            "observation.state": lr.PolicyFeature(lr.FeatureType.STATE, (S,)),
        },
        output_features={"action": lr.PolicyFeature(lr.FeatureType.ACTION, (A,))},
        device="cpu",
    )._save_pretrained(pretrained)
    with pytest.raises(ValueError) as err:
        make_smolvla(cache_dir, backbone={"pretrained_policy": str(pretrained)})
    assert CAMERA in str(err.value) and "observation.images.camera1" in str(err.value)
    assert "rename_map" in str(err.value)


def _trainable(module: SmolVLAModule, prefix: str) -> list[bool]:
    return [p.requires_grad for n, p in module.policy.named_parameters() if n.startswith(prefix)]


def test_smolvla_finetune_modes_train_the_expected_parameters(cache_dir: Path) -> None:
    vlm, expert = "model.vlm_with_expert.vlm.", "model.vlm_with_expert.lm_expert."
    frozen = make_smolvla(cache_dir, finetune="frozen")
    assert not any(_trainable(frozen, vlm)) and all(_trainable(frozen, expert))

    lora = make_smolvla(cache_dir, finetune="lora")
    vlm_trainable = [
        n for n, p in lora.policy.named_parameters() if n.startswith(vlm) and p.requires_grad
    ]
    assert vlm_trainable and all("lora_" in n for n in vlm_trainable)
    assert all("text_model" in n for n in vlm_trainable) and all(_trainable(lora, expert))

    full = make_smolvla(cache_dir, finetune="full")
    # LeRobot keeps the VLM's unused last layer and lm_head frozen (they get no gradient).
    text_layer0 = "model.vlm_with_expert.vlm.model.text_model.layers.0."
    assert all(_trainable(full, text_layer0)) and all(_trainable(full, vlm + "model.vision_model"))
    assert all(_trainable(full, expert))


@pytest.mark.parametrize("family", ["act", "smolvla"])
def test_load_from_checkpoint_rebuilds_the_policy_offline(
    cache_dir: Path, tmp_path: Path, family: str
) -> None:
    module = make_act() if family == "act" else make_smolvla(cache_dir, finetune="lora")
    path = save_trained_checkpoint(module, tmp_path / "model.ckpt")
    loaded = type(module).load_from_checkpoint(path, map_location="cpu").eval()
    module.eval()
    batch = make_batch(2)
    torch.manual_seed(0)
    expected = module.predict_action_chunk(batch)
    torch.manual_seed(0)
    assert torch.allclose(loaded.predict_action_chunk(batch), expected, atol=1e-5)


def save_as_other_lerobot(module, directory: Path) -> Path:
    """`module`'s policy saved by LeRobot's own `save_pretrained`, its config.json then made as
    other releases write it: without `pretrained_revision` (0.4, 0.5) and with a key the
    installed one does not know (as a newer release may add)."""
    module.policy.save_pretrained(directory)
    config = json.loads((directory / "config.json").read_text())
    config.pop("pretrained_revision", None)
    config.update(rollout_strategy="base")
    (directory / "config.json").write_text(json.dumps(config, indent=4))
    return directory


def test_pretrained_policy_saved_by_another_lerobot_loads_with_one_warning_and_trains(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    saved = make_act()
    directory = save_as_other_lerobot(saved, tmp_path / "pretrained_model")
    with caplog.at_level("WARNING"):
        module = make_act(backbone={"pretrained_policy": str(directory)})
    dropped = [r.getMessage() for r in caplog.records if "rollout_strategy" in r.getMessage()]
    assert len(dropped) == 1, caplog.text
    assert str(directory / "config.json") in dropped[0]
    theirs, ours = saved.policy.state_dict(), module.policy.state_dict()
    assert theirs.keys() == ours.keys()
    assert all(torch.equal(theirs[k], ours[k]) for k in theirs), "weights not loaded"
    assert all(m.training for m in module.policy.modules()), "from_pretrained left it in eval mode"
    save_trained_checkpoint(module, tmp_path / "model.ckpt")  # one optimizer step through Lightning
    assert not all(torch.equal(theirs[k], v) for k, v in module.policy.state_dict().items())


def test_pretrained_policy_of_another_shape_fails_at_start_up_naming_both(tmp_path: Path) -> None:
    directory = save_as_other_lerobot(make_act(), tmp_path / "pretrained_model")
    with pytest.raises(ValueError, match="model.chunk_size.*set model.chunk_size"):
        make_act(backbone={"pretrained_policy": str(directory)}, chunk_size=T - 1)
