"""From a trained checkpoint to metrics and predictions, through the job functions and the CLI."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from vla_lab.evaluate import evaluate
from vla_lab.infer import infer
from vla_lab.train import train
from vla_lab.utils.config import PROJECT_ROOT, compose_config

FAST = ["hardware.num_workers=0", "hardware.batch_size=4"]


@pytest.fixture()
def checkpoint(make_cfg, tmp_path: Path) -> Path:
    run = tmp_path / "run"
    train(make_cfg([*FAST, "debug=limit", "trainer.max_epochs=1"], output_dir=run))
    return run / "checkpoints" / "last.ckpt"


def test_evaluate_writes_the_training_metrics_of_a_checkpoint(checkpoint: Path, tmp_path: Path):
    out = tmp_path / "eval"
    cfg = compose_config(
        [f"ckpt_path={checkpoint}", "hardware.num_workers=0"], "evaluate", output_dir=str(out)
    )
    metrics = evaluate(cfg)
    assert {"val/loss", "val/mae", "val/baseline_mae"} <= set(metrics)
    assert json.loads((out / "metrics.json").read_text()) == pytest.approx(metrics)


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


def test_evaluate_cli_writes_metrics_into_its_own_run_dir(checkpoint: Path, tmp_path: Path):
    result = subprocess.run(
        [
            sys.executable,
            str(PROJECT_ROOT / "evaluate.py"),
            f"ckpt_path={checkpoint}",
            f"paths.log_dir={tmp_path / 'outputs'}",
            "hardware.num_workers=0",
            "run_name=eval1",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    metrics = json.loads((tmp_path / "outputs" / "evaluate" / "eval1" / "metrics.json").read_text())
    assert metrics["val/mae"] >= 0.0
