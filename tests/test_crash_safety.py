"""A run survives what clusters and people do to it: SIGTERM, kill -9, NaN losses, bad run dirs."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from vla_lab.models.kosmos_lstm import KosmosLSTMPolicy
from vla_lab.models.module import (
    CHECKPOINT_KEY,
    LOADER_POSITION_KEY,
    NonFiniteLossError,
    saved_loader_position,
)
from vla_lab.train import train
from vla_lab.utils.config import PROJECT_ROOT

FAST = ["hardware.num_workers=0", "hardware.batch_size=4", "print_config=false", "logger=csv"]


def _train_command(shared_dirs, log_dir: Path, *overrides: str) -> list[str]:
    return [
        sys.executable,
        str(PROJECT_ROOT / "train.py"),
        f"paths.data_dir={shared_dirs['data_dir']}",
        f"paths.cache_dir={shared_dirs['cache_dir']}",
        f"paths.log_dir={log_dir}",
        "run_name=crash",
        "resume=auto",
        *FAST,
        *overrides,
    ]


def _wait_for(path_glob: Path, process: subprocess.Popen, timeout_s: float = 240) -> None:
    deadline = time.monotonic() + timeout_s
    while not list(path_glob.parent.glob(path_glob.name)):
        if process.poll() is not None:
            raise AssertionError(f"training exited early: {process.stderr.read()[-3000:]}")
        if time.monotonic() > deadline:
            process.kill()
            raise AssertionError(f"{path_glob} did not appear within {timeout_s} s")
        time.sleep(0.2)


def test_kill_9_then_resume_auto_reaches_the_uninterrupted_step_count(shared_dirs, tmp_path):
    steps = [
        "trainer.max_epochs=2",
        "trainer.limit_train_batches=12",
        "trainer.limit_val_batches=2",
    ]
    every = "callbacks.step_checkpoint.every_n_train_steps=4"
    command = _train_command(shared_dirs, tmp_path, *steps, every)
    checkpoints = tmp_path / "mobile_vla_demo" / "crash" / "checkpoints"

    process = subprocess.Popen(
        command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )
    _wait_for(checkpoints / "last.ckpt", process)  # first written at step 4
    process.send_signal(signal.SIGKILL)
    process.wait()
    interrupted = torch.load(checkpoints / "last.ckpt", weights_only=False)["global_step"]
    assert 4 <= interrupted < 24  # loadable, and written before the run could finish

    result = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    assert torch.load(checkpoints / "last.ckpt", weights_only=False)["global_step"] == 24


def test_a_run_resumed_mid_epoch_repeats_the_uninterrupted_run_exactly(make_cfg, tmp_path):
    """Same seed, same steps: cut at step 9 of 12 (mid second epoch), resumed from the step
    checkpoint, the run sees the batches it had left and ends on the same val/loss."""
    settings = [
        *FAST,
        "trainer.max_epochs=2",
        "trainer.limit_train_batches=6",
        "trainer.limit_val_batches=2",
        "callbacks.step_checkpoint.every_n_train_steps=3",
    ]
    uninterrupted = train(make_cfg(settings, output_dir=tmp_path / "full"))
    train(make_cfg([*settings, "trainer.max_steps=9"], output_dir=tmp_path / "cut"))
    step_9 = tmp_path / "cut" / "checkpoints" / "step000009.ckpt"
    cut = torch.load(step_9, weights_only=False)
    assert cut["loops"]["fit_loop"]["epoch_progress"]["current"]["processed"] == 1  # 2nd epoch
    # The loader's position, saved by the module; older checkpoints have only Lightning's copy.
    position = {"epoch": 1, "batches": 3}
    assert cut[CHECKPOINT_KEY][LOADER_POSITION_KEY] == position
    assert cut["loops"]["fit_loop"]["state_dict"]["combined_loader"] == [position]
    del cut[CHECKPOINT_KEY][LOADER_POSITION_KEY]
    assert saved_loader_position(cut) == position

    resumed = train(make_cfg([*settings, f"ckpt_path={step_9}"], output_dir=tmp_path / "cut"))

    assert resumed["val/loss"] == uninterrupted["val/loss"]


def test_sigterm_saves_a_checkpoint_and_says_how_to_resume(shared_dirs, tmp_path):
    every = "callbacks.step_checkpoint.every_n_train_steps=2"
    command = _train_command(shared_dirs, tmp_path, "trainer.max_epochs=50", every)
    checkpoints = tmp_path / "mobile_vla_demo" / "crash" / "checkpoints"
    log = tmp_path / "stdout.log"
    with log.open("w") as stdout:
        process = subprocess.Popen(command, stdout=stdout, stderr=subprocess.PIPE, text=True)
        _wait_for(checkpoints / "last.ckpt", process)
        os.kill(process.pid, signal.SIGTERM)
        _, stderr = process.communicate(timeout=240)
    assert process.returncode == 0, stderr[-3000:]
    assert "resume=auto" in log.read_text()  # Hydra's console log goes to stdout
    assert torch.load(checkpoints / "last.ckpt", weights_only=False)["global_step"] >= 2


def _nan_loss(monkeypatch) -> None:
    original = KosmosLSTMPolicy.model_step

    def model_step(self, batch):
        out = original(self, batch)
        out.loss = out.loss * float("nan")
        return out

    monkeypatch.setattr(KosmosLSTMPolicy, "model_step", model_step)


def test_nonfinite_loss_stops_naming_the_step(make_cfg, monkeypatch):
    _nan_loss(monkeypatch)
    with pytest.raises(NonFiniteLossError, match="global step 0"):
        train(make_cfg([*FAST, "debug=limit"]))


def test_nonfinite_loss_can_skip_the_batch_instead(make_cfg, monkeypatch, tmp_path):
    _nan_loss(monkeypatch)
    train(make_cfg([*FAST, "debug=limit", "trainer.max_epochs=1", "nonfinite_loss=skip"]))
    last = torch.load(tmp_path / "run" / "checkpoints" / "last.ckpt", weights_only=False)
    weights = [w for w in last["state_dict"].values() if w.is_floating_point()]
    assert all(torch.isfinite(w).all() for w in weights)  # no step was taken on a NaN loss


def test_unwritable_run_dir_fails_before_training(make_cfg, tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a directory")
    with pytest.raises(OSError, match="not writable"):
        train(make_cfg([*FAST, "debug=fdr"], output_dir=blocker / "run"))
