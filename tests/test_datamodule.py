"""VLADataModule: episode split, train-only stats, loaders, augmentation placement."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

from vla_lab.data.datamodule import VLADataModule, split_episodes
from vla_lab.data.mobile_vla.source import MobileVLAEpisodes
from vla_lab.data.preview import describe, write_preview
from vla_lab.data.resumable import ResumableDataLoader
from vla_lab.data.synthetic.mobile_vla import write_synthetic_episodes
from vla_lab.features import compute_stats, load_stats

IMAGE = "observation.images.front"


@pytest.fixture(scope="module")
def source(tmp_path_factory) -> MobileVLAEpisodes:
    root = tmp_path_factory.mktemp("mobile_vla")
    write_synthetic_episodes(root, num_episodes=40, num_frames=10, height=24, width=32, seed=3)
    return MobileVLAEpisodes(str(root), image_size=[24, 32])


@dataclass(frozen=True)
class FakeEpisode:
    path: str
    scenario: dict = field(default_factory=dict)
    num_frames: int = 5


def fake_episodes(counts: dict[str, int]) -> list[FakeEpisode]:
    return [
        FakeEpisode(f"/data/{name}_{i:02d}.h5", {"scenario": name})
        for name, count in counts.items()
        for i in range(count)
    ]


def paths(episodes) -> list[str]:
    return [str(e.path) for e in episodes]


def test_split_is_by_episode_stratified_and_seeded():
    episodes = fake_episodes({"1box_vert_left": 10, "2box_hori_right": 5, "1box_hori_left": 1})
    train, val = split_episodes(episodes, val_fraction=0.2, seed=0)
    assert not set(paths(train)) & set(paths(val))
    assert len(train) + len(val) == len(episodes)
    per_val = {
        name: sum(e.scenario["scenario"] == name for e in val)
        for name in ("1box_vert_left", "2box_hori_right", "1box_hori_left")
    }
    assert per_val == {"1box_vert_left": 2, "2box_hori_right": 1, "1box_hori_left": 0}

    shuffled = [episodes[i] for i in np.random.default_rng(1).permutation(len(episodes))]
    assert split_episodes(shuffled, 0.2, seed=0) == (train, val)
    assert split_episodes(episodes, 0.2, seed=1) != (train, val)

    # more episodes of one scenario leave the other scenarios' split alone
    grown = episodes + fake_episodes({"3box_new": 5})
    _, grown_val = split_episodes(grown, 0.2, seed=0)
    assert [p for p in paths(grown_val) if "3box" not in p] == paths(val)


def test_split_keeps_one_val_episode_when_rounding_leaves_none():
    episodes = fake_episodes({"a": 1, "b": 1, "c": 2})
    train, val = split_episodes(episodes, val_fraction=0.1, seed=0)
    assert len(val) == 1 and len(train) == 3
    assert split_episodes(fake_episodes({"a": 1}), 0.2, seed=0)[1] == []
    assert split_episodes(episodes, 0.0, seed=0)[1] == []


def test_stats_use_train_split_only(source, tmp_path):
    dm = VLADataModule(source, num_workers=0)
    dm.setup()
    actions = []
    for episode in dm.train_episodes:
        with h5py.File(episode.path, "r") as file:
            actions.append(file["actions"][()])
    expected = compute_stats(np.concatenate(actions))
    for name, values in expected.items():
        np.testing.assert_allclose(dm.stats["action"][name], values, atol=1e-6)
    everything = compute_stats(source.action_values(source.episodes()))
    assert not np.allclose(dm.stats["action"]["mean"], everything["mean"])
    dm.save_stats(tmp_path / "stats.json")
    assert load_stats(tmp_path / "stats.json") == json.loads(json.dumps(dm.stats))


def test_setup_is_idempotent_and_serves_every_split(source):
    dm = VLADataModule(source, num_workers=0, action_delta_indices=list(range(5)))
    dm.setup("fit")
    train = dm.train_dataset
    dm.setup("validate")
    assert dm.train_dataset is train
    assert dm.split_summary["train"] == len(dm.train_episodes) == 32
    assert dm.split_summary["val"] == len(dm.val_episodes) == 8
    assert all(v == {"train": 4, "val": 1} for v in dm.split_summary["by_scenario"].values())
    frames = {
        name: sum(e.num_frames for e in eps)
        for name, eps in (("train", dm.train_episodes), ("val", dm.val_episodes))
    }
    assert len(dm.dataset("train")) == frames["train"] and len(dm.dataset("val")) == frames["val"]
    assert len(dm.dataset("all")) == frames["train"] + frames["val"]
    assert set(dm.features) >= {IMAGE, "action", "task"}
    with pytest.raises(ValueError, match="split must be one of"):
        dm.dataset("test")


def test_augmentation_applies_to_train_only(source):
    augment = {"mirror": {"enabled": True, "p": 1.0}}
    dm = VLADataModule(source, augment=augment, num_workers=0)
    dm.setup()
    plain = source.dataset(dm.train_episodes, [0], [0])
    assert dm.train_dataset[0]["task"] != plain[0]["task"]
    val_plain = source.dataset(dm.val_episodes, [0], [0])
    assert dm.val_dataset[0]["task"] == val_plain[0]["task"]
    assert torch.equal(dm.val_dataset[0][IMAGE], val_plain[0][IMAGE])


def test_dataloader_with_two_workers_yields_collated_batches(source):
    dm = VLADataModule(
        source,
        batch_size=4,
        num_workers=2,
        observation_delta_indices=list(range(-7, 1)),
        action_delta_indices=list(range(-7, 10)),
    )
    dm.setup()
    dm.train_dataset[0]  # h5 handles opened in the parent must not leak into the workers
    loader = dm.train_dataloader()
    assert loader.persistent_workers
    batches = [batch for batch, _ in zip(loader, range(3), strict=False)]
    batch = batches[0]
    assert batch[IMAGE].shape == (4, 8, 3, 24, 32) and batch[IMAGE].dtype == torch.float32
    assert batch["observation.images.front_is_pad"].shape == (4, 8)
    assert batch["action"].shape == (4, 17, 3) and batch["action_is_pad"].shape == (4, 17)
    assert isinstance(batch["task"], list) and len(batch["task"]) == 4
    assert batch["index"].dtype == torch.int64 and batch["index"].shape == (4,)
    assert not VLADataModule(source, num_workers=0).train_dataloader().persistent_workers


def test_preview_writes_a_png_and_describe_names_features(source, tmp_path):
    dm = VLADataModule(source, num_workers=0, action_delta_indices=list(range(10)))
    png = write_preview(dm.dataset("val"), tmp_path / "preview.png", n=6)
    assert Path(png).stat().st_size > 0
    text = describe(dm)
    assert "observation.images.front" in text and "action.mean" in text and "by_scenario" in text


def test_a_resumed_train_loader_serves_the_rest_of_the_interrupted_epoch():
    """What a kill -9 after 3 batches of epoch 1 then a resume sees: the same permutation, minus
    the batches already trained on, and the next epoch as if nothing had happened."""

    def epoch(loader, number: int, stop: int | None = None) -> list[list[int]]:
        loader.shuffler.set_epoch(number)
        batches = []
        for batch in loader:
            batches.append(batch.tolist())
            if len(batches) == stop:
                break
        return batches

    data = list(range(20))
    reference = ResumableDataLoader(data, seed=7, batch_size=4)
    uninterrupted = [epoch(reference, 0), epoch(reference, 1), epoch(reference, 2)]
    assert uninterrupted[0] != uninterrupted[1]  # shuffled anew every epoch
    assert sorted(sum(uninterrupted[1], [])) == data

    cut = ResumableDataLoader(data, seed=7, batch_size=4)
    epoch(cut, 0)
    assert epoch(cut, 1, stop=3) == uninterrupted[1][:3]
    state = cut.state_dict()
    assert state == {"epoch": 1, "batches": 3}

    resumed = ResumableDataLoader(data, seed=7, batch_size=4)
    resumed.load_state_dict(state)
    assert epoch(resumed, 1) == uninterrupted[1][3:]
    assert epoch(resumed, 2) == uninterrupted[2]
    resumed.load_state_dict({"epoch": 1, "batches": 5})  # a checkpoint from the epoch's end
    assert epoch(resumed, 2) == uninterrupted[2]
