"""Checkpoints written beside their destination and renamed into place.

Lightning's default stages the file in the system temp dir, which is another filesystem on many
clusters (so the final move is a copy that a preemption can cut in half). Here the temp file lives
in the checkpoint's own directory (`vla_lab.utils.io.atomic_write`) and a rename makes the switch
atomic.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from lightning.pytorch.plugins.io import TorchCheckpointIO

from vla_lab.utils.io import atomic_write


class AtomicCheckpointIO(TorchCheckpointIO):
    """`TorchCheckpointIO` whose saves are atomic on a local filesystem."""

    def save_checkpoint(
        self, checkpoint: dict[str, Any], path: str | Path, storage_options: Any | None = None
    ) -> None:
        if storage_options is not None:
            raise TypeError(
                f"{type(self).__name__} takes no storage_options, got {storage_options}"
            )
        atomic_write(path, lambda tmp: torch.save(checkpoint, tmp))
