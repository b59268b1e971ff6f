"""Synthetic driving clips in the PhysicalAI-AV released layout (see `physical_ai_av.layout`).

A car drives the centre of a lane on a flat road. The road is a curve in arc length: straight
stretches and constant-curvature arcs of 15-50 m, blended over ~12 m, so the curvature a few seconds
ahead shows in the image but cannot be predicted from the motion so far. The speed is v0 plus two
slow sinusoids (|a| <= ``max_accel``), kept inside ``speed_range``. The front wide camera sees the
road ahead from each frame's pose (the road exists in arc length, so the look-ahead is 60 m at any
speed): sky, grass, a grey road, solid white lane lines 1.8 m either side of the path, dashed
yellow marks along its centre and posts beside the road every 12 m; marks and posts move past as
the car drives, so speed shows across frames.

What a reader must know:

- The clock is the released one: one clock per clip, shared by all sensors, nominally 0 to
  ``clip_seconds``. Egomotion starts about ``egomotion_lead_s`` before 0 (+-0.1 s per clip), the
  first video frame a few ms before or after 0 (+-20 ms), and frame timestamps carry +-1 ms of
  capture jitter around the constant rate; a reader that shifts the clock by its first frame or
  pose, or assumes frame i is at i / fps, fails its tests.
- Egomotion (``<clip_id>.egomotion.parquet``, float64 but ``timestamp`` int64 us): ``timestamp qx qy
  qz qw x y z vx vy vz ax ay az curvature`` at ``egomotion_hz`` from its start to ``clip_seconds``.
  Rig frame: rear axle on the ground, x forward, y left, z up; curvature is signed (positive turns
  left).
- Anchor frame: the released data expresses poses in the rig frame at the clip's first timestamp
  (first pose = identity). Ours is deliberately not: each clip's anchor is that frame moved by a
  random rigid transform (yaw in [-pi, pi), x and y offsets up to 50 m, z up to 0.5 m), so a loader
  that skips the move into the t0 ego frame fails its tests. Velocities and accelerations are
  anchor-frame vectors, as released; only yaw is non-zero (flat road).
- Video: ``round(clip_seconds * fps)`` frames, frame i rendered at its timestamp; H.264 yuv420p
  at constant ``fps``, a keyframe every 10 frames, no B-frames except in clip 1 (the second), which
  has up to 2 between references, so decode order differs from presentation order there. Zip
  members are stored uncompressed, so a reader can seek inside them.
- Camera: a level pinhole (horizontal FOV 100 deg) 1.5 m ahead of the rig origin and 1.5 m above the
  ground. Optical axes x right, y down, z forward; pixel centres at integer (u, v), principal point
  at the image centre. Intrinsics are written as f-theta polynomials fitted to the pinhole (under
  0.2 px error inside the image); extrinsics are camera -> rig.
"""

from __future__ import annotations

import io
import json
import logging
import math
import uuid
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np
import pandas as pd
from PIL import Image, ImageDraw

from vla_lab.data.physical_ai_av import layout
from vla_lab.utils.io import atomic_write_dir

log = logging.getLogger(__name__)

CAMERA_FORWARD_M = 1.5  # camera ahead of the rig origin (rear axle)
CAMERA_HEIGHT_M = 1.5
HORIZONTAL_FOV_DEG = 100.0
LANE_HALF_WIDTH_M = 1.8
LOOKAHEAD_M = (2.0, 60.0)  # road drawn this far ahead of the rig origin, along the path
KEYFRAME_INTERVAL = 10
# Camera -> rig rotation; columns are the optical x (right), y (down), z (forward) axes in the rig.
CAMERA_TO_RIG = np.array([[0.0, 0.0, 1.0], [-1.0, 0.0, 0.0], [0.0, -1.0, 0.0]])
# Not (yet) named in `physical_ai_av.layout`; released paths.

_ROAD_STEP_M = 0.1
_SHOULDER_M = 0.7
_LINE_HALF_WIDTH_M = 0.12
_MIN_LINE_PX = 2.5  # lines stay at least this wide, so they survive downsampling
_DASH_M, _DASH_PERIOD_M = 3.0, 8.0
# Roadside posts stand above the horizon, so where the road bends far ahead shows in more rows.
_POST_PERIOD_M, _POST_HEIGHT_M, _POST_HALF_WIDTH_M = 12.0, 3.0, 0.15
_POST_OFFSET_M = LANE_HALF_WIDTH_M + _SHOULDER_M + 1.0
_WHITE = (240, 240, 240)
_LOOKAHEAD = LOOKAHEAD_M[0] + (LOOKAHEAD_M[1] - LOOKAHEAD_M[0]) * np.linspace(0, 1, 40) ** 1.5
_ZIP_TIME = (2025, 1, 1, 0, 0, 0)  # fixed member dates, so a seed gives the same bytes
_COUNTRIES = ("United States", "Germany", "France", "Italy", "Spain", "Sweden", "Japan")


@dataclass(frozen=True)
class _Spec:
    clip_seconds: float
    fps: int
    height: int
    width: int
    egomotion_hz: float
    speed_range: tuple[float, float]
    max_curvature: float
    max_accel: float
    egomotion_lead_s: float

    def __post_init__(self) -> None:
        lo, hi = self.speed_range
        problems = [
            (self.clip_seconds > 0, f"clip_seconds must be > 0, got {self.clip_seconds}"),
            (self.fps > 0, f"fps must be > 0, got {self.fps}"),
            (self.egomotion_hz > 0, f"egomotion_hz must be > 0, got {self.egomotion_hz}"),
            (
                self.height >= 16 and self.width >= 16 and self.height % 2 == self.width % 2 == 0,
                f"image_size must be even and >= 16 (yuv420p), got {(self.height, self.width)}",
            ),
            (1.0 <= lo <= hi, f"speed_range must satisfy 1 <= low <= high m/s, got {(lo, hi)}"),
            (self.max_curvature >= 0, f"max_curvature must be >= 0, got {self.max_curvature}"),
            (self.max_accel >= 0, f"max_accel must be >= 0, got {self.max_accel}"),
            (
                self.egomotion_lead_s >= 0.1,
                f"egomotion_lead_s must be >= 0.1, got {self.egomotion_lead_s}",
            ),
        ]
        errors = [message for ok, message in problems if not ok]
        if errors:
            raise ValueError("write_synthetic_av: " + "; ".join(errors))

    @property
    def focal_px(self) -> float:
        return (self.width / 2) / math.tan(math.radians(HORIZONTAL_FOV_DEG) / 2)

    @property
    def principal_point(self) -> tuple[float, float]:
        return (self.width - 1) / 2, (self.height - 1) / 2


def write_synthetic_av(
    root: str | Path,
    num_clips: int = 40,
    clip_seconds: float = 12.0,
    fps: int = 10,
    image_size: Sequence[int] = (64, 96),
    egomotion_hz: float = 50,
    seed: int = 0,
    clips_per_chunk: int = 20,
    val_fraction: float = 0.2,
    speed_range: Sequence[float] = (4.0, 14.0),
    max_curvature: float = 0.03,
    max_accel: float = 0.6,
    egomotion_lead_s: float = 2.0,
    write_calibration: bool = True,
) -> Path:
    """Write ``num_clips`` clips to ``root`` and return ``root``. ``image_size`` is ``(H, W)``.

    Clip k depends only on ``(seed, k)`` and the motion/image arguments, so fewer clips are a prefix
    of more. Written into a temp dir beside ``root`` and renamed in, so a crash or a concurrent
    writer never leaves half a dataset; if ``root`` already holds a dataset (or another process
    finished first), that copy is kept. About 3 s on two CPU cores at the defaults.
    """
    root = Path(root)
    spec = _Spec(
        float(clip_seconds),
        int(fps),
        *(int(x) for x in image_size),
        float(egomotion_hz),
        (float(speed_range[0]), float(speed_range[1])),
        float(max_curvature),
        float(max_accel),
        float(egomotion_lead_s),
    )
    if num_clips < 1 or clips_per_chunk < 1 or not 0.0 <= val_fraction < 1.0:
        raise ValueError(
            "write_synthetic_av: need num_clips >= 1, clips_per_chunk >= 1, 0 <= val_fraction < 1; "
            f"got {num_clips}, {clips_per_chunk}, {val_fraction}"
        )
    if (root / layout.CLIP_INDEX).is_file():
        log.info("%s already holds a dataset; keeping it", root)
        return root
    if root.exists() and (not root.is_dir() or any(root.iterdir())):
        raise FileExistsError(
            f"{root} exists and has no {layout.CLIP_INDEX}; remove it or choose another root"
        )
    atomic_write_dir(
        root,
        lambda tmp: _write(
            tmp, spec, num_clips, seed, clips_per_chunk, val_fraction, write_calibration
        ),
        done=lambda path: (path / layout.CLIP_INDEX).is_file(),
    )
    return root


def _write(
    path: Path,
    spec: _Spec,
    num_clips: int,
    seed: int,
    clips_per_chunk: int,
    val_fraction: float,
    write_calibration: bool,
) -> None:
    clip_ids, collection = [], []
    for chunk, first in enumerate(range(0, num_clips, clips_per_chunk)):
        camera_zip = layout.camera_zip(path, layout.FRONT_WIDE, chunk)
        ego_zip = layout.egomotion_zip(path, chunk)
        camera_zip.parent.mkdir(parents=True, exist_ok=True)
        ego_zip.parent.mkdir(parents=True, exist_ok=True)
        with zipfile.ZipFile(camera_zip, "w") as videos, zipfile.ZipFile(ego_zip, "w") as egos:
            for k in range(first, min(first + clips_per_chunk, num_clips)):
                rng = np.random.default_rng([seed, k])
                clip_id = str(uuid.UUID(bytes=rng.bytes(16), version=4))
                mp4, frame_us, egomotion = _clip(spec, rng, b_frames=2 if k == 1 else 0)
                _store(videos, layout.video_member(clip_id, layout.FRONT_WIDE), mp4)
                _store(
                    videos,
                    layout.timestamps_member(clip_id, layout.FRONT_WIDE),
                    _parquet(pd.DataFrame({layout.TIMESTAMP_COLUMN: frame_us})),
                )
                _store(egos, layout.egomotion_member(clip_id), _parquet(egomotion))
                clip_ids.append(clip_id)
                collection.append(_collection_row(rng))
    chunks = np.arange(num_clips) // clips_per_chunk
    index = pd.Index(clip_ids, name="clip_id")
    n_val = round(val_fraction * num_clips)
    if val_fraction > 0 and num_clips > 1:
        n_val = min(max(n_val, 1), num_clips - 1)
    split = np.full(num_clips, "train", dtype=object)
    split[np.random.default_rng(seed).permutation(num_clips)[:n_val]] = "val"
    (path / "metadata").mkdir(parents=True, exist_ok=True)
    pd.DataFrame(collection, index=index).to_parquet(path / layout.DATA_COLLECTION)
    presence = {layout.FRONT_WIDE: True, layout.EGOMOTION: True}
    pd.DataFrame(presence, index=index).to_parquet(path / layout.FEATURE_PRESENCE[0])
    features = [_feature_row(layout.FRONT_WIDE), _feature_row(layout.EGOMOTION)]
    if write_calibration:
        for chunk in np.unique(chunks):
            _write_calibration(path, int(chunk), index[chunks == chunk], spec)
        features += [_feature_row("camera_intrinsics"), _feature_row("sensor_extrinsics")]
    pd.DataFrame(features).to_csv(path / layout.FEATURES_CSV, index=False)
    # Written last: its presence marks a complete dataset.
    pd.DataFrame(
        {"chunk": chunks.astype(np.int64), "split": split, "clip_is_valid": True}, index=index
    ).to_parquet(path / layout.CLIP_INDEX)


def _clip(
    spec: _Spec, rng: np.random.Generator, b_frames: int
) -> tuple[bytes, np.ndarray, pd.DataFrame]:
    """One clip: the mp4 bytes, frame timestamps (us) and the egomotion table.

    The motion is a function of the time since the egomotion starts (the car is at arc length 0
    then); frames are rendered at their own timestamps in the clip clock.
    """
    ego_start_us = -round(spec.egomotion_lead_s * 1e6) + int(rng.integers(-100_000, 100_001))
    end_us = round(spec.clip_seconds * 1e6)
    n_ego = int((end_us - ego_start_us) * 1e-6 * spec.egomotion_hz) + 1
    ego_us = ego_start_us + np.round(np.arange(n_ego) * 1e6 / spec.egomotion_hz).astype(np.int64)
    n_frames = max(1, round(spec.clip_seconds * spec.fps))
    frame_us = (
        int(rng.integers(-20_000, 20_001))
        + np.round(np.arange(n_frames) * 1e6 / spec.fps).astype(np.int64)
        + rng.integers(-1_000, 1_001, n_frames)
    )
    ego_t, frame_t = (ego_us - ego_start_us) / 1e6, (frame_us - ego_start_us) / 1e6
    duration_s = (end_us - ego_start_us) / 1e6
    speed = _Speed.draw(rng, spec, duration_s)
    road = _Road.draw(rng, float(speed.s(duration_s)) + LOOKAHEAD_M[1] + 5.0, spec)
    look = _Look.draw(rng)
    frames = (_render(road, float(s), spec, look) for s in speed.s(frame_t))
    mp4 = _encode(frames, spec, b_frames)
    return mp4, frame_us, _egomotion(road, speed, ego_t, ego_us, rng)


@dataclass(frozen=True)
class _Speed:
    """v(t) = v0 + sum_k amp_k (sin(omega_k t + phase_k) - sin(phase_k)); closed-form a and s."""

    v0: float
    amp: np.ndarray
    omega: np.ndarray
    phase: np.ndarray

    @classmethod
    def draw(cls, rng: np.random.Generator, spec: _Spec, duration_s: float) -> _Speed:
        omega = 2 * np.pi / rng.uniform(5.0, 14.0, 2)
        share = rng.uniform(0.3, 0.7)
        accel = spec.max_accel * np.array([share, 1 - share]) * rng.uniform(0.6, 1.0)
        phase = rng.uniform(0, 2 * np.pi, 2)
        dev = cls(0.0, accel / omega, omega, phase).v(np.linspace(0, duration_s, 2001))
        lo, hi = spec.speed_range
        if lo - dev.min() <= hi - dev.max():
            return cls(
                float(rng.uniform(lo - dev.min(), hi - dev.max())), accel / omega, omega, phase
            )
        scale = (hi - lo) / (dev.max() - dev.min())  # the swing does not fit: shrink it
        return cls(float(lo - scale * dev.min()), scale * accel / omega, omega, phase)

    def v(self, t: np.ndarray | float) -> np.ndarray:
        arg = np.multiply.outer(t, self.omega) + self.phase
        return self.v0 + (self.amp * (np.sin(arg) - np.sin(self.phase))).sum(-1)

    def a(self, t: np.ndarray | float) -> np.ndarray:
        arg = np.multiply.outer(t, self.omega) + self.phase
        return (self.amp * self.omega * np.cos(arg)).sum(-1)

    def s(self, t: np.ndarray | float) -> np.ndarray:
        tt = np.asarray(t)[..., None]
        arg = tt * self.omega + self.phase
        rise = (np.cos(self.phase) - np.cos(arg)) / self.omega - tt * np.sin(self.phase)
        return self.v0 * np.asarray(t) + (self.amp * rise).sum(-1)


@dataclass(frozen=True)
class _Road:
    """The lane centre by arc length; the car starts at the origin, facing +x."""

    s: np.ndarray
    x: np.ndarray
    y: np.ndarray
    theta: np.ndarray
    kappa: np.ndarray
    dash_phase: float
    post_phase: float

    @classmethod
    def draw(cls, rng: np.random.Generator, length_m: float, spec: _Spec) -> _Road:
        s = np.arange(0.0, length_m + _ROAD_STEP_M, _ROAD_STEP_M)
        starts, values, pos = [], [], -rng.uniform(0, 30)  # the clip starts mid-segment
        while pos <= length_m + 10:
            straight = rng.random() < 0.3
            side = rng.choice([-1.0, 1.0])
            starts.append(pos)
            values.append(0.0 if straight else side * rng.uniform(0.25, 1.0) * spec.max_curvature)
            pos += rng.uniform(15.0, 50.0)
        steps = np.asarray(values)[np.searchsorted(starts, s, side="right") - 1]
        window = np.hanning(round(12.0 / _ROAD_STEP_M))
        half = len(window) // 2
        padded = np.pad(steps, (half, len(window) - 1 - half), mode="edge")
        kappa = np.convolve(padded, window / window.sum(), mode="valid")  # a blend: |kappa| kept
        theta = _cumtrapz(kappa, _ROAD_STEP_M)
        x = _cumtrapz(np.cos(theta), _ROAD_STEP_M)
        y = _cumtrapz(np.sin(theta), _ROAD_STEP_M)
        phases = rng.uniform(0, 1, 2) * (_DASH_PERIOD_M, _POST_PERIOD_M)
        return cls(s, x, y, theta, kappa, float(phases[0]), float(phases[1]))

    def at(self, s: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        return tuple(np.interp(s, self.s, v) for v in (self.x, self.y, self.theta, self.kappa))


def _cumtrapz(values: np.ndarray, step: float) -> np.ndarray:
    return np.concatenate([[0.0], np.cumsum((values[1:] + values[:-1]) * step / 2)])


def _egomotion(
    road: _Road, speed: _Speed, t: np.ndarray, t_us: np.ndarray, rng: np.random.Generator
) -> pd.DataFrame:
    x, y, theta, kappa = road.at(speed.s(t))
    v, a = speed.v(t), speed.a(t)
    yaw0 = rng.uniform(-np.pi, np.pi)
    offset = np.r_[rng.uniform(-50.0, 50.0, 2), rng.uniform(-0.5, 0.5)]
    c, s = math.cos(yaw0), math.sin(yaw0)
    yaw = theta + yaw0
    along = np.stack([np.cos(yaw), np.sin(yaw)])
    normal = np.stack([-np.sin(yaw), np.cos(yaw)])
    vel, acc = v * along, a * along + v**2 * kappa * normal
    zeros = np.zeros_like(t)
    return pd.DataFrame(
        {
            layout.TIMESTAMP_COLUMN: t_us,
            "qx": zeros,
            "qy": zeros,
            "qz": np.sin(yaw / 2),
            "qw": np.cos(yaw / 2),
            "x": offset[0] + c * x - s * y,
            "y": offset[1] + s * x + c * y,
            "z": zeros + offset[2],
            "vx": vel[0],
            "vy": vel[1],
            "vz": zeros,
            "ax": acc[0],
            "ay": acc[1],
            "az": zeros,
            "curvature": kappa,
        }
    )


@dataclass(frozen=True)
class _Look:
    sky: tuple[int, int, int]
    ground: tuple[int, int, int]
    road: tuple[int, int, int]
    dash: tuple[int, int, int]
    post: tuple[int, int, int]

    @classmethod
    def draw(cls, rng: np.random.Generator) -> _Look:
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
        )


class _View:
    """The road seen from the car at arc length ``s_car``: ego-frame geometry and projection."""

    def __init__(self, road: _Road, s_car: float, spec: _Spec) -> None:
        self.road, self.f = road, spec.focal_px
        self.cu, self.cv = spec.principal_point
        x, y, theta, _ = road.at(np.array(s_car))
        self.origin, self.theta = (float(x), float(y)), float(theta)

    def ego(self, s: np.ndarray) -> np.ndarray:
        """``(4, *s.shape)``: forward, left of the lane centre at arc lengths ``s`` in the car's
        frame, and the centre line's left normal (nx, ny) there."""
        x, y, theta, _ = self.road.at(s)
        c, si = math.cos(self.theta), math.sin(self.theta)
        dx, dy, dtheta = x - self.origin[0], y - self.origin[1], theta - self.theta
        return np.stack([c * dx + si * dy, -si * dx + c * dy, -np.sin(dtheta), np.cos(dtheta)])

    def project(self, geom: np.ndarray, offset, up: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
        """Pixel (u, v) of points ``offset`` m left of the lane centre and ``up`` m above the road.
        Callers keep the depth above 0.3 m (`visible`), which bounds the coordinates."""
        fwd, left, nx, ny = geom
        depth = fwd + offset * nx - CAMERA_FORWARD_M
        u = self.cu - self.f * (left + offset * ny) / depth
        return u, self.cv + self.f * (CAMERA_HEIGHT_M - up) / depth

    def line_half_width(self, geom: np.ndarray) -> np.ndarray:
        """Half-width (m) of a painted line: real, or wide enough to stay visible far away."""
        return np.maximum(
            _LINE_HALF_WIDTH_M, _MIN_LINE_PX * (geom[0] - CAMERA_FORWARD_M) / 2 / self.f
        )

    def band(self, geom: np.ndarray, offset: float, half) -> np.ndarray:
        """``(..., 2K, 2)`` polygon(s) of a strip ``offset +- half`` m left of the lane centre."""
        u_out, v_out = self.project(geom, offset + half)
        u_in, v_in = self.project(geom, offset - half)
        u = np.concatenate([u_out, u_in[..., ::-1]], axis=-1)
        return np.stack([u, np.concatenate([v_out, v_in[..., ::-1]], axis=-1)], axis=-1)

    def visible(self, s: np.ndarray, offset: float) -> np.ndarray:
        """The first run of ``s`` in front of the camera: on a bend the nearest points of the
        outer edge can sit behind it, and a tight curve can bring the road back further on."""
        fwd, _, nx, _ = self.ego(s)
        ok = fwd - offset * np.abs(nx) - CAMERA_FORWARD_M > 0.3
        if not ok.any():
            return s[:0]
        first = int(np.argmax(ok))
        rest = ok[first:]
        return s[first : first + (len(rest) if rest.all() else int(np.argmin(rest)))]


def _render(road: _Road, s_car: float, spec: _Spec, look: _Look) -> np.ndarray:
    """``(H, W, 3)`` uint8: the road ahead of the car at arc length ``s_car``."""
    image = Image.new("RGB", (spec.width, spec.height), look.sky)
    draw = ImageDraw.Draw(image)
    view = _View(road, s_car, spec)
    draw.rectangle([0, math.ceil(view.cv), spec.width, spec.height], fill=look.ground)
    ahead = view.visible(s_car + _LOOKAHEAD, _POST_OFFSET_M)
    if len(ahead) < 2:
        return np.asarray(image)
    geom = view.ego(ahead)
    draw.polygon(_points(view.band(geom, 0.0, LANE_HALF_WIDTH_M + _SHOULDER_M)), fill=look.road)
    for side in (-LANE_HALF_WIDTH_M, LANE_HALF_WIDTH_M):
        draw.polygon(_points(view.band(geom, side, view.line_half_width(geom))), fill=_WHITE)
    near, far = ahead[0], ahead[-1]
    starts = _marks(road.dash_phase, _DASH_PERIOD_M, near - _DASH_M, far)
    if len(starts):
        along = np.linspace(0.0, 1.0, 3)
        lo, hi = np.maximum(starts, near)[:, None], np.minimum(starts + _DASH_M, far)[:, None]
        dashes = view.ego(lo + (hi - lo) * along)
        for polygon in view.band(dashes, 0.0, view.line_half_width(dashes)):
            draw.polygon(_points(polygon), fill=look.dash)
    posts = view.ego(_marks(road.post_phase, _POST_PERIOD_M, near + 2.0, far)[::-1])
    half = np.maximum(_POST_HALF_WIDTH_M * view.f / (posts[0] - CAMERA_FORWARD_M), 1.0)
    for side in (-_POST_OFFSET_M, _POST_OFFSET_M):
        u, bottom = view.project(posts, side)
        _, top = view.project(posts, side, up=_POST_HEIGHT_M)
        for box in np.stack([u - half, top, u + half, bottom], axis=1).tolist():
            draw.rectangle(box, fill=look.post)
    return np.asarray(image)


def _points(polygon: np.ndarray) -> list[tuple[float, float]]:
    return [tuple(point) for point in polygon.tolist()]


def _marks(phase: float, period: float, start: float, stop: float) -> np.ndarray:
    """Arc lengths ``phase + k * period`` in ``(start, stop)``, ascending."""
    first = math.floor((start - phase) / period) + 1
    marks = phase + period * np.arange(first, first + int((stop - start) // period) + 2)
    return marks[(marks > start) & (marks < stop)]


def _encode(frames, spec: _Spec, b_frames: int) -> bytes:
    """H.264 (libx264, yuv420p) mp4 at a constant ``spec.fps``; frame i has pts i; up to
    ``b_frames`` B-frames between references."""
    buffer = io.BytesIO()
    with av.open(buffer, mode="w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=spec.fps)
        stream.width, stream.height, stream.pix_fmt = spec.width, spec.height, "yuv420p"
        stream.gop_size = KEYFRAME_INTERVAL
        stream.codec_context.max_b_frames = b_frames
        stream.codec_context.thread_count = 1
        stream.options = {"crf": "18", "preset": "veryfast", "x264-params": "scenecut=0"}
        for i, rgb in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
            frame.pts = i
            container.mux(stream.encode(frame))
        container.mux(stream.encode())
    return buffer.getvalue()


def _store(archive: zipfile.ZipFile, name: str, data: bytes) -> None:
    archive.writestr(zipfile.ZipInfo(name, _ZIP_TIME), data, compress_type=zipfile.ZIP_STORED)


def _parquet(frame: pd.DataFrame) -> bytes:
    buffer = io.BytesIO()
    frame.to_parquet(buffer, index=False)
    return buffer.getvalue()


def _feature_row(feature: str) -> dict[str, str]:
    """A row of ``features.csv`` as released (devkit v0.1.0 reads ``clip_files_in_zip``)."""
    template = "{chunk_id:04d}"
    if feature == layout.FRONT_WIDE:
        path = layout.camera_zip(Path(), feature, 0)
        members = {
            "video": layout.video_member("{clip_id}", feature),
            "frame_timestamps": layout.timestamps_member("{clip_id}", feature),
        }
    elif feature == layout.EGOMOTION:
        path = layout.egomotion_zip(Path(), 0)
        members = {"egomotion": layout.egomotion_member("{clip_id}")}
    elif feature == "camera_intrinsics":
        path, members = layout.intrinsics_parquet(Path(), 0), None
    else:
        path, members = layout.extrinsics_parquet(Path(), 0), None
    return {
        "feature": feature,
        "directory": path.parts[0],
        "chunk_path": path.as_posix().replace(".chunk_0000.", f".chunk_{template}."),
        "clip_files_in_zip": json.dumps(members) if members else "",
    }


def _collection_row(rng: np.random.Generator) -> dict[str, object]:
    return {
        "country": str(rng.choice(_COUNTRIES)),
        "month": int(rng.integers(1, 13)),
        "hour_of_day": int(rng.integers(6, 21)),
        "platform_class": str(rng.choice(["hyperion_8", "hyperion_8.1"])),
    }


def _intrinsics_row(spec: _Spec) -> dict[str, float]:
    """f-theta polynomials (angle <-> pixel radius) least-squares fitted to the pinhole renderer."""
    f, (cu, cv) = spec.focal_px, spec.principal_point
    r_max = math.hypot(cu + 0.5, cv + 0.5)
    theta = np.linspace(0.0, math.atan(r_max / f), 200)
    radius = np.linspace(0.0, r_max, 200)
    powers = np.arange(1, 5)
    fw = np.linalg.lstsq(theta[:, None] ** powers, f * np.tan(theta), rcond=None)[0]
    bw = np.linalg.lstsq(radius[:, None] ** powers, np.arctan(radius / f), rcond=None)[0]
    row: dict[str, float] = {"width": spec.width, "height": spec.height, "cx": cu, "cy": cv}
    row.update({f"fw_poly_{k}": float(c) for k, c in enumerate([0.0, *fw])})
    row.update({f"bw_poly_{k}": float(c) for k, c in enumerate([0.0, *bw])})
    return row


def _extrinsics_row() -> dict[str, float]:
    qx, qy, qz, qw = _quaternion(CAMERA_TO_RIG)
    return {
        "qx": qx, "qy": qy, "qz": qz, "qw": qw,
        "x": CAMERA_FORWARD_M, "y": 0.0, "z": CAMERA_HEIGHT_M,
    }  # fmt: skip


def _quaternion(rotation: np.ndarray) -> tuple[float, float, float, float]:
    """(qx, qy, qz, qw) of a proper rotation matrix (qw >= 0 branch; fine away from 180 deg)."""
    qw = math.sqrt(max(0.0, 1.0 + np.trace(rotation))) / 2
    qx = (rotation[2, 1] - rotation[1, 2]) / (4 * qw)
    qy = (rotation[0, 2] - rotation[2, 0]) / (4 * qw)
    qz = (rotation[1, 0] - rotation[0, 1]) / (4 * qw)
    return float(qx), float(qy), float(qz), float(qw)


def _write_calibration(path: Path, chunk: int, clip_ids: pd.Index, spec: _Spec) -> None:
    """Intrinsics and extrinsics of the chunk's clips, indexed (clip_id, camera_name) and
    (clip_id, sensor_name) as released."""
    tables = {
        layout.intrinsics_parquet(path, chunk): ("camera_name", _intrinsics_row(spec)),
        layout.extrinsics_parquet(path, chunk): (
            "sensor_name",
            _extrinsics_row(),
        ),
    }
    for target, (sensor_level, row) in tables.items():
        index = pd.MultiIndex.from_product(
            [clip_ids, [layout.FRONT_WIDE]], names=["clip_id", sensor_level]
        )
        target.parent.mkdir(parents=True, exist_ok=True)
        pd.DataFrame([row] * len(index), index=index).to_parquet(target)
