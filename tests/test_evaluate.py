"""Evaluating trained checkpoints: metrics under training's names plus per-dimension and per-horizon
ones, plots, TensorBoard logs, and a side-by-side comparison of several checkpoints."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import DEMOS

from vla_lab.evaluate import evaluate
from vla_lab.evaluation.comparison import EvaluatedCheckpoint, comparison_markdown
from vla_lab.utils.config import PROJECT_ROOT, compose_config

# A quick look at the split: the tests check what is written, not how good the numbers are.
QUICK = ["hardware.num_workers=0", "hardware.batch_size=2", "limit_batches=1"]
DRIVING_HORIZONS = ["0.5s", "1s", "3s", "5s", "6.4s"]


def evaluate_cfg(ckpt_path: str, out: Path, overrides: list[str] | None = None):
    return compose_config(
        [f"ckpt_path={ckpt_path}", *QUICK, *(overrides or [])], "evaluate", output_dir=str(out)
    )


@pytest.mark.parametrize("experiment", DEMOS)
def test_evaluate_writes_metrics_plots_and_tensorboard_of_each_demo(
    experiment: str, checkpoint_of, tmp_path: Path
):
    out = tmp_path / "eval"
    ckpt = checkpoint_of(experiment)
    [(label, metrics)] = evaluate(evaluate_cfg(str(ckpt), out)).items()

    assert label == f"{experiment}-last"
    assert {"val/loss", "val/mae", "val/baseline_mae"} <= set(metrics)
    per_dim = [v for k, v in metrics.items() if k.startswith("val/mae_")]
    assert len(per_dim) >= 2 and not any(k.startswith("val/mae_0") for k in metrics)
    assert sum(per_dim) / len(per_dim) == pytest.approx(metrics["val/mae"], rel=1e-5)
    assert json.loads((out / "metrics.json").read_text()) == pytest.approx(metrics)
    plots = {p.name for p in (out / "plots").glob("*.png")}
    assert {"actions_over_episode.png", "error_by_chunk_step.png"} <= plots
    assert all(p.read_bytes().startswith(b"\x89PNG") for p in (out / "plots").iterdir())
    assert list((out / "tensorboard").glob("events.out.tfevents.*"))

    if experiment == "av_smolvla_unicycle_demo":
        for horizon in DRIVING_HORIZONS:
            assert metrics[f"val/ade_{horizon}"] >= 0.0 and metrics[f"val/fde_{horizon}"] >= 0.0
        assert metrics["val/ade_6.4s"] == pytest.approx(metrics["val/ade"])
        assert metrics["val/fde_6.4s"] == pytest.approx(metrics["val/fde"])
        assert metrics["val/ade_0.5s"] <= metrics["val/ade_6.4s"]
        assert 0.0 <= metrics["val/comfort"] <= 1.0
        # Best of model.min_ade_samples=6 by ADE; val/ade is one of them.
        assert metrics["val/min_ade@6"] <= metrics["val/ade"] + 1e-6
        assert metrics["val/min_fde@6"] >= 0.0
        assert {"trajectories_bev.png", "error_by_horizon.png"} <= plots


def test_driving_evaluation_takes_min_ade_over_the_k_it_is_given(checkpoint_of, tmp_path):
    ckpt = checkpoint_of("av_smolvla_unicycle_demo")
    [metrics] = evaluate(evaluate_cfg(str(ckpt), tmp_path / "eval", ["min_ade_samples=2"])).values()
    assert metrics["val/min_ade@2"] <= metrics["val/ade"] + 1e-6 and "val/min_fde@2" in metrics
    assert not [name for name in metrics if name.endswith("@6")]  # validation used K=2 too


def test_several_checkpoints_are_evaluated_into_subdirs_and_compared(checkpoint_of, tmp_path):
    out = tmp_path / "eval"
    mobile, arm = checkpoint_of("mobile_vla_demo"), checkpoint_of("roarm_act_demo")
    results = evaluate(evaluate_cfg(f"[{mobile},{arm}]", out))

    assert list(results) == ["mobile_vla_demo-last", "roarm_act_demo-last"]
    for label, metrics in results.items():
        assert json.loads((out / label / "metrics.json").read_text()) == pytest.approx(metrics)
        assert (out / label / "plots" / "actions_over_episode.png").is_file()
    table = (out / "comparison.md").read_text()
    assert "| metric | mobile_vla_demo-last (mobile_vla_demo) | roarm_act_demo-last" in table
    mae_row = next(line for line in table.splitlines() if line.startswith("| val/mae |"))
    assert mae_row.count("**") == 2  # the better of the two is bold
    assert "| val/mae_linear_x |" in table and "| val/mae_gripper |" in table
    saved = json.loads((out / "comparison.json").read_text())
    assert [c["label"] for c in saved["checkpoints"]] == list(results)


def test_comparison_bolds_the_lowest_error_and_the_highest_comfort():
    def column(label: str, ade: float, comfort: float) -> EvaluatedCheckpoint:
        metrics = {"val/ade": ade, "val/comfort": comfort, "val/baseline_ade": 3.0}
        return EvaluatedCheckpoint(label, f"{label}.ckpt", "av", f"out/{label}", metrics)

    table = comparison_markdown([column("a", 1.0, 0.2), column("b", 2.0, 0.9)], "split `val`")

    rows = {line.split(" | ")[0]: line for line in table.splitlines() if line.startswith("| val/")}
    assert rows["| val/ade"] == "| val/ade | **1** | 2 |"
    assert rows["| val/comfort"] == "| val/comfort | 0.2 | **0.9** |"
    assert "**" not in rows["| val/baseline_ade"]


def test_evaluate_names_a_missing_checkpoint(tmp_path: Path):
    missing = tmp_path / "nowhere" / "last.ckpt"
    with pytest.raises(FileNotFoundError, match=str(missing)):
        evaluate(evaluate_cfg(str(missing), tmp_path / "eval"))


def test_evaluate_on_data_the_model_cannot_read_names_the_missing_features(
    checkpoint_of, shared_dirs, tmp_path: Path
):
    ckpt = checkpoint_of("av_smolvla_unicycle_demo")
    cfg = evaluate_cfg(
        str(ckpt),
        tmp_path / "eval",
        ["data=mobile_vla_synthetic", f"paths.data_dir={shared_dirs['data_dir']}"],
    )
    with pytest.raises(ValueError, match="SmolVLAUnicycleModule needs features"):
        evaluate(cfg)


def test_evaluate_cli_compares_a_list_of_checkpoints_in_its_run_dir(checkpoint_of, tmp_path):
    ckpt = checkpoint_of("mobile_vla_demo")
    first = next(ckpt.parent.glob("epoch*.ckpt"))
    result = subprocess.run(
        [
            sys.executable,
            str(PROJECT_ROOT / "evaluate.py"),
            f"ckpt_path=[{first},{ckpt}]",
            f"paths.log_dir={tmp_path / 'outputs'}",
            *QUICK,
            "run_name=eval1",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    run_dir = tmp_path / "outputs" / "evaluate" / "eval1"
    assert (run_dir / "comparison.md").is_file()
    metrics = json.loads((run_dir / "mobile_vla_demo-last" / "metrics.json").read_text())
    assert metrics["val/mae"] >= 0.0
