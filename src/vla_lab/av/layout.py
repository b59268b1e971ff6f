"""Where things are in a PhysicalAI-Autonomous-Vehicles root (the released layout, devkit v0.1.0).

One place for the names, so the reader (`av.clips`) and the synthetic writer (`av.synthetic`)
cannot drift apart::

    features.csv
    clip_index.parquet                   index clip_id; chunk, split, clip_is_valid
    metadata/feature_presence.parquet    bool per feature (sensor_presence.parquet before v26.03)
    camera/<camera>/<camera>.chunk_0000.zip
        <clip_id>.<camera>.mp4, <clip_id>.<camera>.timestamps.parquet
    labels/egomotion/egomotion.chunk_0000.zip
        <clip_id>.egomotion.parquet
    calibration/camera_intrinsics/camera_intrinsics.chunk_0000.parquet   (optional)
    calibration/sensor_extrinsics/sensor_extrinsics.chunk_0000.parquet   (optional)
"""

from __future__ import annotations

from pathlib import Path

FRONT_WIDE = "camera_front_wide_120fov"
EGOMOTION = "egomotion"
CLIP_INDEX = "clip_index.parquet"
FEATURES_CSV = "features.csv"
FEATURE_PRESENCE = ("metadata/feature_presence.parquet", "metadata/sensor_presence.parquet")
# The seed document puts egomotion under calibration/; the released layout has labels/.
EGOMOTION_DIRS = ("labels/egomotion", "calibration/egomotion")
INTRINSICS_DIR = "calibration/camera_intrinsics"
EXTRINSICS_DIR = "calibration/sensor_extrinsics"
DATA_COLLECTION = "metadata/data_collection.parquet"

EGOMOTION_COLUMNS = ("timestamp", "qx", "qy", "qz", "qw", "x", "y", "z")
TIMESTAMP_COLUMN = "timestamp"  # int64 microseconds
FTHETA_COLUMNS = ("width", "height", "cx", "cy", *(f"fw_poly_{k}" for k in range(5)))


def chunk_name(feature: str, chunk: int, suffix: str = "zip") -> str:
    return f"{feature}.chunk_{chunk:04d}.{suffix}"


def camera_zip(root: Path, camera: str, chunk: int) -> Path:
    return root / "camera" / camera / chunk_name(camera, chunk)


def egomotion_zip(root: Path, chunk: int, egomotion_dir: str = EGOMOTION_DIRS[0]) -> Path:
    return root / egomotion_dir / chunk_name(EGOMOTION, chunk)


def intrinsics_parquet(root: Path, chunk: int) -> Path:
    return root / INTRINSICS_DIR / chunk_name("camera_intrinsics", chunk, "parquet")


def extrinsics_parquet(root: Path, chunk: int) -> Path:
    return root / EXTRINSICS_DIR / chunk_name("sensor_extrinsics", chunk, "parquet")


def video_member(clip_id: str, camera: str) -> str:
    return f"{clip_id}.{camera}.mp4"


def timestamps_member(clip_id: str, camera: str) -> str:
    return f"{clip_id}.{camera}.timestamps.parquet"


def egomotion_member(clip_id: str) -> str:
    return f"{clip_id}.{EGOMOTION}.parquet"
