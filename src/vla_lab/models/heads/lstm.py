"""RoboVLMs' LSTM policy head: memory over the window of frame features, a chunk at every step."""

from __future__ import annotations

import torch
from torch import nn

from vla_lab.models.heads.output import ChunkDecoder, HeadOutput


class LSTMActionHead(nn.Module):
    """(B, W, in_features) -> actions (B, W, chunk_size, A) in [-1, 1].

    Online, the policy keeps the last W frame features and re-runs the LSTM over them, so training
    and deployment see the same computation (no hidden state carried across calls).
    """

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
        self.lstm = nn.LSTM(
            in_features,
            hidden_size,
            num_layers=num_layers,
            batch_first=True,
            dropout=dropout if num_layers > 1 else 0.0,
        )
        self.decoder = ChunkDecoder(hidden_size, chunk_size, action_dim, num_action_types)

    def forward(self, features: torch.Tensor) -> HeadOutput:
        hidden, _ = self.lstm(features)
        return self.decoder(hidden)
