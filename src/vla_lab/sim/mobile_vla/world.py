"""The box course's geometry: where the boxes and the goal stand, how a keypress moves the robot,
and when its footprint touches a box or leaves the course.

Frames follow ROS: x forward along the course, y to the left, yaw counter-clockwise; the robot
starts at the origin facing +x. Actions are the teleop's (linear_x, linear_y, angular_z), about
+-1.15 per key; one action is one keypress of 0.3 s. Translation is scaled so that a full key
moves 0.3 m, the step the synthetic demo data always used (1.15 m/s * 0.3 s would be 0.345 m);
rotation is angular_z * 0.3 s (a full key turns 0.345 rad).

Scenarios (``<1box|2box>_<vert|hori>_<left|right>``): ``vert`` boxes are narrow (0.4 m) and for
``2box`` stand one behind the other; ``hori`` boxes are wide (0.8 m) and for ``2box`` stand side
by side. The first box's distance and a lateral jitter are drawn per episode, so when to sidestep
is visible only in the image and which way only in the instruction.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import numpy as np

from vla_lab.data.mobile_vla.h5 import KEYPRESS_S

SPEED = 1.15  # teleop key speed, m/s (and rad/s)
STEP_M = 0.3  # metres one full forward or sideways key moves the robot
METRES_PER_UNIT = STEP_M / SPEED  # translation per unit of linear_x / linear_y per keypress
ROBOT_HALF_WIDTH_M = 0.3
ROBOT_HALF_LENGTH_M = 0.25
BOX_DEPTH_M = 0.4
BOX_HEIGHT_M = 0.45
COURSE_HALF_WIDTH_M = 1.8
START_M = (1.2, 3.6)  # range of the first box's distance from the start
JITTER_M = 0.05  # range (+-) of the boxes' common lateral offset
TINT = 12.0  # range (+-) of the per-episode colour tint of wall and floor
GOAL_BEHIND_BOX_M = 3.0  # the goal post stands this far beyond the first box's front face
GOAL_ZONE_M = 0.5  # the goal is reached when the robot's centre is this close to the post
SCENARIOS = tuple(
    f"{boxes}_{orientation}_{side}"
    for boxes, orientation, side in itertools.product(
        ("1box", "2box"), ("vert", "hori"), ("left", "right")
    )
)


@dataclass(frozen=True)
class Box:
    """An axis-aligned box on the floor: front face ``ahead_m`` from the start, centred at
    ``lateral_m`` (+ = left)."""

    ahead_m: float
    lateral_m: float
    width_m: float
    depth_m: float = BOX_DEPTH_M

    @property
    def centre_x_m(self) -> float:
        return self.ahead_m + self.depth_m / 2

    def corners(self) -> np.ndarray:
        """``(4, 2)`` footprint corners (x, y), counter-clockwise."""
        x0, x1 = self.ahead_m, self.ahead_m + self.depth_m
        y0, y1 = self.lateral_m - self.width_m / 2, self.lateral_m + self.width_m / 2
        return np.array([(x0, y0), (x1, y0), (x1, y1), (x0, y1)])


@dataclass(frozen=True)
class Course:
    """One episode's static layout: the scenario, its boxes, the goal post and the wall tint."""

    scenario: str
    boxes: tuple[Box, ...]
    goal_m: float
    tint: tuple[float, float, float]

    @property
    def side(self) -> str:
        """The side ("left" or "right") every box must be passed on."""
        return self.scenario.split("_")[2]

    @property
    def goal_line_m(self) -> float:
        return self.goal_m - GOAL_ZONE_M


@dataclass(frozen=True)
class Pose:
    """The robot's pose on the course (metres, radians)."""

    x: float = 0.0
    y: float = 0.0
    yaw: float = 0.0


def sample_course(scenario: str, rng: np.random.Generator) -> Course:
    """The layout of one episode of ``scenario``: first-box distance, lateral jitter and tint are
    drawn from ``rng`` in that order (the order the synthetic demo data always used)."""
    if scenario not in SCENARIOS:
        raise ValueError(f"Unknown box-course scenario {scenario!r}; expected one of {SCENARIOS}")
    boxes, orientation, _ = scenario.split("_")
    start_m = float(rng.uniform(*START_M))
    jitter = float(rng.uniform(-JITTER_M, JITTER_M))
    tint = tuple(float(t) for t in rng.uniform(-TINT, TINT, size=3))
    return Course(
        scenario, _layout(boxes, orientation, start_m, jitter), start_m + GOAL_BEHIND_BOX_M, tint
    )


def _layout(boxes: str, orientation: str, start_m: float, jitter: float) -> tuple[Box, ...]:
    if boxes == "1box":
        return (Box(start_m, jitter, 0.4 if orientation == "vert" else 0.8),)
    if orientation == "vert":
        return (Box(start_m, jitter, 0.4), Box(start_m + 0.8, jitter, 0.4))
    return (Box(start_m, jitter + 0.25, 0.4), Box(start_m, jitter - 0.25, 0.4))


def move(pose: Pose, action: np.ndarray) -> Pose:
    """The pose after one keypress of ``action`` (linear_x, linear_y, angular_z), which moves the
    robot in its own frame; the translation is taken at the keypress's mid-turn heading."""
    linear_x, linear_y, angular_z = (float(a) for a in action)
    turn = angular_z * KEYPRESS_S
    heading = pose.yaw + turn / 2
    forward, left = linear_x * METRES_PER_UNIT, linear_y * METRES_PER_UNIT
    return Pose(
        pose.x + forward * math.cos(heading) - left * math.sin(heading),
        pose.y + forward * math.sin(heading) + left * math.cos(heading),
        _wrap(pose.yaw + turn),
    )


def _wrap(angle: float) -> float:
    return (angle + math.pi) % (2 * math.pi) - math.pi


def robot_corners(pose: Pose) -> np.ndarray:
    """``(4, 2)`` corners of the robot's footprint, counter-clockwise."""
    local = np.array([(-1, -1), (1, -1), (1, 1), (-1, 1)], dtype=np.float64) * (
        ROBOT_HALF_LENGTH_M,
        ROBOT_HALF_WIDTH_M,
    )
    c, s = math.cos(pose.yaw), math.sin(pose.yaw)
    return local @ np.array([[c, s], [-s, c]]) + (pose.x, pose.y)


def touches(pose: Pose, box: Box) -> bool:
    """Whether the robot's footprint touches ``box``'s (separating-axis test of two rectangles)."""
    robot, other = robot_corners(pose), box.corners()
    for polygon in (robot, other):
        edges = np.roll(polygon, -1, axis=0) - polygon
        normals = np.stack([-edges[:, 1], edges[:, 0]], axis=1)
        a, b = robot @ normals.T, other @ normals.T
        if np.any((a.max(0) < b.min(0)) | (b.max(0) < a.min(0))):
            return False
    return True


def off_course(pose: Pose) -> bool:
    """Whether any part of the robot's footprint is outside the course's width."""
    return bool(np.abs(robot_corners(pose)[:, 1]).max() > COURSE_HALF_WIDTH_M)
