"""The road of the driving world: a two-lane road fixed in world coordinates, and boxes on it.

The road is its reference line, the centre of lane 0, given by arc length s: straight stretches
and constant-curvature arcs of 15-50 m blended over ~12 m, so the curvature a few seconds ahead
shows in the image but cannot be predicted from the motion so far. Lane k's centre lies
`k * LANE_WIDTH_M` to the left of the reference line (lane 0 is the right lane, lane 1 the left,
as on a road driven on the right). A point is placed on the road by Frenet coordinates (s, d):
arc length and signed offset to the left of the reference line.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from vla_lab.driving.pdms import box_corners

LANE_WIDTH_M = 3.6
LANE_HALF_WIDTH_M = LANE_WIDTH_M / 2
N_LANES = 2
SHOULDER_M = 0.7  # paved beyond the outer lane lines: part of the drivable surface
ROAD_STEP_M = 0.1
_BLEND_M = 12.0


@dataclass(frozen=True)
class Road:
    """The reference line sampled every `ROAD_STEP_M` m from s = 0; phases place painted marks."""

    s: np.ndarray
    x: np.ndarray
    y: np.ndarray
    theta: np.ndarray
    kappa: np.ndarray
    dash_phase: float
    post_phase: float

    @classmethod
    def draw(
        cls,
        rng: np.random.Generator,
        length_m: float,
        max_curvature: float,
        straight_share: float = 0.3,
        first_curved_at_m: float | None = None,
    ) -> Road:
        """A random road `length_m` long with |kappa| <= `max_curvature` on the reference line.

        `straight_share` of the segments are straight (0 with `max_curvature` 0 gives a straight
        road); `first_curved_at_m` forces a curved segment to start there, so a scenario that is
        about curves meets one early.
        """
        s = np.arange(0.0, length_m + ROAD_STEP_M, ROAD_STEP_M)
        starts, values, pos = [], [], -rng.uniform(0, 30)  # the road starts mid-segment
        while pos <= length_m + 10:
            curved = rng.random() >= straight_share
            if first_curved_at_m is not None and pos <= first_curved_at_m:
                curved = pos + 50 > first_curved_at_m
            side = rng.choice([-1.0, 1.0])
            starts.append(pos)
            values.append(side * rng.uniform(0.4, 1.0) * max_curvature if curved else 0.0)
            pos += rng.uniform(15.0, 50.0)
        steps = np.asarray(values)[np.searchsorted(starts, s, side="right") - 1]
        window = np.hanning(round(_BLEND_M / ROAD_STEP_M))
        half = len(window) // 2
        padded = np.pad(steps, (half, len(window) - 1 - half), mode="edge")
        kappa = np.convolve(padded, window / window.sum(), mode="valid")  # a blend: |kappa| kept
        theta = _cumtrapz(kappa, ROAD_STEP_M)
        x = _cumtrapz(np.cos(theta), ROAD_STEP_M)
        y = _cumtrapz(np.sin(theta), ROAD_STEP_M)
        phases = rng.uniform(0, 1, 2) * (8.0, 12.0)
        return cls(s, x, y, theta, kappa, float(phases[0]), float(phases[1]))

    @property
    def length_m(self) -> float:
        return float(self.s[-1])

    def at(self, s: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Reference-line x, y, heading and curvature at arc lengths `s` (interpolated)."""
        return tuple(np.interp(s, self.s, v) for v in (self.x, self.y, self.theta, self.kappa))

    def pose(self, s: np.ndarray, d: np.ndarray | float) -> tuple[np.ndarray, ...]:
        """World x, y and heading of the point `d` m left of the reference line at `s`."""
        x, y, theta, _ = self.at(s)
        return x - d * np.sin(theta), y + d * np.cos(theta), theta

    def frenet(self, x: np.ndarray, y: np.ndarray, s_hint: float) -> tuple[np.ndarray, np.ndarray]:
        """(s, d) of world points near arc length `s_hint` (within 40 m of it along the road).

        The window keeps a bend that brings the road back near itself from being mistaken for
        the stretch the car is on.
        """
        x, y = np.asarray(x, float), np.asarray(y, float)
        lo = max(0, int((s_hint - 40.0) / ROAD_STEP_M))
        hi = min(len(self.s), int((s_hint + 40.0) / ROAD_STEP_M) + 1)
        dx = x[..., None] - self.x[lo:hi]
        dy = y[..., None] - self.y[lo:hi]
        i = lo + np.argmin(dx * dx + dy * dy, axis=-1)
        theta = self.theta[i]
        ex, ey = x - self.x[i], y - self.y[i]
        along = ex * np.cos(theta) + ey * np.sin(theta)
        return self.s[i] + along, -ex * np.sin(theta) + ey * np.cos(theta)

    @staticmethod
    def lane_centre(lane: int) -> float:
        """Offset d (m) of lane `lane`'s centre from the reference line."""
        return lane * LANE_WIDTH_M

    @staticmethod
    def surface_m() -> tuple[float, float]:
        """(right, left) edges of the paved surface as offsets d from the reference line."""
        return -LANE_HALF_WIDTH_M - SHOULDER_M, (N_LANES - 0.5) * LANE_WIDTH_M + SHOULDER_M


@dataclass(frozen=True)
class Box:
    """A box standing on the road (a vehicle): rear-axle pose, size, and how far the body
    reaches behind the pose point (`rear_m`); world frame, metres and radians."""

    x: float
    y: float
    yaw: float
    length_m: float
    width_m: float
    height_m: float
    rear_m: float

    def corners(self) -> np.ndarray:
        """(4, 2) footprint corners: rear right, front right, front left, rear left."""
        return box_corners(np.array(self.x), np.array(self.y), np.array(self.yaw), *self.footprint)

    @property
    def footprint(self) -> tuple[float, float, float]:
        """(length, width, rear overhang), as `vla_lab.driving.pdms` takes them."""
        return self.length_m, self.width_m, self.rear_m


def _cumtrapz(values: np.ndarray, step: float) -> np.ndarray:
    return np.concatenate([[0.0], np.cumsum((values[1:] + values[:-1]) * step / 2)])
