"""What a kill -9 costs: interrupted-and-resumed vs uninterrupted runs, same seed and steps.

The demo experiment trains 2 epochs of 20 steps with a step checkpoint every 10 steps. Two cuts:
- mid-epoch: kill -9 once `step000030.ckpt` (mid second epoch) and `last.ckpt` are written, then
  re-run the same command with resume=auto, which continues from `last.ckpt`. The train loader
  is resumable (`vla_lab.data.resumable`: the same permutation, the trained batches skipped) and
  the checkpoint carries the RNG states, so the resumed run should repeat the uninterrupted one
  (target: relative difference < 1%; expected: equal).
- epoch boundary: kill -9 once the end-of-epoch checkpoint `epoch000-step000020.ckpt` exists and
  resume from it (ckpt_path): no epoch is cut and the checkpoint carries the RNG states, so the
  resumed run should repeat the uninterrupted one (target: equal val/loss).
Time lost = wall time of interrupted + resumed runs minus the uninterrupted run's (process start,
the steps after the cut, the restore).

    python benchmarks/resume.py [--log-dir /tmp/vla_lab_resume]
"""

from __future__ import annotations

import argparse
import json
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from vla_lab.utils.run import last_checkpoint

PROJECT_ROOT = Path(__file__).resolve().parents[1]
SETTINGS = [
    "trainer.max_epochs=2",
    "trainer.limit_train_batches=20",
    "trainer.limit_val_batches=5",
    "callbacks.step_checkpoint.every_n_train_steps=10",
    "hardware.num_workers=0",
    "hardware.batch_size=4",
    "logger=csv",
    "print_config=false",
    "seed=42",
]


def _command(log_dir: Path, run_name: str, *overrides: str) -> list[str]:
    return [
        sys.executable,
        str(PROJECT_ROOT / "train.py"),
        f"paths.log_dir={log_dir}",
        f"run_name={run_name}",
        *SETTINGS,
        *overrides,
    ]


def _run(command: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(command, check=True, capture_output=True)
    return time.perf_counter() - start


def _run_until(command: list[str], checkpoint: Path) -> float:
    """Start `command`, kill -9 it as soon as `checkpoint` exists and `last.ckpt` (written just
    after it) has caught up with it; the seconds it ran."""
    start = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    last = checkpoint.parent / "last.ckpt"
    while not _caught_up(last, checkpoint):
        if process.poll() is not None:
            raise RuntimeError(f"the run ended before writing {checkpoint}")
        time.sleep(0.02)
    process.send_signal(signal.SIGKILL)
    process.wait()
    return time.perf_counter() - start


def _caught_up(last: Path, checkpoint: Path) -> bool:
    writing = list(last.parent.glob(".last.ckpt.*"))
    return (
        checkpoint.is_file()
        and last.is_file()
        and not writing
        and last.stat().st_mtime_ns >= checkpoint.stat().st_mtime_ns
    )


def _val_loss(run_dir: Path) -> float:
    return json.loads((run_dir / "metrics.json").read_text())["val/loss"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--log-dir", type=Path, default=Path(tempfile.mkdtemp(prefix="resume_")))
    log_dir = parser.parse_args().log_dir
    runs = log_dir / "mobile_vla_demo"

    _run(_command(log_dir, "warmup", "debug=fdr"))  # builds the synthetic data and tiny backbone
    full_s = _run(_command(log_dir, "full"))
    reference = _val_loss(runs / "full")
    print(f"uninterrupted: val/loss {reference:.6f}, {full_s:.1f} s")

    mid = _command(log_dir, "mid", "resume=auto")
    killed_s = _run_until(mid, runs / "mid" / "checkpoints" / "step000030.ckpt")
    cut = torch.load(last_checkpoint(runs / "mid"), weights_only=False)["global_step"]
    resumed_s = _run(mid)
    boundary = _command(log_dir, "boundary")
    epoch_ckpt = runs / "boundary" / "checkpoints" / "epoch000-step000020.ckpt"
    boundary_killed_s = _run_until(boundary, epoch_ckpt)
    boundary_resumed_s = _run([*boundary, f"ckpt_path={epoch_ckpt}"])

    for name, at, killed, resumed in [
        (f"mid-epoch (resumed at step {cut})", "mid", killed_s, resumed_s),
        ("epoch boundary (step 20)", "boundary", boundary_killed_s, boundary_resumed_s),
    ]:
        loss = _val_loss(runs / at)
        print(
            f"{name}: val/loss {loss:.6f}, relative difference "
            f"{abs(loss - reference) / abs(reference):.3%}, time lost "
            f"{killed + resumed - full_s:.1f} s ({killed:.1f} s + {resumed:.1f} s)"
        )


if __name__ == "__main__":
    main()
