"""The torch Dataset of Mobile VLA windows: one item per frame, built for fast data loader workers.

Why it is shaped this way (the naive loader, which opens the file per item and decodes each frame of
the window on its own, is several times slower; see ``benchmarks/mobile_vla_loader.py``):

- h5 handles are opened lazily, on first use in each worker process, and kept (bounded LRU): an
  h5py handle must never cross a fork or a pickle, so ``__getstate__`` drops them.
- The frames a window needs and the cache lacks are read as one contiguous slice (one h5 read),
  widened to whole h5 chunks along time, since decoding a chunk decodes all of its frames.
- Decoded frames are resized once to ``image_size`` and kept as uint8 in a per-worker LRU cache
  bounded by ``cache_mb``, so the overlapping windows of one episode reuse them.
- Colour conversion (BGR -> RGB) happens after the resize, on the small image.

Padding: history frames before the episode start repeat frame 0 (after the end, the last frame) and
are flagged in ``observation.images.<camera>_is_pad``; actions outside the episode are **zeros**
(the robot standing still) flagged in ``action_is_pad``, with ``action.type`` ``-1`` there.
"""

from __future__ import annotations

import bisect
import logging
import os
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import h5py
import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset

from vla_lab.features import (
    ACTION,
    ACTION_IS_PAD,
    ACTION_TYPE,
    EPISODE_INDEX,
    FRAME_INDEX,
    INDEX,
    TASK,
    image_key,
    is_pad_key,
)

log = logging.getLogger(__name__)

MAX_OPEN_FILES = 64
PAD_ACTION_TYPE = -1


@dataclass(frozen=True)
class WindowEpisode:
    """What a worker needs to serve one episode; small and picklable (actions are tiny)."""

    episode_index: int
    path: str
    images_key: str
    bgr: bool
    task: str
    actions: np.ndarray  # (T, A) float32, the selected action columns
    action_types: np.ndarray | None  # (T,) int64, -1 where unknown

    @property
    def num_frames(self) -> int:
        return len(self.actions)


class MobileVLAWindows(Dataset):
    """Item ``i`` is frame ``t`` of an episode: ``len(O)`` observation frames at ``t + O`` and the
    ``len(D)`` actions at ``t + D``, for the model's ``observation_delta_indices`` O and
    ``action_delta_indices`` D. Every frame of every episode is an item, in episode order."""

    def __init__(
        self,
        episodes: Sequence[WindowEpisode],
        camera: str,
        image_size: Sequence[int],
        observation_delta_indices: Sequence[int],
        action_delta_indices: Sequence[int],
        serve_action_type: bool = False,
        transform: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
        cache_mb: int = 512,
    ) -> None:
        self.episodes = list(episodes)
        self.camera = camera
        self.image_size = (int(image_size[0]), int(image_size[1]))
        self.observation_delta_indices = np.asarray(list(observation_delta_indices), dtype=np.int64)
        self.action_delta_indices = np.asarray(list(action_delta_indices), dtype=np.int64)
        if self.observation_delta_indices.size == 0 or self.action_delta_indices.size == 0:
            raise ValueError("observation_delta_indices and action_delta_indices must be non-empty")
        self.serve_action_type = serve_action_type
        self.transform = transform
        self.cache_mb = cache_mb
        self._starts = np.cumsum([0] + [e.num_frames for e in self.episodes]).tolist()
        self._frames: _FrameStore | None = None
        self._log_short_episodes()

    def _log_short_episodes(self) -> None:
        window = len(self.observation_delta_indices)
        chunk = int((self.action_delta_indices >= 0).sum())
        short = sum(e.num_frames < window + chunk for e in self.episodes)
        if short:
            log.info(
                "%d of %d episodes are shorter than window %d + chunk %d and are padded "
                "(see the *_is_pad keys), not dropped",
                short,
                len(self.episodes),
                window,
                chunk,
            )

    def __len__(self) -> int:
        return self._starts[-1]

    def locate(self, index: int) -> tuple[int, int]:
        """``(position of the episode in this dataset, frame t)`` of item ``index``."""
        if not 0 <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} windows")
        position = bisect.bisect_right(self._starts, index) - 1
        return position, index - self._starts[position]

    def __getitem__(self, index: int) -> dict[str, Any]:
        index = int(index)
        position, t = self.locate(index)
        episode = self.episodes[position]
        last = episode.num_frames - 1

        obs_at = t + self.observation_delta_indices
        frames = self._store().frames(episode, np.clip(obs_at, 0, last))
        images = torch.from_numpy(frames).permute(0, 3, 1, 2).float().div_(255.0).contiguous()

        act_at = t + self.action_delta_indices
        act_pad = (act_at < 0) | (act_at > last)
        actions = episode.actions[np.clip(act_at, 0, last)].copy()
        actions[act_pad] = 0.0

        key = image_key(self.camera)
        sample: dict[str, Any] = {
            key: images,
            is_pad_key(key): torch.from_numpy((obs_at < 0) | (obs_at > last)),
            ACTION: torch.from_numpy(actions),
            ACTION_IS_PAD: torch.from_numpy(act_pad),
            TASK: episode.task,
            EPISODE_INDEX: torch.tensor(episode.episode_index, dtype=torch.int64),
            FRAME_INDEX: torch.tensor(t, dtype=torch.int64),
            INDEX: torch.tensor(index, dtype=torch.int64),
        }
        if self.serve_action_type:
            types = episode.action_types[np.clip(act_at, 0, last)].copy()
            types[act_pad] = PAD_ACTION_TYPE
            sample[ACTION_TYPE] = torch.from_numpy(types)
        if self.transform is not None:
            sample = self.transform(sample)
        return sample

    def _store(self) -> _FrameStore:
        # A store made before a fork belongs to the parent: each worker opens its own handles.
        if self._frames is None or self._frames.pid != os.getpid():
            self._frames = _FrameStore(self.image_size, self.cache_mb)
        return self._frames

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_frames"] = None
        return state


class _FrameStore:
    """Per-process h5 handles and LRU cache of resized RGB uint8 frames, keyed by episode."""

    def __init__(self, image_size: tuple[int, int], cache_mb: int) -> None:
        self.pid = os.getpid()
        self.image_size = image_size
        self.budget = max(0, int(cache_mb)) * 2**20
        self.used = 0
        self.handles: OrderedDict[str, h5py.File] = OrderedDict()
        self.cache: OrderedDict[int, tuple[np.ndarray, np.ndarray]] = OrderedDict()

    def frames(self, episode: WindowEpisode, indices: np.ndarray) -> np.ndarray:
        """``(len(indices), H, W, 3)`` uint8 RGB frames of ``episode`` at ``indices``."""
        if self.budget == 0:
            wanted = np.unique(indices)
            decoded = self._read(episode, wanted)
            return decoded[np.searchsorted(wanted, indices)]
        frames, loaded = self._entry(episode)
        missing = np.unique(indices[~loaded[indices]])
        if missing.size:
            missing = self._widen_to_chunks(episode, missing, loaded)
            frames[missing] = self._read(episode, missing)
            loaded[missing] = True
        return frames[indices]

    def _widen_to_chunks(
        self, episode: WindowEpisode, missing: np.ndarray, loaded: np.ndarray
    ) -> np.ndarray:
        """Add the frames that share an h5 chunk with a missing frame: decoding the chunk pays
        for them anyway (h5py's auto-chunking often spans several frames), so cache them too."""
        chunks = self._handle(episode.path)[episode.images_key].chunks
        step = chunks[0] if chunks else 1
        if step <= 1:
            return missing
        starts = np.unique(missing // step) * step
        widened = (starts[:, None] + np.arange(step)).ravel()
        widened = widened[widened < len(loaded)]
        return widened[~loaded[widened]]

    def _entry(self, episode: WindowEpisode) -> tuple[np.ndarray, np.ndarray]:
        key = episode.episode_index
        entry = self.cache.get(key)
        if entry is not None:
            self.cache.move_to_end(key)
            return entry
        height, width = self.image_size
        entry = (
            np.empty((episode.num_frames, height, width, 3), dtype=np.uint8),
            np.zeros(episode.num_frames, dtype=bool),
        )
        self.cache[key] = entry
        self.used += entry[0].nbytes
        while self.used > self.budget and len(self.cache) > 1:
            _, (old, _) = self.cache.popitem(last=False)
            self.used -= old.nbytes
        return entry

    def _read(self, episode: WindowEpisode, wanted: np.ndarray) -> np.ndarray:
        """Decode and resize the sorted unique frames ``wanted``, reading one contiguous slice
        unless they are sparse (then only those frames)."""
        first, last = int(wanted[0]), int(wanted[-1])
        try:
            images = self._handle(episode.path)[episode.images_key]
            if last - first + 1 <= 2 * len(wanted):
                raw = images[first : last + 1][wanted - first]
            else:
                raw = images[wanted.tolist()]
        except Exception as error:
            raise OSError(
                f"{episode.path}: reading '{episode.images_key}' frames {first}..{last} failed "
                f"(the file passed the scan, so it changed or is damaged inside): {error}"
            ) from error
        return np.stack([self._resize(frame, episode.bgr) for frame in raw])

    def _resize(self, frame: np.ndarray, bgr: bool) -> np.ndarray:
        height, width = self.image_size
        if frame.shape[:2] != (height, width):
            image = Image.fromarray(frame).resize((width, height), Image.BILINEAR, reducing_gap=2.0)
            frame = np.asarray(image)
        return frame[..., ::-1] if bgr else frame

    def _handle(self, path: str) -> h5py.File:
        handle = self.handles.get(path)
        if handle is not None:
            self.handles.move_to_end(path)
            return handle
        handle = h5py.File(path, "r")
        self.handles[path] = handle
        while len(self.handles) > MAX_OPEN_FILES:
            _, old = self.handles.popitem(last=False)
            old.close()
        return handle
