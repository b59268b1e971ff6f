"""LeRobotPolicyModule: a LeRobot policy, its processors and our loss modes as a VLAModule.

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

import tempfile
from pathlib import Path

import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf

from vla_lab import features as ft
from vla_lab import lerobot_api as lr
from vla_lab.models.lerobot_config import decode_policy_config, read_policy_config
from vla_lab.models.lerobot_loss import check_loss_mode, lerobot_loss
from vla_lab.models.module import CHECKPOINT_KEY, StepOutput, VLAModule
from vla_lab.utils.logging import get_logger

log = get_logger(__name__)


def plain_dict(node) -> dict:
    """A config node (DictConfig or dict) as a plain dict, interpolations resolved."""
    if isinstance(node, DictConfig):
        return dict(OmegaConf.to_container(node, resolve=True))
    return dict(node)


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
        is_camera = key.startswith(ft.IMAGE_PREFIX)
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
    """Base of the LeRobot-policy modules; subclasses say how to make and restore the policy.

    Subclass hooks: `policy_class`, `make_config(inputs, outputs)` (a fresh policy config, or
    `pretrained_config()`'s when `backbone.pretrained_policy` is set), `make_policy(config)`,
    `restore_config(config, payload)` (offline rebuild from a checkpoint), `masked_loss(batch)`
    and `apply_finetune()`.
    """

    policy_class: type = object

    def __init__(
        self,
        backbone: DictConfig,
        head: DictConfig,
        finetune: DictConfig,
        optimizer,
        scheduler=None,
        head_lr: float | None = None,
        backbone_attr: str = "backbone",
        chunk_size: int = 50,
        loss: str = "masked",
        rename_map: dict[str, str] | None = None,
        use_imagenet_stats: bool = True,
    ) -> None:
        super().__init__(optimizer, scheduler, head_lr, backbone_attr)
        self.backbone_cfg = plain_dict(backbone)
        self.head_cfg = plain_dict(head)
        self.finetune_cfg = plain_dict(finetune)
        self.chunk_size = chunk_size
        self.loss_mode = check_loss_mode(loss)
        self.rename_map = {str(k): str(v) for k, v in (rename_map or {}).items()}
        self.use_imagenet_stats = use_imagenet_stats
        self.policy = None
        self.preprocessor = None
        self.postprocessor = None

    required_features = [ft.ACTION]

    @property
    def observation_delta_indices(self) -> list[int]:
        return [0]

    @property
    def action_delta_indices(self) -> list[int]:
        return list(range(self.chunk_size))

    # ---- subclass hooks ----------------------------------------------------------------------
    def make_config(self, inputs: dict, outputs: dict):
        raise NotImplementedError

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
        """A checkpoint's policy config, adjusted to build offline (weights: the state_dict)."""
        return config

    def masked_loss(self, batch: dict) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        raise NotImplementedError

    def apply_finetune(self) -> None:
        raise NotImplementedError

    # ---- building ----------------------------------------------------------------------------
    def set_normalization(self, stats: ft.Stats) -> None:
        """Nothing to copy: normalisation lives in LeRobot's processors, built with the policy."""

    def attach_dataset(self, features: dict[str, ft.Feature], stats: ft.Stats) -> None:
        super().attach_dataset(features, stats)
        if self.policy is None:  # resume: train() attaches again before restoring the weights
            inputs, outputs = policy_features(self.dataset_features, self.rename_map)
            config = self.make_config(inputs, outputs)
            self._check_cameras(config)  # before make_policy, which may load pretrained weights
            self._build(self.make_policy(config))

    @property
    def camera_keys(self) -> list[str]:
        """The dataset's camera keys (before renaming)."""
        return ft.image_keys(self.dataset_features)

    def _check_cameras(self, config) -> None:
        check_cameras(self.camera_keys, self.rename_map, list(config.image_features))

    def _build(self, policy) -> None:
        self._check_cameras(policy.config)
        input_keys = [*self.camera_keys, ft.STATE, ft.ACTION]
        stats = lerobot_stats(
            self.dataset_stats, input_keys, self.rename_map, self.use_imagenet_stats
        )
        self.policy = policy
        self.preprocessor, self.postprocessor = lr.make_pre_post_processors(
            policy.config, dataset_stats=stats
        )
        for step in self.preprocessor.steps:
            if isinstance(step, lr.RenameObservationsProcessorStep):
                step.rename_map = dict(self.rename_map)
        self.apply_finetune()

    # ---- batches through the processors -----------------------------------------------------
    def _raw_policy_batch(self, batch: dict) -> dict:
        """The sample keys LeRobot's processors take; a length-1 observation history dropped."""
        keep = [*self.camera_keys, ft.STATE, ft.ACTION, ft.ACTION_IS_PAD, ft.TASK]
        raw = {}
        for key in keep:
            if key not in batch:
                continue
            value = batch[key]
            feature = self.dataset_features.get(key)
            if key != ft.ACTION and feature is not None and torch.is_tensor(value):
                if value.ndim == len(feature.shape) + 2 and value.shape[1] == 1:
                    value = value[:, 0]
            raw[key] = value
        camera = next(v for k, v in raw.items() if k.startswith(ft.IMAGE_PREFIX))
        if ft.STATE not in self.dataset_features:  # see policy_features
            raw[ft.STATE] = torch.zeros(camera.shape[0], 1, device=camera.device)
        if isinstance(raw.get(ft.TASK), str):  # one instruction for the whole batch
            raw[ft.TASK] = [raw[ft.TASK]] * camera.shape[0]
        return raw

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
            out.first_action_true = batch[ft.ACTION][:, 0]
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
        self._build(self.policy_class(self.restore_config(config, payload)))
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
