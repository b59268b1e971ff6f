"""A checkpoint is read once per job, and what that one read builds is what Lightning builds."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch

from vla_lab.evaluate import evaluate
from vla_lab.infer import infer
from vla_lab.models.module import CHECKPOINT_KEY
from vla_lab.runtime.checkpoint import load_checkpoint
from vla_lab.runtime.export import export
from vla_lab.runtime.policy import load_policy
from vla_lab.utils.config import compose_config


@pytest.mark.parametrize("experiment", ["mobile_vla_demo", "roarm_act_demo"])
def test_the_module_of_one_read_equals_lightnings_load_from_checkpoint(experiment, checkpoint_of):
    ckpt = checkpoint_of(experiment)
    ours = load_checkpoint(ckpt).module
    lightning = type(ours).load_from_checkpoint(ckpt, map_location="cpu").eval()

    assert not ours.training
    assert dict(ours.hparams) == dict(lightning.hparams)
    assert ours.run_config == lightning.run_config
    assert ours.dataset_features == lightning.dataset_features
    assert ours.dataset_stats == lightning.dataset_stats
    expected = lightning.state_dict()
    assert ours.state_dict().keys() == expected.keys()
    for name, tensor in ours.state_dict().items():
        torch.testing.assert_close(tensor, expected[name], rtol=0, atol=0, msg=name)


def _run_job(job: str, ckpt: Path, out: Path) -> None:
    if job == "evaluate":
        quick = ["hardware.num_workers=0", "hardware.batch_size=2", "limit_batches=1"]
        evaluate(compose_config([f"ckpt_path={ckpt}", *quick], "evaluate", output_dir=str(out)))
    elif job == "infer":
        overrides = [f"ckpt_path={ckpt}", "progress=false", "limit_frames=2"]
        infer(compose_config(overrides, "infer", output_dir=str(out)))
    elif job == "export":
        export(ckpt, out / "head.pt", format="torchscript")
    elif job == "load_policy":
        load_policy(ckpt, device="cpu")


@pytest.mark.parametrize("job", ["evaluate", "infer", "export", "load_policy"])
def test_each_job_reads_its_checkpoint_once_memory_mapped(
    job, checkpoint_of, tmp_path, monkeypatch
):
    ckpt = checkpoint_of("mobile_vla_demo").resolve()
    reads = []
    torch_load = torch.load

    def counting_load(f, *args, **kwargs):
        name = f if isinstance(f, str | Path) else getattr(f, "path", getattr(f, "name", f))
        if Path(str(name)).resolve() == ckpt:
            reads.append(kwargs)
        return torch_load(f, *args, **kwargs)

    monkeypatch.setattr(torch, "load", counting_load)
    _run_job(job, ckpt, tmp_path)

    assert len(reads) == 1, f"{job} read {ckpt} {len(reads)} times"
    assert reads[0]["mmap"] is True  # the optimizer state is never read from disk


def test_a_config_only_check_needs_no_weights(tmp_path: Path):
    """A job can refuse a checkpoint by its config before any module is built."""
    ckpt = tmp_path / "config_only.ckpt"
    config = {"model": {"_target_": "vla_lab.models.kosmos_lstm.KosmosLSTMPolicy"}}
    torch.save({CHECKPOINT_KEY: {"config": config}}, ckpt)
    checkpoint = load_checkpoint(ckpt)
    assert checkpoint.config.model._target_.endswith("KosmosLSTMPolicy")
    assert load_checkpoint(checkpoint) is checkpoint  # callers take a path or a loaded one


def test_a_file_that_is_not_a_vla_lab_checkpoint_is_named(tmp_path: Path):
    ckpt = tmp_path / "plain.ckpt"
    torch.save({"state_dict": {}}, ckpt)
    not_ours = f"plain.ckpt is not a vla-lab checkpoint: it has no .{CHECKPOINT_KEY}.config"
    with pytest.raises(ValueError, match=not_ours):
        load_checkpoint(ckpt)
    with pytest.raises(FileNotFoundError, match="missing.ckpt"):
        load_checkpoint(tmp_path / "missing.ckpt")


def test_a_loaded_module_keeps_nothing_mapped_from_the_file(checkpoint_of, tmp_path: Path):
    """Copying another checkpoint over the file in place leaves a module loaded from it as it
    was (the file is memory-mapped: only what the build copies may come from it)."""
    copy = tmp_path / "policy.ckpt"
    shutil.copy(checkpoint_of("roarm_act_demo"), copy)
    module = load_checkpoint(copy).module

    def tensors() -> list[torch.Tensor]:
        steps = [*module.preprocessor.steps, *module.postprocessor.steps]
        stats = [t for step in steps for t in step.state_dict().values()]
        return [t.clone() for t in [*stats, *module.state_dict().values()]]

    before = tensors()
    with copy.open("r+b") as f:
        f.write(bytes(copy.stat().st_size))
    assert all(torch.equal(a, b) for a, b in zip(before, tensors(), strict=True))
