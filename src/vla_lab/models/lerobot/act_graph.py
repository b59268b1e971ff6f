"""ACT's exportable graph: the whole policy at inference, LeRobot's normaliser folded in.

`observation.state (1, S)` and each camera `(1, 3, H, W)` float in [0, 1] (named by the dataset's
camera keys) -> `actions (1, chunk_size, A)` in dataset units, with no VAE sampling (the latent is
zeros), so a runtime (TorchScript, onnxruntime, TensorRT via `trtexec`) needs no stats file.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from vla_lab import features as ft
from vla_lab import lerobot_api as lr
from vla_lab.models.module import GraphExport


class FoldedNormalization(nn.Module):
    """One key of LeRobot's (un)normaliser step as constants (same formulas and eps)."""

    def __init__(self, step, key: str, feature_type, inverse: bool) -> None:
        super().__init__()
        self.inverse = inverse
        stats = step._tensor_stats.get(key)
        mode = step.norm_map.get(feature_type, lr.NormalizationMode.IDENTITY)
        self.mode = "identity" if stats is None else mode.value.lower()
        self.stats_used: dict[str, list] = {}
        pairs = {
            "mean_std": ("mean", "std"),
            "min_max": ("min", "max"),
            "quantiles": ("q01", "q99"),
            "quantile10": ("q10", "q90"),
        }
        if self.mode == "identity":
            low = scale = torch.zeros(())
        else:
            first, second = (stats[name].detach().float().cpu() for name in pairs[self.mode])
            self.stats_used = {
                pairs[self.mode][0]: first.flatten().tolist(),
                pairs[self.mode][1]: second.flatten().tolist(),
            }
            if self.mode == "mean_std":
                low, scale = first, second + (0.0 if inverse else step.eps)
            else:
                spread = second - first
                spread = torch.where(spread == 0, torch.full_like(spread, step.eps), spread)
                low, scale = first, spread / 2  # [low, high] <-> [-1, 1]
        self.register_buffer("low", low)
        self.register_buffer("scale", scale)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.mode == "identity":
            return x
        if self.mode == "mean_std":
            return x * self.scale + self.low if self.inverse else (x - self.low) / self.scale
        if self.inverse:
            return (x + 1) * self.scale + self.low
        return (x - self.low) / self.scale - 1


def _step(pipeline, class_name: str):
    for step in pipeline.steps:
        if type(step).__name__ == class_name:
            return step
    raise ValueError(f"the module's processor has no {class_name}; steps: {pipeline.steps}")


class InputInWeightDtype(nn.Module):
    """A layer that casts its input to its weights' dtype: LeRobot's ACT makes its zero latent in
    float32 whatever the model's dtype, which a float16 graph could not multiply."""

    def __init__(self, layer: nn.Module) -> None:
        super().__init__()
        self.layer = layer

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layer(x.to(self.layer.weight.dtype))


class ACTGraph(nn.Module):
    """ACT at inference with its normaliser folded in; inputs in `input_names` order."""

    def __init__(self, module) -> None:
        super().__init__()
        self.model = copy.deepcopy(module.policy.model).eval()  # patched below: not the module's
        self.model.encoder_latent_input_proj = InputInWeightDtype(
            self.model.encoder_latent_input_proj
        )
        normalizer = _step(module.preprocessor, "NormalizerProcessorStep")
        unnormalizer = _step(module.postprocessor, "UnnormalizerProcessorStep")
        to_dataset = {module.rename_map.get(k, k): k for k in module.camera_keys}
        self.policy_cameras = list(module.policy.config.image_features)
        self.camera_keys = [to_dataset[k] for k in self.policy_cameras]
        self.has_state = ft.STATE in module.dataset_features
        visual, state = lr.FeatureType.VISUAL, lr.FeatureType.STATE
        self.cameras = nn.ModuleList(
            FoldedNormalization(normalizer, k, visual, False) for k in self.policy_cameras
        )
        self.state = FoldedNormalization(normalizer, ft.STATE, state, False)
        self.action = FoldedNormalization(unnormalizer, ft.ACTION, lr.FeatureType.ACTION, True)

    @property
    def input_names(self) -> list[str]:
        return ([ft.STATE] if self.has_state else []) + self.camera_keys

    def stats_used(self) -> dict[str, dict]:
        named = {ft.STATE: self.state, ft.ACTION: self.action}
        named.update(zip(self.camera_keys, self.cameras, strict=True))
        return {k: {"mode": n.mode, **n.stats_used} for k, n in named.items()}

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        if self.has_state:
            state, images = inputs[0], inputs[1:]
        else:  # a camera-only dataset: the policy reads a constant zero state (policy_features)
            zero = torch.zeros(
                inputs[0].shape[0], 1, dtype=inputs[0].dtype, device=inputs[0].device
            )
            state, images = zero, inputs
        batch = {
            "observation.state": self.state(state),
            "observation.images": [norm(x) for norm, x in zip(self.cameras, images, strict=True)],
        }
        return self.action(self.model(batch)[0])


@torch.no_grad()
def act_graph_export(module, seed: int) -> GraphExport:
    """ACT's graph, with a state drawn from the dataset's mean and std and random frames as its
    example input, and the module's own `predict_action_chunk` of it as the reference."""
    graph = ACTGraph(module)
    gen = torch.Generator().manual_seed(seed)
    features = module.dataset_features
    inputs = {}
    for name in graph.input_names:
        shape = tuple(features[name].shape)
        if name == ft.STATE:
            stats = module.dataset_stats.get(ft.STATE, {})
            mean = torch.tensor(stats.get("mean", [0.0] * shape[0]))
            std = torch.tensor(stats.get("std", [1.0] * shape[0]))
            inputs[name] = (mean + std * torch.randn(1, *shape, generator=gen)).float()
        else:
            inputs[name] = torch.rand(1, *shape, generator=gen)
    reference = [module.predict_action_chunk({**inputs, ft.TASK: ["export check"]})]
    return GraphExport(graph, graph.input_names, ["actions"], inputs, reference, graph.stats_used())
