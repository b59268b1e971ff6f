"""Random-number states travel with the checkpoint, so a resumed run draws what the original would.

Without them a run resumed at an epoch boundary shuffles its next epoch (and draws augmentations,
dropout masks, flow-matching noise) differently from the uninterrupted run, and the two drift
apart. Mid-epoch resumes still differ a little: the epoch's data order restarts.
"""

from __future__ import annotations

import random
from typing import Any

import lightning.pytorch as pl
import numpy as np
import torch


class RNGStateInCheckpoint(pl.Callback):
    """Saves the Python, NumPy, torch (and CUDA) RNG states; restores them when training resumes."""

    def state_dict(self) -> dict[str, Any]:
        state = {
            "python": random.getstate(),
            "numpy": np.random.get_state(),
            "torch": torch.get_rng_state(),
        }
        if torch.cuda.is_available():
            state["cuda"] = torch.cuda.get_rng_state_all()
        return state

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        random.setstate(state_dict["python"])
        np.random.set_state(state_dict["numpy"])
        torch.set_rng_state(state_dict["torch"])
        if "cuda" in state_dict and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state_dict["cuda"])
