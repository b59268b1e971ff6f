"""The front wide camera of the driving world, shared by the renderer and the clip recorder.

A level pinhole (horizontal FOV 100 deg) 1.5 m ahead of the rig origin (rear axle on the
ground) and 1.5 m above the ground. Optical axes x right, y down, z forward; pixel centres at
integer (u, v), principal point at the image centre. The released layout describes cameras with
f-theta polynomials, so the calibration written for it is a fit to this pinhole (under 0.2 px
inside the image); extrinsics are camera -> rig.
"""

from __future__ import annotations

import math

import numpy as np

CAMERA_FORWARD_M = 1.5  # camera ahead of the rig origin (rear axle)
CAMERA_HEIGHT_M = 1.5
HORIZONTAL_FOV_DEG = 100.0
# Camera -> rig rotation; columns are the optical x (right), y (down), z (forward) axes in the rig.
CAMERA_TO_RIG = np.array([[0.0, 0.0, 1.0], [-1.0, 0.0, 0.0], [0.0, -1.0, 0.0]])


def focal_px(width: int) -> float:
    """Focal length in pixels of an image `width` pixels wide."""
    return (width / 2) / math.tan(math.radians(HORIZONTAL_FOV_DEG) / 2)


def principal_point(height: int, width: int) -> tuple[float, float]:
    """(cu, cv): the image centre with pixel centres at integer coordinates."""
    return (width - 1) / 2, (height - 1) / 2


def intrinsics_row(height: int, width: int) -> dict[str, float]:
    """f-theta polynomials (angle <-> pixel radius) least-squares fitted to the pinhole."""
    f, (cu, cv) = focal_px(width), principal_point(height, width)
    r_max = math.hypot(cu + 0.5, cv + 0.5)
    theta = np.linspace(0.0, math.atan(r_max / f), 200)
    radius = np.linspace(0.0, r_max, 200)
    powers = np.arange(1, 5)
    fw = np.linalg.lstsq(theta[:, None] ** powers, f * np.tan(theta), rcond=None)[0]
    bw = np.linalg.lstsq(radius[:, None] ** powers, np.arctan(radius / f), rcond=None)[0]
    row: dict[str, float] = {"width": width, "height": height, "cx": cu, "cy": cv}
    row.update({f"fw_poly_{k}": float(c) for k, c in enumerate([0.0, *fw])})
    row.update({f"bw_poly_{k}": float(c) for k, c in enumerate([0.0, *bw])})
    return row


def extrinsics_row() -> dict[str, float]:
    """Camera -> rig pose as the released `sensor_extrinsics` columns."""
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
