"""Recordings of the box course's expert, written as Mobile VLA collector-layout ``.h5`` episodes.

So demo data and evaluation world are one world: the frames are the env's observations, the file
names carry the scenario (and, for ``hori`` as the newer collector names them, the start
distance), and the data source reads them like any collection.

With ``key_noise`` the executed key is sometimes wrong (``BoxCourseExpert``) while the recorded
action is still the expert's own key for the state it saw: the data then shows how to recover from
states a learned policy drifts into, and never teaches the wrong keys (DART, Laskey et al. 2017).
A noisy episode can end early, in a failure; it is kept, its frames before the end are still good
demonstrations.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from vla_lab.data.mobile_vla.writer import write_collector_episode
from vla_lab.sim.base import EpisodeSpec, episode_specs
from vla_lab.sim.mobile_vla.env import CAMERA_KEY, BoxCourseEnv

log = logging.getLogger(__name__)

DISTANCE_CLASSES = ((2.0, "close"), (2.8, "medium"), (float("inf"), "far"))  # first box, metres


@dataclass(frozen=True)
class Recording:
    """One expert episode: ``images`` (T, H, W, 3) uint8 RGB, ``actions`` (T, 3) float32."""

    scenario: str
    start_m: float
    images: np.ndarray
    actions: np.ndarray


def record_episode(
    env: BoxCourseEnv, spec: EpisodeSpec, num_frames: int, key_noise: float = 0.0
) -> Recording:
    """Run the expert in ``spec``'s episode until it ends or ``num_frames`` frames are recorded
    (the env's own ``max_steps`` still applies)."""
    observation, _ = env.reset(seed=spec.seed, options={"scenario": spec.scenario})
    expert = env.expert(noise=key_noise, seed=spec.seed)
    images, actions = [], []
    for _ in range(num_frames):
        images.append(observation[CAMERA_KEY])
        actions.append(expert.intended_action())
        observation, _, terminated, truncated, _ = env.step(expert.act(observation))
        if terminated or truncated:
            break
    return Recording(
        scenario=env.course.scenario,
        start_m=env.course.boxes[0].ahead_m,
        images=np.stack(images),
        actions=np.stack(actions).astype(np.float32),
    )


def record_episodes(
    root: str | Path,
    num_episodes: int,
    seed: int = 0,
    num_frames: int | Sequence[int] = 40,
    height: int = 96,
    width: int = 128,
    key_noise: float = 0.05,
    pixel_noise: float = 2.0,
) -> list[Path]:
    """Write ``num_episodes`` expert episodes under ``root``; return their paths.

    Scenarios cycle through all 8; episode ``i`` is the env's episode of seed ``seed + i``
    (``episode_specs``). ``num_frames`` caps each episode's length (one value, or one per
    episode); an episode also ends at the goal or at a failure, whichever comes first.
    """
    limits = [num_frames] * num_episodes if isinstance(num_frames, int) else list(num_frames)
    if len(limits) != num_episodes or min(limits, default=1) < 1:
        raise ValueError(
            f"num_frames must be a positive int or one per episode ({num_episodes}), got "
            f"{num_frames}"
        )
    env = BoxCourseEnv(height, width, max_steps=max(limits, default=1), pixel_noise=pixel_noise)
    specs = episode_specs(env.scenarios, num_episodes, seed)
    paths, failed = [], 0
    for spec, limit in zip(specs, limits, strict=True):
        recording = record_episode(env, spec, limit, key_noise)
        failed += env.failure_reason() not in ("", "timeout")
        path = Path(root) / _file_name(spec.index, recording)
        paths.append(write_collector_episode(path, recording.images, recording.actions))
    log.info(
        "Recorded %d box-course episodes under %s, %d ended in a failure", len(paths), root, failed
    )
    return paths


def _file_name(index: int, recording: Recording) -> str:
    """``episode_<date>_<time>_<scenario>[_core_<distance>].h5``, a distinct clock per index."""
    seconds = 9 * 3600 + 97 * index
    clock = f"{seconds // 3600 % 24:02d}{seconds // 60 % 60:02d}{seconds % 60:02d}"
    tail = ""
    if "hori" in recording.scenario:
        distance = next(name for limit, name in DISTANCE_CLASSES if recording.start_m < limit)
        tail = f"_core_{distance}"
    return f"episode_2025{1 + index // 900 % 12:02d}01_{clock}_{recording.scenario}{tail}.h5"
