"""What `format=torchscript|onnx` exports: a trained module's control path as one fixed-shape graph.

Each graph takes raw inputs and returns actions in dataset units, the normalisation folded in as
constants, so a runtime (TorchScript, onnxruntime, TensorRT via `trtexec`) needs no stats file.

- Kosmos-LSTM: the control head only. `features (1, W, hidden)` (the action token's last hidden
  state for each of the last W frames, from `module.encode`) -> `actions (1, chunk_size, A)`, the
  chunk at the newest frame (+ `action_type_logits (1, chunk_size, K)` when the head has them).
  The Kosmos-2 backbone stays in PyTorch: on the edge the 1.6B VLM is served by TensorRT-LLM or
  HF transformers, and what we export is the control head that runs after it.
- ACT: the whole policy at inference (no VAE sampling: the latent is zeros).
  `observation.state (1, S)` and each camera `(1, 3, H, W)` float in [0, 1] (named by the
  dataset's camera keys) -> `actions (1, chunk_size, A)`, LeRobot's (un)normaliser folded in.
- SmolVLA: not exported, see `SMOLVLA_NOT_EXPORTABLE`.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from vla_lab import features as ft
from vla_lab import lerobot_api as lr
from vla_lab.models.kosmos_lstm import KosmosLSTMPolicy
from vla_lab.models.module import VLAModule

SMOLVLA_NOT_EXPORTABLE = (
    "SmolVLA is not exportable to a TorchScript/ONNX graph: its flow sampling runs the SmolVLM2 "
    "prefix once into a transformers KV cache (a Python `DynamicCache` object, not a tensor) and "
    "then `num_steps` Euler steps of the action expert against it, after tokenising the task in "
    "Python; neither torch.jit.trace nor the ONNX exporter captures the cache object. Deploy it "
    "with `load_policy(ckpt)` (PyTorch) or export it with format=lerobot."
)


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


def graph_for(module: VLAModule) -> tuple[nn.Module, list[str], list[str]]:
    """The exportable graph of `module`, its input names and its output names."""
    from vla_lab.models.lerobot.act import ACTModule  # LeRobot-heavy imports only when needed

    if isinstance(module, KosmosLSTMPolicy):
        graph = KosmosLSTMHeadGraph(module)
        outputs = ["actions"] + (["action_type_logits"] if graph.head.decoder.types else [])
        return graph, ["features"], outputs
    if isinstance(module, ACTModule):
        graph = ACTGraph(module)
        return graph, graph.input_names, ["actions"]
    if type(module).__name__.startswith("SmolVLA"):
        raise NotImplementedError(SMOLVLA_NOT_EXPORTABLE)
    raise ValueError(
        f"{type(module).__name__} has no graph export; format=torchscript|onnx supports "
        "Kosmos-LSTM (model=kosmos_lstm, the head) and ACT (model=act)."
    )


def example_inputs(module: VLAModule, graph: nn.Module, seed: int = 0) -> dict[str, torch.Tensor]:
    """A batch-of-one sample for the graph, drawn like real inputs: Kosmos-LSTM features are the
    backbone's encoding of random frames; ACT's state is drawn from the dataset's mean and std."""
    gen = torch.Generator().manual_seed(seed)
    features = module.dataset_features
    if isinstance(graph, KosmosLSTMHeadGraph):
        size = tuple(features[module.image_key].shape)
        frames = torch.rand(1, module.window_size, *size, generator=gen)
        with torch.no_grad():
            return {"features": module.encode(frames, ["export check"]).float()}
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
    return inputs


@torch.no_grad()
def reference_outputs(module: VLAModule, inputs: dict[str, torch.Tensor]) -> list[torch.Tensor]:
    """What the PyTorch module itself predicts for `inputs` (its own code path, not the graph's)."""
    if isinstance(module, KosmosLSTMPolicy):
        out = module.head(inputs["features"])
        result = [module.newest_chunk(out)]
        if out.type_logits is not None:
            result.append(out.type_logits[:, -1])
        return result
    batch = {**inputs, ft.TASK: ["export check"]}
    return [module.predict_action_chunk(batch)]
