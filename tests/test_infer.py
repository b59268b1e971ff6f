"""infer.py: a checkpoint streamed over recorded data frame by frame, from any supported input."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from vla_lab.av.synthetic import write_synthetic_av
from vla_lab.infer import infer, input_kind
from vla_lab.train import train
from vla_lab.utils.config import compose_config

FAST = ["hardware.num_workers=0", "hardware.batch_size=4", "debug=limit", "trainer.max_epochs=1"]


def run_infer(ckpt: Path, out: Path, *overrides: str) -> pd.DataFrame:
    cfg = compose_config(
        [f"ckpt_path={ckpt}", "progress=false", *overrides], "infer", output_dir=str(out)
    )
    return pd.read_parquet(infer(cfg))


def test_one_h5_episode_streams_every_frame(make_cfg, shared_dirs, tmp_path: Path):
    run = tmp_path / "run"
    train(make_cfg(FAST, output_dir=run))
    episode = sorted((shared_dirs["data_dir"] / "mobile_vla_synthetic").rglob("*.h5"))[0]
    table = run_infer(run / "checkpoints" / "last.ckpt", tmp_path / "infer", f"input={episode}")
    assert table["episode_index"].nunique() == 1
    assert table["frame_index"].tolist() == list(range(len(table)))
    assert len(table["action_pred"].iloc[0]) == len(table["action_true"].iloc[0]) == 3


def test_a_driving_checkpoint_on_an_av_root_writes_trajectories(make_cfg, tmp_path: Path):
    run = tmp_path / "run"
    train(make_cfg(["experiment=av_smolvla_unicycle_demo", *FAST], output_dir=run))
    root = write_synthetic_av(tmp_path / "drives", num_clips=3, seed=7)
    table = run_infer(run / "checkpoints" / "last.ckpt", tmp_path / "infer", f"input={root}")
    assert table["clip_id"].nunique() == 3
    assert len(table["future_xyz_pred"].iloc[0]) == 64 * 3 and (table["ade"] >= 0).all()


def test_an_unknown_input_names_the_formats_it_could_be(tmp_path: Path):
    with pytest.raises(FileNotFoundError, match="LeRobot dataset root"):
        input_kind(tmp_path)
