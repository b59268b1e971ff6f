"""The one LightningDataModule: episode-level split, train/val loaders, train-split stats.

Generic over sources: any ``vla_lab.features.DataSource`` (Hydra passes it already
instantiated). The natural action chunk is what the data was recorded for, served when no model
asks for another (exploring data needs no model): driving, the 64-step horizon; Mobile VLA, the
files' ``action_chunk_size``; LeRobot, one step.

The split is by episode, never by frame (frames of one episode in both splits inflate
validation), stratified by scenario and seeded per stratum, so it does not depend on file listing
order, and adding episodes of one scenario leaves the other scenarios' split unchanged.
"""

from __future__ import annotations

import logging
import math
import zlib
from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from vla_lab.data.augment import build_train_transform
from vla_lab.data.resumable import ResumableDataLoader
from vla_lab.features import ACTION, DataSource, Feature, Stats, save_stats
from vla_lab.utils.config import plain_dict

log = logging.getLogger(__name__)

# use_source: the dataset's own split (a source with `source_split(episodes)`, e.g. the
# PhysicalAI-AV clip index) instead of a seeded one.
DEFAULT_SPLIT = {"val_fraction": 0.2, "seed": 0, "stratify_by": "scenario", "use_source": False}
SPLITS = ("train", "val", "all")


class VLADataModule(L.LightningDataModule):
    """Serves the source's samples for the model's ``observation_delta_indices`` and
    ``action_delta_indices`` (None: the source's natural chunk); ``stats`` (from the train split
    only) go into the checkpoint."""

    def __init__(
        self,
        source: DataSource,
        split: Mapping[str, Any] | None = None,
        augment: Mapping[str, Any] | None = None,
        batch_size: int = 8,
        num_workers: int = 2,
        pin_memory: bool = False,
        persistent_workers: bool = True,
        observation_delta_indices: Sequence[int] = (0,),
        action_delta_indices: Sequence[int] | None = None,
    ) -> None:
        super().__init__()
        self.source = source
        self.split_cfg = {**DEFAULT_SPLIT, **plain_dict(split or {})}
        unknown = set(self.split_cfg) - set(DEFAULT_SPLIT)
        if unknown:
            raise ValueError(f"split has unknown keys {sorted(unknown)}; expected {DEFAULT_SPLIT}")
        if not 0.0 <= float(self.split_cfg["val_fraction"]) < 1.0:
            raise ValueError(f"split.val_fraction must be in [0, 1), got {self.split_cfg}")
        self.augment_cfg = plain_dict(augment) if augment is not None else None
        self.batch_size = int(batch_size)
        self.num_workers = int(num_workers)
        self.pin_memory = bool(pin_memory)
        self.persistent_workers = bool(persistent_workers)
        self.observation_delta_indices = [int(i) for i in observation_delta_indices]
        self.action_delta_indices = (
            None if action_delta_indices is None else [int(i) for i in action_delta_indices]
        )
        self.train_episodes: list = []
        self.val_episodes: list = []
        self.stats: Stats = {}
        self.features: dict[str, Feature] = {}
        self.split_summary: dict[str, Any] = {}
        self._datasets: dict[str, Dataset] = {}
        self._is_setup = False

    def prepare_data(self) -> None:
        # Runs once per node, before setup on every rank: a synthetic source writes its data once.
        self.source.episodes()

    def setup(self, stage: str | None = None) -> None:
        """Split, build the datasets, compute stats. Idempotent: later calls do nothing."""
        if self._is_setup:
            return
        episodes = sorted(self.source.episodes(), key=lambda e: str(e.path))
        if self.split_cfg["use_source"]:
            self.train_episodes, self.val_episodes = self._source_split(episodes)
        else:
            self.train_episodes, self.val_episodes = split_episodes(
                episodes,
                val_fraction=float(self.split_cfg["val_fraction"]),
                seed=int(self.split_cfg["seed"]),
                stratify_by=self.split_cfg["stratify_by"],
            )
        if self.action_delta_indices is None:
            self.action_delta_indices = list(self.source.natural_action_delta_indices())
            first, last = self.action_delta_indices[0], self.action_delta_indices[-1]
            log.info("Action chunk: the source's natural one, offsets %d..%d", first, last)
        self.features = dict(self.source.features())
        self.stats = self.source.compute_stats(self.train_episodes)
        self.split_summary = _summary(self.train_episodes, self.val_episodes, self.split_cfg)
        log.info("Split by episode: %s", self.split_summary)
        action_names = self.features[ACTION].names if ACTION in self.features else ()
        transform = build_train_transform(self.augment_cfg, action_names or ())
        self._datasets = {
            "train": self._build(self.train_episodes, transform),
            "val": self._build(self.val_episodes, None),
        }
        self._is_setup = True

    def _source_split(self, episodes: list) -> tuple[list, list]:
        split = self.source.source_split(episodes)
        if split is None:
            raise ValueError(
                f"split.use_source=true, but {self.source!r} has no split of its own; set "
                "data.split.use_source=false for a seeded split by episode."
            )
        train, val = split
        if not train or not val:
            raise ValueError(
                f"The source's own split of {self.source!r} gives {len(train)} train and "
                f"{len(val)} val episodes; both must be non-empty. Set "
                "data.split.use_source=false for a seeded split by episode."
            )
        return train, val

    def _build(self, episodes: list, transform: Any) -> Dataset:
        return self.source.dataset(
            episodes, self.observation_delta_indices, self.action_delta_indices, transform
        )

    def dataset(self, split: str) -> Dataset:
        """The ``"train"`` (augmented), ``"val"`` or ``"all"`` (unaugmented) windows dataset."""
        if split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
        self.setup()
        if split == "all" and "all" not in self._datasets:
            self._datasets["all"] = self._build(self.train_episodes + self.val_episodes, None)
        return self._datasets[split]

    @property
    def train_dataset(self) -> Dataset:
        return self.dataset("train")

    @property
    def val_dataset(self) -> Dataset:
        return self.dataset("val")

    def train_dataloader(self) -> DataLoader:
        """Shuffled by (seed, epoch) and resumable mid-epoch (`vla_lab.data.resumable`)."""
        return ResumableDataLoader(
            self.train_dataset, seed=torch.initial_seed() % 2**31, **self._loader_options()
        )

    def val_dataloader(self) -> DataLoader:
        return self._loader(self.val_dataset, shuffle=False)

    def dataloader(self, split: str, shuffle: bool = False) -> DataLoader:
        """A loader over any split, in order by default (evaluation, inference)."""
        return self._loader(self.dataset(split), shuffle=shuffle)

    def _loader(self, dataset: Dataset, shuffle: bool) -> DataLoader:
        return DataLoader(dataset, shuffle=shuffle, **self._loader_options())

    def _loader_options(self) -> dict[str, Any]:
        # Worker seeding comes from lightning's seed_everything(workers=True).
        return {
            "batch_size": self.batch_size,
            "num_workers": self.num_workers,
            "pin_memory": self.pin_memory,
            "persistent_workers": self.persistent_workers and self.num_workers > 0,
        }

    def save_stats(self, path: str | Path) -> None:
        """Write the train-split stats as JSON, atomically."""
        self.setup()
        save_stats(self.stats, path)


def split_episodes(
    episodes: Sequence[Any], val_fraction: float, seed: int, stratify_by: str | None = "scenario"
) -> tuple[list, list]:
    """Split episodes into (train, val), stratified by ``episode.scenario[stratify_by]``.

    Each stratum gives ``round(val_fraction * n)`` episodes to val but keeps at least one in train;
    if that leaves val empty while there are two or more episodes (and ``val_fraction > 0``), one
    episode of the largest stratum moves to val, so validation always runs.
    """
    strata: dict[str, list] = defaultdict(list)
    for episode in sorted(episodes, key=lambda e: str(e.path)):
        strata[_stratum(episode, stratify_by)].append(episode)
    val_ids: set[str] = set()
    order: dict[str, list] = {}
    for name, members in sorted(strata.items()):
        rng = np.random.default_rng([seed, zlib.crc32(name.encode())])
        order[name] = [members[i] for i in rng.permutation(len(members))]
        count = min(math.floor(val_fraction * len(members) + 0.5), len(members) - 1)
        val_ids.update(str(e.path) for e in order[name][:count])
    if not val_ids and val_fraction > 0 and len(episodes) >= 2:
        largest = max(sorted(order), key=lambda name: len(order[name]))
        val_ids.add(str(order[largest][0].path))
    ordered = sorted(episodes, key=lambda e: str(e.path))
    train = [e for e in ordered if str(e.path) not in val_ids]
    val = [e for e in ordered if str(e.path) in val_ids]
    return train, val


def _stratum(episode: Any, stratify_by: str | None) -> str:
    if not stratify_by:
        return "all"
    scenario = getattr(episode, "scenario", None) or {}
    return str(scenario.get(stratify_by, "unknown"))


def _summary(train: list, val: list, split_cfg: Mapping[str, Any]) -> dict[str, Any]:
    key = split_cfg["stratify_by"]
    train_counts = Counter(_stratum(e, key) for e in train)
    val_counts = Counter(_stratum(e, key) for e in val)
    return {
        "train": len(train),
        "val": len(val),
        "train_frames": sum(e.num_frames for e in train),
        "val_frames": sum(e.num_frames for e in val),
        "by_" + str(key or "all"): {
            name: {"train": train_counts[name], "val": val_counts[name]}
            for name in sorted(set(train_counts) | set(val_counts))
        },
    }
