"""The output both action heads share: a tanh-bounded chunk per window position (+ class logits)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn


@dataclass
class HeadOutput:
    """`actions`: (B, W, chunk_size, A) in [-1, 1] (normalised units); `type_logits`:
    (B, W, chunk_size, K) or None when the head predicts no action class."""

    actions: torch.Tensor
    type_logits: torch.Tensor | None


class ChunkDecoder(nn.Module):
    """Per-position MLP from a hidden vector to the chunk of next actions (and their classes)."""

    def __init__(
        self, hidden_size: int, chunk_size: int, action_dim: int, num_action_types: int = 0
    ) -> None:
        super().__init__()
        self.chunk_size = chunk_size
        self.action_dim = action_dim
        self.num_action_types = num_action_types
        self.actions = nn.Sequential(
            nn.Linear(hidden_size, hidden_size),
            nn.ReLU(),
            nn.Linear(hidden_size, chunk_size * action_dim),
            nn.Tanh(),
        )
        self.types = (
            nn.Linear(hidden_size, chunk_size * num_action_types) if num_action_types else None
        )

    def forward(self, hidden: torch.Tensor) -> HeadOutput:
        lead = hidden.shape[:-1]
        actions = self.actions(hidden).view(*lead, self.chunk_size, self.action_dim)
        type_logits = None
        if self.types is not None:
            type_logits = self.types(hidden).view(*lead, self.chunk_size, self.num_action_types)
        return HeadOutput(actions=actions, type_logits=type_logits)
