"""Export to a LeRobot policy directory (plain LeRobot loads it offline and acts as we do) and to
TorchScript/ONNX graphs (their runtimes predict what the PyTorch module predicts)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
import torch
from hydra.core.global_hydra import GlobalHydra
from test_act_smolvla import make_act, make_batch, make_smolvla, save_trained_checkpoint

from vla_lab import lerobot_api as lr
from vla_lab.models.module import CHECKPOINT_KEY
from vla_lab.runtime.checkpoint import load_checkpoint
from vla_lab.runtime.export import export, export_from_config
from vla_lab.runtime.policy import load_policy
from vla_lab.utils.config import compose_config


@pytest.mark.parametrize("family", ["act", "smolvla_lora"])
def test_exported_directory_loads_in_plain_lerobot_and_acts_identically(
    tmp_path: Path, family: str, caplog: pytest.LogCaptureFixture
) -> None:
    if family == "act":
        module, policy_class = make_act(), lr.ACTPolicy
    else:
        module, policy_class = make_smolvla(tmp_path / "cache", finetune="lora"), lr.SmolVLAPolicy
    ckpt = save_trained_checkpoint(module, tmp_path / "model.ckpt")
    with caplog.at_level("INFO", logger="vla_lab.runtime.export"):
        out = export(ckpt, tmp_path / "exported")
    assert {"config.json", "model.safetensors"} <= {p.name for p in out.iterdir()}
    assert f"lerobot-rollout --strategy.type=base --policy.path={out}" in caplog.text

    policy = policy_class.from_pretrained(out)
    preprocessor, postprocessor = lr.make_pre_post_processors(
        policy.config, pretrained_path=str(out)
    )
    batch = make_batch(4)
    observation = {k: v for k, v in batch.items() if k.startswith("observation.") or k == "task"}
    torch.manual_seed(0)  # SmolVLA samples its flow's starting noise
    theirs = postprocessor(policy.predict_action_chunk(preprocessor(dict(observation))))
    ours_module = load_checkpoint(ckpt).module
    torch.manual_seed(0)
    ours = ours_module.predict_action_chunk(observation)
    assert torch.allclose(theirs, ours, atol=1e-5)


@pytest.mark.parametrize("family", ["act", "smolvla"])
def test_select_action_of_the_export_in_plain_lerobot_equals_our_policy_act(
    tmp_path: Path, family: str
) -> None:
    """Train/deploy parity: what LeRobot's runner executes step by step (`select_action` with its
    queue, between its own processors) is what our `Policy.act` executes, same noise."""
    if family == "act":
        module, policy_class = make_act(n_action_steps=3), lr.ACTPolicy
    else:
        module, policy_class = make_smolvla(tmp_path / "cache", n_action_steps=3), lr.SmolVLAPolicy
    ckpt = save_trained_checkpoint(module, tmp_path / "model.ckpt")
    out = export(ckpt, tmp_path / "exported")
    # LeRobot 0.6 writes pretrained_revision: null, which 0.4 and 0.5 refuse; null defaults go.
    assert "pretrained_revision" not in json.loads((out / "config.json").read_text())
    theirs_policy = policy_class.from_pretrained(out)
    preprocessor, postprocessor = lr.make_pre_post_processors(
        theirs_policy.config, pretrained_path=str(out)
    )
    ours_policy = load_policy(ckpt, device="cpu")
    batch = make_batch(7)
    for step in range(5):  # two chunks: the queue empties after three steps
        frame = {
            key: value[step % len(value)]
            for key, value in batch.items()
            if key.startswith("observation.") or key == "task"
        }
        torch.manual_seed(step)  # SmolVLA samples its flow's noise when its queue is empty
        theirs = postprocessor(
            theirs_policy.select_action(
                preprocessor({k: v[None] if torch.is_tensor(v) else [v] for k, v in frame.items()})
            )
        )
        torch.manual_seed(step)
        ours = ours_policy.act(frame)
        np.testing.assert_allclose(ours, theirs[0].numpy(), atol=1e-5)


def test_unsupported_format_is_refused_naming_the_supported_ones(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="not yet supported.*lerobot, torchscript, onnx"):
        export(tmp_path / "model.ckpt", tmp_path / "out", format="tensorrt")


def export_command(*overrides: str) -> Path:
    """`python -m vla_lab.runtime.export <overrides>`, in-process."""
    cfg = compose_config(list(overrides), config_name="export")
    GlobalHydra.instance().clear()
    return export_from_config(cfg)


def test_command_line_needs_ckpt_path_and_out() -> None:
    with pytest.raises(ValueError, match="usage"):
        export_command("format=lerobot")


# ---- format=torchscript|onnx: one graph per checkpoint, checked against the PyTorch module ----


@pytest.fixture()
def demo_checkpoints(checkpoint_of) -> dict[str, Path]:
    """A Kosmos-LSTM (default experiment) and an ACT (roarm_act_demo) checkpoint."""
    return {"kosmos_lstm": checkpoint_of("mobile_vla_demo"), "act": checkpoint_of("roarm_act_demo")}


def run_exported(path: Path, format: str, inputs: list[torch.Tensor]) -> list[torch.Tensor]:
    if format == "torchscript":
        out = torch.jit.load(str(path))(*inputs)
        return list(out) if isinstance(out, tuple) else [out]
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    names = [i.name for i in session.get_inputs()]
    feeds = {n: x.numpy() for n, x in zip(names, inputs, strict=True)}
    return [torch.from_numpy(o) for o in session.run(None, feeds)]


@pytest.mark.parametrize("format", ["torchscript", "onnx"])
def test_kosmos_lstm_head_export_predicts_the_modules_actions_in_dataset_units(
    demo_checkpoints, tmp_path: Path, format: str
) -> None:
    ckpt = demo_checkpoints["kosmos_lstm"]
    out = export(ckpt, tmp_path / f"head.{format}", format=format)
    sidecar = json.loads(Path(f"{out}.json").read_text())
    assert sidecar["check"]["passed"] and sidecar["check"]["max_abs_error"] <= 1e-4
    assert [i["name"] for i in sidecar["inputs"]] == ["features"]

    module = load_checkpoint(ckpt).module
    held_out = torch.rand(
        1, module.window_size, 3, *module.dataset_features[module.image_key].shape[-2:]
    )
    with torch.no_grad():
        features = module.encode(held_out, ["go to the red box"])
        expected = module.predict_action_chunk(
            {module.image_key: held_out, "task": ["go to the red box"]}
        )
    actual = run_exported(out, format, [features])
    assert actual[0].shape == (1, module.chunk_size, 3)
    assert torch.allclose(actual[0], expected, atol=1e-4)
    assert [o["name"] for o in sidecar["outputs"]][: len(actual)] == [
        "actions",
        "action_type_logits",
    ][: len(actual)]


@pytest.mark.parametrize("format", ["torchscript", "onnx"])
def test_act_export_takes_raw_state_and_images_and_predicts_dataset_unit_actions(
    demo_checkpoints, tmp_path: Path, format: str
) -> None:
    ckpt = demo_checkpoints["act"]
    out = export(ckpt, tmp_path / f"act.{format}", format=format)
    sidecar = json.loads(Path(f"{out}.json").read_text())
    assert sidecar["check"]["passed"] and sidecar["check"]["max_abs_error"] <= 1e-4
    assert sidecar["stats"]["action"]["mode"] == "mean_std"

    module = load_checkpoint(ckpt).module
    gen = torch.Generator().manual_seed(7)  # not the sample export() checked on
    inputs = {
        i["name"]: (torch.rand if i["name"].startswith("observation.images") else torch.randn)(
            *i["shape"], generator=gen
        )
        for i in sidecar["inputs"]
    }
    with torch.no_grad():
        expected = module.predict_action_chunk({**inputs, "task": ["pick the cube"]})
    actual = run_exported(out, format, list(inputs.values()))
    assert actual[0].shape == expected.shape == (1, module.chunk_size, expected.shape[-1])
    assert torch.allclose(actual[0], expected, atol=1e-4)


def test_graph_export_of_smolvla_is_refused_saying_why(tmp_path: Path) -> None:
    ckpt = tmp_path / "smolvla.ckpt"
    target = "vla_lab.models.lerobot.smolvla.SmolVLAModule"
    torch.save({CHECKPOINT_KEY: {"config": {"model": {"_target_": target}}}}, ckpt)
    with pytest.raises(NotImplementedError, match="KV cache.*format=lerobot"):
        export(ckpt, tmp_path / "smolvla.onnx", format="onnx")
    assert not (tmp_path / "smolvla.onnx").exists()


def test_command_line_exports_onnx_with_a_sidecar(demo_checkpoints, tmp_path: Path) -> None:
    out = tmp_path / "cli" / "head.onnx"
    export_command(
        f"ckpt_path={demo_checkpoints['kosmos_lstm']}", "format=onnx", f"out={out}", "atol=1e-3"
    )
    sidecar = json.loads(Path(f"{out}.json").read_text())
    assert out.is_file() and sidecar["check"]["atol"] == 1e-3
    assert not list(out.parent.glob(".*tmp"))


def test_float16_onnx_for_the_jetson_is_checked_within_the_float16_tolerance(
    demo_checkpoints, tmp_path: Path
) -> None:
    out = export(
        demo_checkpoints["act"], tmp_path / "act_fp16.onnx", format="onnx", dtype="float16"
    )
    sidecar = json.loads(Path(f"{out}.json").read_text())
    assert sidecar["dtype"] == "float16" and sidecar["check"]["atol"] == 1e-2
    assert 0 < sidecar["check"]["max_abs_error"] <= 1e-2
    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    assert {i.type for i in session.get_inputs()} == {"tensor(float16)"}
