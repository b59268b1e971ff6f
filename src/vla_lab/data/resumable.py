"""A train DataLoader that resumes mid-epoch exactly where a run was cut.

Lightning puts the `state_dict()` of each train loader that has one into every checkpoint and
hands it back before the resumed run draws its first batch. With a plain shuffling loader the
resumed epoch starts over on a new permutation: some samples are seen twice, others never, and
the run drifts from the one that was not cut. Here the permutation comes from a generator seeded
by (seed, epoch) instead of the global RNG, so the resumed run rebuilds the same order and skips
the batches already trained on; worker seeds come from the same per-epoch generator. Without the
global RNG draws a shuffle makes, the restored RNG state (`vla_lab.callbacks.rng`) also carries
dropout and augmentation on as if nothing had happened.

Lightning fetches no batch ahead for a loader with a length, so the batches this loader has
yielded when a checkpoint is written are the batches trained on. When Lightning swaps the
sampler (a DistributedSampler under DDP, `overfit_batches`), the position is not restored: the
resumed epoch restarts, with a warning.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset, Sampler

log = logging.getLogger(__name__)


class EpochShuffleSampler(Sampler[int]):
    """A permutation of `range(length)` seeded by (seed, epoch); `skip` drops its first items."""

    def __init__(self, length: int, seed: int) -> None:
        self.length = int(length)
        self.seed = int(seed)
        self.epoch = 0
        self.skip = 0

    def set_epoch(self, epoch: int) -> None:
        """Called by Lightning at the start of every epoch."""
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return self.length

    def __iter__(self) -> Iterator[int]:
        generator = torch.Generator().manual_seed(self.seed + self.epoch)
        order = torch.randperm(self.length, generator=generator).tolist()
        skip, self.skip = self.skip, 0
        yield from order[skip:]


class ResumableDataLoader(DataLoader):
    """A shuffling DataLoader whose position within the epoch survives a resume."""

    def __init__(
        self, dataset: Dataset, seed: int = 0, sampler: Sampler | None = None, **kwargs: Any
    ) -> None:
        self.seed = int(seed)
        self.shuffler = EpochShuffleSampler(len(dataset), self.seed) if sampler is None else None
        kwargs.pop("shuffle", None)  # the shuffler shuffles; Lightning may pass shuffle back in
        kwargs.setdefault("generator", torch.Generator())
        super().__init__(dataset, sampler=sampler or self.shuffler, **kwargs)
        self._yielded = 0
        self._resume: dict[str, int] | None = None

    def __iter__(self) -> Iterator[Any]:
        skip = self._batches_to_skip()
        if self.shuffler is not None:
            self.generator.manual_seed(self.seed + self.shuffler.epoch)  # worker seeds
            self.shuffler.skip = skip * self.batch_size
        self._yielded = skip
        for batch in super().__iter__():
            self._yielded += 1
            yield batch

    def state_dict(self) -> dict[str, int]:
        epoch = self.shuffler.epoch if self.shuffler is not None else -1
        return {"epoch": epoch, "batches": self._yielded}

    def load_state_dict(self, state: dict[str, int]) -> None:
        self._resume = dict(state)
        if self.shuffler is not None and state.get("epoch", -1) >= 0:
            self.shuffler.set_epoch(state["epoch"])

    def _batches_to_skip(self) -> int:
        """On the first iteration after a resume into the same epoch: the batches trained on."""
        resume, self._resume = self._resume, None
        if resume is None or not resume.get("batches"):
            return 0
        if self.shuffler is None:
            log.warning(
                "Resuming mid-epoch under a sampler Lightning replaced (DDP, overfit_batches): "
                "the interrupted epoch restarts from its first batch"
            )
            return 0
        same_epoch = resume.get("epoch") == self.shuffler.epoch
        return min(resume["batches"], len(self)) if same_epoch else 0
