"""Kosmos-LSTM's exportable graph: the control head with its unnormalisation folded in.

`features (1, W, hidden)` (the action token's last hidden state for each of the last W frames,
from `module.encode`) -> `actions (1, chunk_size, A)`, the chunk at the newest frame (+
`action_type_logits (1, chunk_size, K)` when the head has them). The Kosmos-2 backbone stays in
PyTorch: on the edge the 1.6B VLM is served by TensorRT-LLM or HF transformers, and what we export
is the control head that runs after it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import nn

from vla_lab.models.module import GraphExport

if TYPE_CHECKING:
    from vla_lab.models.kosmos_lstm import KosmosLSTMPolicy


class KosmosLSTMHeadGraph(nn.Module):
    """Kosmos-LSTM's head + unnormalisation: `(B, W, hidden)` features -> newest-frame chunk."""

    def __init__(self, module: KosmosLSTMPolicy) -> None:
        super().__init__()
        self.head = module.head
        center = (module.action_max + module.action_min) / 2
        self.register_buffer("center", center.detach().clone())
        self.register_buffer("half_range", module._half_range().detach().clone())

    def forward(self, features: torch.Tensor) -> tuple[torch.Tensor, ...]:
        out = self.head(features)
        actions = out.actions[:, -1] * self.half_range + self.center
        if out.type_logits is None:
            return (actions,)
        return actions, out.type_logits[:, -1]


@torch.no_grad()
def kosmos_lstm_graph_export(module: KosmosLSTMPolicy, seed: int) -> GraphExport:
    """The head graph, with the backbone's encoding of random frames as its example input."""
    graph = KosmosLSTMHeadGraph(module)
    size = tuple(module.dataset_features[module.image_key].shape)
    frames = torch.rand(1, module.window_size, *size, generator=torch.Generator().manual_seed(seed))
    inputs = {"features": module.encode(frames, ["export check"]).float()}
    out = module.head(inputs["features"])
    reference = [module.newest_chunk(out)]
    if out.type_logits is not None:
        reference.append(out.type_logits[:, -1])
    outputs = ["actions"] + (["action_type_logits"] if graph.head.decoder.types else [])
    stats = {
        "action": {
            "mode": "min_max (RoboVLMs: [-1, 1] from the train split's min/max)",
            "center": graph.center.float().cpu().tolist(),
            "half_range": graph.half_range.float().cpu().tolist(),
        }
    }
    return GraphExport(graph, ["features"], outputs[: len(reference)], inputs, reference, stats)
