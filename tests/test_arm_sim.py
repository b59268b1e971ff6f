"""The RoArm loop in simulation through the commands users type: record -> train (rollouts in
the arm world during training) -> the seed's ACT vs SmolVLA comparison, training instructions vs
held-out paraphrases, in one `evaluate.py` command."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from vla_lab.evaluate import evaluate
from vla_lab.sim.runner import TIMING_COLUMNS
from vla_lab.utils.config import compose_config

TIMING = {f"rollout/{c}" for c in TIMING_COLUMNS}


def test_act_vs_smolvla_with_paraphrases_in_one_command(checkpoint_of, tmp_path: Path):
    act, smolvla = checkpoint_of("roarm_act_sim_demo"), checkpoint_of("roarm_smolvla_sim_demo")
    out = tmp_path / "compare"
    cfg = compose_config(
        [
            f"ckpt_path=[{act},{smolvla}]",
            "mode=closed_loop",
            "instructions=[train,paraphrase]",
            "episodes=2",
            "videos=0",
            "failure_videos=1",
            "hardware.num_workers=0",
        ],
        "evaluate",
        str(out),
    )
    results = evaluate(cfg)

    labels = [
        "roarm_act_sim_demo-last-train",
        "roarm_act_sim_demo-last-paraphrase",
        "roarm_smolvla_sim_demo-last-train",
        "roarm_smolvla_sim_demo-last-paraphrase",
    ]
    assert list(results) == labels
    for label, metrics in results.items():
        for name in ("success_rate", "success_ci_low", "reached", "grasped", "control_hz"):
            assert f"rollout/{name}" in metrics, (label, name)
        assert metrics["model/parameters"] > 1e5
        episodes = pd.read_parquet(out / label / "episodes.parquet")
        assert episodes["scenario"].tolist() == ["button-press-topdown-v3", "pick-place-v3"]
    # ACT reads no instruction: the same episodes whatever it is told.
    act_train, act_paraphrase = (
        {k: v for k, v in results[label].items() if k not in TIMING} for label in labels[:2]
    )
    assert act_train == pytest.approx(act_paraphrase)
    table = (out / "comparison.md").read_text()
    assert all(label in table for label in labels) and "rollout/grasped" in table
    assert (out / "plots" / "comparison.png").read_bytes().startswith(b"\x89PNG")
    summary = json.loads((out / "comparison.json").read_text())
    assert [c["label"] for c in summary["checkpoints"]] == labels


def test_the_training_run_logged_closed_loop_success_in_the_arm_world(checkpoint_of):
    run = checkpoint_of("roarm_act_sim_demo").parent.parent
    metrics = json.loads((run / "metrics.json").read_text())
    assert 0.0 <= metrics["rollout/success_rate"] <= 1.0
    assert metrics["rollout/episodes"] == 2
