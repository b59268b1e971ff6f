"""The box course's scripted expert: the teleoperator the demo data imitates.

It presses one full key a step, reading the env's true state: face ahead (undo any turn), drive
forward, sidestep towards the instruction's side once the first box is within ``TRIGGER_M`` until
the robot clears every box still ahead on that side, then drive forward to the goal; it steps back
in from the course's edge when something pushed it there. Decisions are made from the state, not
from a script, so the expert also recovers from the wrong keys ``noise`` injects, which is what
makes its recordings cover the states a learned policy drifts into.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import numpy as np

from vla_lab.sim.mobile_vla.world import (
    COURSE_HALF_WIDTH_M,
    KEYPRESS_S,
    ROBOT_HALF_LENGTH_M,
    ROBOT_HALF_WIDTH_M,
    SPEED,
    STEP_M,
    Box,
    Course,
    Pose,
)

if TYPE_CHECKING:
    from vla_lab.sim.mobile_vla.env import BoxCourseEnv

TRIGGER_M = 0.9  # sidestep once the first box's front face is this close
KEYS = {
    "stop": (0.0, 0.0, 0.0),
    "forward": (SPEED, 0.0, 0.0),
    "back": (-SPEED, 0.0, 0.0),
    "left": (0.0, SPEED, 0.0),
    "right": (0.0, -SPEED, 0.0),
    "turn_left": (0.0, 0.0, SPEED),
    "turn_right": (0.0, 0.0, -SPEED),
}
KEY_NAMES = tuple(KEYS)


class BoxCourseExpert:
    """The scripted expert as an `Agent` of ``env`` (whose true state it reads).

    ``noise``: the probability that a step's key is not the expert's (half the time the previous
    key is held, half the time a random teleop key is pressed), drawn from ``seed``.
    ``side``: pass every box on this side whatever the instruction says (an instruction-blind
    baseline); ``None`` follows the instruction.
    """

    def __init__(
        self,
        env: BoxCourseEnv,
        noise: float = 0.0,
        seed: int | None = None,
        side: str | None = None,
    ) -> None:
        if not 0.0 <= noise <= 1.0:
            raise ValueError(f"expert noise is a probability in [0, 1], got {noise}")
        if side not in (None, "left", "right"):
            raise ValueError(f"expert side must be 'left', 'right' or None, got {side!r}")
        self.env = env
        self.noise = float(noise)
        self.seed = seed
        self.side = side
        self.reset()

    def reset(self) -> None:
        self._rng = np.random.default_rng(self.seed)
        self._last_key = "forward"

    def intended_action(self) -> np.ndarray:
        """The expert's own key for the env's current state (what a recording labels)."""
        return _action(self._intended_key())

    def act(self, observation: dict[str, Any]) -> np.ndarray:
        """The key actually pressed: the expert's, or with probability ``noise`` a wrong one."""
        key = self._intended_key()
        if self.noise and self._rng.random() < self.noise:
            key = self._last_key if self._rng.random() < 0.5 else str(self._rng.choice(KEY_NAMES))
        self._last_key = key
        return _action(key)

    def _intended_key(self) -> str:
        course = self.env.course
        return expert_key(course, self.env.pose, self.side or course.side)


def _action(key: str) -> np.ndarray:
    return np.asarray(KEYS[key], dtype=np.float32)


def expert_key(course: Course, pose: Pose, side: str) -> str:
    """The expert's key (a name of ``KEYS``) at ``pose`` when passing boxes on ``side``."""
    if abs(pose.yaw) > SPEED * KEYPRESS_S / 2:
        return "turn_right" if pose.yaw > 0 else "turn_left"
    direction = 1.0 if side == "left" else -1.0
    ahead = [b for b in course.boxes if pose.x - ROBOT_HALF_LENGTH_M < b.ahead_m + b.depth_m]
    needed = _clearance_m(ahead, side)
    if ahead and direction * pose.y < needed:
        if min(b.ahead_m for b in ahead) - pose.x <= TRIGGER_M:
            return side
    if abs(pose.y) + ROBOT_HALF_WIDTH_M > COURSE_HALF_WIDTH_M - 1.5 * STEP_M:
        inward = -math.copysign(STEP_M, pose.y)
        if not ahead or direction * (pose.y + inward) >= needed:
            return "left" if inward > 0 else "right"
    return "forward"


def _clearance_m(boxes: list[Box], side: str) -> float:
    """How far towards ``side`` the robot's centre must be to pass all ``boxes`` on that side."""
    direction = 1.0 if side == "left" else -1.0
    edges = [direction * b.lateral_m + b.width_m / 2 for b in boxes]
    return max(edges, default=-math.inf) + ROBOT_HALF_WIDTH_M


def expert_path_length_m(course: Course) -> float:
    """The noiseless expert's path length from the start: whole forward keys up to the goal line
    plus whole sidesteps until it clears every box (the yardstick of ``path_length_ratio``)."""
    forward = math.ceil(course.goal_line_m / STEP_M)
    sideways = math.ceil(_clearance_m(list(course.boxes), course.side) / STEP_M)
    return (forward + sideways) * STEP_M
