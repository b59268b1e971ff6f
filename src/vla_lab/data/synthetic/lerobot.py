"""A synthetic LeRobot v3.0 arm dataset, written with LeRobot's own writer (video included).

The scene is a top-down view of a table: a planar arm (base at the bottom centre, shoulder, elbow
and wrist links, a two-finger gripper) and one cube, red or blue as the episode's task says, at a
random reachable position. The state is the arm's joint positions; the action is the next target
joint positions, a step from the state toward the joints that put the gripper on the cube (found by
inverse kinematics from the cube's position). So the action depends on *where the cube is in the
image*: a policy that looks can predict it, a mean-action baseline cannot. The gripper closes over
the last ~30% of the episode.

Joints (radians; gripper 0 closed .. 1 open): ``base`` (the upper arm's angle in the image plane),
``elbow`` and ``wrist_pitch`` (relative; the hand ends up pointing at the cube), extra joints that
are smooth functions of the cube's position (``wrist_roll``, ``wrist_yaw`` for 6 joints), and
``gripper`` last.
"""

from __future__ import annotations

import logging
import math
import shutil
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from vla_lab.utils.io import atomic_write_dir

log = logging.getLogger(__name__)

CAMERA = "observation.images.front"
TASKS = ("Pick up the red cube", "Pick up the blue cube")
CUBE_RGB = {"red": (220, 30, 30), "blue": (30, 60, 220)}
JOINT_NAMES = ("base", "elbow", "wrist_pitch", "wrist_roll", "wrist_yaw", "gripper")
BASE_XY = (0.5, 0.92)  # image fractions, x right, y down
LINKS = (0.34, 0.26, 0.08)  # upper arm, forearm, hand; image fractions
GAIN = 0.25  # fraction of the remaining joint error closed per step
CLOSE_FROM = 0.7  # fraction of the episode after which the gripper closes
HOME = (math.pi / 2, 0.6, -0.3)


def write_synthetic_lerobot(
    root: str | Path,
    num_episodes: int = 24,
    frames_per_episode: int = 30,
    fps: int = 10,
    image_size: Sequence[int] = (64, 64),
    seed: int = 0,
    joints: int = 6,
) -> Path:
    """Write the dataset to ``root`` (which must not exist yet) and return ``root``.

    Written into a temp dir beside ``root`` and renamed in, so a crash or a concurrent writer never
    leaves half a dataset; if another process finished first, its copy is kept. About 3 s on two
    CPU cores at the defaults (AV1 through PyAV, LeRobot's default codec).
    """
    if joints < 4:
        raise ValueError(f"joints must be >= 4 (three arm links and a gripper), got {joints}")
    root = Path(root)
    height, width = (int(x) for x in image_size)
    atomic_write_dir(
        root,
        lambda tmp: _write(
            tmp, num_episodes, frames_per_episode, fps, (height, width), seed, joints
        ),
        done=lambda path: (path / "meta" / "info.json").is_file(),
    )
    return root


def joint_names(joints: int) -> list[str]:
    arm = list(JOINT_NAMES[:-1]) + [f"joint_{i}" for i in range(len(JOINT_NAMES) - 1, joints - 1)]
    return arm[: joints - 1] + ["gripper"]


def _write(
    path: Path,
    num_episodes: int,
    frames: int,
    fps: int,
    size: tuple[int, int],
    seed: int,
    joints: int,
) -> None:
    from vla_lab.lerobot_api import LeRobotDataset

    names = joint_names(joints)
    features = {
        CAMERA: {"dtype": "video", "shape": (*size, 3), "names": ["height", "width", "channels"]},
        "observation.state": {"dtype": "float32", "shape": (joints,), "names": names},
        "action": {"dtype": "float32", "shape": (joints,), "names": names},
    }
    dataset = LeRobotDataset.create(
        "vla_lab/lerobot_synthetic",
        fps=fps,
        features=features,
        root=path,
        robot_type="roarm_m3",
        use_videos=True,
    )
    rng = np.random.default_rng(seed)
    for episode in range(num_episodes):
        task = TASKS[episode % len(TASKS)]
        images, states, actions = render_episode(task, frames, size, joints, rng)
        for t in range(frames):
            dataset.add_frame(
                {
                    CAMERA: images[t],
                    "observation.state": states[t],
                    "action": actions[t],
                    "task": task,
                }
            )
        dataset.save_episode()
    dataset.finalize()
    shutil.rmtree(path / "images", ignore_errors=True)  # LeRobot's emptied PNG staging dir


def render_episode(
    task: str, frames: int, size: tuple[int, int], joints: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(T, H, W, 3)`` uint8 frames, ``(T, J)`` states and ``(T, J)`` target-joint actions."""
    colour = "red" if "red" in task else "blue"
    reach = float(rng.uniform(0.3, 0.62))
    bearing = float(rng.uniform(math.radians(35), math.radians(145)))
    cube = (BASE_XY[0] + reach * math.cos(bearing), BASE_XY[1] - reach * math.sin(bearing))
    goal = _target_joints(reach, bearing, joints)
    state = (
        np.concatenate([HOME, np.zeros(joints - 4), [1.0]])
        + rng.normal(0.0, 0.05, joints) * np.r_[np.ones(joints - 1), 0.0]
    )
    tint = rng.uniform(-15, 15, 3)
    images = np.empty((frames, *size, 3), dtype=np.uint8)
    states = np.empty((frames, joints), dtype=np.float32)
    actions = np.empty((frames, joints), dtype=np.float32)
    for t in range(frames):
        target = goal.copy()
        target[-1] = 0.0 if t >= CLOSE_FROM * frames else 1.0
        action = state + GAIN * (target - state)
        images[t] = _render(state, cube, CUBE_RGB[colour], size, tint)
        states[t], actions[t] = state, action
        state = action
    return images, states, actions


def _target_joints(reach: float, bearing: float, joints: int) -> np.ndarray:
    """Joints that put the hand's tip on the cube: 2-link IK for the wrist point, then the hand
    points along the bearing; extra joints are smooth functions of the cube's position."""
    upper, fore, hand = LINKS
    wrist = reach - hand
    cos_elbow = (wrist**2 - upper**2 - fore**2) / (2 * upper * fore)
    elbow = -math.acos(max(-1.0, min(1.0, cos_elbow)))
    base = bearing - math.atan2(fore * math.sin(elbow), upper + fore * math.cos(elbow))
    wrist_pitch = bearing - base - elbow
    extras = [math.sin(1.3 * (k + 1) * bearing) * (0.5 + reach) for k in range(joints - 4)]
    return np.array([base, elbow, wrist_pitch, *extras, 0.0])


def _render(
    state: np.ndarray,
    cube: tuple[float, float],
    rgb: tuple[int, int, int],
    size: tuple[int, int],
    tint: np.ndarray,
) -> np.ndarray:
    height, width = size
    scale = np.array([width, height], dtype=np.float64)
    table = tuple(int(c) for c in np.clip(np.array([200, 190, 170]) + tint, 0, 255))
    image = Image.new("RGB", (width, height), table)
    draw = ImageDraw.Draw(image)
    half = 0.045 * min(width, height)
    cx, cy = cube[0] * width, cube[1] * height
    draw.rectangle([cx - half, cy - half, cx + half, cy + half], fill=rgb)
    points = [np.array(BASE_XY) * scale]
    angle = 0.0
    for joint, link in zip(state[:3], LINKS, strict=True):
        angle += float(joint)
        step = np.array([math.cos(angle), -math.sin(angle)]) * link * scale
        points.append(points[-1] + step)
    line_width = max(2, round(min(width, height) / 24))
    draw.line([tuple(p) for p in points], fill=(60, 60, 60), width=line_width)
    for p in points[:-1]:
        r = line_width * 0.8
        draw.ellipse([p[0] - r, p[1] - r, p[0] + r, p[1] + r], fill=(30, 30, 30))
    _draw_gripper(draw, points[-1], angle, float(state[-1]), min(width, height))
    return np.asarray(image)


def _draw_gripper(
    draw: ImageDraw.ImageDraw, tip: np.ndarray, angle: float, opening: float, size: int
) -> None:
    """Two fingers either side of the tip, ``opening`` (0 closed .. 1 open) apart."""
    normal = np.array([math.sin(angle), math.cos(angle)])
    along = np.array([math.cos(angle), -math.sin(angle)])
    spread = (0.02 + 0.04 * max(0.0, min(1.0, opening))) * size
    for side in (-1.0, 1.0):
        base = tip + side * spread * normal
        draw.line([tuple(base), tuple(base + along * 0.05 * size)], fill=(250, 200, 0), width=2)
