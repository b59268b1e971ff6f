"""Exploring data needs no model: `load_dataset` serves each source's natural action chunk."""

from __future__ import annotations

from pathlib import Path

import h5py
import pytest
from hydra.core.global_hydra import GlobalHydra

from vla_lab.data import load_dataset
from vla_lab.data.mobile_vla.source import MobileVLAEpisodes
from vla_lab.data.synthetic.mobile_vla import write_guide_episode, write_synthetic_episodes

# data option -> (small synthetic twin, the natural chunk: driving's 64-step horizon, the Mobile
# VLA collector's action_chunk_size attr (8), one LeRobot step)
SOURCES = {
    "mobile_vla_synthetic": (["data.source.synthetic.num_episodes=4"], 8),
    "lerobot_synthetic": (
        ["data.source.synthetic.num_episodes=4", "data.source.synthetic.frames_per_episode=10"],
        1,
    ),
    "av_synthetic": (["data.source.synthetic.num_clips=5"], 64),
}


@pytest.fixture(autouse=True)
def _clear_hydra():
    yield
    GlobalHydra.instance().clear()


@pytest.mark.parametrize("name", sorted(SOURCES))
def test_load_dataset_without_delta_indices_serves_the_natural_chunk(
    name: str, tmp_path: Path
) -> None:
    overrides, chunk = SOURCES[name]
    overrides = [*overrides, f"paths.cache_dir={tmp_path / 'cache'}"]
    dataset = load_dataset(name, overrides=overrides, root=str(tmp_path / name))
    item = dataset[0]
    assert item["action"].shape[0] == chunk
    assert item["action_is_pad"].shape == (chunk,)


def test_mobile_vla_files_without_a_chunk_size_serve_one_step(tmp_path: Path) -> None:
    write_guide_episode(tmp_path / "episode_20250101_120000_1box_vert_left.h5", "1box_vert_left")
    assert MobileVLAEpisodes(str(tmp_path)).natural_action_delta_indices() == [0]


def test_mobile_vla_files_that_disagree_on_the_chunk_size_name_both(tmp_path: Path) -> None:
    first, second = write_synthetic_episodes(tmp_path, num_episodes=2, num_frames=6)
    with h5py.File(second, "r+") as file:
        file.attrs["action_chunk_size"] = 10
    with pytest.raises(ValueError, match=rf"8 in {first}, 10 in {second}"):
        MobileVLAEpisodes(str(tmp_path)).natural_action_delta_indices()
