"""From a trained checkpoint to predictions, through the job functions and the CLI.

Evaluation has its own tests in test_evaluate.py."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from vla_lab.infer import infer
from vla_lab.train import train
from vla_lab.utils.config import PROJECT_ROOT, compose_config

FAST = ["hardware.num_workers=0", "hardware.batch_size=4"]


@pytest.fixture()
def checkpoint(make_cfg, tmp_path: Path) -> Path:
    run = tmp_path / "run"
    train(make_cfg([*FAST, "debug=limit", "trainer.max_epochs=1"], output_dir=run))
    return run / "checkpoints" / "last.ckpt"


def test_infer_writes_one_prediction_row_per_frame(checkpoint: Path, tmp_path: Path):
    out = tmp_path / "infer"
    cfg = compose_config(
        [f"ckpt_path={checkpoint}", "hardware.num_workers=0"], "infer", output_dir=str(out)
    )
    table = pd.read_parquet(infer(cfg))
    assert len(table) > 0 and table["index"].is_unique
    assert len(table["action_pred"].iloc[0]) == len(table["action_true"].iloc[0]) == 3


def test_preview_cli_prints_stats_and_writes_a_png(shared_dirs, tmp_path: Path):
    out = tmp_path / "preview.png"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "vla_lab.data.preview",
            "data=mobile_vla_synthetic",
            f"paths.data_dir={shared_dirs['data_dir']}",
            f"out={out}",
            "n=4",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=PROJECT_ROOT,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "action.mean" in result.stdout
    assert out.read_bytes().startswith(b"\x89PNG")
