"""NAVSIM's PDM score of a simulated drive, as pure maths on its states (no I/O, no world).

PDMS = NC * DAC * (5 TTC + 5 EP + 2 C) / 12 (NAVSIM v1, `unicycle.md`). Here, over a closed-loop
episode of states (x, y, yaw, v) at dt:

- NC, no at-fault collision: 0 if the ego footprint ever overlaps an obstacle's, else 1. (NAVSIM
  gives 0.5 for a static object; every obstacle of our worlds is in the ego's path, so any
  touch is the ego's fault and scores 0.)
- DAC, drivable-area compliance: 1 if all four ego corners stay on the road surface at every
  step.
- EP, ego progress: progress along the route over the expert's on the same episode, clipped to
  [0, 1]; 1 when the expert barely moves (under `min_progress_m`, as NAVSIM).
- TTC: 1 if at no step the ego, moving on at constant velocity, would hit an obstacle within
  `ttc_s` (0.9 s).
- C, comfort: `vla_lab.driving.metrics.comfort` (the NAVSIM/nuPlan bounds) on the driven states.
"""

from __future__ import annotations

import numpy as np
import torch

from vla_lab.driving.metrics import comfort

TTC_S = 0.9
MIN_PROGRESS_M = 5.0


def box_corners(
    x: np.ndarray, y: np.ndarray, yaw: np.ndarray, length_m: float, width_m: float, rear_m: float
) -> np.ndarray:
    """Footprint corners (..., 4, 2) of boxes at poses (...,) whose reference point (the rear
    axle) sits `rear_m` ahead of the back: rear right, front right, front left, rear left."""
    along = np.array([-rear_m, length_m - rear_m, length_m - rear_m, -rear_m])
    side = np.array([-width_m, -width_m, width_m, width_m]) / 2
    c, s = np.cos(yaw)[..., None], np.sin(yaw)[..., None]
    xs = np.asarray(x)[..., None] + c * along - s * side
    ys = np.asarray(y)[..., None] + s * along + c * side
    return np.stack([xs, ys], axis=-1)


def boxes_overlap(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(...,) bool: convex quadrilaterals a (..., 4, 2) and b (..., 4, 2) overlap (separating
    axis test on the edge normals of both)."""
    a, b = np.broadcast_arrays(np.asarray(a, float), np.asarray(b, float))
    edges = np.concatenate([np.roll(a, -1, -2) - a, np.roll(b, -1, -2) - b], axis=-2)
    normals = np.stack([-edges[..., 1], edges[..., 0]], axis=-1)  # (..., 8, 2)
    pa = np.einsum("...kd,...jd->...kj", normals, a)
    pb = np.einsum("...kd,...jd->...kj", normals, b)
    separated = (pa.max(-1) < pb.min(-1)) | (pb.max(-1) < pa.min(-1))
    return ~separated.any(-1)


def no_collision(ego_corners: np.ndarray, obstacle_corners: np.ndarray) -> float:
    """NC from ego footprints (T, 4, 2) and obstacle footprints (K, 4, 2)."""
    if len(obstacle_corners) == 0:
        return 1.0
    hit = boxes_overlap(ego_corners[:, None], obstacle_corners[None])
    return 0.0 if hit.any() else 1.0


def drivable_area_compliance(corner_offsets_m: np.ndarray, surface_m: tuple[float, float]) -> float:
    """DAC from the ego corners' lateral road offsets (T, 4) and the surface's (right, left)."""
    right, left = surface_m
    inside = (corner_offsets_m >= right) & (corner_offsets_m <= left)
    return 1.0 if inside.all() else 0.0


def ego_progress(progress_m: float, expert_progress_m: float) -> float:
    """EP: route progress over the expert's, in [0, 1]."""
    if expert_progress_m < MIN_PROGRESS_M:
        return 1.0
    return float(np.clip(progress_m / expert_progress_m, 0.0, 1.0))


def time_to_collision_ok(
    states: np.ndarray,
    obstacle_corners: np.ndarray,
    dims: tuple[float, float, float],
    dt: float,
    ttc_s: float = TTC_S,
) -> float:
    """TTC from states (T, 4) [x, y, yaw, v], obstacle footprints (K, 4, 2) and the ego's
    (length, width, rear overhang): 1 if no constant-velocity projection of the ego over the
    next `ttc_s` seconds (in steps of dt) meets an obstacle. Steps already in collision are NC's."""
    if len(obstacle_corners) == 0:
        return 1.0
    x, y, yaw, v = states.T
    horizon = np.arange(1, int(round(ttc_s / dt)) + 1) * dt
    px = x[:, None] + np.cos(yaw)[:, None] * v[:, None] * horizon
    py = y[:, None] + np.sin(yaw)[:, None] * v[:, None] * horizon
    ahead = box_corners(px, py, np.broadcast_to(yaw[:, None], px.shape), *dims)
    now = box_corners(x, y, yaw, *dims)
    colliding = boxes_overlap(now[:, None], obstacle_corners[None]).any(-1)
    soon = boxes_overlap(ahead[:, :, None], obstacle_corners[None, None]).any((-1, -2))
    return 0.0 if (soon & ~colliding).any() else 1.0


def comfort_ok(states: np.ndarray, dt: float) -> float:
    """C: 1 if every step of the driven states (T, 4) is inside every comfort bound."""
    xy = torch.from_numpy(np.ascontiguousarray(states[:, :2], dtype=np.float64))
    yaw = torch.from_numpy(np.ascontiguousarray(states[:, 2], dtype=np.float64))
    return float(comfort(xy, yaw, dt))


def pdms(nc: float, dac: float, ttc: float, ep: float, c: float) -> float:
    """NAVSIM v1: NC * DAC * (5 TTC + 5 EP + 2 C) / 12."""
    return nc * dac * (5 * ttc + 5 * ep + 2 * c) / 12
