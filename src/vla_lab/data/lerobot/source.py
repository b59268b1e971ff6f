"""LeRobot datasets (a local ``root``, or a hub ``repo_id``) as a source of samples.

Format v3.0 is read with LeRobot's own ``LeRobotDataset``; v2.0/v2.1 roots are converted to v3.0
in a cache first (``convert``; the user's copy is never modified). LeRobot's items already
use our sample keys (``observation.images.<cam>``, ``observation.state``, ``action``,
``action_is_pad``, ``task``, indices), so the model's delta indices only become LeRobot
``delta_timestamps`` (``samples``) and a split becomes LeRobot's ``episodes=[...]``.

Checked once, at scan time, before training starts: ``meta/info.json`` exists, every video file
exists, opens and is as long as ``meta/episodes`` says (a truncated copy fails here, naming the
file, not on step 4000). Stats come from the train episodes only (``stats.lerobot_stats``).
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import av
from torch.utils.data import Dataset

from vla_lab.data.lerobot.convert import as_v30
from vla_lab.data.lerobot.samples import (
    VIDEO_BACKENDS,
    LeRobotSamples,
    delta_timestamps,
    resolve_video_backend,
)
from vla_lab.data.lerobot.stats import flat_names, lerobot_stats
from vla_lab.features import EPISODE_INDEX, FRAME_INDEX, INDEX, TASK, Feature, Stats
from vla_lab.utils.config import plain_dict

log = logging.getLogger(__name__)

INDEX_KEYS = (EPISODE_INDEX, FRAME_INDEX, INDEX, "task_index")
PIXEL_DTYPES = ("video", "image")


@dataclass(frozen=True)
class LeRobotEpisode:
    """One episode of the dataset; ``scenario["task"]`` (its first task) lets the split stratify."""

    episode_index: int
    path: str
    num_frames: int
    task: str
    scenario: dict[str, str] = field(default_factory=dict)


class LeRobotEpisodes:
    """A LeRobot dataset: local ``root`` (offline), else hub ``repo_id`` (downloaded by LeRobot).

    ``video_backend``: ``auto`` (torchcodec when it loads, else PyAV), ``torchcodec`` or ``pyav``.
    ``synthetic``: ``write_synthetic_lerobot`` arguments; when given and ``root`` is missing or
    empty, a synthetic dataset is written there on first use (atomically). ``record``:
    ``record_lerobot_dataset`` arguments (``env_id``, ``env_kwargs``, ``episodes``, ...): likewise,
    a simulated world's expert is recorded there on first use. ``cache_dir``: where v2.x datasets
    are converted to v3.0 (default ``~/.cache/vla_lab``).
    """

    def __init__(
        self,
        root: str | None = None,
        repo_id: str | None = None,
        video_backend: str = "auto",
        synthetic: dict | None = None,
        use_imagenet_stats: bool = True,
        cache_dir: str | None = None,
        record: dict | None = None,
    ) -> None:
        if root is None and repo_id is None:
            raise ValueError("LeRobotEpisodes needs data.source.root (a local dataset) or repo_id")
        if video_backend not in VIDEO_BACKENDS:
            raise ValueError(
                f"video_backend must be one of {VIDEO_BACKENDS}, got {video_backend!r}"
            )
        self.root = Path(str(root)).expanduser() if root is not None else None
        self.repo_id = repo_id
        self.video_backend = video_backend
        self.synthetic = None if synthetic is None else {str(k): v for k, v in synthetic.items()}
        self.record = None if record is None else plain_dict(record)
        self.use_imagenet_stats = bool(use_imagenet_stats)
        self.cache_dir = cache_dir
        if self.root is not None and self.synthetic is None and self.record is None:
            _require_info(self.root)
        self._meta: Any = None
        self._data_root: Path | None = None
        self._backend: str | None = None
        self._episodes: list[LeRobotEpisode] | None = None

    # ------------------------------------------------------------------ scan
    def episodes(self) -> list[LeRobotEpisode]:
        """All episodes, by index; the dataset is opened and checked once, then cached."""
        if self._episodes is None:
            self._open()
            name = str(self.root) if self.root is not None else self.repo_id
            columns = self._meta.episodes.select_columns(["episode_index", "length", "tasks"])
            self._episodes = [
                LeRobotEpisode(
                    episode_index=int(row["episode_index"]),
                    path=f"{name}#episode_{int(row['episode_index']):06d}",
                    num_frames=int(row["length"]),
                    task=str(row["tasks"][0]),
                    scenario={"task": str(row["tasks"][0])},
                )
                for row in columns
            ]
            log.info(
                "LeRobot: %d episodes, %d frames at %s fps, cameras %s, from %s",
                len(self._episodes),
                self._meta.total_frames,
                self._meta.fps,
                self._meta.camera_keys,
                self._data_root,
            )
        return self._episodes

    def _open(self) -> None:
        from vla_lab.lerobot_api import LeRobotDatasetMetadata

        if self.root is None:  # the hub: LeRobot downloads meta/ into its cache
            self._meta = LeRobotDatasetMetadata(self.repo_id)
            self._data_root = Path(self._meta.root)
        else:
            if self.synthetic is not None and not _has_files(self.root):
                from vla_lab.data.synthetic.lerobot import write_synthetic_lerobot

                log.info(
                    "Writing a synthetic LeRobot dataset to %s (%s)", self.root, self.synthetic
                )
                write_synthetic_lerobot(self.root, **self.synthetic)
            if self.record is not None and not _has_files(self.root):
                from vla_lab.sim.lerobot_recorder import record_lerobot_dataset

                log.info("Recording %s into %s (first use)", self.record["env_id"], self.root)
                record_lerobot_dataset(self.root, **self.record)
            _require_info(self.root)
            self._data_root = as_v30(self.root, self.cache_dir)
            self._meta = LeRobotDatasetMetadata(self._repo_id, root=self._data_root)
            check_videos(self._meta, self._data_root)
        videos = sorted(self._data_root.glob("videos/*/*/*.mp4"))
        self._backend = resolve_video_backend(self.video_backend, videos[0] if videos else None)

    @property
    def _repo_id(self) -> str:
        return self.repo_id or f"local/{self.root.name}"

    # ------------------------------------------------------------- serving
    def features(self) -> dict[str, Feature]:
        """Per-frame features from ``meta/info.json``; cameras as float32 ``(3, H, W)``."""
        self.episodes()
        features: dict[str, Feature] = {}
        for key, ft in self._meta.features.items():
            shape = tuple(int(s) for s in ft["shape"])
            if ft["dtype"] in PIXEL_DTYPES:
                names = list(ft.get("names") or [])
                channels_last = not names or names[-1] in ("channels", "channel")
                chw = (shape[2], shape[0], shape[1]) if channels_last else shape
                features[key] = Feature("float32", chw, ("c", "h", "w"))
            elif key in INDEX_KEYS:
                features[key] = Feature("int64", ())
            elif ft["dtype"] != "string":
                names = flat_names(ft.get("names"))
                features[key] = Feature(
                    str(ft["dtype"]),
                    () if shape == (1,) else shape,
                    tuple(names) if names else None,
                )
        features[TASK] = Feature("string", ())
        return features

    input_description = "a LeRobot dataset root (meta/info.json)"

    @classmethod
    def recognises(cls, path: Path) -> bool:
        return (path / "meta" / "info.json").is_file()

    def source_split(self, episodes: Sequence[LeRobotEpisode]) -> None:
        """None: we read no split from `info.json`; the datamodule makes a seeded one."""
        return None

    def natural_action_delta_indices(self) -> list[int]:
        """One step: a LeRobot frame stores one action (a policy's chunk is the policy's own)."""
        return [0]

    def dataset(
        self,
        episodes: Sequence[LeRobotEpisode],
        observation_delta_indices: Sequence[int],
        action_delta_indices: Sequence[int],
        transform: Any = None,
    ) -> Dataset:
        """Every frame of ``episodes``, with the model's observation history and action chunk."""
        from vla_lab.lerobot_api import LeRobotDataset

        self.episodes()
        if not episodes:
            return LeRobotSamples(None, observation_delta_indices, action_delta_indices, transform)
        timestamps = delta_timestamps(
            self._meta.fps,
            self._meta.camera_keys,
            observation_delta_indices,
            action_delta_indices,
            list(self._meta.features),
        )
        dataset = LeRobotDataset(
            self._repo_id,
            root=None if self.root is None else self._data_root,
            episodes=sorted(e.episode_index for e in episodes),
            delta_timestamps=timestamps,
            video_backend=self._backend,
        )
        return LeRobotSamples(dataset, observation_delta_indices, action_delta_indices, transform)

    def compute_stats(self, episodes: Sequence[LeRobotEpisode]) -> Stats:
        """Stats of ``episodes`` (the datamodule passes the train split); see ``lerobot_stats``."""
        self.episodes()
        return lerobot_stats(
            self._data_root,
            self._meta.features,
            self._meta.camera_keys,
            self._meta.stats,
            [e.episode_index for e in episodes],
            self._meta.total_episodes,
            self.use_imagenet_stats,
        )

    def __repr__(self) -> str:
        where = f"root={str(self.root)!r}" if self.root is not None else f"repo_id={self.repo_id!r}"
        return f"LeRobotEpisodes({where}, video_backend={self.video_backend!r})"


def check_videos(meta: Any, data_root: Path) -> None:
    """Every video file exists, opens, and lasts as long as its episodes' ``to_timestamp`` say."""
    needed: dict[Path, tuple[float, int]] = defaultdict(lambda: (0.0, -1))
    columns = ["episode_index"]
    for key in meta.video_keys:
        columns += [
            f"videos/{key}/{name}" for name in ("chunk_index", "file_index", "to_timestamp")
        ]
    for row in meta.episodes.select_columns(columns):
        for key in meta.video_keys:
            path = data_root / meta.video_path.format(
                video_key=key,
                chunk_index=int(row[f"videos/{key}/chunk_index"]),
                file_index=int(row[f"videos/{key}/file_index"]),
            )
            end = float(row[f"videos/{key}/to_timestamp"])
            if end > needed[path][0]:
                needed[path] = (end, int(row["episode_index"]))
    for path, (end, episode) in sorted(needed.items()):
        if not path.is_file():
            raise FileNotFoundError(
                f"Video {path} is missing; meta/episodes lists episode {episode} in it."
            )
        readable = _readable_end_s(path, end - 1.0 / meta.fps)
        if readable + 0.5 / meta.fps < end:
            raise ValueError(
                f"Video {path} holds frames up to t={readable:.3f}s, but meta/episodes says "
                f"episode {episode} ends at t={end:.3f}s in it: the video is truncated (an "
                "interrupted copy or recording?). Copy it again or drop the affected episodes."
            )


def _readable_end_s(path: Path, near_s: float) -> float:
    """Where the last readable frame of ``path`` ends, looking from the keyframe before ``near_s``.

    Container metadata alone is not enough: a file cut short after its index (``moov`` first, as
    LeRobot writes them) still reports its full duration; its packets past the cut do not demux.
    """
    size = path.stat().st_size
    try:
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            base = stream.time_base
            container.seek(max(0, int(near_s / base)), stream=stream, backward=True)
            end = 0.0
            for packet in container.demux(stream):
                if packet.pts is None or not packet.size or packet.pos + packet.size > size:
                    continue
                end = max(end, float((packet.pts + (packet.duration or 0)) * base))
            return end
    except (av.FFmpegError, IndexError) as error:
        raise ValueError(
            f"Video {path} cannot be read ({type(error).__name__}: {error}); it is corrupt or "
            "truncated. Copy it again or drop the affected episodes."
        ) from error


def _require_info(root: Path) -> None:
    if not (root / "meta" / "info.json").is_file():
        state = "does not exist" if not root.exists() else f"has no {root / 'meta' / 'info.json'}"
        raise FileNotFoundError(
            f"LeRobot root {root} {state}. A LeRobot dataset root holds meta/info.json, "
            "meta/stats.json, meta/tasks.parquet, meta/episodes/, data/chunk-*/*.parquet and "
            "videos/<camera>/chunk-*/*.mp4 (v3.0; v2.1 is converted). Point data.source.root at "
            "one, set data.source.repo_id (and root: null) to download one, or use "
            "data=lerobot_synthetic."
        )


def _has_files(root: Path) -> bool:
    return root.is_dir() and any(root.iterdir())
