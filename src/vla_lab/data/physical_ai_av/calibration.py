"""A clip's camera calibration (f-theta intrinsics + extrinsics) and projection of rig points.

The released layout keeps per-chunk tables indexed by (clip_id, camera_name) and (clip_id,
sensor_name). Intrinsics are f-theta: the pixel radius is a polynomial of the angle from the
optical axis, r = sum_k fw_poly_k theta^k. Extrinsics give the camera -> rig rotation (qx, qy,
qz, qw) and the camera's position in the rig frame (x forward, y left, z up). Camera axes are x
right, y down, z forward. Used to draw trajectories on the front image (`infer.py render=true`).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.spatial.transform import Rotation

from vla_lab.data.physical_ai_av import layout
from vla_lab.data.physical_ai_av.layout import RootLayout

QUATERNION_COLUMNS = ("qx", "qy", "qz", "qw")
POSITION_COLUMNS = ("x", "y", "z")


@dataclass(frozen=True)
class FThetaCamera:
    """One camera of one clip: f-theta intrinsics at (width, height) and its pose on the rig."""

    width: int
    height: int
    cx: float
    cy: float
    fw_poly: np.ndarray  # (5,), angle (rad) -> pixel radius
    camera_to_rig: np.ndarray  # (3, 3)
    position: np.ndarray  # (3,), camera origin in the rig frame (m)

    def project(
        self, points_rig: np.ndarray, image_size: tuple[int, int] | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Pixels (N, 2) of rig-frame points (N, 3) and which are drawable (in front of the
        camera and inside the image). `image_size` (H, W) rescales to a resized frame."""
        camera = (np.asarray(points_rig, np.float64) - self.position) @ self.camera_to_rig
        x, y, z = camera[:, 0], camera[:, 1], camera[:, 2]
        rho = np.hypot(x, y)
        theta = np.arctan2(rho, z)
        radius = np.polynomial.polynomial.polyval(theta, self.fw_poly)
        scale = np.divide(radius, rho, out=np.zeros_like(rho), where=rho > 1e-9)
        pixels = np.stack([self.cx + x * scale, self.cy + y * scale], axis=1)
        height, width = self.height, self.width
        if image_size is not None:
            pixels *= [image_size[1] / width, image_size[0] / height]
            height, width = image_size
        inside = (pixels[:, 0] >= 0) & (pixels[:, 0] < width)
        inside &= (pixels[:, 1] >= 0) & (pixels[:, 1] < height)
        return pixels, inside & (z > 0.1)


def read_camera(
    root_layout: RootLayout, chunk: int, clip_id: str, camera: str
) -> FThetaCamera | None:
    """The clip's camera, or None when the root has no calibration for it (it is optional)."""
    intrinsics_path = root_layout.chunk_file(layout.INTRINSICS, chunk)
    extrinsics_path = root_layout.chunk_file(layout.EXTRINSICS, chunk)
    if not (intrinsics_path.is_file() and extrinsics_path.is_file()):
        return None
    intrinsics = _row(intrinsics_path, clip_id, camera, layout.FTHETA_COLUMNS)
    extrinsics = _row(extrinsics_path, clip_id, camera, QUATERNION_COLUMNS + POSITION_COLUMNS)
    if intrinsics is None or extrinsics is None:
        return None
    return FThetaCamera(
        width=int(intrinsics["width"]),
        height=int(intrinsics["height"]),
        cx=float(intrinsics["cx"]),
        cy=float(intrinsics["cy"]),
        fw_poly=np.array([intrinsics[f"fw_poly_{k}"] for k in range(5)], np.float64),
        camera_to_rig=Rotation.from_quat([extrinsics[c] for c in QUATERNION_COLUMNS]).as_matrix(),
        position=np.array([extrinsics[c] for c in POSITION_COLUMNS], np.float64),
    )


@lru_cache(maxsize=8)
def _table(path: Path) -> pd.DataFrame:
    """A chunk's calibration table, read once: every clip of the chunk looks itself up in it."""
    return pd.read_parquet(path).reset_index()


def _row(path: Path, clip_id: str, camera: str, columns: tuple[str, ...]) -> pd.Series | None:
    """The (clip_id, camera) row of a calibration table, whether the keys are index levels or
    columns; None when the clip or camera is absent. Missing columns name the file."""
    table = _table(path)
    sensor = next((c for c in ("camera_name", "sensor_name") if c in table.columns), None)
    missing = [c for c in ("clip_id", sensor, *columns) if c is None or c not in table.columns]
    if missing:
        raise KeyError(
            f"{path}: missing columns {missing}; expected clip_id, camera_name or sensor_name, "
            f"{list(columns)}"
        )
    rows = table[(table["clip_id"] == clip_id) & (table[sensor] == camera)]
    return None if rows.empty else rows.iloc[0]
