"""Multi-process training: DDP on 2 CPU processes (gloo) keeps one run dir and resumes anywhere."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import torch

from vla_lab.train import train
from vla_lab.utils.config import PROJECT_ROOT

SHORT = [
    "hardware.num_workers=0",
    "hardware.batch_size=4",
    "trainer.limit_train_batches=4",
    "trainer.limit_val_batches=2",
    "print_config=false",
    "run_name=ddp",
]


def test_ddp_on_two_cpu_processes_writes_one_run_dir_that_resumes_in_one_process(
    shared_dirs, make_cfg, tmp_path: Path
) -> None:
    log_dir = tmp_path / "outputs"
    command = [
        sys.executable,
        str(PROJECT_ROOT / "train.py"),
        f"paths.data_dir={shared_dirs['data_dir']}",
        f"paths.cache_dir={shared_dirs['cache_dir']}",
        f"paths.log_dir={log_dir}",
        "hardware=ddp_cpu",
        "trainer.max_epochs=1",
        *SHORT,
    ]
    result = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]

    runs = list((log_dir / "mobile_vla_demo").iterdir())
    assert [r.name for r in runs] == ["ddp"]  # the second rank wrote no run dir of its own
    run = runs[0]
    assert (run / "metrics.json").is_file()
    assert [p.name for p in run.glob("**/overrides.yaml")] == ["overrides.yaml"]
    assert "Effective batch size: 8 " in (run / "train.log").read_text()  # 4 x 2 processes
    ddp_steps = torch.load(run / "checkpoints" / "last.ckpt", weights_only=False)["global_step"]
    assert ddp_steps == 4

    cfg = make_cfg(["hardware=cpu", "resume=auto", "trainer.max_epochs=2", *SHORT], output_dir=run)
    train(cfg)
    assert torch.load(run / "checkpoints" / "last.ckpt", weights_only=False)["global_step"] == 8
