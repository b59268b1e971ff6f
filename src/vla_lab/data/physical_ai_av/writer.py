"""Writes clips into a PhysicalAI-AV root in the released layout (see `layout`): chunk zips of
video + timestamps and of egomotion, features.csv, clip_index.parquet, metadata and calibration.

The writer of the recorded drives of the driving world (`vla_lab.sim.driving.recorder`), so
that demo data comes in the very format of the real dataset. Zip members are stored
uncompressed with fixed dates (a reader can seek inside them; a seed gives the same bytes); the
clip index is written last, so its presence marks a complete root.
"""

from __future__ import annotations

import io
import json
import zipfile
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import av
import numpy as np
import pandas as pd

from vla_lab.data.physical_ai_av import layout

KEYFRAME_INTERVAL = 10
# Not part of the released layout: the recording Commander's commands, in the labels-file format
# `data.source.commands.mode=file` reads (`clip_id, t0_us, command`).
COMMANDS_FILE = "commands.parquet"
_ZIP_TIME = (2025, 1, 1, 0, 0, 0)


@dataclass(frozen=True)
class RecordedClip:
    """One clip: front wide mp4 bytes, frame timestamps (int64 us), the egomotion table
    (`egomotion_table`), its `metadata/data_collection` row and, for recordings with a
    Commander, `commands`: the command in force at times of the clip's clock, a table of
    `t0_us, command` (`COMMANDS_FILE`)."""

    clip_id: str
    video: bytes
    frame_us: np.ndarray
    egomotion: pd.DataFrame
    collection: dict[str, object] = field(default_factory=dict)
    commands: pd.DataFrame | None = None


def write_root(
    path: Path,
    make_clip: Callable[[int], RecordedClip],
    num_clips: int,
    clips_per_chunk: int,
    val_fraction: float,
    seed: int,
    calibration: tuple[dict[str, float], dict[str, float]] | None,
) -> None:
    """Write clips `make_clip(0..num_clips-1)` into the empty directory `path`, `clips_per_chunk`
    to a chunk; a seeded `val_fraction` of them (at least one, never all) is the val split.
    `calibration`: the (intrinsics, extrinsics) rows shared by every clip, or None for none."""
    clip_ids, collection, commands = [], [], []
    for chunk, first in enumerate(range(0, num_clips, clips_per_chunk)):
        camera_zip = layout.camera_zip(path, layout.FRONT_WIDE, chunk)
        ego_zip = layout.egomotion_zip(path, chunk)
        camera_zip.parent.mkdir(parents=True, exist_ok=True)
        ego_zip.parent.mkdir(parents=True, exist_ok=True)
        with zipfile.ZipFile(camera_zip, "w") as videos, zipfile.ZipFile(ego_zip, "w") as egos:
            for k in range(first, min(first + clips_per_chunk, num_clips)):
                clip = make_clip(k)
                _store(videos, layout.video_member(clip.clip_id, layout.FRONT_WIDE), clip.video)
                _store(
                    videos,
                    layout.timestamps_member(clip.clip_id, layout.FRONT_WIDE),
                    _parquet(pd.DataFrame({layout.TIMESTAMP_COLUMN: clip.frame_us})),
                )
                _store(egos, layout.egomotion_member(clip.clip_id), _parquet(clip.egomotion))
                clip_ids.append(clip.clip_id)
                collection.append(clip.collection)
                if clip.commands is not None:
                    commands.append(clip.commands.assign(clip_id=clip.clip_id))
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
    if calibration is not None:
        for chunk in np.unique(chunks):
            _write_calibration(path, int(chunk), index[chunks == chunk], *calibration)
        features += [_feature_row(layout.INTRINSICS), _feature_row(layout.EXTRINSICS)]
    pd.DataFrame(features).to_csv(path / layout.FEATURES_CSV, index=False)
    if commands:
        table = pd.concat(commands, ignore_index=True)[["clip_id", "t0_us", "command"]]
        table.to_parquet(path / COMMANDS_FILE)
    pd.DataFrame(
        {"chunk": chunks.astype(np.int64), "split": split, "clip_is_valid": True}, index=index
    ).to_parquet(path / layout.CLIP_INDEX)


def egomotion_table(
    t_us: np.ndarray,
    xy: np.ndarray,
    yaw: np.ndarray,
    velocity: np.ndarray,
    accel: np.ndarray,
    curvature: np.ndarray,
    z_m: float = 0.0,
) -> pd.DataFrame:
    """The released egomotion columns of a flat-ground drive: positions (T, 2), yaw (T,),
    anchor-frame velocity and acceleration vectors (T, 2), signed curvature (T,)."""
    zeros = np.zeros(len(t_us))
    return pd.DataFrame(
        {
            layout.TIMESTAMP_COLUMN: np.asarray(t_us, np.int64),
            "qx": zeros,
            "qy": zeros,
            "qz": np.sin(yaw / 2),
            "qw": np.cos(yaw / 2),
            "x": xy[:, 0],
            "y": xy[:, 1],
            "z": zeros + z_m,
            "vx": velocity[:, 0],
            "vy": velocity[:, 1],
            "vz": zeros,
            "ax": accel[:, 0],
            "ay": accel[:, 1],
            "az": zeros,
            "curvature": curvature,
        }
    )


def encode_h264(
    frames: Iterable[np.ndarray], fps: int, size: Sequence[int], b_frames: int
) -> bytes:
    """H.264 (libx264, yuv420p) mp4 of RGB frames of `size` (H, W) at a constant `fps`; frame i
    has pts i, a keyframe every `KEYFRAME_INTERVAL`, up to `b_frames` B-frames between
    references."""
    buffer = io.BytesIO()
    with av.open(buffer, mode="w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.height, stream.width = int(size[0]), int(size[1])
        stream.pix_fmt = "yuv420p"
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
    elif feature == layout.INTRINSICS:
        path, members = layout.intrinsics_parquet(Path(), 0), None
    else:
        path, members = layout.extrinsics_parquet(Path(), 0), None
    return {
        "feature": feature,
        "directory": path.parts[0],
        "chunk_path": path.as_posix().replace(".chunk_0000.", f".chunk_{template}."),
        "clip_files_in_zip": json.dumps(members) if members else "",
    }


def _write_calibration(
    path: Path,
    chunk: int,
    clip_ids: pd.Index,
    intrinsics: dict[str, float],
    extrinsics: dict[str, float],
) -> None:
    """Intrinsics and extrinsics of the chunk's clips, indexed (clip_id, camera_name) and
    (clip_id, sensor_name) as released."""
    tables = {
        layout.intrinsics_parquet(path, chunk): ("camera_name", intrinsics),
        layout.extrinsics_parquet(path, chunk): ("sensor_name", extrinsics),
    }
    for target, (sensor_level, row) in tables.items():
        index = pd.MultiIndex.from_product(
            [clip_ids, [layout.FRONT_WIDE]], names=["clip_id", sensor_level]
        )
        target.parent.mkdir(parents=True, exist_ok=True)
        pd.DataFrame([row] * len(index), index=index).to_parquet(target)
