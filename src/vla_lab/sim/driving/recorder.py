"""Records the expert's drives of the road world as PhysicalAI-AV clips in the released layout,
so the driving demo data and the closed-loop world are one world.

Each clip is one episode driven by the expert with a little slowly varying noise, from the
egomotion's start (sim time 0) to the clip's end. What a reader must know:

- The clock is the released one: one clock per clip, shared by all sensors, nominally 0 to
  `clip_seconds`. Egomotion starts about `egomotion_lead_s` before 0 (+-0.1 s per clip), the
  first video frame a few ms before or after 0 (+-20 ms), and frame timestamps carry +-1 ms of
  capture jitter around the constant rate; a reader that shifts the clock by its first frame or
  pose, or assumes frame i is at i / fps, fails its tests.
- Egomotion at `egomotion_hz` is a cubic spline through the simulated 10 Hz states, so positions,
  velocities, accelerations, yaw (the direction of motion) and curvature (yaw rate / speed) agree
  with each other to the finite-difference error. The road is drawn with 0.8 `max_curvature`,
  so the drive's curvature (a lane centre 3.6 m inside a bend curves more) stays under it.
- Anchor frame: the released data expresses poses in the rig frame at the clip's first timestamp
  (first pose = identity). Ours is deliberately not: each clip's anchor is moved by a random
  rigid transform (yaw in [-pi, pi), x and y offsets up to 50 m, z up to 0.5 m), so a loader
  that skips the move into the t0 ego frame fails its tests.
- Video: `round(clip_seconds * fps)` frames, frame i rendered from the pose at its timestamp;
  no B-frames except in clip 1 (the second), which has up to 2 between references, so decode
  order differs from presentation order there. Camera and calibration: `camera`.
"""

from __future__ import annotations

import math
import uuid
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.interpolate import CubicSpline

from vla_lab.data.physical_ai_av import writer
from vla_lab.driving.unicycle import UnicycleActionSpace
from vla_lab.sim.driving import camera
from vla_lab.sim.driving.expert import RoadExpert
from vla_lab.sim.driving.render import render
from vla_lab.sim.driving.scenarios import draw_episode
from vla_lab.sim.driving.world import RoadWorld

_ROAD_CURVATURE_SHARE = 0.8
COMMAND_GRID_US = 100_000  # the recorded commands' time step (0.1 s)
_COUNTRIES = ("United States", "Germany", "France", "Italy", "Spain", "Sweden", "Japan")


@dataclass(frozen=True)
class Recording:
    """What the recorded clips look like: clip length and clocks, video size and rate, the
    drives (scenarios cycled over clips, speeds, curvature, cruise-speed swing, noise)."""

    clip_seconds: float = 12.0
    fps: int = 10
    image_size: tuple[int, int] = (64, 96)
    egomotion_hz: float = 50.0
    egomotion_lead_s: float = 2.0
    speed_range: tuple[float, float] = (4.0, 14.0)
    max_curvature: float = 0.03
    max_accel: float = 0.6
    scenarios: tuple[str, ...] = ("curves",)
    noise: float = 0.02
    commander_hz: float = 1.0


def record_drives(
    path: Path,
    recording: Recording,
    num_clips: int,
    seed: int = 0,
    clips_per_chunk: int = 20,
    val_fraction: float = 0.2,
    write_calibration: bool = True,
) -> None:
    """Write `num_clips` recorded drives into the empty directory `path`. Clip k depends only on
    (seed, k) and `recording`, so fewer clips are a prefix of more."""
    height, width = recording.image_size
    calibration = (camera.intrinsics_row(height, width), camera.extrinsics_row())
    writer.write_root(
        path,
        lambda k: record_clip(recording, seed, k),
        num_clips,
        clips_per_chunk,
        val_fraction,
        seed,
        calibration if write_calibration else None,
    )


def record_clip(recording: Recording, seed: int, k: int) -> writer.RecordedClip:
    """Clip k of a recording: drive, clocks, egomotion, rendered video."""
    rng = np.random.default_rng([seed, k])
    clip_id = str(uuid.UUID(bytes=rng.bytes(16), version=4))
    ego_start_us = -round(recording.egomotion_lead_s * 1e6) + int(rng.integers(-100_000, 100_001))
    end_us = round(recording.clip_seconds * 1e6)
    hz, fps = recording.egomotion_hz, recording.fps
    n_ego = int((end_us - ego_start_us) * 1e-6 * hz) + 1
    ego_us = ego_start_us + np.round(np.arange(n_ego) * 1e6 / hz).astype(np.int64)
    n_frames = max(1, round(recording.clip_seconds * fps))
    frame_us = (
        int(rng.integers(-20_000, 20_001))
        + np.round(np.arange(n_frames) * 1e6 / fps).astype(np.int64)
        + rng.integers(-1_000, 1_001, n_frames)
    )
    duration_s = (end_us - ego_start_us) / 1e6
    scenario = recording.scenarios[k % len(recording.scenarios)]
    episode = draw_episode(
        scenario,
        rng,
        duration_s,
        recording.speed_range,
        _ROAD_CURVATURE_SHARE * recording.max_curvature,
        recording.max_accel,
    )
    world = _drive(episode, duration_s, recording, rng)
    states, s, _ = world.driven()
    t = np.arange(len(states)) * world.dt
    path = CubicSpline(t, states[:, :2], axis=0)
    frame_t = (frame_us - ego_start_us) / 1e6
    frames = (
        render(
            episode.road, _pose(path, ti), float(np.interp(ti, t, s)), recording.image_size,
            episode.look, episode.trucks,
        )
        for ti in frame_t
    )  # fmt: skip
    video = writer.encode_h264(frames, fps, recording.image_size, 2 if k == 1 else 0)
    egomotion = _egomotion(path, (ego_us - ego_start_us) / 1e6, ego_us, rng)
    # The command in force at every 0.1 s of the clip's clock: any t0 grid of the reader
    # (t0_us = 5.1 s +- k * stride) falls on it.
    t0_us = np.arange(0, end_us + 1, COMMAND_GRID_US, dtype=np.int64)
    commands = pd.DataFrame(
        {"t0_us": t0_us, "command": [world.command_at((t - ego_start_us) / 1e6) for t in t0_us]}
    )
    collection = _collection_row(rng)
    return writer.RecordedClip(clip_id, video, frame_us, egomotion, collection, commands)


def _drive(episode, duration_s: float, recording: Recording, rng: np.random.Generator):
    """The expert's noisy drive of `episode`, one state per 0.1 s, at least `duration_s` long."""
    world = RoadWorld(episode, UnicycleActionSpace(), recording.commander_hz)
    expert = RoadExpert(lambda: world, noise=recording.noise, rng=rng)
    while world.t_s < duration_s + world.dt:
        world.step(expert.act())
    return world


def _pose(path: CubicSpline, t: float) -> tuple[float, float, float]:
    (x, y), (vx, vy) = path(t), path(t, 1)
    return float(x), float(y), math.atan2(vy, vx)


def _egomotion(path: CubicSpline, t: np.ndarray, t_us: np.ndarray, rng: np.random.Generator):
    """Egomotion of the spline at times `t` (s from the drive's start) in a random anchor."""
    xy, vel, acc = path(t), path(t, 1), path(t, 2)
    speed = np.hypot(vel[:, 0], vel[:, 1])
    curvature = (vel[:, 0] * acc[:, 1] - vel[:, 1] * acc[:, 0]) / speed**3
    yaw0 = rng.uniform(-np.pi, np.pi)
    offset = np.r_[rng.uniform(-50.0, 50.0, 2), rng.uniform(-0.5, 0.5)]
    c, s = math.cos(yaw0), math.sin(yaw0)
    turn = np.array([[c, s], [-s, c]])  # row vectors @ turn rotates them by yaw0
    yaw = np.unwrap(np.arctan2(vel[:, 1], vel[:, 0])) + yaw0
    return writer.egomotion_table(
        t_us, offset[:2] + xy @ turn, yaw, vel @ turn, acc @ turn, curvature, float(offset[2])
    )


def _collection_row(rng: np.random.Generator) -> dict[str, object]:
    return {
        "country": str(rng.choice(_COUNTRIES)),
        "month": int(rng.integers(1, 13)),
        "hour_of_day": int(rng.integers(6, 21)),
        "platform_class": str(rng.choice(["hyperion_8", "hyperion_8.1"])),
    }
