"""LeRobotPolicyModule: any LeRobot policy, its processors and our loss modes as a VLAModule.

`model=lerobot model.policy_type=<type>` builds this module for any policy LeRobot registers;
`act` and `smolvla` resolve to their specialised subclasses (`SPECIALISED`).

A LeRobot policy is sized by the dataset (its features and stats), but `train()` instantiates the
model before the data. So `__init__` stores config only; the policy, its pre/post processors and
the fine-tuning are built in `attach_dataset` (training) or `on_load_checkpoint` (from the
features, stats and policy config the checkpoint carries; Lightning calls it before
`load_state_dict`, so `load_from_checkpoint` works offline).

Every step runs LeRobot's preprocessor (rename cameras, tokenise `task`, normalise) before the
policy and its postprocessor (unnormalise) after it, so training, validation and deployment see
the same numbers as LeRobot's policy runner (`lerobot-rollout`; `lerobot-record` before 0.6) with
an exported policy.
"""

from __future__ import annotations

import dataclasses
import functools
import importlib
import tempfile
from pathlib import Path

import numpy as np
import torch
from omegaconf import DictConfig

from vla_lab import features as ft
from vla_lab import lerobot_api as lr
from vla_lab.models.finetune import count_parameters
from vla_lab.models.lerobot.config import (
    check_offline,
    check_policy_type,
    decode_policy_config,
    make_processors_offline,
    read_policy_config,
)
from vla_lab.models.lerobot.loss import check_loss_mode, lerobot_loss
from vla_lab.models.module import CHECKPOINT_KEY, Capabilities, StepOutput, VLAModule
from vla_lab.utils.config import plain_dict
from vla_lab.utils.logging import get_logger

log = get_logger(__name__)

# Policy types whose modules add code to the generic path (class paths: imported when chosen).
SPECIALISED = {
    "act": "vla_lab.models.lerobot.act.ACTModule",
    "smolvla": "vla_lab.models.lerobot.smolvla.SmolVLAModule",
}


def policy_features(
    features: dict[str, ft.Feature], rename_map: dict[str, str]
) -> tuple[dict[str, lr.PolicyFeature], dict[str, lr.PolicyFeature]]:
    """Our dataset features as LeRobot's (inputs, outputs), keyed with the policy's names.

    A dataset without `observation.state` (camera-only, e.g. Mobile VLA) gets a constant zero
    state of one dimension: LeRobot's ACT (eval path) and SmolVLA (state token) read one.
    """
    inputs: dict[str, lr.PolicyFeature] = {}
    for key, feature in features.items():
        name = rename_map.get(key, key)
        if ft.is_image_key(key):
            inputs[name] = lr.PolicyFeature(type=lr.FeatureType.VISUAL, shape=feature.shape)
        elif key == ft.STATE:
            inputs[name] = lr.PolicyFeature(type=lr.FeatureType.STATE, shape=feature.shape)
    if ft.STATE not in inputs:
        log.warning("The dataset has no %s: the policy gets a constant zero state.", ft.STATE)
        inputs[ft.STATE] = lr.PolicyFeature(type=lr.FeatureType.STATE, shape=(1,))
    outputs = {
        ft.ACTION: lr.PolicyFeature(type=lr.FeatureType.ACTION, shape=features[ft.ACTION].shape)
    }
    return inputs, outputs


def lerobot_stats(
    stats: ft.Stats, keys: list[str], rename_map: dict[str, str], use_imagenet_stats: bool
) -> dict[str, dict[str, np.ndarray]]:
    """Our stats lists as the arrays LeRobot's normaliser takes, keyed with the policy's names.

    Camera stats are per channel, shaped (3, 1, 1) to broadcast over (B, 3, H, W); with
    `use_imagenet_stats` they are ImageNet's, as lerobot-train does. A state or action dimension
    the train episodes never moved gets unit scale (`ft.unit_scale_for_constant_dimensions`):
    LeRobot's own normaliser would divide a deviation from it by ~1e-8.
    """
    stats = ft.unit_scale_for_constant_dimensions(stats, (ft.STATE, ft.ACTION))
    out: dict[str, dict[str, np.ndarray]] = {}
    for key in keys:
        is_camera = ft.is_image_key(key)
        values = lr.IMAGENET_STATS if is_camera and use_imagenet_stats else stats.get(key)
        if values is None:
            continue
        arrays = {name: np.asarray(v, dtype=np.float32) for name, v in values.items()}
        if is_camera:
            arrays = {name: a.reshape(-1, 1, 1) for name, a in arrays.items()}
        out[rename_map.get(key, key)] = arrays
    return out


def check_cameras(dataset_keys: list[str], rename_map: dict[str, str], policy_keys: list[str]):
    """Fail at start-up when the renamed dataset cameras are not cameras the policy knows."""
    unknown = sorted(set(rename_map) - set(dataset_keys))
    renamed = sorted(rename_map.get(k, k) for k in dataset_keys)
    if unknown or not renamed or not set(renamed) <= set(policy_keys):
        raise ValueError(
            f"Camera mismatch: the dataset serves {sorted(dataset_keys)}, renamed by "
            f"model.rename_map={rename_map} to {renamed}, but the policy expects "
            f"{sorted(policy_keys)}"
            + (f"; rename_map keys {unknown} are not dataset cameras" if unknown else "")
            + ". Set model.rename_map to map each dataset camera to one of the policy's keys, "
            "e.g. model.rename_map='{observation.images.front: observation.images.camera1}'."
        )


class LeRobotPolicyModule(VLAModule):
    """Any registered LeRobot policy (`policy_type`: act, smolvla, diffusion, pi0, ...).

    The policy's config is LeRobot's own dataclass, filled from the dataset (input/output
    features) and from config: `policy` (any of its fields, by LeRobot's name), the `head` group
    (fields, verbatim) and the `backbone` group (`name` -> `vision_backbone`, the other keys
    verbatim; `pretrained_policy` starts from a trained LeRobot policy). Keyword arguments this
    class does not name (e.g. ACT's `kl_weight`, SmolVLA's `max_action_dim`) are fields too.

    `LeRobotPolicyModule(policy_type="act", ...)` returns the specialised module registered for
    that type (`SPECIALISED`: ACT's masked loss and ResNet freezing, SmolVLA's VLM building and
    LoRA), so `model=lerobot model.policy_type=act` and `model=act` are the same model. Other
    types train with their own `forward` (`loss: lerobot`) and `finetune=full`.

    Subclass hooks: `make_config(inputs, outputs)`, `make_policy(config)`,
    `restore_config(config, payload)` (offline rebuild from a checkpoint), `masked_loss(batch)`,
    `apply_finetune()` and the class attributes below.
    """

    capabilities = Capabilities(export_formats=("lerobot",))
    policy_type: str | None = None
    finetune_modes: tuple[str, ...] = ("full",)
    has_masked_loss = False
    default_use_imagenet_stats = True
    backbone_attr_name = "backbone"
    # ACT and SmolVLA read one observation frame without a time axis, whatever their config's
    # observation_delta_indices say; others get (B, T_obs, ...) as LeRobot's datasets serve it.
    observation_history = True

    def __new__(cls, *args, **kwargs):
        return super().__new__(cls.built_class(kwargs))

    @classmethod
    def built_class(cls, model_cfg) -> type[VLAModule]:
        if cls is LeRobotPolicyModule and model_cfg.get("policy_type") in SPECIALISED:
            module_name, _, class_name = SPECIALISED[model_cfg["policy_type"]].rpartition(".")
            return getattr(importlib.import_module(module_name), class_name)
        return cls

    def __init__(
        self,
        backbone: DictConfig | None = None,
        head: DictConfig | None = None,
        finetune: DictConfig | None = None,
        optimizer: DictConfig | None = None,
        scheduler: DictConfig | None = None,
        head_lr: float | None = None,
        policy_type: str | None = None,
        policy: DictConfig | None = None,
        chunk_size: int | None = None,
        n_action_steps: int | None = None,
        loss: str = "masked",
        rename_map: dict[str, str] | None = None,
        use_imagenet_stats: bool | None = None,
        **policy_fields,
    ) -> None:
        super().__init__(optimizer, scheduler, head_lr, self.backbone_attr_name)
        self.save_hyperparameters(logger=False)
        self.policy_type = check_policy_type(policy_type or type(self).policy_type)
        self.backbone_cfg = plain_dict(backbone or {})
        self.head_cfg = plain_dict(head or {})
        self.finetune_cfg = plain_dict(finetune or {"mode": "full"})
        self.policy_cfg = {**plain_dict(policy or {}), **plain_dict(policy_fields)}
        for key, value in (("chunk_size", chunk_size), ("n_action_steps", n_action_steps)):
            if value is not None:
                self.policy_cfg[key] = value
        self.chunk_size = chunk_size
        self.loss_mode = check_loss_mode(loss)
        if loss == "masked" and not self.has_masked_loss:
            raise ValueError(
                f"model.loss=masked has no implementation for LeRobot policy "
                f"{self.policy_type!r} (only for {', '.join(sorted(SPECIALISED))}). Set "
                "model.loss=lerobot: the policy's own forward computes the loss."
            )
        mode = self.finetune_cfg.get("mode")
        if mode not in self.finetune_modes:
            raise ValueError(
                f"finetune={mode!r} is not supported for LeRobot policy {self.policy_type!r}; "
                f"supported: {', '.join(self.finetune_modes)}."
            )
        self.rename_map = {str(k): str(v) for k, v in (rename_map or {}).items()}
        self.use_imagenet_stats = (
            self.default_use_imagenet_stats if use_imagenet_stats is None else use_imagenet_stats
        )
        self.policy = None
        self.preprocessor = None
        self.postprocessor = None

    required_features = [ft.ACTION]

    # Head-group keys the module itself reads (not policy config fields), e.g. SmolVLA-unicycle's
    # `trajectory_loss`.
    module_head_keys: tuple[str, ...] = ()

    @classmethod
    def head_problem(cls, model_cfg: DictConfig) -> str | None:
        """The head group must be fields of the policy's LeRobot config (head=act, flow, ...)."""
        head = model_cfg.get("head") or {}
        policy_type = model_cfg.get("policy_type") or cls.policy_type
        config_class = lr.PreTrainedConfig.get_choice_class(policy_type)
        if "_target_" in head:
            return (
                f"LeRobot policy {policy_type!r} takes its head as {config_class.__name__} fields "
                f"(e.g. head=act for ACT, head=flow for SmolVLA); this head group builds "
                f"{head['_target_']}"
            )
        known = {f.name for f in dataclasses.fields(config_class)} | set(cls.module_head_keys)
        unknown = sorted(set(head) - known)
        if unknown:
            return f"its head sets {unknown}, which {config_class.__name__} does not have"
        return None

    @property
    def config_class(self) -> type:
        return lr.PreTrainedConfig.get_choice_class(self.policy_type)

    @property
    def policy_class(self) -> type:
        return lr.get_policy_class(self.policy_type)

    @functools.cached_property
    def _template(self):
        """The policy's config without features: what the datamodule must serve."""
        return self.config_class(**self.config_fields(with_backbone=False))

    @property
    def observation_delta_indices(self) -> list[int]:
        indices = self._template.observation_delta_indices
        return list(indices) if indices and self.observation_history else [0]

    @property
    def action_delta_indices(self) -> list[int]:
        return list(self._template.action_delta_indices)

    @property
    def current_action_index(self) -> int:
        """Where the current step's action sits in the served chunk (Diffusion Policy's chunk
        starts `n_obs_steps - 1` steps in the past)."""
        return self.action_delta_indices.index(0)

    # ---- the policy's config -----------------------------------------------------------------
    def config_fields(self, with_backbone: bool = True) -> dict:
        """The policy config's fields from the backbone and head groups and `model.policy`,
        each checked to be a field of the policy's config class."""
        groups = [("head", self.head_cfg), ("model.policy (or a model key)", self.policy_cfg)]
        if with_backbone:
            backbone = {k: v for k, v in self.backbone_cfg.items() if k != "pretrained_policy"}
            if "name" in backbone:
                backbone["vision_backbone"] = backbone.pop("name")
            groups.insert(0, ("backbone", backbone))
        types = {f.name: str(f.type) for f in dataclasses.fields(self.config_class)}
        known = set(types)
        fields: dict = {}
        for group, values in groups:
            unknown = sorted(set(values) - known)
            if unknown:
                raise ValueError(
                    f"{group} sets {unknown}, which {self.config_class.__name__} (LeRobot policy "
                    f"{self.policy_type!r}) does not have. Its fields: {sorted(known)}."
                )
            fields.update(values)
        # Hydra gives lists; LeRobot's config encoder (draccus) wants its tuples as tuples.
        return {
            k: tuple(v) if isinstance(v, list) and "tuple" in types[k] else v
            for k, v in fields.items()
        }

    def make_config(self, inputs: dict, outputs: dict):
        """A fresh policy config on the dataset's features (or `backbone.pretrained_policy`'s)."""
        if self.backbone_cfg.get("pretrained_policy"):
            config = self.pretrained_config()
            config.input_features = inputs
            config.output_features = outputs
            for key, value in self.policy_cfg.items():
                setattr(config, key, value)
            config.device = "cpu"
            return config
        config = self.config_class(
            input_features=inputs, output_features=outputs, device="cpu", **self.config_fields()
        )
        check_offline(config, self.policy_type)
        return config

    def make_policy(self, config):
        """The policy: `backbone.pretrained_policy`'s weights when set, else freshly initialised."""
        pretrained = self.backbone_cfg.get("pretrained_policy")
        if pretrained:
            # from_pretrained returns it in eval mode; Lightning's fit keeps the mode it finds
            # (ACT would skip its VAE, dropout would be off).
            return self.policy_class.from_pretrained(pretrained, config=config).train()
        return self.policy_class(config)

    def pretrained_config(self):
        """The config of `backbone.pretrained_policy` (a directory or hub id, saved by LeRobot
        0.4-0.6), checked to be this module's policy type."""
        pretrained = self.backbone_cfg["pretrained_policy"]
        config = read_policy_config(pretrained)
        expected = self.policy_class.config_class
        if not isinstance(config, expected):
            raise ValueError(
                f"backbone.pretrained_policy={pretrained!r} is a {type(config).__name__}, not the "
                f"{expected.__name__} that {type(self).__name__} trains."
            )
        return config

    def restore_config(self, config, payload: dict):
        """A checkpoint's policy config, adjusted to build offline: its weights (the ResNet's
        too) are in the state_dict, so no torchvision download."""
        if getattr(config, "pretrained_backbone_weights", None):
            config.pretrained_backbone_weights = None
        return config

    def masked_loss(self, batch: dict) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        raise NotImplementedError

    def apply_finetune(self) -> None:
        counts = count_parameters(self.policy)
        log.info(
            "LeRobot %s (%s): %d of %d parameters trainable.",
            self.policy_type,
            self.finetune_cfg["mode"],
            counts["trainable"],
            counts["total"],
        )

    # ---- building ----------------------------------------------------------------------------
    def set_normalization(self, stats: ft.Stats) -> None:
        """Nothing to copy: normalisation lives in LeRobot's processors, built with the policy."""

    def attach_dataset(self, features: dict[str, ft.Feature], stats: ft.Stats) -> None:
        super().attach_dataset(features, stats)
        if self.policy is None:  # resume: train() attaches again before restoring the weights
            inputs, outputs = policy_features(self.dataset_features, self.rename_map)
            config = self.make_config(inputs, outputs)
            self._build(config, self.make_policy)

    @property
    def camera_keys(self) -> list[str]:
        """The dataset's camera keys (before renaming)."""
        return ft.image_keys(self.dataset_features)

    def _check_cameras(self, config) -> None:
        check_cameras(self.camera_keys, self.rename_map, list(config.image_features))

    def _build(self, config, make_policy) -> None:
        """Cameras checked, processors built (hub offline), then `make_policy(config)`: what is
        missing fails before a large policy is initialised or pretrained weights are loaded."""
        self._check_cameras(config)
        input_keys = [*self.camera_keys, ft.STATE, ft.ACTION]
        stats = lerobot_stats(
            self.dataset_stats, input_keys, self.rename_map, self.use_imagenet_stats
        )
        self.preprocessor, self.postprocessor = make_processors_offline(
            config, stats, self.policy_type
        )
        for step in self.preprocessor.steps:
            if isinstance(step, lr.RenameObservationsProcessorStep):
                step.rename_map = dict(self.rename_map)
        self.policy = make_policy(config)
        self.apply_finetune()

    # ---- batches through the processors -----------------------------------------------------
    def _raw_policy_batch(self, batch: dict) -> dict:
        """The sample keys LeRobot's processors take, with the observation time axis the policy
        reads: `(B, T_obs, ...)` for a policy with an observation history (a single frame gets
        one), none for ACT and SmolVLA (a length-1 history dropped)."""
        keep = [*self.camera_keys, ft.STATE, ft.ACTION, ft.ACTION_IS_PAD, ft.TASK]
        raw = {}
        for key in keep:
            if key not in batch:
                continue
            value = batch[key]
            feature = self.dataset_features.get(key)
            if key != ft.ACTION and feature is not None and torch.is_tensor(value):
                value = self._with_history(value, len(feature.shape))
            raw[key] = value
        camera = next(v for k, v in raw.items() if ft.is_image_key(k))
        if ft.STATE not in self.dataset_features:  # see policy_features
            raw[ft.STATE] = self._with_history(
                torch.zeros(*camera.shape[: camera.ndim - 3], 1, device=camera.device), 1
            )
        if isinstance(raw.get(ft.TASK), str):  # one instruction for the whole batch
            raw[ft.TASK] = [raw[ft.TASK]] * camera.shape[0]
        return raw

    def _with_history(self, value: torch.Tensor, feature_ndim: int) -> torch.Tensor:
        has_time_axis = value.ndim == feature_ndim + 2
        if self.observation_history and not has_time_axis:
            return value.unsqueeze(1)
        if not self.observation_history and has_time_axis and value.shape[1] == 1:
            return value[:, 0]
        return value

    def preprocess(self, batch: dict) -> dict:
        """Our batch -> what the policy consumes (renamed, tokenised, normalised, on our device)."""
        if self.policy is None:
            raise RuntimeError(
                f"{type(self).__name__} has no policy yet: call attach_dataset(features, stats) "
                "or load a checkpoint first (the policy is sized by the dataset)."
            )
        for i, step in enumerate(self.preprocessor.steps):
            if isinstance(step, lr.DeviceProcessorStep) and step.device != self.device.type:
                self.preprocessor.steps[i] = lr.DeviceProcessorStep(
                    device=str(self.device), float_dtype=step.float_dtype
                )
        return self.preprocessor(self._raw_policy_batch(batch))

    def _predict_processed(self, processed: dict) -> torch.Tensor:
        actions = self.postprocessor(self.policy.predict_action_chunk(processed))
        return actions.to(self.device)

    def predict_action_chunk(self, batch: dict) -> torch.Tensor:
        """`(B, chunk_size, A)` actions in dataset units."""
        return self._predict_processed(self.preprocess(batch))

    @property
    def mean_action(self) -> torch.Tensor:
        return ft.stats_tensor(self.dataset_stats, ft.ACTION, "mean")

    # ---- loss ------------------------------------------------------------------------------
    def model_step(self, batch: dict) -> StepOutput:
        processed = self.preprocess(batch)
        if self.loss_mode == "lerobot":
            loss, terms = lerobot_loss(self.policy, processed)
        else:
            loss, terms = self.masked_loss(processed)
        out = StepOutput(loss=loss, terms=terms)
        if not self.training:
            out.first_action_pred = self._predict_processed(processed)[:, 0]
            out.first_action_true = batch[ft.ACTION][:, self.current_action_index]
        return out

    # ---- checkpoints -------------------------------------------------------------------------
    def extra_checkpoint_payload(self) -> dict:
        if self.policy is None:
            return {}
        with tempfile.TemporaryDirectory() as tmp:
            self.policy.config._save_pretrained(Path(tmp))
            config_json = (Path(tmp) / "config.json").read_text()
        return {
            "policy_config": config_json,
            "processors": {
                "preprocessor": _steps_state(self.preprocessor),
                "postprocessor": _steps_state(self.postprocessor),
            },
        }

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        super().on_load_checkpoint(checkpoint)
        if self.policy is not None:  # resume inside train(): already built by attach_dataset
            return
        payload = checkpoint.get(CHECKPOINT_KEY, {})
        if "policy_config" not in payload:
            raise ValueError(
                f"This checkpoint has no '{CHECKPOINT_KEY}.policy_config': it was not saved by "
                f"{type(self).__name__} after attach_dataset, so the policy cannot be rebuilt."
            )
        config = decode_policy_config(payload["policy_config"])
        self._build(self.restore_config(config, payload), self.policy_class)
        _load_steps_state(self.preprocessor, payload["processors"]["preprocessor"])
        _load_steps_state(self.postprocessor, payload["processors"]["postprocessor"])


def _steps_state(pipeline) -> list[dict[str, torch.Tensor]]:
    """Each processor step's tensors (normaliser stats), on the CPU, in pipeline order."""
    return [{k: v.detach().cpu() for k, v in step.state_dict().items()} for step in pipeline.steps]


def _load_steps_state(pipeline, states: list[dict[str, torch.Tensor]]) -> None:
    if len(states) != len(pipeline.steps):
        raise ValueError(
            f"The checkpoint's processor has {len(states)} steps, the rebuilt one "
            f"{len(pipeline.steps)}: it was saved by another LeRobot version (need "
            f"{lr.LEROBOT_VERSION})."
        )
    for step, state in zip(pipeline.steps, states, strict=True):
        if state:
            step.load_state_dict(state)
