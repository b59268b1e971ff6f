"""Where things are in a PhysicalAI-Autonomous-Vehicles root (the released layout, devkit v0.1.0).

One place for the names, so the reader (`clips`) and the synthetic writer
(`data.synthetic.physical_ai_av`) cannot drift apart::

    features.csv
    clip_index.parquet                   index clip_id; chunk, split, clip_is_valid
    metadata/feature_presence.parquet    bool per feature (sensor_presence.parquet before v26.03)
    camera/<camera>/<camera>.chunk_0000.zip
        <clip_id>.<camera>.mp4, <clip_id>.<camera>.timestamps.parquet
    labels/egomotion/egomotion.chunk_0000.zip
        <clip_id>.egomotion.parquet
    calibration/camera_intrinsics/camera_intrinsics.chunk_0000.parquet   (optional)
    calibration/sensor_extrinsics/sensor_extrinsics.chunk_0000.parquet   (optional)
    splits/default.parquet               (optional) split labels that win over clip_index's

A reader takes the names from the root's own `features.csv` (`RootLayout`); the names here are
what the synthetic writer writes and the fallback for a root without one.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

FRONT_WIDE = "camera_front_wide_120fov"
CAMERAS = (
    "camera_cross_left_120fov",
    FRONT_WIDE,
    "camera_cross_right_120fov",
    "camera_rear_left_70fov",
    "camera_rear_tele_30fov",
    "camera_rear_right_70fov",
    "camera_front_tele_30fov",
)
EGOMOTION = "egomotion"
CLIP_INDEX = "clip_index.parquet"
FEATURES_CSV = "features.csv"
FEATURE_PRESENCE = ("metadata/feature_presence.parquet", "metadata/sensor_presence.parquet")
# The seed document puts egomotion under calibration/; the released layout has labels/.
EGOMOTION_DIRS = ("labels/egomotion", "calibration/egomotion")
INTRINSICS = "camera_intrinsics"
EXTRINSICS = "sensor_extrinsics"
SPLITS_DEFAULT = "splits/default.parquet"
DATA_COLLECTION = "metadata/data_collection.parquet"

EGOMOTION_COLUMNS = ("timestamp", "qx", "qy", "qz", "qw", "x", "y", "z")
TIMESTAMP_COLUMN = "timestamp"  # int64 microseconds
FTHETA_COLUMNS = ("width", "height", "cx", "cy", *(f"fw_poly_{k}" for k in range(5)))
CHUNK_ID = "{chunk_id:04d}"


def released_chunk_path(feature: str, egomotion_dir: str = EGOMOTION_DIRS[0]) -> str:
    """The released `chunk_path` of `feature` (a template: `{chunk_id}` to fill)."""
    if feature == EGOMOTION:
        return f"{egomotion_dir}/{EGOMOTION}.chunk_{CHUNK_ID}.zip"
    if feature in (INTRINSICS, EXTRINSICS):
        return f"calibration/{feature}/{feature}.chunk_{CHUNK_ID}.parquet"
    return f"camera/{feature}/{feature}.chunk_{CHUNK_ID}.zip"


def camera_zip(root: Path, camera: str, chunk: int) -> Path:
    return root / released_chunk_path(camera).format(chunk_id=chunk)


def egomotion_zip(root: Path, chunk: int, egomotion_dir: str = EGOMOTION_DIRS[0]) -> Path:
    return root / released_chunk_path(EGOMOTION, egomotion_dir).format(chunk_id=chunk)


def intrinsics_parquet(root: Path, chunk: int) -> Path:
    return root / released_chunk_path(INTRINSICS).format(chunk_id=chunk)


def extrinsics_parquet(root: Path, chunk: int) -> Path:
    return root / released_chunk_path(EXTRINSICS).format(chunk_id=chunk)


def video_member(clip_id: str, camera: str) -> str:
    return f"{clip_id}.{camera}.mp4"


def timestamps_member(clip_id: str, camera: str) -> str:
    return f"{clip_id}.{camera}.timestamps.parquet"


def egomotion_member(clip_id: str) -> str:
    return f"{clip_id}.{EGOMOTION}.parquet"


@dataclass(frozen=True)
class RootLayout:
    """Where a root keeps each feature's chunk files and the members inside a chunk zip.

    As the devkit does, the names come from the root's `features.csv` where it exists
    (`chunk_path` templates with `{chunk_id}`, `clip_files_in_zip` JSON with `{clip_id}`); the
    names known from the released layout are the fallback for roots without one (and for
    features it does not list). `source` says which was used, for the log.
    """

    root: Path
    chunk_paths: dict[str, str]
    zip_members: dict[str, dict[str, str]]
    source: str

    @classmethod
    def of(cls, root: str | Path) -> RootLayout:
        root = Path(root)
        known = _known_features(root)
        chunk_paths = {name: path for name, (path, _) in known.items()}
        zip_members = {name: members for name, (_, members) in known.items()}
        path = root / FEATURES_CSV
        if not path.is_file():
            return cls(root, chunk_paths, zip_members, "built-in released names")
        table = pd.read_csv(path, dtype=str, keep_default_na=False)
        missing = [c for c in ("feature", "chunk_path", "clip_files_in_zip") if c not in table]
        if missing:
            raise KeyError(
                f"{path} lacks columns {missing}; expected feature, directory, chunk_path, "
                f"clip_files_in_zip (found {list(table.columns)})"
            )
        for row in table.itertuples(index=False):
            chunk_paths[row.feature] = row.chunk_path
            if row.clip_files_in_zip.strip():
                try:
                    zip_members[row.feature] = dict(json.loads(row.clip_files_in_zip))
                except json.JSONDecodeError as error:
                    raise ValueError(
                        f"{path}: clip_files_in_zip of feature {row.feature!r} is not JSON "
                        f"({error}): {row.clip_files_in_zip!r}"
                    ) from error
        return cls(root, chunk_paths, zip_members, str(path))

    def chunk_file(self, feature: str, chunk: int) -> Path:
        """The chunk file (zip or parquet) of `feature` for chunk number `chunk`."""
        if feature not in self.chunk_paths:
            known = sorted(self.chunk_paths)
            raise KeyError(f"feature {feature!r} is not in {self.source} (features: {known})")
        return self.root / self.chunk_paths[feature].format(chunk_id=int(chunk))

    def member(self, feature: str, key: str, clip_id: str) -> str:
        """The name inside `feature`'s chunk zip of the clip's `key` file (e.g. "video")."""
        members = self.zip_members.get(feature, {})
        if key not in members:
            raise KeyError(
                f"{self.source} names no {key!r} file in the {feature} zip (has {sorted(members)})"
            )
        return members[key].format(clip_id=clip_id)


def _known_features(root: Path) -> dict[str, tuple[str, dict[str, str]]]:
    """feature -> (chunk_path template, zip member templates) of the released layout, egomotion
    where this root keeps it (`labels/`, or the seed document's `calibration/`)."""
    egomotion_dir = next((d for d in EGOMOTION_DIRS if (root / d).is_dir()), EGOMOTION_DIRS[0])
    features = {
        EGOMOTION: (
            released_chunk_path(EGOMOTION, egomotion_dir),
            {"egomotion": egomotion_member("{clip_id}")},
        ),
        INTRINSICS: (released_chunk_path(INTRINSICS), {}),
        EXTRINSICS: (released_chunk_path(EXTRINSICS), {}),
    }
    for camera in CAMERAS:
        features[camera] = (
            released_chunk_path(camera),
            {
                "video": video_member("{clip_id}", camera),
                "frame_timestamps": timestamps_member("{clip_id}", camera),
            },
        )
    return features
