"""A model's predictions over a whole split, kept per frame: what evaluation metrics and plots read.

One pass over the split through the same agent interface deployment uses (`predict_action_chunk`;
for driving models `sample_trajectories`, K samples per frame drawn as `predict_trajectory` draws
one), so the numbers describe the policy a user runs.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

import torch
from lightning.fabric.utilities.apply_func import move_data_to_device
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from vla_lab import features as ft
from vla_lab.driving.metrics import FrameErrors
from vla_lab.driving.unicycle import yaw_from_rot
from vla_lab.features import FUTURE_XYZ
from vla_lab.models.module import VLAModule

# Bird's-eye plots show this many samples: only their trajectories are kept, of all others errors.
KEPT_TRAJECTORIES = 4
ERROR_FIELDS = ("step_error", "baseline_step_error", "comfort", "min_ade", "min_fde")


@dataclass
class DrivingPredictions:
    """A driving model's per-frame errors (`driving.metrics.FrameErrors`, as validation computes
    them) and, for plots, the first frames' trajectories `pred_xy`/`true_xy`/`baseline_xy`
    (KEPT_TRAJECTORIES, T, 2) in the ego frame at t0 (m)."""

    errors: FrameErrors
    pred_xy: torch.Tensor
    true_xy: torch.Tensor
    baseline_xy: torch.Tensor


@dataclass
class SplitPredictions:
    """The first action (delta 0) predicted and true per frame, with where each frame comes from.

    `first_pred`/`first_true` (N, A) in dataset units (driving: normalised controls);
    `chunk_error` (T_chunk,) mean absolute error at each step of the predicted chunk over the
    non-padded steps; `baseline` (A,) the train-split mean action.
    """

    episode_index: torch.Tensor
    frame_index: torch.Tensor
    first_pred: torch.Tensor
    first_true: torch.Tensor
    baseline: torch.Tensor
    chunk_error: torch.Tensor
    action_names: list[str] = field(default_factory=list)
    driving: DrivingPredictions | None = None


def action_names(module: VLAModule, action_dim: int) -> list[str]:
    """The dataset's names of the action dimensions, else their indices ("0", "1", ...)."""
    feature = module.dataset_features.get(ft.ACTION)
    names = list(feature.names or ()) if feature is not None else []
    if len(names) != action_dim:
        names = [str(i) for i in range(action_dim)]
    return names


@torch.no_grad()
def collect_predictions(
    module: VLAModule,
    loader: DataLoader,
    device: torch.device | str = "cpu",
    max_batches: int | None = None,
) -> SplitPredictions:
    """Run `module` over the batches of `loader` (the first `max_batches`, or all) and keep what
    evaluation needs, per frame."""
    module = module.to(device).eval()
    now = module.action_delta_indices.index(0)
    is_driving = module.capabilities.trajectories
    columns: dict[str, list[torch.Tensor]] = {}
    chunk_error_sum: torch.Tensor | None = None
    chunk_count: torch.Tensor | None = None

    def keep(name: str, value: torch.Tensor) -> None:
        columns.setdefault(name, []).append(value.detach().float().cpu())

    total = len(loader) if max_batches is None else min(max_batches, len(loader))
    batches = itertools.islice(loader, total)
    for batch in tqdm(batches, total=total, desc="Predicting", leave=False):
        batch = move_data_to_device(batch, device)
        if is_driving:
            samples = module.sample_trajectories(batch, module.min_ade_samples)
            chunk = samples["action"][:, 0]
            _keep_driving(module, batch, samples, keep)
        else:
            chunk = module.predict_action_chunk(batch)
        true = batch[ft.ACTION][:, now : now + chunk.shape[1]]
        valid = ~batch[ft.ACTION_IS_PAD][:, now : now + chunk.shape[1]]
        error = (chunk[:, : true.shape[1]] - true).abs().mean(-1) * valid
        step_sum, step_count = error.sum(0).cpu(), valid.sum(0).cpu()
        chunk_error_sum = step_sum if chunk_error_sum is None else chunk_error_sum + step_sum
        chunk_count = step_count if chunk_count is None else chunk_count + step_count
        keep("episode_index", batch[ft.EPISODE_INDEX])
        keep("frame_index", batch[ft.FRAME_INDEX])
        keep("first_pred", chunk[:, 0])
        keep("first_true", batch[ft.ACTION][:, now])
    if not columns:
        raise ValueError("the split has no samples to evaluate: check data.split and the dataset")
    merged = {name: torch.cat(values) for name, values in columns.items()}
    first_pred = merged["first_pred"]
    return SplitPredictions(
        episode_index=merged["episode_index"].long(),
        frame_index=merged["frame_index"].long(),
        first_pred=first_pred,
        first_true=merged["first_true"],
        baseline=module.mean_action.detach().float().cpu(),
        chunk_error=chunk_error_sum / chunk_count.clamp(min=1),
        action_names=action_names(module, first_pred.shape[-1]),
        driving=_driving(module, merged) if is_driving else None,
    )


def _keep_driving(module, batch: dict, samples: dict, keep) -> None:
    """The frame errors of the samples, and the first sample's trajectory for plots."""
    true_xy = batch[FUTURE_XYZ][..., :2]
    baseline_xy = module.baseline_trajectory(batch)[..., :2]
    first_yaw = yaw_from_rot(samples["future_rot"][:, 0])
    dt = module.action_space.dt
    errors = FrameErrors.of(samples["future_xyz"], first_yaw, true_xy, baseline_xy, dt)
    for name in ERROR_FIELDS:
        keep(name, getattr(errors, name))
    keep("pred_xy", samples["future_xyz"][:KEPT_TRAJECTORIES, 0, :, :2])
    keep("true_xy", true_xy[:KEPT_TRAJECTORIES])
    keep("baseline_xy", baseline_xy[:KEPT_TRAJECTORIES])


def _driving(module, merged: dict[str, torch.Tensor]) -> DrivingPredictions:
    errors = {name: merged[name] for name in ERROR_FIELDS}
    errors["comfort"] = errors["comfort"].bool()
    return DrivingPredictions(
        errors=FrameErrors(float(module.action_space.dt), module.min_ade_samples, **errors),
        pred_xy=merged["pred_xy"][:KEPT_TRAJECTORIES],
        true_xy=merged["true_xy"][:KEPT_TRAJECTORIES],
        baseline_xy=merged["baseline_xy"][:KEPT_TRAJECTORIES],
    )
