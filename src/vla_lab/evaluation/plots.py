"""Evaluation figures: predicted vs true actions over an episode, error along the predicted chunk,
and for driving models bird's-eye trajectories and error by horizon. Each is a matplotlib Figure
built without pyplot (no backend to switch, nothing to close: a notebook that imports this keeps
its inline figures) that `save_figures` writes as PNG and TensorBoard can take.
"""

from __future__ import annotations

from pathlib import Path

import torch
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from vla_lab.driving.metrics import horizon_steps
from vla_lab.evaluation.predictions import DrivingPredictions, SplitPredictions
from vla_lab.utils.io import atomic_write


def longest_episode(predictions: SplitPredictions) -> torch.Tensor:
    """Indices (in frame order) of the frames of the split's longest episode (first on ties).

    When every episode has a single frame (e.g. one sample per driving clip), all frames in split
    order: a line over samples then still shows how closely predictions follow the truth.
    """
    episodes, counts = predictions.episode_index.unique(return_counts=True)
    if counts.max() < 2:
        return torch.arange(len(predictions.episode_index))
    episode = episodes[counts.argmax()]
    frames = (predictions.episode_index == episode).nonzero().squeeze(-1)
    return frames[predictions.frame_index[frames].argsort()]


def actions_over_episode(predictions: SplitPredictions) -> Figure:
    """One panel per action dimension: predicted and true first action along the longest episode."""
    frames = longest_episode(predictions)
    names = predictions.action_names
    fig = Figure(figsize=(8, 2.2 * len(names)))
    axes = fig.subplots(len(names), 1, sharex=True, squeeze=False)
    single_episode = len(predictions.episode_index[frames].unique()) == 1
    x = predictions.frame_index[frames] if single_episode else torch.arange(len(frames))
    for dim, (ax, name) in enumerate(zip(axes[:, 0], names, strict=True)):
        ax.plot(x, predictions.first_true[frames, dim], label="true", color="black")
        ax.plot(x, predictions.first_pred[frames, dim], label="predicted", color="tab:blue")
        ax.set_ylabel(name)
        low, high = ax.get_ylim()
        if high - low < 1e-3:  # a constant dimension: no zoom into float noise
            ax.set_ylim(low - 0.5, high + 0.5)
    axes[0, 0].legend(loc="upper right")
    axes[-1, 0].xaxis.set_major_locator(MaxNLocator(integer=True))
    if single_episode:
        episode = int(predictions.episode_index[frames[0]])
        axes[0, 0].set_title(f"Predicted vs true action, episode {episode}")
        axes[-1, 0].set_xlabel("frame")
    else:
        axes[0, 0].set_title("Predicted vs true action, one sample per episode")
        axes[-1, 0].set_xlabel("sample")
    fig.tight_layout()
    return fig


def error_by_chunk_step(predictions: SplitPredictions) -> Figure:
    """MAE of each step of the predicted action chunk (step 0 is `val/mae`'s first action)."""
    fig = Figure(figsize=(6, 3.5))
    ax = fig.subplots()
    steps = torch.arange(len(predictions.chunk_error))
    ax.plot(steps, predictions.chunk_error, marker="o", label="model")
    baseline = (predictions.baseline - predictions.first_true).abs().mean().item()
    ax.axhline(baseline, color="gray", linestyle="--", label="mean action (step 0)")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("step of the predicted chunk")
    ax.set_ylabel("MAE (dataset units)")
    ax.set_title("Error along the action chunk")
    ax.legend()
    fig.tight_layout()
    return fig


def birds_eye_trajectories(driving: DrivingPredictions) -> Figure:
    """Predicted, true and constant-velocity trajectories of the first samples, ego frame at t0
    (x forward, y left; metres), one panel each."""
    n = len(driving.pred_xy)
    fig = Figure(figsize=(3.2 * n, 4))
    axes = fig.subplots(1, n, squeeze=False)
    series = (
        (driving.true_xy, "true", "black"),
        (driving.pred_xy, "predicted", "tab:blue"),
        (driving.baseline_xy, "constant velocity", "gray"),
    )
    for i, ax in enumerate(axes[0]):
        for xy, label, color in series:
            # Forward up and left to the left, as a driver sees the road.
            ax.plot(-xy[i, :, 1], xy[i, :, 0], label=label, color=color)
        ax.scatter([0.0], [0.0], marker="^", color="tab:red", zorder=3)
        ax.set_aspect("equal", adjustable="datalim")
        ax.set_title(f"sample {i}")
        ax.set_xlabel("-y (m, right)")
    axes[0, 0].set_ylabel("x (m, forward)")
    axes[0, 0].legend(loc="upper left", fontsize="small")
    fig.tight_layout()
    return fig


def error_by_horizon(driving: DrivingPredictions) -> Figure:
    """Mean displacement at each future time, and ADE over the first seconds (markers), for the
    model and the constant-velocity baseline."""
    fig = Figure(figsize=(6, 3.5))
    ax = fig.subplots()
    errors = driving.errors
    times = torch.arange(1, errors.step_error.shape[-1] + 1) * errors.dt
    curves = ((errors.step_error, "model", "tab:blue"), (errors.baseline_step_error, "CV", "gray"))
    horizons = errors.horizons_s()
    for step_error, label, color in curves:
        ax.plot(times, step_error.mean(0), color=color, label=f"{label}: error at t")
        ade = [step_error[:, : horizon_steps(s, errors.dt)].mean() for s in horizons]
        ax.plot(horizons, ade, "o--", color=color, label=f"{label}: ADE over [0, t]")
    ax.set_xlabel("horizon (s)")
    ax.set_ylabel("XY error (m)")
    ax.set_title("Error by horizon")
    ax.legend(fontsize="small")
    fig.tight_layout()
    return fig


def evaluation_figures(predictions: SplitPredictions) -> dict[str, Figure]:
    """The figures of one evaluation, by name (the PNG's stem and the TensorBoard tag)."""
    figures = {
        "actions_over_episode": actions_over_episode(predictions),
        "error_by_chunk_step": error_by_chunk_step(predictions),
    }
    if predictions.driving is not None:
        figures["trajectories_bev"] = birds_eye_trajectories(predictions.driving)
        figures["error_by_horizon"] = error_by_horizon(predictions.driving)
    return figures


def save_figures(figures: dict[str, Figure], folder: str | Path) -> list[Path]:
    """Write each figure as `<folder>/<name>.png` (atomically); the figures stay open."""
    return [
        atomic_write(Path(folder) / f"{name}.png", lambda tmp, f=fig: f.savefig(tmp, format="png"))
        for name, fig in figures.items()
    ]
