"""Kosmos-2 + learnable action token + LSTM/MLP head: the RoboVLMs policy, for Mobile VLA.

Every frame of the history window is encoded as its own Kosmos-2 sequence (image, prompt, task,
action token); the action token's last hidden state is the frame's feature. The head turns the
window of features into a chunk of the next `chunk_size` actions at every window position, so one
window of W frames and W + chunk_size - 1 actions gives W training targets.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from hydra.utils import get_class, instantiate
from omegaconf import DictConfig
from torch import nn

from vla_lab import features as ft
from vla_lab.models.finetune import apply_finetune
from vla_lab.models.heads.output import HeadOutput
from vla_lab.models.kosmos_lstm_graph import kosmos_lstm_graph_export
from vla_lab.models.module import Capabilities, GraphExport, StepOutput, VLAModule


class KosmosLSTMPolicy(VLAModule):
    """Predicts `(B, chunk_size, A)` velocities from a window of `window_size` frames and a task.

    Actions are normalised to [-1, 1] with the train split's min/max (the head ends in tanh);
    the loss is Huber on normalised actions (+ weighted cross-entropy on the action class when
    the dataset has one), masked where the target step or its observation is padding.
    """

    # Each frame is encoded on its own, so a deployed Policy encodes only the new frame.
    capabilities = Capabilities(feature_cache=True, export_formats=("torchscript", "onnx"))

    @classmethod
    def head_problem(cls, model_cfg: DictConfig) -> str | None:
        """The head group must build an action head module (`head=lstm`, `head=mlp`)."""
        target = (model_cfg.get("head") or {}).get("_target_")
        if target and issubclass(get_class(str(target)), nn.Module):
            return None
        return (
            "it builds its action head from a `_target_` module (head=lstm or head=mlp); this head "
            f"group {'builds ' + str(target) if target else 'is a list of LeRobot policy fields'}"
        )

    def __init__(
        self,
        backbone: DictConfig,
        head: DictConfig,
        finetune: DictConfig,
        optimizer: DictConfig,
        scheduler: DictConfig | None = None,
        head_lr: float | None = None,
        camera: str = "front",
        window_size: int = 8,
        chunk_size: int = 10,
        action_dim: int = 3,
        num_action_types: int = 4,
        action_type_weight: float = 0.1,
        huber_delta: float = 1.0,
    ) -> None:
        super().__init__(optimizer=optimizer, scheduler=scheduler, head_lr=head_lr)
        self.save_hyperparameters(logger=False)
        self.image_key = ft.image_key(camera)
        self.window_size = window_size
        self.chunk_size = chunk_size
        self.action_type_weight = action_type_weight
        self.huber_delta = huber_delta

        # The head's initialisation must not depend on how many random numbers a transformers
        # release draws while loading the backbone (4.57 and 5.x differ): load it on a fork.
        with torch.random.fork_rng(devices=[]):
            self.backbone = instantiate(backbone)
        hidden = self.backbone.hidden_size
        self.action_token = nn.Parameter(torch.zeros(hidden))
        self.head = instantiate(
            head,
            in_features=hidden,
            chunk_size=chunk_size,
            action_dim=action_dim,
            num_action_types=num_action_types,
        )
        self.register_buffer("action_min", -torch.ones(action_dim))
        self.register_buffer("action_max", torch.ones(action_dim))
        self.register_buffer("action_mean", torch.zeros(action_dim))
        self.finetune_counts = apply_finetune(self, backbone_attr="backbone", **finetune)
        self.train()  # from_pretrained leaves the HF model in eval mode (dropout off)

    @property
    def required_features(self) -> list[str]:
        return [self.image_key, ft.ACTION, ft.TASK]

    @property
    def observation_delta_indices(self) -> list[int]:
        return list(range(1 - self.window_size, 1))

    @property
    def action_delta_indices(self) -> list[int]:
        return list(range(1 - self.window_size, self.chunk_size))

    # ---- normalisation ---------------------------------------------------------------------
    def set_normalization(self, stats: ft.Stats) -> None:
        action_dim = self.action_mean.numel()
        for buffer, name in ((self.action_min, "min"), (self.action_max, "max")):
            value = ft.stats_tensor(stats, ft.ACTION, name)
            if value.shape != (action_dim,):
                raise ValueError(
                    f"dataset action stats have {value.numel()} dims but model.action_dim="
                    f"{action_dim}; set model.action_dim to match data.source.action_names"
                )
            buffer.copy_(value)
        self.action_mean.copy_(ft.stats_tensor(stats, ft.ACTION, "mean"))

    @property
    def mean_action(self) -> torch.Tensor:
        return self.action_mean

    def _half_range(self) -> torch.Tensor:
        # A dimension that never varies in the train split (e.g. angular_z always 0) maps to 0.
        return ((self.action_max - self.action_min) / 2).clamp(min=1e-6)

    def normalize_action(self, action: torch.Tensor) -> torch.Tensor:
        center = (self.action_max + self.action_min) / 2
        return ((action - center) / self._half_range()).clamp(-1.0, 1.0)

    def unnormalize_action(self, action: torch.Tensor) -> torch.Tensor:
        center = (self.action_max + self.action_min) / 2
        return action * self._half_range() + center

    # ---- forward ---------------------------------------------------------------------------
    def encode(self, images: torch.Tensor, tasks: list[str]) -> torch.Tensor:
        """Frame features `(B, W, hidden)` from images `(B, W, 3, H, W)` in [0, 1] and B tasks."""
        batch_size, window = images.shape[:2]
        text = self.backbone.tokenize(list(tasks))
        text = {k: v.to(self.device).repeat_interleave(window, dim=0) for k, v in text.items()}
        features = self.backbone(images.flatten(0, 1), text, self.action_token)
        return features.view(batch_size, window, -1)

    def forward(self, batch: dict) -> HeadOutput:
        images = batch[self.image_key]
        if images.ndim == 4:  # a single frame per sample: a window of 1
            images = images.unsqueeze(1)
        return self.head(self.encode(images, batch[ft.TASK]))

    def predict_action_chunk(self, batch: dict) -> torch.Tensor:
        """`(B, chunk_size, A)` in dataset units: the chunk predicted at the newest frame."""
        return self.newest_chunk(self(batch))

    def newest_chunk(self, out: HeadOutput) -> torch.Tensor:
        """The head's chunk at the newest window position, in dataset units."""
        return self.unnormalize_action(out.actions[:, -1])

    def predict_from_features(self, features: torch.Tensor) -> torch.Tensor:
        """`predict_action_chunk` from the window's frame features `(B, W, hidden)` (`encode`).

        Each frame is encoded on its own (its image, the task, the action token), so a deployed
        policy can keep the features of the frames it has seen and encode only the new one
        (`vla_lab.runtime.Policy` does), instead of the whole window at every step.
        """
        return self.newest_chunk(self.head(features))

    def export_graph(self, seed: int = 0) -> GraphExport:
        """The control head (the backbone stays in PyTorch): `kosmos_lstm_graph`."""
        return kosmos_lstm_graph_export(self, seed)

    # ---- loss ------------------------------------------------------------------------------
    def model_step(self, batch: dict) -> StepOutput:
        out = self(batch)
        window, chunk = self.window_size, self.chunk_size
        actions = batch[ft.ACTION]
        expected = window + chunk - 1
        if actions.shape[1] != expected:
            raise ValueError(
                f"batch['action'] has {actions.shape[1]} steps; window {window} + chunk {chunk}"
                f" - 1 = {expected} expected (the datamodule must use model.action_delta_indices)"
            )
        targets = window_chunks(self.normalize_action(actions), chunk)
        valid = ~window_chunks(batch[ft.ACTION_IS_PAD], chunk)
        obs_pad = batch.get(ft.is_pad_key(self.image_key))
        if obs_pad is not None:
            valid = valid & ~obs_pad[:, :, None]

        huber = F.huber_loss(out.actions, targets, delta=self.huber_delta, reduction="none")
        action_loss = _masked_mean(huber.mean(-1), valid)
        terms = {"action_loss": action_loss}
        loss = action_loss
        type_correct = None
        if out.type_logits is not None and ft.ACTION_TYPE in batch:
            types = window_chunks(batch[ft.ACTION_TYPE], chunk)
            known = valid & (types >= 0)
            if known.any():
                type_loss = F.cross_entropy(out.type_logits[known], types[known])
                terms["action_type_loss"] = type_loss
                loss = loss + self.action_type_weight * type_loss
                now = known[:, -1, 0]
                predicted = out.type_logits[:, -1, 0].argmax(-1)
                type_correct = (predicted == types[:, -1, 0])[now]

        return StepOutput(
            loss=loss,
            terms=terms,
            first_action_pred=self.unnormalize_action(out.actions[:, -1, 0]).detach(),
            first_action_true=actions[:, window - 1],
            type_correct=type_correct,
        )

    def extra_checkpoint_payload(self) -> dict:
        return {"backbone_files": self.backbone.export_files()}


def window_chunks(sequence: torch.Tensor, chunk_size: int) -> torch.Tensor:
    """`(B, W + n - 1, ...)` -> `(B, W, n, ...)`: the n steps each window position predicts.

    Position p's chunk is steps p .. p + n - 1 of the sequence, which starts at delta 1 - W.
    """
    chunks = sequence.unfold(1, chunk_size, 1)  # (B, W, ..., n)
    return chunks.movedim(-1, 2)


def _masked_mean(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    return (values * mask).sum() / mask.sum().clamp(min=1)
