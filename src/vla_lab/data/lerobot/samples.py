"""Samples of a ``LeRobotDataset`` for a model's delta indices, with errors that say where.

LeRobot's items already are our sample dict (same keys), so this wrapper only turns the model's
frame offsets into LeRobot ``delta_timestamps``, applies the train transform, and re-raises a
failed read naming the video file(s) and timestamp(s) it was decoding: LeRobot's own decoder
errors name neither the episode nor, for PyAV, the file. It also picks the video backend.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from functools import cache
from pathlib import Path
from typing import Any

from torch.utils.data import Dataset

from vla_lab.features import ACTION, STATE

log = logging.getLogger(__name__)

VIDEO_BACKENDS = ("auto", "torchcodec", "pyav")


def delta_timestamps(
    fps: float,
    camera_keys: Sequence[str],
    observation_delta_indices: Sequence[int],
    action_delta_indices: Sequence[int],
    features: Sequence[str] = (),
) -> dict[str, list[float]]:
    """LeRobot ``delta_timestamps`` (seconds) for frame offsets; cameras and state get a history
    only when the model asks for one (``observation_delta_indices != [0]``)."""
    result = {ACTION: [d / fps for d in action_delta_indices]}
    if list(observation_delta_indices) != [0]:
        history = [d / fps for d in observation_delta_indices]
        for key in [*camera_keys, *([STATE] if STATE in features else [])]:
            result[key] = list(history)
    return result


def resolve_video_backend(requested: str, probe_video: Path | None = None) -> str:
    """``requested``, or for ``auto``: torchcodec when it loads (and opens ``probe_video``), else
    PyAV, which works from the wheels alone (torchcodec needs the system's FFmpeg libraries)."""
    if requested not in VIDEO_BACKENDS:
        raise ValueError(f"video_backend must be one of {VIDEO_BACKENDS}, got {requested!r}")
    if requested != "auto":
        log.info("Video backend: %s (from config)", requested)
        return requested
    problem = _torchcodec_problem(str(probe_video) if probe_video else None)
    if problem is None:
        log.info("Video backend: torchcodec (auto)")
        return "torchcodec"
    log.info("Video backend: pyav (auto; torchcodec does not load here: %s)", problem)
    return "pyav"


@cache
def _torchcodec_problem(probe_video: str | None) -> str | None:
    try:
        from torchcodec.decoders import VideoDecoder

        if probe_video is not None:
            VideoDecoder(probe_video)
    except Exception as error:  # a missing library surfaces as OSError, RuntimeError, ...
        return f"{type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}"
    return None


class LeRobotSamples(Dataset):
    """One item per frame of the wrapped ``LeRobotDataset`` (``None``: no episodes, no items)."""

    def __init__(
        self,
        dataset: Any,
        observation_delta_indices: Sequence[int],
        action_delta_indices: Sequence[int],
        transform: Callable[[dict], dict] | None = None,
    ) -> None:
        self.dataset = dataset
        self.observation_delta_indices = list(observation_delta_indices)
        self.action_delta_indices = list(action_delta_indices)
        self.transform = transform

    def __len__(self) -> int:
        return 0 if self.dataset is None else len(self.dataset)

    def __getitem__(self, idx: int) -> dict[str, Any]:
        if self.dataset is None or not 0 <= idx < len(self):
            raise IndexError(f"index {idx} out of range for {len(self)} samples")
        try:
            item = self.dataset[idx]
        except Exception as error:
            raise RuntimeError(f"{self._where(idx)}: {type(error).__name__}: {error}") from error
        return self.transform(item) if self.transform is not None else item

    def _where(self, idx: int) -> str:
        """Which sample, and which video files at which timestamps, a failed read was decoding."""
        meta = self.dataset.meta
        row = self.dataset.hf_dataset[idx]
        episode, frame = int(row["episode_index"]), int(row["frame_index"])
        timestamp = float(row["timestamp"])
        where = f"Reading sample {idx} (episode {episode}, frame {frame}, t={timestamp:.3f}s)"
        offsets = self.dataset.delta_timestamps or {}
        videos = []
        for key in meta.video_keys:
            start = float(meta.episodes[episode][f"videos/{key}/from_timestamp"])
            times = [start + timestamp + d for d in offsets.get(key, [0.0])]
            path = Path(self.dataset.root) / meta.get_video_file_path(episode, key)
            videos.append(f"{path} at t={', '.join(f'{t:.3f}' for t in times)}s")
        return where + (f" decoding video {'; '.join(videos)}" if videos else "") + " failed"
