"""VLAModule: what every policy of the family shares (steps, metrics, optimizers, checkpoints).

A subclass declares the frames it needs (`observation_delta_indices`, `action_delta_indices`), the
features it consumes (`required_features`), what it can do beyond acting (`capabilities`, read by
runtime, evaluation and export, which never probe a model's methods or class), and implements
`model_step` and `predict_action_chunk`. Metrics and logging names are the same for every model:

- `train/loss`, `val/loss` and each loss term under `train/<term>`, `val/<term>`;
- `val/mae`: mean absolute error of the first predicted action, in dataset units;
- `val/baseline_mae`: the same for always predicting the train-split mean action;
- `val/action_type_acc` when the dataset has action classes;
- model-specific metrics a subclass returns in `StepOutput.metrics` (driving: `val/ade`, ...).
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass, field
from typing import ClassVar

import lightning.pytorch as pl
import torch
from hydra.utils import instantiate
from omegaconf import DictConfig
from torchmetrics import MeanMetric

from vla_lab.features import Feature, Stats, require_features
from vla_lab.models.finetune import count_parameters
from vla_lab.utils.logging import get_logger
from vla_lab.utils.moved import rewrite_moved_targets

log = get_logger(__name__)

CHECKPOINT_KEY = "vla_lab"
# Where in `checkpoint[CHECKPOINT_KEY]` the train loader's position within its epoch is kept.
LOADER_POSITION_KEY = "train_loader"
NONFINITE_POLICIES = ("stop", "skip")


class NonFiniteLossError(RuntimeError):
    """Training produced a NaN/inf loss: stop before the weights are saved, never train on it."""


@dataclass
class StepOutput:
    """What `model_step` hands to the shared training/validation logic.

    `first_action_pred`/`first_action_true` are (B, A) in dataset units: the action at the current
    frame (delta 0), predicted and true. `type_correct` is (N,) bool over the non-padded steps that
    carry an action class, or None. `metrics` are model-specific per-sample values (B,) that
    validation averages over the epoch under `val/<name>` (e.g. the driving model's ADE).
    """

    loss: torch.Tensor
    terms: dict[str, torch.Tensor] = field(default_factory=dict)
    first_action_pred: torch.Tensor | None = None
    first_action_true: torch.Tensor | None = None
    type_correct: torch.Tensor | None = None
    metrics: dict[str, torch.Tensor] = field(default_factory=dict)


@dataclass(frozen=True)
class Capabilities:
    """What a model class can do beyond `predict_action_chunk`, each with the methods it implies.

    - `trajectories`: a driving model; `predict_trajectory(batch)` and
      `sample_trajectories(batch, k)` return controls and the poses they drive, and evaluation
      reports ADE/FDE and minADE@K (`min_ade_samples`).
    - `feature_cache`: `encode(images, tasks)` gives per-frame features that do not depend on the
      other frames, and `predict_from_features(features)` the chunk from them, so a deployed
      Policy encodes only each new frame.
    - `export_formats`: what `python -m vla_lab.runtime.export format=...` writes for it:
      `lerobot` (a LeRobot policy directory), `torchscript` / `onnx` (`export_graph()`).
    - `graph_export_note`: why it has no graph export, when that needs saying (SmolVLA).
    - `observation_extras`: sample keys beyond cameras, state and task that it reads when it
      acts (the driving ego history), so a Policy and a simulated world can be checked to fit.
    """

    trajectories: bool = False
    feature_cache: bool = False
    export_formats: tuple[str, ...] = ()
    graph_export_note: str = ""
    observation_extras: tuple[str, ...] = ()


@dataclass
class GraphExport:
    """A module's control path as one fixed-shape graph (`VLAModule.export_graph`): the graph,
    its input and output names, a batch-of-one example drawn like real inputs, what the PyTorch
    module itself predicts for it (the reference the exported file is checked against), and the
    normalisation constants folded into the graph (recorded beside the file)."""

    graph: torch.nn.Module
    input_names: list[str]
    output_names: list[str]
    example_inputs: dict[str, torch.Tensor]
    reference_outputs: list[torch.Tensor]
    stats_used: dict[str, dict]


class CapabilityError(NotImplementedError):
    """A caller asked a model for something its class does not declare in `capabilities`."""


class VLAModule(pl.LightningModule):
    """Base LightningModule of every policy; see the module docstring for the contract."""

    required_features: list[str] = []
    capabilities: ClassVar[Capabilities] = Capabilities()

    def __init__(
        self,
        optimizer: DictConfig,
        scheduler: DictConfig | None = None,
        head_lr: float | None = None,
        backbone_attr: str = "backbone",
    ) -> None:
        super().__init__()
        self.optimizer_cfg = optimizer
        self.scheduler_cfg = scheduler
        self.head_lr = head_lr
        self.backbone_attr = backbone_attr
        self.dataset_features: dict[str, Feature] = {}
        self.dataset_stats: Stats = {}
        self.run_config: dict | None = None
        # The train loader's position read from the checkpoint being resumed (on_train_start).
        self.resumed_loader_position: dict | None = None
        # What to do with a NaN/inf training loss: "stop" (default) or "skip" the batch.
        # A run-level choice: train() sets it from the config's `nonfinite_loss`.
        self.nonfinite_loss = "stop"
        self.val_mae = MeanMetric()
        self.val_baseline_mae = MeanMetric()
        self.val_action_type_acc = MeanMetric()

    @classmethod
    def built_class(cls, model_cfg: DictConfig) -> type[VLAModule]:
        """The class `instantiate(model_cfg)` builds (targeting `cls`), to read its declared
        capabilities before paying for a build; a family that picks its class from the config
        (LeRobot's `policy_type`) says which."""
        return cls

    @classmethod
    def head_problem(cls, model_cfg: DictConfig) -> str | None:
        """Why `model_cfg.head` (the `head` group) cannot be this model's head, or None when it
        fits: checked at start-up, so `model=act head=lstm` fails naming both."""
        return None

    # ---- the contract subclasses implement -------------------------------------------------
    @property
    def observation_delta_indices(self) -> list[int]:
        raise NotImplementedError

    @property
    def action_delta_indices(self) -> list[int]:
        raise NotImplementedError

    def model_step(self, batch: dict) -> StepOutput:
        raise NotImplementedError

    def predict_action_chunk(self, batch: dict) -> torch.Tensor:
        """(B, T_act, A) actions in dataset units for a batch of observations."""
        raise NotImplementedError

    def set_normalization(self, stats: Stats) -> None:
        """Copy the dataset statistics the model normalises with into its buffers."""
        raise NotImplementedError

    @property
    def mean_action(self) -> torch.Tensor:
        """(A,) the train-split mean action: the trivial baseline of `val/baseline_mae`."""
        raise NotImplementedError

    # ---- optional, each behind a declared capability (`Capabilities`) ---------------------
    def _lacks(self, what: str) -> CapabilityError:
        return CapabilityError(f"{type(self).__name__} does not declare {what} in its capabilities")

    def predict_trajectory(self, batch: dict) -> dict[str, torch.Tensor]:
        """`capabilities.trajectories`: one sampled plan per frame (controls and poses)."""
        raise self._lacks("trajectories")

    def sample_trajectories(self, batch: dict, n_samples: int) -> dict[str, torch.Tensor]:
        """`capabilities.trajectories`: `n_samples` plans per frame, a sample axis after B."""
        raise self._lacks("trajectories")

    def encode(self, images: torch.Tensor, tasks: list[str]) -> torch.Tensor:
        """`capabilities.feature_cache`: per-frame features (B, W, F) of images (B, W, C, H, W)."""
        raise self._lacks("feature_cache")

    def predict_from_features(self, features: torch.Tensor) -> torch.Tensor:
        """`capabilities.feature_cache`: the chunk (B, T_act, A) from `encode`'s features."""
        raise self._lacks("feature_cache")

    def export_graph(self, seed: int = 0) -> GraphExport:
        """`torchscript`/`onnx` in `capabilities.export_formats`: the graph to export."""
        note = self.capabilities.graph_export_note
        raise CapabilityError(note or f"{type(self).__name__} has no torchscript/onnx export")

    # ---- wiring to the data ---------------------------------------------------------------
    def attach_dataset(self, features: dict[str, Feature], stats: Stats) -> None:
        """Check the dataset serves what the model needs, then take its train-split stats."""
        require_features(features, self.required_features, type(self).__name__)
        self.dataset_features = dict(features)
        self.dataset_stats = stats
        self.set_normalization(stats)

    def parameter_counts(self) -> dict[str, int]:
        counts = count_parameters(self)
        return {"params/total": counts["total"], "params/trainable": counts["trainable"]}

    # ---- Lightning steps -------------------------------------------------------------------
    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor | None:
        out = self.model_step(batch)
        if not torch.isfinite(out.loss):
            return self._on_nonfinite_loss(out.loss, batch_idx)
        batch_size = len(batch["task"])
        self.log("train/loss", out.loss, prog_bar=True, batch_size=batch_size)
        for name, value in out.terms.items():
            self.log(f"train/{name}", value, batch_size=batch_size)
        return out.loss

    def _on_nonfinite_loss(self, loss: torch.Tensor, batch_idx: int) -> None:
        """Skip the batch (no optimizer step: Lightning skips a step returning None) or stop."""
        where = f"global step {self.global_step} (epoch {self.current_epoch}, batch {batch_idx})"
        if self.nonfinite_loss == "skip":
            log.warning("Non-finite training loss %s at %s: batch skipped", loss.item(), where)
            return None
        last = getattr(self.trainer.checkpoint_callback, "last_model_path", "") or "none yet"
        raise NonFiniteLossError(
            f"Training loss is {loss.item()} at {where}; stopped before saving bad weights. "
            f"Last good checkpoint: {last}. Lower the learning rate or check the data, then "
            "resume with resume=auto; or set nonfinite_loss=skip to skip such batches "
            "(single-device runs only: under DDP every rank must take the same steps)."
        )

    def validation_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        out = self.model_step(batch)
        batch_size = len(batch["task"])
        self.log("val/loss", out.loss, prog_bar=True, batch_size=batch_size, sync_dist=True)
        for name, value in out.terms.items():
            self.log(f"val/{name}", value, batch_size=batch_size, sync_dist=True)
        if out.first_action_pred is not None:
            true = out.first_action_true
            self.val_mae.update((out.first_action_pred - true).abs().mean(-1))
            baseline = self.mean_action.to(true).expand_as(true)
            self.val_baseline_mae.update((baseline - true).abs().mean(-1))
            self.log("val/mae", self.val_mae, prog_bar=True, on_epoch=True)
            self.log("val/baseline_mae", self.val_baseline_mae, on_epoch=True)
        for name, values in out.metrics.items():
            self.log(f"val/{name}", values.float().mean(), batch_size=len(values), sync_dist=True)
        if out.type_correct is not None and out.type_correct.numel() > 0:
            self.val_action_type_acc.update(out.type_correct.float())
            self.log("val/action_type_acc", self.val_action_type_acc, on_epoch=True)
        return out.loss

    # ---- optimisation ----------------------------------------------------------------------
    def configure_optimizers(self) -> dict:
        """Optimizer and scheduler from their config partials, over the trainer's parameters.

        With `head_lr` set, non-backbone parameters (head, action token) form their own group.
        A scheduler taking `num_training_steps` (e.g. transformers' cosine) gets the run's length.
        """
        named = [(n, p) for n, p in self.trainer.model.named_parameters() if p.requires_grad]
        if self.head_lr is None:
            groups = [{"params": [p for _, p in named]}]
        else:
            prefix = f"{self.backbone_attr}."
            in_backbone = [p for n, p in named if n.startswith(prefix) or f".{prefix}" in n]
            others = [p for n, p in named if not (n.startswith(prefix) or f".{prefix}" in n)]
            groups = [{"params": in_backbone}, {"params": others, "lr": self.head_lr}]
            groups = [g for g in groups if g["params"]]
        optimizer = instantiate(self.optimizer_cfg)(params=groups)
        if not self.scheduler_cfg:
            return {"optimizer": optimizer}
        make_scheduler = instantiate(self.scheduler_cfg)
        extra = {}
        if "num_training_steps" in inspect.signature(make_scheduler).parameters:
            # Decaying schedules (cosine, linear) need the run's length; the trainer knows it.
            extra["num_training_steps"] = int(self.trainer.estimated_stepping_batches)
        scheduler = make_scheduler(optimizer=optimizer, **extra)
        return {
            "optimizer": optimizer,
            "lr_scheduler": {"scheduler": scheduler, "interval": "step", "frequency": 1},
        }

    # ---- self-contained checkpoints -----------------------------------------------------
    def on_save_checkpoint(self, checkpoint: dict) -> None:
        """Store what a checkpoint needs to be used alone: config, dataset features and stats;
        and, for a resume, where the train loader is within its epoch."""
        checkpoint[CHECKPOINT_KEY] = {
            "config": self.run_config,
            "features": {k: f.to_dict() for k, f in self.dataset_features.items()},
            "stats": self.dataset_stats,
            **self.extra_checkpoint_payload(),
        }
        loader = self.trainer.train_dataloader
        if callable(getattr(loader, "state_dict", None)):  # `vla_lab.data.resumable`
            checkpoint[CHECKPOINT_KEY][LOADER_POSITION_KEY] = loader.state_dict()

    def on_train_start(self) -> None:
        # Asking for estimated_stepping_batches in configure_optimizers makes Lightning (2.5)
        # build the train loader before it restores a checkpoint, and then it never hands the
        # loader its saved position; hand over the one this module saved, before the first
        # batch is drawn (`vla_lab.data.resumable`). Only when resuming: a module built from a
        # checkpoint and then trained afresh starts its epoch at the beginning.
        position, self.resumed_loader_position = self.resumed_loader_position, None
        loader = self.trainer.train_dataloader
        resuming = self.trainer.ckpt_path is not None
        if position is not None and resuming and callable(getattr(loader, "load_state_dict", None)):
            loader.load_state_dict(position)

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        self.resumed_loader_position = saved_loader_position(checkpoint)
        payload = checkpoint.get(CHECKPOINT_KEY, {})
        self.dataset_stats = payload.get("stats", self.dataset_stats)
        config = payload.get("config", self.run_config)
        # Saved again with the next checkpoint: with the current module paths.
        self.run_config = rewrite_moved_targets(config) if config else config
        if "features" in payload:  # what the model was trained on: deployment checks against it
            self.dataset_features = {
                key: Feature(f["dtype"], tuple(f["shape"]), tuple(f["names"] or ()) or None)
                for key, f in payload["features"].items()
            }

    def extra_checkpoint_payload(self) -> dict:
        """Model-specific files a checkpoint must carry (e.g. the backbone's tokenizer)."""
        return {}


def saved_loader_position(checkpoint: dict) -> dict | None:
    """The train loader's position saved in `checkpoint` (`VLAModule.on_save_checkpoint`).

    Checkpoints written before this module saved it have only Lightning's own copy, in its fit
    loop's state (`loops.fit_loop.state_dict.combined_loader`: one entry per train loader; the
    layout of Lightning 2.5, pinned by tests/test_crash_safety.py).
    """
    payload = checkpoint.get(CHECKPOINT_KEY) or {}
    if LOADER_POSITION_KEY in payload:
        return payload[LOADER_POSITION_KEY]
    fit_loop = (checkpoint.get("loops") or {}).get("fit_loop") or {}
    loaders = (fit_loop.get("state_dict") or {}).get("combined_loader") or []
    return loaders[0] if len(loaders) == 1 else None
