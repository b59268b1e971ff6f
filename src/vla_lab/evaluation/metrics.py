"""Evaluation metrics from a split's predictions: per-dimension MAE and, for driving, ADE/FDE by
horizon, minADE/minFDE over K samples and the comfort rate. Names follow training's
(`val/<name>`), so runs and evaluations line up in one table.
"""

from __future__ import annotations

from vla_lab.driving.metrics import HORIZONS_S, horizon_steps
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


def horizons_s(driving: DrivingPredictions) -> list[float]:
    """The horizons reported (s): `HORIZONS_S` within the prediction, and the full horizon
    (6.4 s for 64 steps at 10 Hz) from the model's own length."""
    full = round(driving.step_error.shape[-1] * driving.dt, 6)
    return [s for s in HORIZONS_S if s < full] + [full]


def driving_metrics(driving: DrivingPredictions) -> dict[str, float]:
    """ADE/FDE overall and at each horizon (`val/ade_<s>s`, `val/fde_<s>s`) of one sampled
    trajectory per frame, the same for the constant-velocity baseline (`val/baseline_ade...`),
    `val/min_ade@K`/`val/min_fde@K` of the best of K samples by ADE (AR1's minADE6 is
    `val/min_ade@6`, never `val/ade`), and `val/comfort` (rate in [0, 1])."""
    metrics: dict[str, float] = {}
    errors = {"": driving.step_error, "baseline_": driving.baseline_step_error}
    for prefix, step_error in errors.items():
        metrics[f"val/{prefix}ade"] = step_error.mean().item()
        metrics[f"val/{prefix}fde"] = step_error[:, -1].mean().item()
        for seconds in horizons_s(driving):
            steps = horizon_steps(seconds, driving.dt)
            metrics[f"val/{prefix}ade_{seconds:g}s"] = step_error[:, :steps].mean().item()
            metrics[f"val/{prefix}fde_{seconds:g}s"] = step_error[:, steps - 1].mean().item()
    metrics[f"val/min_ade@{driving.n_samples}"] = driving.min_ade.mean().item()
    metrics[f"val/min_fde@{driving.n_samples}"] = driving.min_fde.mean().item()
    metrics["val/comfort"] = driving.comfort.float().mean().item()
    return metrics


def prediction_metrics(predictions: SplitPredictions) -> dict[str, float]:
    """All metrics of `predictions`: the action metrics, plus driving metrics for driving models."""
    metrics = action_metrics(predictions)
    if predictions.driving is not None:
        metrics.update(driving_metrics(predictions.driving))
    return metrics
