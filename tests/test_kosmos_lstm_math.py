"""Unit tests for the maths of the Kosmos-LSTM policy: targets, normalisation, masking."""

from __future__ import annotations

import torch

from vla_lab.models.heads.lstm import LSTMActionHead
from vla_lab.models.heads.mlp import MLPActionHead
from vla_lab.models.kosmos_lstm import _masked_mean, window_chunks


def test_window_chunks_give_each_position_its_next_actions() -> None:
    window, chunk = 4, 3
    steps = torch.arange(window + chunk - 1).float()
    actions = torch.stack([steps, -steps], dim=-1)[None]  # (1, W + n - 1, 2)
    chunks = window_chunks(actions, chunk)
    assert chunks.shape == (1, window, chunk, 2)
    for position in range(window):
        for k in range(chunk):
            assert chunks[0, position, k, 0] == position + k
            assert chunks[0, position, k, 1] == -(position + k)


def test_window_chunks_of_a_mask_keep_the_time_layout() -> None:
    pad = torch.tensor([[False, False, False, True, True]])  # W = 3, n = 3
    assert window_chunks(pad, 3).tolist() == [
        [[False, False, False], [False, False, True], [False, True, True]]
    ]


def test_masked_mean_ignores_padded_elements() -> None:
    values = torch.tensor([1.0, 2.0, 100.0])
    assert _masked_mean(values, torch.tensor([True, True, False])) == 1.5
    assert _masked_mean(values, torch.zeros(3, dtype=torch.bool)) == 0.0


def test_heads_predict_a_bounded_chunk_at_every_window_position() -> None:
    features = torch.randn(2, 5, 16)
    for head_class in (LSTMActionHead, MLPActionHead):
        head = head_class(16, chunk_size=4, action_dim=3, num_action_types=4, hidden_size=8)
        out = head(features)
        assert out.actions.shape == (2, 5, 4, 3)
        assert out.actions.abs().max() <= 1.0
        assert out.type_logits.shape == (2, 5, 4, 4)


def test_lstm_head_uses_the_past_and_mlp_head_does_not() -> None:
    torch.manual_seed(0)
    features = torch.randn(1, 4, 8)
    changed = features.clone()
    changed[:, 0] += 1.0  # only the oldest frame differs
    lstm = LSTMActionHead(8, chunk_size=2, action_dim=2, hidden_size=8, num_layers=1)
    mlp = MLPActionHead(8, chunk_size=2, action_dim=2, hidden_size=8).eval()
    assert not torch.allclose(lstm(features).actions[:, -1], lstm(changed).actions[:, -1])
    assert torch.allclose(mlp(features).actions[:, -1], mlp(changed).actions[:, -1])
