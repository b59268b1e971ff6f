"""Synthetic Mobile VLA episodes in the real on-disk formats, for demos, tests and benchmarks.

They are recordings of the box course's scripted expert (``vla_lab.sim.mobile_vla``), so the demo
dataset and the closed-loop evaluation world are one world: the robot drives forward until the
first box is close (it looks big and low in the image), sidesteps towards the instruction's side
until it clears the boxes, then drives on to the goal. The start distance differs per episode, so
*when* to sidestep is only visible in the image, and *which way* only in the instruction.

``num_frames`` is a cap: an episode ends at the goal (or, with key noise, at a failure) or after
``num_frames`` frames, whichever comes first. The expert needs 15 to 25 keypresses, so a cap of 40
(the env's step budget) records whole episodes, and a cap below 15 cuts every episode.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from vla_lab.data.mobile_vla.h5 import ACTION_TYPE_NAMES
from vla_lab.data.mobile_vla.writer import write_guide_episode_file
from vla_lab.sim.base import EpisodeSpec
from vla_lab.sim.mobile_vla.env import BoxCourseEnv
from vla_lab.sim.mobile_vla.recorder import record_episode, record_episodes


def write_synthetic_episodes(
    root: str | Path,
    num_episodes: int = 48,
    num_frames: int = 40,
    height: int = 96,
    width: int = 128,
    seed: int = 0,
    short_fraction: float = 0.1,
    noise: float = 2.0,
    key_noise: float = 0.05,
) -> list[Path]:
    """Write ``num_episodes`` collector-layout ``.h5`` files under ``root``; return their paths.

    Scenarios cycle through all 8 (1box|2box, vert|hori, left|right); about ``short_fraction`` of
    the episodes are cut shorter than ``num_frames`` so padding is exercised. ``noise`` (pixel
    std) keeps gzip from compressing frames unrealistically well, which matters for loader
    benchmarks; ``key_noise`` is the expert's wrong-key probability (see ``recorder``).
    """
    rng = np.random.default_rng(seed)
    num_short = round(num_episodes * short_fraction)
    if short_fraction > 0 and num_episodes >= 2:
        num_short = max(1, num_short)
    short = set(rng.choice(num_episodes, size=min(num_short, num_episodes), replace=False).tolist())
    limits = [
        int(rng.integers(max(2, num_frames // 3), num_frames)) if i in short else num_frames
        for i in range(num_episodes)
    ]
    return record_episodes(
        root,
        num_episodes,
        seed=seed,
        num_frames=limits,
        height=height,
        width=width,
        key_noise=key_noise,
        pixel_noise=noise,
    )


def write_guide_episode(
    path: str | Path,
    scenario: str = "1box_vert_left",
    num_frames: int = 18,
    height: int = 96,
    width: int = 128,
    seed: int = 0,
    noise: float = 2.0,
) -> Path:
    """Write one guide-layout episode of the noiseless expert (at most ``num_frames`` frames):
    RGB ``observations/images``, ``action`` (T, 4) with the action class (0 move, 2 stop on the
    last frame), ``episode_metadata`` attrs."""
    env = BoxCourseEnv(height, width, max_steps=num_frames, pixel_noise=noise)
    recording = record_episode(env, EpisodeSpec(0, scenario, seed), num_frames)
    actions = recording.actions.copy()
    action_types = np.zeros(len(actions), dtype=np.int64)
    actions[-1] = 0.0
    action_types[-1] = ACTION_TYPE_NAMES.index("stop")
    metadata = {"scenario": scenario, "distance": f"{round(recording.start_m * 100)}cm"}
    return write_guide_episode_file(path, recording.images, actions, action_types, metadata)
