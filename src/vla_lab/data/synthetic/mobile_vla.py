"""Synthetic Mobile VLA episodes in the real on-disk formats, for demos, tests and benchmarks.

The scene is rendered first-person: wall, floor, a green goal post far ahead and one or two pure red
boxes in the robot's path (red so a BGR/RGB mix-up is visible). The robot drives forward
(linear_x = +1.15) until the first box is close (it looks big and low in the image), sidesteps
(linear_y = +-1.15 towards the scenario's side, +y = left as in ROS) until it clears the obstacle,
then drives forward again. The initial distance differs per episode, so *when* to sidestep is only
visible in the image, and *which way* only in the instruction: a policy needs both.

Geometry per scenario: ``vert`` boxes are narrow (0.4 m) and for ``2box`` stand one behind the
other; ``hori`` boxes are wide (0.8 m) and for ``2box`` stand side by side. A wider obstacle needs
more sidesteps, which the image shows too.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np

from vla_lab.utils.io import atomic_write

SPEED = 1.15  # teleop key speed, m/s (and rad/s)
KEYPRESS_S = 0.3  # one keypress (one frame) moves the robot for 0.3 s
STEP_M = 0.3  # metres moved per frame (about SPEED * KEYPRESS_S)
TRIGGER_M = 0.9  # sidestep once the first box is this close
ROBOT_HALF_WIDTH_M = 0.3
CAMERA_HEIGHT_M = 0.3
BOX_HEIGHT_M = 0.45
SCENARIOS = [
    f"{boxes}_{orientation}_{side}"
    for boxes, orientation, side in itertools.product(
        ("1box", "2box"), ("vert", "hori"), ("left", "right")
    )
]
RED_RGB = (255, 0, 0)
GOAL_RGB = (0, 200, 0)


@dataclass(frozen=True)
class _Box:
    ahead_m: float  # distance from the robot's start along the path
    lateral_m: float  # + = left
    width_m: float


def write_synthetic_episodes(
    root: str | Path,
    num_episodes: int = 48,
    num_frames: int = 18,
    height: int = 96,
    width: int = 128,
    seed: int = 0,
    short_fraction: float = 0.1,
    noise: float = 2.0,
) -> list[Path]:
    """Write ``num_episodes`` collector-layout ``.h5`` files under ``root``; return their paths.

    Scenarios cycle through all 8 (1box|2box, vert|hori, left|right); about ``short_fraction`` of
    the episodes are shorter than ``num_frames`` so padding is exercised. ``noise`` (pixel std)
    keeps gzip from compressing frames unrealistically well, which matters for loader benchmarks.
    """
    root = Path(root)
    rng = np.random.default_rng(seed)
    num_short = round(num_episodes * short_fraction)
    if short_fraction > 0 and num_episodes >= 2:
        num_short = max(1, num_short)
    short = set(rng.choice(num_episodes, size=min(num_short, num_episodes), replace=False).tolist())
    paths = []
    for i in range(num_episodes):
        scenario = SCENARIOS[i % len(SCENARIOS)]
        frames = (
            int(rng.integers(max(2, num_frames // 3), num_frames)) if i in short else num_frames
        )
        tail = "_core_medium" if "hori" in scenario and i % 3 == 0 else ""
        name = f"episode_2025{1 + i // 900 % 12:02d}01_{_clock(i)}_{scenario}{tail}.h5"
        images, actions = render_episode(scenario, frames, height, width, rng, noise)
        paths.append(_write_collector(root / name, images, actions, name))
    return paths


def write_guide_episode(
    path: str | Path,
    scenario: str = "1box_vert_left",
    num_frames: int = 18,
    height: int = 96,
    width: int = 128,
    seed: int = 0,
    noise: float = 2.0,
) -> Path:
    """Write one guide-layout episode: RGB ``observations/images``, ``action`` (T, 4) with the
    action class (0 move, 2 stop on the last frame), ``episode_metadata`` attrs."""
    rng = np.random.default_rng(seed)
    images, actions = render_episode(scenario, num_frames, height, width, rng, noise)
    action_type = np.zeros((num_frames, 1), dtype=np.float32)
    actions[-1] = 0.0
    action_type[-1] = 2.0

    def write(tmp: Path) -> None:
        with h5py.File(tmp, "w") as file:
            file.create_dataset("observations/images", data=images, compression="gzip")
            file.create_dataset("action", data=np.concatenate([actions, action_type], axis=1))
            meta = file.create_group("episode_metadata")
            meta.attrs["scenario"] = scenario
            meta.attrs["distance"] = "50cm"

    return atomic_write(path, write)


def render_episode(
    scenario: str,
    num_frames: int,
    height: int,
    width: int,
    rng: np.random.Generator,
    noise: float = 2.0,
) -> tuple[np.ndarray, np.ndarray]:
    """``(T, H, W, 3)`` uint8 RGB frames and ``(T, 3)`` float32 actions of one episode."""
    boxes_token, orientation, side = scenario.split("_")[:3]
    start_m = float(rng.uniform(1.2, 3.6))
    jitter = float(rng.uniform(-0.05, 0.05))
    boxes = _layout(boxes_token, orientation, start_m, jitter)
    blocked = max(abs(b.lateral_m) + b.width_m / 2 for b in boxes)
    sidesteps = math.ceil((blocked + ROBOT_HALF_WIDTH_M) / STEP_M)
    goal_m = start_m + 3.0
    direction = 1.0 if side == "left" else -1.0
    tint = rng.uniform(-12, 12, size=3)

    x = y = 0.0
    done = 0
    images = np.empty((num_frames, height, width, 3), dtype=np.uint8)
    actions = np.zeros((num_frames, 3), dtype=np.float32)
    for t in range(num_frames):
        images[t] = _render(boxes, goal_m, x, y, height, width, tint, rng, noise)
        if 0 < done < sidesteps or (done == 0 and boxes[0].ahead_m - x <= TRIGGER_M):
            actions[t] = (0.0, direction * SPEED, 0.0)
            y += direction * STEP_M
            done += 1
        else:
            actions[t] = (SPEED, 0.0, 0.0)
            x += STEP_M
    return images, actions


def _layout(boxes: str, orientation: str, start_m: float, jitter: float) -> list[_Box]:
    if boxes == "1box":
        return [_Box(start_m, jitter, 0.4 if orientation == "vert" else 0.8)]
    if orientation == "vert":
        return [_Box(start_m, jitter, 0.4), _Box(start_m + 0.8, jitter, 0.4)]
    return [_Box(start_m, jitter + 0.25, 0.4), _Box(start_m, jitter - 0.25, 0.4)]


def _render(
    boxes: list[_Box],
    goal_m: float,
    x: float,
    y: float,
    height: int,
    width: int,
    tint: np.ndarray,
    rng: np.random.Generator,
    noise: float,
) -> np.ndarray:
    """Pinhole projection of the scene seen from the robot at (x, y), camera looking ahead."""
    horizon = int(0.4 * height)
    focal = 0.8 * width
    image = np.empty((height, width, 3), dtype=np.float32)
    image[:horizon] = np.array([190, 190, 200]) + tint
    ramp = np.linspace(0.75, 1.0, height - horizon)[:, None, None]
    image[horizon:] = (np.array([130, 120, 105]) + tint) * ramp

    def draw(ahead: float, lateral: float, width_m: float, height_m: float, color) -> None:
        depth = ahead - x
        if depth <= 0.15:
            return
        centre = width / 2 - focal * (lateral - y) / depth
        half = focal * width_m / 2 / depth
        bottom = horizon + focal * CAMERA_HEIGHT_M / depth
        top = horizon - focal * (height_m - CAMERA_HEIGHT_M) / depth
        rows = slice(max(0, int(top)), max(0, min(height, int(bottom))))
        cols = slice(max(0, int(centre - half)), max(0, min(width, int(centre + half))))
        image[rows, cols] = color

    draw(goal_m, 0.0, 0.15, 1.2, GOAL_RGB)
    for box in sorted(boxes, key=lambda b: -(b.ahead_m - x)):  # far to near
        draw(box.ahead_m, box.lateral_m, box.width_m, BOX_HEIGHT_M, RED_RGB)
    if noise > 0:
        image += rng.normal(0.0, noise, size=image.shape).astype(np.float32)
    return np.clip(image, 0, 255).astype(np.uint8)


def _clock(i: int) -> str:
    seconds = 9 * 3600 + 97 * i
    return f"{seconds // 3600 % 24:02d}{seconds // 60 % 60:02d}{seconds % 60:02d}"


def _write_collector(path: Path, images: np.ndarray, actions: np.ndarray, name: str) -> Path:
    """The collector layout: BGR frames (cv_bridge "bgr8"), actions, event types, attrs."""
    events = ["episode_start"] + ["start_action"] * (len(actions) - 1)

    def write(tmp: Path) -> None:
        with h5py.File(tmp, "w") as file:
            file.create_dataset(
                "images", data=np.ascontiguousarray(images[..., ::-1]), compression="gzip"
            )
            file.create_dataset("actions", data=actions)
            file.create_dataset("action_event_types", data=events, dtype=h5py.string_dtype())
            file.attrs["episode_name"] = Path(name).stem
            file.attrs["num_frames"] = len(actions)
            file.attrs["total_duration"] = round(len(actions) * KEYPRESS_S, 3)
            file.attrs["action_chunk_size"] = 8

    return atomic_write(path, write)
