"""Ego poses around a sample time t0, as Alpamayo-R1 builds them from egomotion.

Egomotion gives rig poses (position, orientation quaternion) at ~100 Hz in an anchor frame.
A training example needs 16 history poses (t0-1.5 s .. t0) and 64 future poses (t0+0.1 .. t0+6.4 s)
in the ego frame at t0 (x forward, y left, z up, t0 at the origin). Positions are interpolated with
a cubic spline, orientations with slerp; nothing is extrapolated: a query outside the recorded
span, or across a gap in the recording, is refused (`PoseWindowError`), never clamped.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.interpolate import CubicSpline
from scipy.spatial.transform import Rotation, Slerp

US = 1_000_000


class PoseWindowError(ValueError):
    """A sample time whose pose window cannot be built (outside the margins, a gap, NaN)."""


@dataclass(frozen=True)
class PoseWindow:
    """Poses of one sample in the t0 ego frame (float32)."""

    hist_xyz: np.ndarray  # (n_hist, 3), the last one is the origin
    hist_rot: np.ndarray  # (n_hist, 3, 3)
    fut_xyz: np.ndarray  # (n_fut, 3)
    fut_rot: np.ndarray  # (n_fut, 3, 3)


def window_offsets_us(n_hist: int = 16, n_fut: int = 64, dt: float = 0.1) -> np.ndarray:
    """Offsets from t0 of the history (ending at 0) then the future, in microseconds."""
    hist = np.arange(-(n_hist - 1), 1) * dt
    fut = np.arange(1, n_fut + 1) * dt
    return np.round(np.concatenate([hist, fut]) * US).astype(np.int64)


class EgoTrajectory:
    """One clip's egomotion, interpolable at any time inside its recording.

    `timestamps_us` (N,) int64, strictly increasing; `xyz` (N, 3); `quat_xyzw` (N, 4) (the
    parquet's qx qy qz qw). `max_gap_s`: a query window touching a gap between two recorded poses
    longer than this is refused (a dropped-out recording interpolates to fiction).
    """

    def __init__(
        self,
        timestamps_us: np.ndarray,
        xyz: np.ndarray,
        quat_xyzw: np.ndarray,
        max_gap_s: float = 0.2,
    ) -> None:
        # Copies: scipy's rotations refuse read-only buffers (pandas/parquet arrays can be).
        t = np.array(timestamps_us, dtype=np.int64)
        xyz = np.array(xyz, dtype=np.float64)
        quat = np.array(quat_xyzw, dtype=np.float64)
        if len(t) < 4 or xyz.shape != (len(t), 3) or quat.shape != (len(t), 4):
            raise PoseWindowError(
                f"egomotion needs >= 4 poses with xyz (N, 3) and quaternions (N, 4); got "
                f"{len(t)} timestamps, xyz {xyz.shape}, quaternions {quat.shape}"
            )
        finite = np.isfinite(xyz).all(1) & np.isfinite(quat).all(1)
        if not finite.all():
            bad = t[~finite]
            raise PoseWindowError(
                f"{len(bad)} non-finite poses (first at timestamp {int(bad[0])} us)"
            )
        if np.any(np.diff(t) <= 0):
            raise PoseWindowError("egomotion timestamps are not strictly increasing")
        self.t_us = t
        self.max_gap_us = int(round(max_gap_s * US))
        seconds = (t - t[0]) / US
        self._t0_us = int(t[0])
        self._position = CubicSpline(seconds, xyz, axis=0)
        self._slerp = Slerp(seconds, Rotation.from_quat(quat))

    @property
    def start_us(self) -> int:
        return int(self.t_us[0])

    @property
    def end_us(self) -> int:
        return int(self.t_us[-1])

    def check_window(self, start_us: int, end_us: int) -> None:
        """Refuse a window outside the recording or containing a gap longer than `max_gap_s`."""
        if start_us < self.start_us or end_us > self.end_us:
            raise PoseWindowError(
                f"window [{start_us}, {end_us}] us is outside the egomotion span "
                f"[{self.start_us}, {self.end_us}] us (no extrapolation)"
            )
        lo = max(int(np.searchsorted(self.t_us, start_us, side="right")) - 1, 0)
        hi = min(int(np.searchsorted(self.t_us, end_us, side="left")), len(self.t_us) - 1)
        gaps = np.diff(self.t_us[lo : hi + 1])
        if gaps.size and gaps.max() > self.max_gap_us:
            raise PoseWindowError(
                f"egomotion has a {gaps.max() / US:.2f} s gap inside [{start_us}, {end_us}] us "
                f"(more than max_gap_s={self.max_gap_us / US:g})"
            )

    def poses_at(self, times_us: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Anchor-frame positions (T, 3) and rotation matrices (T, 3, 3) at `times_us`."""
        times_us = np.asarray(times_us, dtype=np.int64)
        self.check_window(int(times_us.min()), int(times_us.max()))
        seconds = (times_us - self._t0_us) / US
        return self._position(seconds), self._slerp(seconds).as_matrix()

    def window(self, t0_us: int, offsets_us: np.ndarray, n_hist: int) -> PoseWindow:
        """The poses at `t0_us + offsets_us` in the t0 ego frame, split at `n_hist`."""
        times = t0_us + offsets_us
        xyz, rot = self.poses_at(times)
        origin_index = n_hist - 1  # offsets put t0 last in the history
        xyz_local, rot_local = to_ego_frame(xyz, rot, xyz[origin_index], rot[origin_index])
        xyz_local = xyz_local.astype(np.float32)
        rot_local = rot_local.astype(np.float32)
        return PoseWindow(
            hist_xyz=xyz_local[:n_hist],
            hist_rot=rot_local[:n_hist],
            fut_xyz=xyz_local[n_hist:],
            fut_rot=rot_local[n_hist:],
        )


def to_ego_frame(
    xyz: np.ndarray, rot: np.ndarray, origin_xyz: np.ndarray, origin_rot: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Express anchor-frame poses in the frame of (origin_xyz, origin_rot):
    xyz_local = R0^T (xyz - xyz0), rot_local = R0^T R."""
    inverse = origin_rot.T
    return (xyz - origin_xyz) @ inverse.T, inverse @ rot
