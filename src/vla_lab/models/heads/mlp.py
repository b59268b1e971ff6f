"""A per-frame MLP head: the memoryless baseline to the LSTM head."""

from __future__ import annotations

import torch
from torch import nn

from vla_lab.models.heads.output import ChunkDecoder, HeadOutput


class MLPActionHead(nn.Module):
    """(B, W, in_features) -> (B, W, chunk_size, A), each position from its own frame only."""

    def __init__(
        self,
        in_features: int,
        chunk_size: int,
        action_dim: int,
        num_action_types: int = 0,
        hidden_size: int = 512,
        num_layers: int = 2,
        dropout: float = 0.1,
    ) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        width = in_features
        for _ in range(num_layers):
            layers += [nn.Linear(width, hidden_size), nn.GELU(), nn.Dropout(dropout)]
            width = hidden_size
        self.trunk = nn.Sequential(*layers)
        self.decoder = ChunkDecoder(width, chunk_size, action_dim, num_action_types)

    def forward(self, features: torch.Tensor) -> HeadOutput:
        return self.decoder(self.trunk(features))
