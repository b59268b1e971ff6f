"""Export to a LeRobot policy directory: plain LeRobot loads it offline and acts as we do."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from test_act_smolvla import make_act, make_batch, make_smolvla, save_trained_checkpoint

from vla_lab import lerobot_api as lr
from vla_lab.runtime.checkpoint import load_module
from vla_lab.runtime.export import export, main


@pytest.mark.parametrize("family", ["act", "smolvla_lora"])
def test_exported_directory_loads_in_plain_lerobot_and_acts_identically(
    tmp_path: Path, family: str
) -> None:
    if family == "act":
        module, policy_class = make_act(), lr.ACTPolicy
    else:
        module, policy_class = make_smolvla(tmp_path / "cache", finetune="lora"), lr.SmolVLAPolicy
    ckpt = save_trained_checkpoint(module, tmp_path / "model.ckpt")
    out = export(ckpt, tmp_path / "exported")
    assert {"config.json", "model.safetensors"} <= {p.name for p in out.iterdir()}

    policy = policy_class.from_pretrained(out)
    preprocessor, postprocessor = lr.make_pre_post_processors(
        policy.config, pretrained_path=str(out)
    )
    batch = make_batch(4)
    observation = {k: v for k, v in batch.items() if k.startswith("observation.") or k == "task"}
    torch.manual_seed(0)  # SmolVLA samples its flow's starting noise
    theirs = postprocessor(policy.predict_action_chunk(preprocessor(dict(observation))))
    ours_module = load_module(ckpt)
    torch.manual_seed(0)
    ours = ours_module.predict_action_chunk(observation)
    assert torch.allclose(theirs, ours, atol=1e-5)


def test_unsupported_format_is_refused_naming_the_supported_one(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="not yet supported.*lerobot"):
        export(tmp_path / "model.ckpt", tmp_path / "out", format="onnx")


def test_command_line_needs_ckpt_path_and_out() -> None:
    with pytest.raises(SystemExit, match="usage"):
        main(["format=lerobot"])
