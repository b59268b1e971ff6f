"""Which torch device a user's `device=` string means."""

from __future__ import annotations

import torch


def resolve_device(device: str = "auto") -> torch.device:
    """`auto`: CUDA when available, else the CPU; anything else as torch spells it."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)
