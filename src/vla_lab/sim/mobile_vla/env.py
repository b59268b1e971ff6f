"""The Mobile VLA box course as a gymnasium world (id ``vla_lab/MobileVLABoxCourse-v0``).

Observations are what a Mobile VLA policy reads from the dataset: the front camera as uint8
(H, W, 3) RGB under the source's image key (96x128, the synthetic data's stored size) and
``task``, the instruction the data source builds from the scenario's file name. Actions are the
dataset's (linear_x, linear_y, angular_z), one keypress of 0.3 s a step (``world``).

Success: the robot's centre crosses the goal line (``GOAL_ZONE_M`` before the post) after passing
every box on the instruction's side (judged when it crosses the box's centre), without its
footprint touching a box or leaving the course, within ``max_steps``. The episode terminates at
success or at the first failure and is truncated at the budget ("timeout").
"""

from __future__ import annotations

import math
import string
from typing import Any, ClassVar

import numpy as np
from gymnasium import spaces

from vla_lab.data.mobile_vla.scenario import build_instruction, parse_scenario
from vla_lab.data.mobile_vla.source import MobileVLAEpisodes
from vla_lab.features import TASK, image_key
from vla_lab.sim.base import SimEnv
from vla_lab.sim.mobile_vla.camera import render_view
from vla_lab.sim.mobile_vla.expert import BoxCourseExpert, expert_path_length_m
from vla_lab.sim.mobile_vla.world import (
    KEYPRESS_S,
    SCENARIOS,
    SPEED,
    Course,
    Pose,
    move,
    off_course,
    sample_course,
    touches,
)

CAMERA_KEY = image_key(MobileVLAEpisodes.camera)
FAILURES = ("collision", "off_course", "wrong_side")


class BoxCourseEnv(SimEnv):
    """One box-course episode per ``reset(seed=, options={"scenario": ...})``; a missing scenario
    is drawn from the seed. ``pixel_noise`` is the camera's noise std (as in the demo data)."""

    scenarios = SCENARIOS
    score_metric = "steps"  # among failures, the shortest episodes failed soonest
    metadata: ClassVar[dict[str, Any]] = {
        "render_modes": ["rgb_array"],
        "render_fps": round(1 / KEYPRESS_S, 2),
        "dt_s": KEYPRESS_S,
    }

    def __init__(
        self,
        height: int = 96,
        width: int = 128,
        max_steps: int = 40,
        pixel_noise: float = 2.0,
        render_mode: str | None = "rgb_array",
    ) -> None:
        if render_mode not in (None, "rgb_array"):
            raise ValueError(f"render_mode must be 'rgb_array' or None, got {render_mode!r}")
        if max_steps < 1 or height < 8 or width < 8:
            raise ValueError(
                f"need max_steps >= 1 and an image of at least 8x8, got max_steps={max_steps}, "
                f"{height}x{width}"
            )
        self.height, self.width = int(height), int(width)
        self.max_steps = int(max_steps)
        self.pixel_noise = float(pixel_noise)
        self.render_mode = render_mode
        self.observation_space = spaces.Dict(
            {
                CAMERA_KEY: spaces.Box(0, 255, (self.height, self.width, 3), np.uint8),
                TASK: spaces.Text(max_length=256, charset=string.printable),
            }
        )
        self.action_space = spaces.Box(-SPEED, SPEED, (3,), np.float32)
        self.course: Course | None = None
        self.instruction = ""
        self.pose = Pose()

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        super().reset(seed=seed)
        scenario = (options or {}).get("scenario")
        if scenario is None:
            scenario = self.scenarios[int(self.np_random.integers(len(self.scenarios)))]
        self.course = sample_course(str(scenario), self.np_random)
        self.instruction = build_instruction(parse_scenario(self.course.scenario))
        self.pose = Pose()
        self._judged = [False] * len(self.course.boxes)
        self._steps = 0
        self._path_m = 0.0
        self._outcome: str | None = None  # "success", a failure, "timeout"; None while running
        self._frame = self._render_frame()
        return self._observation(), {"scenario": self.course.scenario}

    def step(self, action: np.ndarray) -> tuple[dict[str, Any], float, bool, bool, dict[str, Any]]:
        if self.course is None or self._outcome is not None:
            raise RuntimeError("step() needs reset() first, and after every finished episode")
        action = np.asarray(action, dtype=np.float64).reshape(-1)
        if action.shape != (3,) or not np.isfinite(action).all():
            raise ValueError(
                f"BoxCourseEnv action must be 3 finite numbers (linear_x, linear_y, angular_z), "
                f"got {action.tolist()}"
            )
        previous = self.pose
        self.pose = move(previous, np.clip(action, -SPEED, SPEED))
        self._path_m += math.hypot(self.pose.x - previous.x, self.pose.y - previous.y)
        self._steps += 1
        self._outcome = self._judge(previous)
        if self._outcome is None and self._steps >= self.max_steps:
            self._outcome = "timeout"
        self._frame = self._render_frame()
        terminated = self._outcome in ("success", *FAILURES)
        truncated = self._outcome == "timeout"
        reward = float(self._outcome == "success")
        return self._observation(), reward, terminated, truncated, {"outcome": self._outcome}

    def _judge(self, previous: Pose) -> str | None:
        """The step's outcome: a failure first, then success; None while the episode goes on."""
        if any(touches(self.pose, box) for box in self.course.boxes):
            return "collision"
        if off_course(self.pose):
            return "off_course"
        for i, box in enumerate(self.course.boxes):
            if not self._judged[i] and previous.x < box.centre_x_m <= self.pose.x:
                self._judged[i] = True
                side = "left" if self.pose.y > box.lateral_m else "right"
                if side != self.course.side:
                    return "wrong_side"
        if self.pose.x >= self.course.goal_line_m and all(self._judged):
            return "success"
        return None

    def _render_frame(self) -> np.ndarray:
        return render_view(
            self.course, self.pose, self.height, self.width, self.np_random, self.pixel_noise
        )

    def _observation(self) -> dict[str, Any]:
        return {CAMERA_KEY: self._frame.copy(), TASK: self.instruction}

    def render(self) -> np.ndarray:
        """The current first-person frame (the observation's image)."""
        return self._frame.copy()

    def episode_metrics(self) -> dict[str, float]:
        return {
            "success": float(self._outcome == "success"),
            "collision": float(self._outcome == "collision"),
            "wrong_side": float(self._outcome == "wrong_side"),
            "off_course": float(self._outcome == "off_course"),
            "path_length_ratio": self._path_m / expert_path_length_m(self.course),
            "steps": float(self._steps),
        }

    def failure_reason(self) -> str:
        return "" if self._outcome in (None, "success") else self._outcome

    def expert(
        self, noise: float = 0.0, seed: int | None = None, side: str | None = None
    ) -> BoxCourseExpert:
        """The scripted expert (see ``BoxCourseExpert`` for ``noise``, ``seed``, ``side``)."""
        return BoxCourseExpert(self, noise=noise, seed=seed, side=side)
