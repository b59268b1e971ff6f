"""The robot's first-person camera: a pinhole view of the box course from the robot's pose.

Wall above the horizon, floor below it (darker outside the course, so leaving it is visible), a
green goal post and pure red boxes (red so a BGR/RGB mix-up is visible; their side faces a darker
red so turning shows). The camera looks along the robot's heading, so sidesteps shift the scene
and angular_z pans it. Numpy only: under 2 ms a frame at 96x128.
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np

from vla_lab.sim.mobile_vla.world import (
    BOX_HEIGHT_M,
    COURSE_HALF_WIDTH_M,
    Box,
    Course,
    Pose,
)

CAMERA_HEIGHT_M = 0.3
NEAR_M = 0.05  # faces nearer than this to the camera plane are clipped
RED_RGB = (255, 0, 0)
SIDE_RED_RGB = (190, 0, 0)
GOAL_RGB = (0, 200, 0)
WALL_RGB = (190, 190, 200)
FLOOR_RGB = (130, 120, 105)
OUTSIDE_RGB = (70, 70, 75)
GOAL_POST_SIDE_M = 0.15
GOAL_POST_HEIGHT_M = 1.2


def render_view(
    course: Course,
    pose: Pose,
    height: int,
    width: int,
    rng: np.random.Generator,
    pixel_noise: float = 2.0,
) -> np.ndarray:
    """``(height, width, 3)`` uint8 RGB: the course seen from ``pose``. ``pixel_noise`` (std,
    drawn from ``rng``) keeps gzip from compressing frames unrealistically well."""
    horizon, focal = _intrinsics(height, width)
    tint = np.asarray(course.tint, dtype=np.float32)
    image = np.empty((height, width, 3), dtype=np.float32)
    image[:horizon] = np.asarray(WALL_RGB, dtype=np.float32) + tint
    image[horizon:] = _floor(pose, height, width, horizon, focal, tint)

    post = Box(course.goal_m, 0.0, GOAL_POST_SIDE_M, GOAL_POST_SIDE_M)
    faces = _faces(post, GOAL_POST_HEIGHT_M, GOAL_RGB, GOAL_RGB, pose)
    for box in course.boxes:
        faces += _faces(box, BOX_HEIGHT_M, RED_RGB, SIDE_RED_RGB, pose)
    for _, p, q, height_m, color in sorted(faces, key=lambda face: -face[0]):  # far to near
        _draw_face(image, p, q, height_m, color, pose, horizon, focal)
    if pixel_noise > 0:
        image += rng.normal(0.0, pixel_noise, size=image.shape).astype(np.float32)
    return np.clip(image, 0, 255).astype(np.uint8)


def _intrinsics(height: int, width: int) -> tuple[int, float]:
    """Horizon row and focal length in pixels (a fixed, fairly wide lens)."""
    return int(0.4 * height), 0.8 * width


def _floor(
    pose: Pose, height: int, width: int, horizon: int, focal: float, tint: np.ndarray
) -> np.ndarray:
    """Floor rows below the horizon, shaded with distance; outside the course in a darker grey."""
    depth, lateral = _floor_rays(height, width, horizon, focal)
    world_y = pose.y + depth * math.sin(pose.yaw) + lateral * math.cos(pose.yaw)
    inside = (np.abs(world_y) <= COURSE_HALF_WIDTH_M)[..., None]
    ramp = np.linspace(0.75, 1.0, height - horizon, dtype=np.float32)[:, None, None]
    floor = np.asarray(FLOOR_RGB, dtype=np.float32) + tint
    outside = np.asarray(OUTSIDE_RGB, dtype=np.float32) + tint
    return np.where(inside, floor, outside) * ramp


@lru_cache(maxsize=8)
def _floor_rays(
    height: int, width: int, horizon: int, focal: float
) -> tuple[np.ndarray, np.ndarray]:
    """Where each floor pixel's ray meets the floor, in the camera frame (forward, left)."""
    rows = np.arange(horizon, height, dtype=np.float32)[:, None] + 0.5 - horizon
    cols = np.arange(width, dtype=np.float32)[None, :] + 0.5 - width / 2
    depth = np.broadcast_to(focal * CAMERA_HEIGHT_M / rows, (height - horizon, width))
    return depth, -cols * depth / focal


Face = tuple[float, np.ndarray, np.ndarray, float, tuple[int, int, int]]


def _faces(
    box: Box,
    height_m: float,
    front: tuple[int, int, int],
    side: tuple[int, int, int],
    pose: Pose,
) -> list[Face]:
    """The faces of ``box`` that turn towards the camera, as (distance, p, q, height, colour)."""
    corners = box.corners()
    faces = []
    for i in range(4):
        p, q = corners[i], corners[(i + 1) % 4]
        edge = q - p
        outward = np.array([edge[1], -edge[0]])  # corners run counter-clockwise
        if np.dot(outward, (pose.x, pose.y) - p) <= 0:
            continue  # back face
        middle = (p + q) / 2
        distance = math.hypot(middle[0] - pose.x, middle[1] - pose.y)
        faces.append((distance, p, q, height_m, front if edge[0] == 0 else side))
    return faces


def _draw_face(
    image: np.ndarray,
    p: np.ndarray,
    q: np.ndarray,
    height_m: float,
    color: tuple[int, int, int],
    pose: Pose,
    horizon: int,
    focal: float,
) -> None:
    """Paint the vertical quad standing on floor segment p-q; its top and bottom edges are
    interpolated in inverse depth, which is linear across the image for a plane."""
    c, s = math.cos(pose.yaw), math.sin(pose.yaw)
    (d0, l0), (d1, l1) = (
        ((x - pose.x) * c + (y - pose.y) * s, -(x - pose.x) * s + (y - pose.y) * c)
        for x, y in (p, q)
    )
    if d0 < NEAR_M and d1 < NEAR_M:
        return
    if d0 < NEAR_M or d1 < NEAR_M:  # clip the segment at the near plane
        t = (NEAR_M - d0) / (d1 - d0)
        clipped = (NEAR_M, l0 + t * (l1 - l0))
        (d0, l0), (d1, l1) = ((d0, l0), clipped) if d0 >= NEAR_M else (clipped, (d1, l1))
    height, width = image.shape[:2]
    u0, u1 = width / 2 - focal * l0 / d0, width / 2 - focal * l1 / d1
    if u0 > u1:
        (u0, d0), (u1, d1) = (u1, d1), (u0, d0)
    first, last = max(0, math.ceil(u0 - 0.5)), min(width, math.ceil(u1 - 0.5))
    if first >= last:
        return
    centres = np.arange(first, last) + 0.5
    t = (centres - u0) / max(u1 - u0, 1e-9)
    inverse_depth = 1 / d0 + t * (1 / d1 - 1 / d0)
    bottom = horizon + focal * CAMERA_HEIGHT_M * inverse_depth
    top = horizon - focal * (height_m - CAMERA_HEIGHT_M) * inverse_depth
    rows = np.arange(height)[:, None] + 0.5
    mask = (rows >= top) & (rows < bottom)
    block = image[:, first:last]
    block[mask] = color
