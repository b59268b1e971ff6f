"""Closed loop through the commands users type: `evaluate.py mode=closed_loop` on trained demo
checkpoints in their worlds (report files, resumption), and rollouts during training."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from vla_lab.evaluate import evaluate
from vla_lab.sim.runner import TIMING_COLUMNS
from vla_lab.utils.config import compose_config

QUICK = ["mode=closed_loop", "videos=1", "failure_videos=1", "hardware.num_workers=0"]
# Wall-clock figures: the only ones a re-run may change.
TIMING = tuple(f"rollout/{c}" for c in TIMING_COLUMNS)


def closed_loop_cfg(ckpt: Path, out: Path, overrides: list[str]):
    return compose_config([f"ckpt_path={ckpt}", *QUICK, *overrides], "evaluate", str(out))


def without_timing(metrics: dict[str, float]) -> dict[str, float]:
    return {k: v for k, v in metrics.items() if k not in TIMING}


@pytest.mark.parametrize(
    ("experiment", "episodes"), [("mobile_vla_demo", 3), ("av_smolvla_unicycle_demo", 2)]
)
def test_closed_loop_evaluation_reports_and_continues_an_interrupted_run(
    experiment: str, episodes: int, checkpoint_of, tmp_path: Path
):
    ckpt = checkpoint_of(experiment)
    out = tmp_path / "eval"
    cfg = closed_loop_cfg(ckpt, out, [f"episodes={episodes}"])
    [(label, metrics)] = evaluate(cfg).items()

    assert label == f"{experiment}-last"
    rate = metrics["rollout/success_rate"]
    assert metrics["rollout/success_ci_low"] <= rate <= metrics["rollout/success_ci_high"]
    assert metrics["rollout/episodes"] == episodes
    assert json.loads((out / "metrics.json").read_text()) == pytest.approx(metrics)
    results = pd.read_parquet(out / "episodes.parquet")
    assert results["episode"].tolist() == list(range(episodes))
    assert results["scenario"].nunique() == episodes  # scenarios interleave
    assert "| all | " in (out / "scenarios.md").read_text()
    assert (out / "plots" / "closed_loop_success.png").read_bytes().startswith(b"\x89PNG")
    assert (out / "videos" / "episode_0000.mp4").stat().st_size > 1000
    failed = int((results["success"] < 0.5).sum())
    assert len(list((out / "videos").glob("failure_*.mp4"))) == min(1, failed)
    assert list((out / "tensorboard").glob("events.out.tfevents.*"))
    if experiment == "av_smolvla_unicycle_demo":
        assert 0.0 <= metrics["rollout/pdms"] <= 1.0 and 0.0 <= metrics["rollout/dac"] <= 1.0

    # Killed before its last episode: the same command runs only that one and ends equal.
    results.iloc[:-1].to_parquet(out / "episodes.parquet")
    [again] = evaluate(closed_loop_cfg(ckpt, out, [f"episodes={episodes}"])).values()
    assert without_timing(again) == pytest.approx(without_timing(metrics))


def test_a_world_the_policy_cannot_drive_fails_before_any_episode(checkpoint_of, tmp_path):
    ckpt = checkpoint_of("mobile_vla_demo")
    cfg = closed_loop_cfg(ckpt, tmp_path / "eval", ["env=driving_road", "episodes=1"])
    with pytest.raises(ValueError, match=r"DrivingRoad-v0 and policy KosmosLSTMPolicy"):
        evaluate(cfg)
    assert not (tmp_path / "eval" / "episodes.parquet").exists()
