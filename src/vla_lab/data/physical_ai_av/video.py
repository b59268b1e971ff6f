"""Frames of one clip's camera video, read from its chunk zip by seeking.

A PhysicalAI-AV clip is a constant-frame-rate mp4 inside a chunk zip, plus a timestamps parquet
(one int64 microsecond timestamp per frame). A sample needs the frame at or before t0 (and maybe a
few before it), not the whole clip: `ClipVideo.frames` seeks to the keyframe before the first
wanted frame and decodes forward from there. `seek=False` decodes from the start of the clip, the
naive way, kept for `benchmarks/av_loader.py` to measure the difference.
"""

from __future__ import annotations

import io
import zipfile
from collections.abc import Sequence
from pathlib import Path

import av
import numpy as np
import pyarrow.parquet as pq

from vla_lab.data.physical_ai_av.layout import TIMESTAMP_COLUMN


def read_zip_member(zip_path: Path, member: str) -> bytes:
    """The bytes of `member` in `zip_path`; a missing file or member names both."""
    try:
        with zipfile.ZipFile(zip_path) as archive:
            return archive.read(member)
    except FileNotFoundError as error:
        raise FileNotFoundError(
            f"chunk zip {zip_path} does not exist (needed for {member})"
        ) from error
    except KeyError as error:
        raise KeyError(f"{zip_path} has no member {member!r}") from error


def read_parquet_member(zip_path: Path, member: str):
    """A parquet file inside a chunk zip, as a pandas DataFrame."""
    return pq.read_table(io.BytesIO(read_zip_member(zip_path, member))).to_pandas()


def read_timestamps(zip_path: Path, member: str) -> np.ndarray:
    table = read_parquet_member(zip_path, member)
    if TIMESTAMP_COLUMN not in table:
        raise KeyError(
            f"{zip_path}:{member} has no '{TIMESTAMP_COLUMN}' column (int64 microseconds per "
            f"frame); columns: {list(table.columns)}"
        )
    return table[TIMESTAMP_COLUMN].to_numpy(np.int64)


def frame_index_at_or_before(timestamps_us: np.ndarray, t_us: int) -> int:
    """Index of the latest frame whose timestamp is <= `t_us` (-1 when all are later)."""
    return int(np.searchsorted(timestamps_us, t_us, side="right")) - 1


def count_video_frames(zip_path: Path, member: str) -> int:
    """Frames in the mp4 per its header (or its duration x rate when the header has no count)."""
    with zipfile.ZipFile(zip_path) as archive, archive.open(member) as handle:
        with av.open(handle) as container:
            stream = container.streams.video[0]
            if stream.frames:
                return int(stream.frames)
            duration = float(stream.duration * stream.time_base) if stream.duration else 0.0
            return int(round(duration * float(stream.average_rate)))


class ClipVideo:
    """One clip's video inside its chunk zip; opened lazily, once per process (DataLoader
    workers each open their own handle)."""

    def __init__(self, zip_path: Path, member: str) -> None:
        self.zip_path = Path(zip_path)
        self.member = member

    def frames(self, indices: Sequence[int], seek: bool = True) -> list[np.ndarray]:
        """RGB uint8 (H, W, 3) frames at the given frame indices (ascending or not)."""
        wanted = sorted(set(int(i) for i in indices))
        if wanted[0] < 0:
            raise IndexError(f"{self.zip_path}:{self.member}: frame index {wanted[0]} < 0")
        found: dict[int, np.ndarray] = {}
        with zipfile.ZipFile(self.zip_path) as archive, archive.open(self.member) as handle:
            with av.open(handle) as container:
                stream = container.streams.video[0]
                rate = float(stream.average_rate)
                start = stream.start_time or 0
                to_pts = 1.0 / (rate * float(stream.time_base))
                if seek:
                    container.seek(start + int(wanted[0] * to_pts), stream=stream, backward=True)
                for frame in container.decode(stream):
                    index = int(round((frame.pts - start) / to_pts))
                    if index in wanted:
                        found[index] = frame.to_ndarray(format="rgb24")
                    if index >= wanted[-1]:
                        break
        missing = [i for i in wanted if i not in found]
        if missing:
            raise IndexError(
                f"{self.zip_path}:{self.member}: frames {missing} not in the video "
                "(shorter than its timestamps?)"
            )
        return [found[int(i)] for i in indices]
