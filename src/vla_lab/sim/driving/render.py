"""What the front wide camera sees from wherever the car is: the road, its marks, and boxes.

The view is rendered from the car's own pose (x, y, yaw), not from a lane centre, so a policy
sees its own errors. Sky, grass, a grey road with solid white lines at both edges and between
the lanes, dashed yellow marks along each lane centre and posts beside the road every 12 m
(marks and posts move past as the car drives, so speed shows across frames), and vehicles as
shaded boxes. Pinhole projection as `camera` describes; about 2 ms a frame at 64 x 96 on one core.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw

from vla_lab.sim.driving.camera import (
    CAMERA_FORWARD_M,
    CAMERA_HEIGHT_M,
    focal_px,
    principal_point,
)
from vla_lab.sim.driving.road import LANE_HALF_WIDTH_M, LANE_WIDTH_M, N_LANES, Box, Road

LOOKAHEAD_M = (2.0, 60.0)  # road drawn this far ahead of the car, along the road
_LINE_HALF_WIDTH_M = 0.12
_MIN_LINE_PX = 2.5  # lines stay at least this wide, so they survive downsampling
_DASH_M, _DASH_PERIOD_M = 3.0, 8.0
# Roadside posts stand above the horizon, so where the road bends far ahead shows in more rows.
_POST_PERIOD_M, _POST_HEIGHT_M, _POST_HALF_WIDTH_M = 12.0, 3.0, 0.15
_LINES_M = tuple(LANE_HALF_WIDTH_M + k * LANE_WIDTH_M for k in range(-1, N_LANES))
_LANE_CENTRES_M = tuple(k * LANE_WIDTH_M for k in range(N_LANES))
_POSTS_M = (Road.surface_m()[0] - 1.0, Road.surface_m()[1] + 1.0)
_WHITE = (240, 240, 240)
_LOOKAHEAD = LOOKAHEAD_M[0] + (LOOKAHEAD_M[1] - LOOKAHEAD_M[0]) * np.linspace(0, 1, 40) ** 1.5
_NEAR_M = 0.3  # nothing closer to the camera than this is drawn
# Box faces as corner indices: 0-3 the footprint (rear right, front right, front left, rear
# left), 4-7 the same at the roof; shading per face (rear, front, right, left, roof).
_FACES = ((0, 3, 7, 4), (1, 2, 6, 5), (0, 1, 5, 4), (3, 2, 6, 7), (4, 5, 6, 7))
_SHADE = (1.0, 1.0, 0.7, 0.7, 1.15)


@dataclass(frozen=True)
class Look:
    """The colours of one drive (drawn per episode, so a policy cannot key on one palette)."""

    sky: tuple[int, int, int]
    ground: tuple[int, int, int]
    road: tuple[int, int, int]
    dash: tuple[int, int, int]
    post: tuple[int, int, int]
    box: tuple[int, int, int]

    @classmethod
    def draw(cls, rng: np.random.Generator) -> Look:
        def tinted(rgb: tuple[int, int, int], spread: float) -> tuple[int, int, int]:
            return tuple(
                int(c) for c in np.clip(np.array(rgb) + rng.uniform(-spread, spread, 3), 0, 255)
            )

        return cls(
            sky=tinted((140, 180, 225), 20),
            ground=tinted((75, 125, 60), 20),
            road=tinted((95, 95, 100), 12),
            dash=tinted((235, 200, 60), 10),
            post=tinted((70, 55, 45), 15),
            box=tinted((190, 60, 40), 20),
        )


class _View:
    """The road seen from a car at world pose (x, y, yaw): ego-frame geometry and projection."""

    def __init__(self, road: Road, pose: tuple[float, float, float], height: int, width: int):
        self.road, self.f = road, focal_px(width)
        self.cu, self.cv = principal_point(height, width)
        self.origin, self.theta = (pose[0], pose[1]), pose[2]

    def to_ego(self, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        c, si = math.cos(self.theta), math.sin(self.theta)
        dx, dy = x - self.origin[0], y - self.origin[1]
        return c * dx + si * dy, -si * dx + c * dy

    def ego(self, s: np.ndarray) -> np.ndarray:
        """``(4, *s.shape)``: forward, left of the reference line at arc lengths ``s`` in the
        car's frame, and the line's left normal (nx, ny) there."""
        x, y, theta, _ = self.road.at(s)
        fwd, left = self.to_ego(x, y)
        dtheta = theta - self.theta
        return np.stack([fwd, left, -np.sin(dtheta), np.cos(dtheta)])

    def project(self, geom: np.ndarray, offset, up: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
        """Pixel (u, v) of points ``offset`` m left of the reference line, ``up`` m above the
        road. Callers keep the depth above `_NEAR_M` (`visible`), which bounds the coordinates."""
        fwd, left, nx, ny = geom
        return self.pixel(fwd + offset * nx, left + offset * ny, up)

    def pixel(self, fwd, left, up) -> tuple[np.ndarray, np.ndarray]:
        depth = fwd - CAMERA_FORWARD_M
        return self.cu - self.f * left / depth, self.cv + self.f * (CAMERA_HEIGHT_M - up) / depth

    def line_half_width(self, geom: np.ndarray) -> np.ndarray:
        """Half-width (m) of a painted line: real, or wide enough to stay visible far away."""
        depth = np.maximum(geom[0] - CAMERA_FORWARD_M, _NEAR_M)
        return np.maximum(_LINE_HALF_WIDTH_M, _MIN_LINE_PX * depth / 2 / self.f)

    def band(self, geom: np.ndarray, offset: float, half) -> np.ndarray:
        """``(..., 2K, 2)`` polygon(s) of a strip ``offset +- half`` m left of the line."""
        u_out, v_out = self.project(geom, offset + half)
        u_in, v_in = self.project(geom, offset - half)
        u = np.concatenate([u_out, u_in[..., ::-1]], axis=-1)
        return np.stack([u, np.concatenate([v_out, v_in[..., ::-1]], axis=-1)], axis=-1)

    def visible(self, s: np.ndarray, offsets: tuple[float, ...]) -> np.ndarray:
        """The first run of ``s`` whose points at every offset are in front of the camera: on a
        bend the nearest points of the outer edge can sit behind it, and a tight curve can
        bring the road back further on."""
        fwd, _, nx, _ = self.ego(s)
        depth = np.min([fwd + o * nx for o in offsets], axis=0) - CAMERA_FORWARD_M
        ok = depth > _NEAR_M
        if not ok.any():
            return s[:0]
        first = int(np.argmax(ok))
        rest = ok[first:]
        return s[first : first + (len(rest) if rest.all() else int(np.argmin(rest)))]


def render(
    road: Road,
    pose: tuple[float, float, float],
    s_car: float,
    size: tuple[int, int],
    look: Look,
    boxes: tuple[Box, ...] = (),
) -> np.ndarray:
    """``(H, W, 3)`` uint8 RGB from the car at world `pose` (x, y, yaw), whose projection on the
    road is at arc length `s_car`; `size` is (H, W)."""
    height, width = size
    image = Image.new("RGB", (width, height), look.sky)
    draw = ImageDraw.Draw(image)
    view = _View(road, pose, height, width)
    draw.rectangle([0, math.ceil(view.cv), width, height], fill=look.ground)
    ahead = view.visible(s_car + _LOOKAHEAD, _POSTS_M)
    if len(ahead) >= 2:
        _draw_road(draw, view, ahead, look)
    for box in sorted(boxes, key=lambda b: -math.hypot(*view.to_ego(b.x, b.y))):
        _draw_box(draw, view, box, look.box)
    return np.array(image)  # a writable frame the caller owns


def _draw_road(draw: ImageDraw.ImageDraw, view: _View, ahead: np.ndarray, look: Look) -> None:
    geom = view.ego(ahead)
    right, left = Road.surface_m()
    draw.polygon(_points(view.band(geom, (left + right) / 2, (left - right) / 2)), fill=look.road)
    for line in _LINES_M:
        draw.polygon(_points(view.band(geom, line, view.line_half_width(geom))), fill=_WHITE)
    near, far = ahead[0], ahead[-1]
    starts = _marks(view.road.dash_phase, _DASH_PERIOD_M, near - _DASH_M, far)
    if len(starts):
        along = np.linspace(0.0, 1.0, 3)
        lo, hi = np.maximum(starts, near)[:, None], np.minimum(starts + _DASH_M, far)[:, None]
        dashes = view.ego(lo + (hi - lo) * along)
        for centre in _LANE_CENTRES_M:
            for polygon in view.band(dashes, centre, view.line_half_width(dashes)):
                draw.polygon(_points(polygon), fill=look.dash)
    posts = view.ego(_marks(view.road.post_phase, _POST_PERIOD_M, near + 2.0, far)[::-1])
    half = np.maximum(_POST_HALF_WIDTH_M * view.f / (posts[0] - CAMERA_FORWARD_M), 1.0)
    for side in _POSTS_M:
        u, bottom = view.project(posts, side)
        _, top = view.project(posts, side, up=_POST_HEIGHT_M)
        for box in np.stack([u - half, top, u + half, bottom], axis=1).tolist():
            draw.rectangle(box, fill=look.post)


def _draw_box(draw: ImageDraw.ImageDraw, view: _View, box: Box, rgb) -> None:
    """The faces of `box` that face the camera, far to near, clipped at the near plane."""
    fwd, left = view.to_ego(*box.corners().T)
    ground = np.stack([fwd, left, np.zeros(4)], axis=1)
    corners = np.vstack([ground, ground + [0.0, 0.0, box.height_m]])
    camera = np.array([CAMERA_FORWARD_M, 0.0, CAMERA_HEIGHT_M])
    centre = corners.mean(0)
    faces = []
    for face, shade in zip(_FACES, _SHADE, strict=True):
        points = corners[list(face)]
        middle = points.mean(0)
        if np.dot(middle - centre, middle - camera) >= 0:  # faces away from the camera
            continue
        faces.append((np.linalg.norm(middle - camera), points, shade))
    for _, points, shade in sorted(faces, key=lambda f: -f[0]):
        points = _clip_near(points)
        if len(points) >= 3:
            u, v = view.pixel(points[:, 0], points[:, 1], points[:, 2])
            fill = tuple(int(min(255, c * shade)) for c in rgb)
            draw.polygon(list(zip(u.tolist(), v.tolist(), strict=True)), fill=fill)


def _clip_near(points: np.ndarray) -> np.ndarray:
    """The part of a convex polygon (K, 3) in ego coordinates in front of the near plane."""
    depth = points[:, 0] - CAMERA_FORWARD_M - _NEAR_M
    kept = []
    for i in range(len(points)):
        j = (i + 1) % len(points)
        if depth[i] >= 0:
            kept.append(points[i])
        if (depth[i] >= 0) != (depth[j] >= 0):
            kept.append(points[i] + (points[j] - points[i]) * depth[i] / (depth[i] - depth[j]))
    return np.array(kept).reshape(-1, 3)


def _points(polygon: np.ndarray) -> list[tuple[float, float]]:
    return [tuple(point) for point in polygon.tolist()]


def _marks(phase: float, period: float, start: float, stop: float) -> np.ndarray:
    """Arc lengths ``phase + k * period`` in ``(start, stop)``, ascending."""
    first = math.floor((start - phase) / period) + 1
    marks = phase + period * np.arange(first, first + int((stop - start) // period) + 2)
    return marks[(marks > start) & (marks < stop)]
