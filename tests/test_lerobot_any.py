"""model=lerobot: any registered LeRobot policy (here Diffusion Policy) through the one module."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf

from vla_lab import lerobot_api as lr
from vla_lab.features import Feature
from vla_lab.models.lerobot.act import ACTModule
from vla_lab.models.lerobot.base import LeRobotPolicyModule
from vla_lab.runtime.checkpoint import load_checkpoint
from vla_lab.runtime.export import export
from vla_lab.runtime.policy import load_policy
from vla_lab.train import train
from vla_lab.utils.config import CONF_DIR

FAST = ["hardware.num_workers=0", "hardware.batch_size=4", "debug=limit", "trainer.max_epochs=1"]
DEMO = "experiment=roarm_diffusion_demo"
OPTIMIZER = {"_target_": "torch.optim.AdamW", "_partial_": True, "lr": 1e-3}


def diffusion_module(**overrides) -> LeRobotPolicyModule:
    demo = OmegaConf.load(CONF_DIR / "experiment" / "roarm_diffusion_demo.yaml").model
    args = {"policy_type": "diffusion", "policy": demo.policy, "loss": "lerobot"}
    return LeRobotPolicyModule(optimizer=OPTIMIZER, **{**args, **overrides})


@pytest.mark.slow
def test_diffusion_demo_learns_to_beat_the_mean_action_baseline(make_cfg) -> None:
    metrics = train(make_cfg([DEMO]))
    assert metrics["val/mae"] <= 0.6 * metrics["val/baseline_mae"], metrics


def test_diffusion_trains_checkpoints_acts_and_exports_a_dir_plain_lerobot_loads(
    make_cfg, tmp_path: Path
) -> None:
    cfg = make_cfg([DEMO, *FAST])
    train(cfg)
    ckpt = Path(cfg.paths.output_dir) / "checkpoints" / "last.ckpt"
    policy = load_policy(ckpt, device="cpu")
    frame = {
        "observation.images.front": torch.rand(3, 64, 64),
        "observation.state": torch.zeros(6),
        "task": "pick up the cube",
    }
    torch.manual_seed(0)  # the reverse diffusion starts from noise
    action = policy.act(frame)
    assert action.shape == (6,) and np.isfinite(action).all()
    batch = {k: v[None] if torch.is_tensor(v) else [v] for k, v in frame.items()}
    assert load_checkpoint(ckpt).module.predict_action_chunk(batch).shape == (1, 8, 6)

    out = export(ckpt, tmp_path / "exported")
    theirs = lr.get_policy_class("diffusion").from_pretrained(out)
    preprocessor, postprocessor = lr.make_pre_post_processors(
        theirs.config, pretrained_path=str(out)
    )
    torch.manual_seed(0)
    their_action = postprocessor(theirs.select_action(preprocessor(batch)))
    np.testing.assert_allclose(action, their_action[0].numpy(), atol=1e-5)


def test_diffusion_trains_on_mobile_vla_data_without_a_state(make_cfg) -> None:
    metrics = train(make_cfg([DEMO, "data=mobile_vla_synthetic", *FAST]))
    assert np.isfinite(metrics["val/loss"]) and "val/mae" in metrics


def test_backbone_weights_not_on_this_machine_fail_at_start_up_naming_them(
    make_cfg, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "empty_torch_home"))
    weights = "ResNet18_Weights.IMAGENET1K_V1"
    cfg = make_cfg([DEMO, *FAST, f"model.policy.pretrained_backbone_weights={weights}"])
    with pytest.raises(
        FileNotFoundError, match=f"pretrained_backbone_weights='{weights}'.*resnet18"
    ):
        train(cfg)


@pytest.mark.parametrize(
    ("policy_type", "named"),
    [
        ("pi0", "google/paligemma-3b-pt-224"),  # its processor's tokenizer (named in code)
        ("pi0_fast", "text_tokenizer_name='google/paligemma-3b-pt-224'"),  # a config field
    ],
)
def test_a_hub_model_not_in_the_cache_fails_at_start_up_naming_it(policy_type, named) -> None:
    module = LeRobotPolicyModule(optimizer=OPTIMIZER, policy_type=policy_type, loss="lerobot")
    features = {
        "observation.images.front": Feature("float32", (3, 32, 32)),
        "observation.state": Feature("float32", (2,)),
        "action": Feature("float32", (2,)),
    }
    unit = {"mean": [0.0, 0.0], "std": [1.0, 1.0], "min": [-1.0, -1.0], "max": [1.0, 1.0]}
    stats = {"observation.state": unit, "action": unit}
    with pytest.raises(FileNotFoundError, match=f"{policy_type}.*{re.escape(named)}"):
        module.attach_dataset(features, stats)


def test_act_through_the_generic_option_is_the_act_module() -> None:
    module = LeRobotPolicyModule(
        optimizer=OPTIMIZER,
        policy_type="act",
        finetune={"mode": "frozen"},
        chunk_size=4,
        n_action_steps=4,
    )
    assert type(module) is ACTModule and module.action_delta_indices == [0, 1, 2, 3]


def test_diffusion_serves_its_chunk_and_observation_history() -> None:
    module = diffusion_module(policy={"n_obs_steps": 2, "horizon": 8, "n_action_steps": 4})
    assert module.observation_delta_indices == [-1, 0]
    assert module.action_delta_indices == list(range(-1, 7)) and module.current_action_index == 1


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (
            {"policy": {"horizn": 8}},
            r"model.policy \(or a model key\) sets \['horizn'\].*DiffusionConfig",
        ),
        ({"finetune": {"mode": "lora"}}, "finetune='lora'.*'diffusion'; supported: full"),
        ({"loss": "masked"}, "model.loss=masked has no implementation.*'diffusion'"),
        ({"policy_type": "difusion"}, "model.policy_type='difusion'.*known: .*diffusion"),
    ],
)
def test_a_config_that_does_not_fit_the_policy_fails_naming_the_key(overrides, message) -> None:
    with pytest.raises(ValueError, match=message):
        diffusion_module(**overrides).action_delta_indices  # noqa: B018
