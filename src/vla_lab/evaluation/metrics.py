"""Evaluation metrics from a split's predictions: per-dimension MAE and, for driving, ADE/FDE by
horizon, minADE/minFDE over K samples and the comfort rate. Names follow training's
(`val/<name>`), so runs and evaluations line up in one table.
"""

from __future__ import annotations

from vla_lab.evaluation.predictions import DrivingPredictions, SplitPredictions


def action_metrics(predictions: SplitPredictions) -> dict[str, float]:
    """`val/mae`, `val/baseline_mae` and `val/mae_<dim>` for each action dimension.

    The MAE of each dimension over all frames; `val/mae` is their mean, as in training.
    """
    error = (predictions.first_pred - predictions.first_true).abs()
    baseline = (
        predictions.baseline.expand_as(predictions.first_true) - predictions.first_true
    ).abs()
    metrics = {"val/mae": error.mean().item(), "val/baseline_mae": baseline.mean().item()}
    for name, value in zip(predictions.action_names, error.mean(0).tolist(), strict=True):
        metrics[f"val/mae_{name}"] = value
    return metrics


def driving_metrics(driving: DrivingPredictions) -> dict[str, float]:
    """ADE/FDE overall and at each horizon (`val/ade_<s>s`, `val/fde_<s>s`) of one sampled
    trajectory per frame, the same for the constant-velocity baseline (`val/baseline_ade...`),
    `val/min_ade@K`/`val/min_fde@K` of the best of K samples by ADE (AR1's minADE6 is
    `val/min_ade@6`, never `val/ade`), and `val/comfort` (rate in [0, 1]): the per-frame values
    validation logs (`FrameErrors.per_frame`), averaged over the split."""
    per_frame = driving.errors.per_frame(horizons=True)
    return {f"val/{name}": values.mean().item() for name, values in per_frame.items()}


def prediction_metrics(predictions: SplitPredictions) -> dict[str, float]:
    """All metrics of `predictions`: the action metrics, plus driving metrics for driving models."""
    metrics = action_metrics(predictions)
    if predictions.driving is not None:
        metrics.update(driving_metrics(predictions.driving))
    return metrics
