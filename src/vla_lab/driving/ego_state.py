"""The ego state a driving model reads beside the image: [v0, a0, kappa0] from the pose history.

One estimator for the dataset (`data.physical_ai_av.clips`) and the closed-loop world
(`sim.driving.env`), so a policy meets in simulation exactly the state it was trained on.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from vla_lab.driving.unicycle import UnicycleActionSpace

STATE_NAMES = ("v0", "a0", "kappa0")


def state_columns(names: Sequence[str], key: str) -> list[int]:
    """The columns of `ego_state` that `names` select; `key` names the setting in the error."""
    unknown = [name for name in names if name not in STATE_NAMES]
    if unknown or not names:
        raise ValueError(f"{key}={list(names)}: use a subset of {STATE_NAMES}")
    return [STATE_NAMES.index(name) for name in names]


def ego_state(
    hist_xyz: np.ndarray, hist_rot: np.ndarray, action_space: UnicycleActionSpace
) -> np.ndarray:
    """(n, 3) float32 [v0, a0, kappa0] of histories (n, H, 3) / (n, H, 3, 3) in the t0 frame:
    v0 from the action space's speed fit (the same v0 its ground truth uses), a0 and kappa0
    from `recent_accel_curvature`."""
    v0 = action_space.estimate_v0(torch.from_numpy(hist_xyz), torch.from_numpy(hist_rot))
    recent = recent_accel_curvature(hist_xyz, action_space.dt)
    return np.concatenate([v0.numpy()[:, None], recent], axis=1).astype(np.float32)


def recent_accel_curvature(hist_xyz: np.ndarray, dt: float, span: int = 5) -> np.ndarray:
    """(n, 2) acceleration and curvature over the last `span` history steps, by differences."""
    xy = hist_xyz[:, -(span + 2) :, :2].astype(np.float64)
    velocity = np.diff(xy, axis=1) / dt
    speed = np.linalg.norm(velocity, axis=-1)
    accel = (speed[:, -1] - speed[:, 0]) / ((speed.shape[1] - 1) * dt)
    heading = np.unwrap(np.arctan2(velocity[..., 1], velocity[..., 0]), axis=1)
    distance = speed[:, 1:].sum(1) * dt
    curvature = (heading[:, -1] - heading[:, 0]) / np.maximum(distance, 1e-3)
    return np.stack([accel, curvature], axis=1)
