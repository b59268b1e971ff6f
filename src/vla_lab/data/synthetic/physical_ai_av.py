"""Synthetic driving clips in the PhysicalAI-AV released layout: recordings of the driving world.

The clips are the scripted expert's drives of `vla_lab.sim.driving` (the closed-loop world the
driving policies are evaluated in), written by its recorder (`sim.driving.recorder`, whose
docstring says what a reader must know: the released clock with its egomotion lead, first-frame
offset and frame jitter, the random anchor frame, B-frames in clip 1, the f-theta calibration
fitted to the pinhole camera). Two-lane roads with bends; the ego keeps its lane (or, with
`scenarios`, overtakes or stops for a truck) at speeds inside `speed_range` that swing slowly
(|a| <= `max_accel`).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

from vla_lab.data.physical_ai_av import layout
from vla_lab.data.physical_ai_av.writer import KEYFRAME_INTERVAL
from vla_lab.sim.driving.camera import CAMERA_TO_RIG
from vla_lab.sim.driving.recorder import Recording, record_drives
from vla_lab.sim.driving.road import LANE_HALF_WIDTH_M
from vla_lab.sim.driving.scenarios import SCENARIOS
from vla_lab.utils.io import atomic_write_dir

__all__ = ["CAMERA_TO_RIG", "KEYFRAME_INTERVAL", "LANE_HALF_WIDTH_M", "write_synthetic_av"]

log = logging.getLogger(__name__)


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
    scenarios: Sequence[str] = ("curves",),
) -> Path:
    """Write ``num_clips`` clips to ``root`` and return ``root``. ``image_size`` is ``(H, W)``;
    ``scenarios`` are cycled over the clips (`vla_lab.sim.driving.scenarios`).

    Clip k depends only on ``(seed, k)`` and the motion/image arguments, so fewer clips are a prefix
    of more. Written into a temp dir beside ``root`` and renamed in, so a crash or a concurrent
    writer never leaves half a dataset; if ``root`` already holds a dataset (or another process
    finished first), that copy is kept. About 0.1 s per clip-second on two CPU cores at 64 x 96.
    """
    root = Path(root)
    recording = _recording(
        clip_seconds, fps, image_size, egomotion_hz, speed_range, max_curvature, max_accel,
        egomotion_lead_s, scenarios,
    )  # fmt: skip
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
        lambda tmp: record_drives(
            tmp, recording, num_clips, seed, clips_per_chunk, val_fraction, write_calibration
        ),
        done=lambda path: (path / layout.CLIP_INDEX).is_file(),
    )
    return root


def _recording(
    clip_seconds, fps, image_size, egomotion_hz, speed_range, max_curvature, max_accel,
    egomotion_lead_s, scenarios,
) -> Recording:  # fmt: skip
    """The checked `Recording` of `write_synthetic_av`'s arguments (every problem at once)."""
    height, width = (int(x) for x in image_size)
    lo, hi = (float(x) for x in speed_range)
    problems = [
        (clip_seconds > 0, f"clip_seconds must be > 0, got {clip_seconds}"),
        (fps > 0, f"fps must be > 0, got {fps}"),
        (egomotion_hz > 0, f"egomotion_hz must be > 0, got {egomotion_hz}"),
        (
            height >= 16 and width >= 16 and height % 2 == width % 2 == 0,
            f"image_size must be even and >= 16 (yuv420p), got {(height, width)}",
        ),
        (1.0 <= lo <= hi, f"speed_range must satisfy 1 <= low <= high m/s, got {(lo, hi)}"),
        (max_curvature >= 0, f"max_curvature must be >= 0, got {max_curvature}"),
        (max_accel >= 0, f"max_accel must be >= 0, got {max_accel}"),
        (egomotion_lead_s >= 0.1, f"egomotion_lead_s must be >= 0.1, got {egomotion_lead_s}"),
        (
            bool(scenarios) and set(scenarios) <= set(SCENARIOS),
            f"scenarios must be some of {SCENARIOS}, got {list(scenarios)}",
        ),
    ]
    errors = [message for ok, message in problems if not ok]
    if errors:
        raise ValueError("write_synthetic_av: " + "; ".join(errors))
    return Recording(
        clip_seconds=float(clip_seconds),
        fps=int(fps),
        image_size=(height, width),
        egomotion_hz=float(egomotion_hz),
        egomotion_lead_s=float(egomotion_lead_s),
        speed_range=(lo, hi),
        max_curvature=float(max_curvature),
        max_accel=float(max_accel),
        scenarios=tuple(str(s) for s in scenarios),
    )
