"""NVIDIA PhysicalAI-Autonomous-Vehicles clips (a local root in the released layout) as samples.

One sample is one time t0 of one clip: the front wide frame at or before t0 (optionally a few
earlier ones), the ego state, the command, and the 64-step ground-truth controls from the
unicycle fit of the future poses (`vla_lab.driving.unicycle`). t0 is a time in the clip's own clock,
shared by all its sensors (Alpamayo-R1's `t0_us = 5_100_000`), never shifted by the first frame's
or first pose's timestamp: the first frame sits a few ms off 0 and egomotion starts ~2 s before it.

Users download a few chunks of a ~3,000-chunk release: clips of chunks not on disk are skipped
quietly with one summary line (`chunks` picks some of those present). Everything that can be wrong
with a clip of a present chunk is found at scan time, before training: a missing member, a video
shorter than its timestamps, non-finite poses, an egomotion gap of more than `max_gap_s` around t0,
a t0 outside the 1.6 s / 6.4 s margins, no command for the sample. Each bad clip is skipped with
one warning naming it, and counted (`on_bad_clip: error` raises instead); an epoch never meets one.

Ground truth (poses in the t0 frame, controls, v0) is computed once per clip, in one batched least
squares, and cached under `cache_dir` (atomic writes), so later runs do no least squares; the
DataLoader workers only decode frames.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from vla_lab import features as ft
from vla_lab.data.physical_ai_av import layout
from vla_lab.data.physical_ai_av.commands import Commands
from vla_lab.data.physical_ai_av.layout import RootLayout
from vla_lab.data.physical_ai_av.poses import US, EgoTrajectory, PoseWindowError, window_offsets_us
from vla_lab.data.physical_ai_av.samples import AVSamples
from vla_lab.data.physical_ai_av.video import (
    count_video_frames,
    frame_index_at_or_before,
    read_parquet_member,
    read_timestamps,
)
from vla_lab.driving.ego_state import STATE_NAMES, ego_state, state_columns
from vla_lab.driving.unicycle import UnicycleActionSpace
from vla_lab.utils.io import atomic_write

log = logging.getLogger(__name__)

T0_MODES = ("fixed", "stride")
ON_BAD_CLIP = ("warn", "error")
CACHE_VERSION = 2  # 2: t0 in the clip clock


class BadClipError(ValueError):
    """A clip that cannot give a sample (the message names the clip and the reason)."""


@dataclass(frozen=True)
class AVClip:
    """One clip, the unit of the train/val split (`VLADataModule` calls them episodes)."""

    clip_id: str
    chunk: int
    split: str
    path: str
    num_frames: int  # samples of this clip
    scenario: dict[str, str] = field(default_factory=dict)


@dataclass
class ClipSamples:
    """A clip's samples, as arrays over its t0s (float32 poses in each t0 frame)."""

    t0_us: np.ndarray  # (n,) int64
    frame_index: np.ndarray  # (n, n_frames) int64, the frames served, the last at or before t0
    hist_xyz: np.ndarray  # (n, 16, 3)
    hist_rot: np.ndarray  # (n, 16, 3, 3)
    fut_xyz: np.ndarray  # (n, 64, 3)
    fut_rot: np.ndarray  # (n, 64, 3, 3)
    action: np.ndarray  # (n, 64, 2) normalised [a, kappa]
    state: np.ndarray  # (n, 3) v0, a0, kappa0
    skipped: list[str]  # reasons samples of this clip were dropped
    task: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.t0_us)

    def arrays(self) -> dict[str, np.ndarray]:
        return {
            "t0_us": self.t0_us,
            "frame_index": self.frame_index,
            "hist_xyz": self.hist_xyz,
            "hist_rot": self.hist_rot,
            "fut_xyz": self.fut_xyz,
            "fut_rot": self.fut_rot,
            "action": self.action,
            "state": self.state,
        }


class PhysicalAIAVClips:
    """The sample source of `data=nvidia_av` (and `av_synthetic`); see the module docstring.

    `t0_mode`: `fixed` (one sample per clip at `t0_us` in the clip clock, AR1's 5_100_000) or
    `stride` (`t0_us + k * t0_stride_s` for every integer k that keeps the margins). A t0 needs
    `history_margin_s` before it and `future_margin_s` after it inside both the egomotion and
    the video ranges, and, as AR1's loader demands, t0 > `history_margin_s` in the clip clock.
    `chunks`: the chunk numbers to read (None: every chunk on disk). `frame_offsets_s`: the
    frames served, relative to t0 (`[0.0]`; AR1's history is `[-0.3, -0.2, -0.1, 0.0]`).
    `state`: which of v0 (speed from the history fit), a0 and kappa0 (acceleration and
    curvature over the last 0.5 s of history) form `observation.state`. `synthetic`:
    `write_synthetic_av` arguments; the clips are written to `root` on first use when it is
    missing.
    """

    def __init__(
        self,
        root: str,
        camera: str = layout.FRONT_WIDE,
        image_size: Sequence[int] = (224, 224),
        t0_mode: str = "fixed",
        t0_us: int = 5_100_000,
        t0_stride_s: float = 1.0,
        history_margin_s: float = 1.6,
        future_margin_s: float = 6.4,
        n_history: int = 16,
        frame_offsets_s: Sequence[float] = (0.0,),
        state: Sequence[str] = ("v0",),
        commands: dict | None = None,
        action_space: dict | None = None,
        max_gap_s: float = 0.2,
        on_bad_clip: str = "warn",
        max_clips: int | None = None,
        chunks: Sequence[int] | None = None,
        synthetic: dict | None = None,
        cache_dir: str | None = None,
    ) -> None:
        self.root = Path(str(root)).expanduser()
        self.camera = camera
        self.image_size = tuple(int(s) for s in image_size)
        if t0_mode not in T0_MODES:
            raise ValueError(f"data.source.t0_mode={t0_mode!r}; expected one of {T0_MODES}")
        if on_bad_clip not in ON_BAD_CLIP:
            raise ValueError(f"data.source.on_bad_clip={on_bad_clip!r}; expected {ON_BAD_CLIP}")
        state_columns(state, "data.source.state")  # fails here on an unknown name
        self.t0_mode = t0_mode
        self.t0_us = int(t0_us)
        self.t0_stride_s = float(t0_stride_s)
        self.history_margin_s = float(history_margin_s)
        self.future_margin_s = float(future_margin_s)
        self.n_history = int(n_history)
        self.frame_offsets_s = [float(s) for s in frame_offsets_s]
        self.state_names = [str(s) for s in state]
        self.commands_cfg = dict(commands or {})
        self.action_space_cfg = dict(action_space or {})
        self.action_space = UnicycleActionSpace(**self.action_space_cfg)
        self.max_gap_s = float(max_gap_s)
        self.on_bad_clip = on_bad_clip
        self.max_clips = max_clips
        self.chunks = None if chunks is None else sorted({int(c) for c in chunks})
        self.synthetic = None if synthetic is None else dict(synthetic)
        self.cache_dir = Path(cache_dir or Path.home() / ".cache" / "vla_lab")
        self.skipped: Counter[str] = Counter()
        self._clips: list[AVClip] | None = None
        self._samples: dict[str, ClipSamples] = {}

    # ------------------------------------------------------------------ scan
    def episodes(self) -> list[AVClip]:
        """Every usable clip (scanned, checked and ground-truthed once, then kept)."""
        if self._clips is None:
            self._ensure_data()
            self._clips = self._scan()
        return self._clips

    def _ensure_data(self) -> None:
        if self.synthetic is not None and not (self.root / layout.CLIP_INDEX).exists():
            from vla_lab.data.synthetic.physical_ai_av import write_synthetic_av

            log.info("Writing synthetic PhysicalAI-AV clips to %s", self.root)
            write_synthetic_av(self.root, **self.synthetic)
        if not (self.root / layout.CLIP_INDEX).is_file():
            raise FileNotFoundError(
                f"{self.root / layout.CLIP_INDEX} not found: data.source.root must be a "
                "PhysicalAI-Autonomous-Vehicles root (clip_index.parquet, camera/, labels/); "
                "download with huggingface_hub.snapshot_download(repo_id='nvidia/PhysicalAI-"
                "Autonomous-Vehicles', repo_type='dataset', local_dir=<root>, allow_patterns=...)"
            )

    def _scan(self) -> list[AVClip]:
        self.layout = RootLayout.of(self.root)
        log.info("PhysicalAI-AV file names from %s", self.layout.source)
        index = self._on_disk(read_clip_index(self.root))
        present = read_feature_presence(self.root, [self.camera, layout.EGOMOTION])
        self.commands = Commands(self.commands_cfg, self.root)
        clips: list[AVClip] = []
        for clip_id, row in index.iterrows():
            if self.max_clips is not None and len(clips) >= int(self.max_clips):
                break
            clip_id = str(clip_id)
            if not bool(row["clip_is_valid"]):
                self.skipped["clip_is_valid is False"] += 1
                continue
            if present is not None and not present.get(clip_id, False):
                self._bad(clip_id, f"lacks {self.camera} or egomotion in feature presence")
                continue
            try:
                samples = self._ground_truth(clip_id, int(row["chunk"]))
            except (BadClipError, PoseWindowError, FileNotFoundError, KeyError) as error:
                self._bad(clip_id, str(error))
                continue
            samples = self._with_commands(clip_id, samples)
            if len(samples) == 0:
                self._bad(clip_id, "no usable t0: " + "; ".join(sorted(set(samples.skipped))))
                continue
            self.skipped["samples dropped inside usable clips"] += len(samples.skipped)
            self._samples[clip_id] = samples
            split = str(row["split"])
            clips.append(
                AVClip(
                    clip_id=clip_id,
                    chunk=int(row["chunk"]),
                    split=split,
                    path=f"{self.root}#{clip_id}",
                    num_frames=len(samples),
                    scenario={"split": split},
                )
            )
        if not clips:
            raise ValueError(
                f"No usable clip under {self.root} (skipped: {dict(self.skipped)}); see the "
                "warnings above for each clip."
            )
        log.info(
            "PhysicalAI-AV: %d clips, %d samples from %s; skipped: %s",
            len(clips),
            sum(c.num_frames for c in clips),
            self.root,
            dict(self.skipped) or "none",
        )
        return clips

    def _on_disk(self, index: pd.DataFrame) -> pd.DataFrame:
        """The index rows of the chunks to read: on disk and, with `chunks`, asked for.

        A partial download is the normal case (the index lists every released clip), so absent
        chunks are summarised in one line, not reported clip by clip; a chunk with some of its
        files but not all gets one warning.
        """
        listed = sorted(int(c) for c in index["chunk"].unique())
        files = {c: self._chunk_files(c) for c in listed}
        on_disk = [c for c in listed if all(path.is_file() for path in files[c])]
        for chunk in listed:
            missing = [str(path) for path in files[chunk] if not path.is_file()]
            if chunk not in on_disk and len(missing) < len(files[chunk]):
                log.warning("PhysicalAI-AV chunk %d is incomplete (no %s): skipped", chunk, missing)
        if self.chunks is None:
            selected = on_disk
        else:
            absent = [c for c in self.chunks if c not in on_disk]
            if absent:
                raise FileNotFoundError(
                    f"data.source.chunks asks for chunks {absent}, not on disk under {self.root} "
                    f"(chunk {absent[0]} needs {list(map(str, self._chunk_files(absent[0])))}); "
                    f"on disk: {_ranges(on_disk) or 'none'}"
                )
            selected = self.chunks
        if not selected:
            raise FileNotFoundError(
                f"None of the {len(listed)} chunks in {self.root / layout.CLIP_INDEX} is on disk: "
                f"chunk {listed[0]} would be {[str(p) for p in files[listed[0]]]} (names from "
                f"{self.layout.source}); download its camera and egomotion zips"
            )
        kept = index[index["chunk"].isin(selected)]
        log.info(
            "PhysicalAI-AV index: %d clips in %d chunks; on disk: chunks %s; reading %d clips "
            "of chunks %s",
            len(index),
            len(listed),
            _ranges(on_disk),
            len(kept),
            _ranges(selected),
        )
        return kept

    def _chunk_files(self, chunk: int) -> list[Path]:
        """The camera zip and the egomotion zip of chunk number `chunk`."""
        return [self.layout.chunk_file(f, chunk) for f in (self.camera, layout.EGOMOTION)]

    def _bad(self, clip_id: str, reason: str) -> None:
        message = f"PhysicalAI-AV clip {clip_id} under {self.root}: {reason}"
        if self.on_bad_clip == "error":
            raise BadClipError(message + " (data.source.on_bad_clip=warn skips such clips)")
        log.warning("%s; skipped", message)
        self.skipped["bad clips"] += 1

    # ------------------------------------------------------------------ ground truth
    def _cache_path(self, clip_id: str) -> Path:
        settings = {
            "version": CACHE_VERSION,
            "root": str(self.root.resolve()),
            "camera": self.camera,
            "t0": [self.t0_mode, self.t0_us, self.t0_stride_s],
            "margins": [self.history_margin_s, self.future_margin_s],
            "n_history": self.n_history,
            "frames": self.frame_offsets_s,
            "action_space": self.action_space_cfg,
            "max_gap_s": self.max_gap_s,
        }
        key = hashlib.sha1(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:16]
        return self.cache_dir / "av_ground_truth" / key / f"{clip_id}.npz"

    def _ground_truth(self, clip_id: str, chunk: int) -> ClipSamples:
        camera_zip, egomotion_zip = self._chunk_files(chunk)
        for path in (camera_zip, egomotion_zip):
            if not path.is_file():
                raise BadClipError(f"chunk zip {path} is missing")
        stamp = np.array(
            [p.stat().st_size for p in (camera_zip, egomotion_zip)]
            + [p.stat().st_mtime_ns for p in (camera_zip, egomotion_zip)],
            dtype=np.int64,
        )
        cache = self._cache_path(clip_id)
        if cache.is_file():
            with np.load(cache, allow_pickle=False) as stored:
                if np.array_equal(stored["stamp"], stamp):
                    arrays = {k: stored[k] for k in stored.files if k not in ("stamp", "skipped")}
                    return ClipSamples(**arrays, skipped=list(stored["skipped"]))
        samples = self._compute_ground_truth(clip_id, camera_zip, egomotion_zip)

        def write(tmp: Path) -> None:
            with open(tmp, "wb") as handle:
                np.savez(
                    handle,
                    stamp=stamp,
                    skipped=np.array(samples.skipped, dtype=str),
                    **samples.arrays(),
                )

        atomic_write(cache, write)
        return samples

    def _compute_ground_truth(self, clip_id: str, camera_zip: Path, egomotion_zip: Path):
        timestamps = read_timestamps(
            camera_zip, self.layout.member(self.camera, "frame_timestamps", clip_id)
        )
        video_member = self.layout.member(self.camera, "video", clip_id)
        n_video = count_video_frames(camera_zip, video_member)
        if n_video < len(timestamps):
            raise BadClipError(
                f"{camera_zip}:{video_member} has {n_video} frames but its timestamps parquet "
                f"lists {len(timestamps)}"
            )
        egomotion = read_parquet_member(
            egomotion_zip, self.layout.member(layout.EGOMOTION, "egomotion", clip_id)
        )
        missing = [c for c in layout.EGOMOTION_COLUMNS if c not in egomotion.columns]
        if missing:
            raise BadClipError(f"{egomotion_zip}: egomotion of {clip_id} lacks columns {missing}")
        trajectory = EgoTrajectory(
            egomotion["timestamp"].to_numpy(np.int64),
            egomotion[["x", "y", "z"]].to_numpy(),
            egomotion[["qx", "qy", "qz", "qw"]].to_numpy(),
            max_gap_s=self.max_gap_s,
        )
        start = max(int(timestamps[0]), trajectory.start_us)
        end = min(int(timestamps[-1]), trajectory.end_us)
        # t0 range: the margins inside both sensors' ranges, and AR1's t0 > history margin.
        first = max(start + self._us(self.history_margin_s), self._us(self.history_margin_s) + 1)
        last = end - self._us(self.future_margin_s)
        offsets = window_offsets_us(self.n_history, self.action_space.n_steps, self.action_space.dt)
        frame_offsets = np.round(np.asarray(self.frame_offsets_s) * US).astype(np.int64)
        kept: list[tuple[int, Any, list[int]]] = []
        skipped: list[str] = []
        for t0 in self._t0s(first, last):
            if not first <= t0 <= last:
                skipped.append(
                    f"t0 {t0} us is outside [{first}, {last}] us: {self.history_margin_s} s of "
                    f"history (and t0 > {self.history_margin_s} s) and {self.future_margin_s} s "
                    f"of future inside the egomotion [{trajectory.start_us}, {trajectory.end_us}]"
                    f" and video [{timestamps[0]}, {timestamps[-1]}] us ranges"
                )
                continue
            try:
                window = trajectory.window(t0, offsets, self.n_history)
            except PoseWindowError as error:
                skipped.append(f"t0 {t0} us: {error}")
                continue
            frames = [frame_index_at_or_before(timestamps, t0 + o) for o in frame_offsets]
            if min(frames) < 0:
                skipped.append(f"t0 {t0} us: no frame at or before {frame_offsets.tolist()}")
                continue
            kept.append((t0, window, frames))
        return self._fit(kept, skipped)

    def _t0s(self, first: int, last: int) -> list[int]:
        """`t0_us`, or its stride grid (through `t0_us`) between `first` and `last`."""
        if self.t0_mode == "fixed":
            return [self.t0_us]
        step = self._us(self.t0_stride_s)
        k_first = -((self.t0_us - first) // step)  # ceil((first - t0_us) / step)
        k_last = (last - self.t0_us) // step
        return [self.t0_us + k * step for k in range(k_first, k_last + 1)]

    @staticmethod
    def _us(seconds: float) -> int:
        return int(round(seconds * US))

    def _fit(self, kept: list, skipped: list[str]) -> ClipSamples:
        n, n_steps = len(kept), self.action_space.n_steps
        if n == 0:
            empty = np.zeros
            return ClipSamples(
                t0_us=empty(0, np.int64),
                frame_index=empty((0, len(self.frame_offsets_s)), np.int64),
                hist_xyz=empty((0, self.n_history, 3), np.float32),
                hist_rot=empty((0, self.n_history, 3, 3), np.float32),
                fut_xyz=empty((0, n_steps, 3), np.float32),
                fut_rot=empty((0, n_steps, 3, 3), np.float32),
                action=empty((0, n_steps, 2), np.float32),
                state=empty((0, len(STATE_NAMES)), np.float32),
                skipped=skipped,
            )
        windows = [w for _, w, _ in kept]
        hist_xyz = torch.from_numpy(np.stack([w.hist_xyz for w in windows]))
        hist_rot = torch.from_numpy(np.stack([w.hist_rot for w in windows]))
        fut_xyz = torch.from_numpy(np.stack([w.fut_xyz for w in windows]))
        fut_rot = torch.from_numpy(np.stack([w.fut_rot for w in windows]))
        state = ego_state(hist_xyz.numpy(), hist_rot.numpy(), self.action_space)
        v0 = torch.from_numpy(state[:, 0])
        action = self.action_space.traj_to_action(hist_xyz, hist_rot, fut_xyz, fut_rot, v0=v0)
        return ClipSamples(
            t0_us=np.array([t0 for t0, _, _ in kept], np.int64),
            frame_index=np.array([f for _, _, f in kept], np.int64),
            hist_xyz=hist_xyz.numpy(),
            hist_rot=hist_rot.numpy(),
            fut_xyz=fut_xyz.numpy(),
            fut_rot=fut_rot.numpy(),
            action=action.numpy().astype(np.float32),
            state=state.astype(np.float32),
            skipped=skipped,
        )

    def _with_commands(self, clip_id: str, samples: ClipSamples) -> ClipSamples:
        """Attach each sample's command; samples without one (a `file` lacking them) dropped."""
        tasks = [
            self.commands.command(
                clip_id, t0, samples.fut_xyz[i], samples.fut_rot[i], float(samples.state[i, 0])
            )
            for i, t0 in enumerate(samples.t0_us)
        ]
        keep = np.array([t is not None for t in tasks], dtype=bool)
        arrays = {k: v[keep] for k, v in samples.arrays().items()}
        missing = [
            f"t0 {t0} us has no command in {self.commands.file}" for t0 in samples.t0_us[~keep]
        ]
        return ClipSamples(
            **arrays, skipped=samples.skipped + missing, task=[t for t in tasks if t is not None]
        )

    # ------------------------------------------------------------------ serving
    def clip_samples(self, clip_id: str) -> ClipSamples:
        """The ground truth of a scanned clip (the labeler and evaluation read it)."""
        self.episodes()
        return self._samples[clip_id]

    def video_location(self, clip: AVClip) -> tuple[Path, str]:
        return self._chunk_files(clip.chunk)[0], self.layout.member(
            self.camera, "video", clip.clip_id
        )

    def features(self) -> dict[str, ft.Feature]:
        self.episodes()
        n_steps = self.action_space.n_steps
        return {
            ft.DRIVING_CAMERA: ft.Feature(
                "video", (3, *self.image_size), ("channels", "height", "width")
            ),
            ft.STATE: ft.Feature("float32", (len(self.state_names),), tuple(self.state_names)),
            ft.ACTION: ft.Feature("float32", (2,), ("accel_norm", "curvature_norm")),
            ft.FUTURE_XYZ: ft.Feature("float32", (n_steps, 3), ("x", "y", "z")),
            ft.HISTORY_XYZ: ft.Feature("float32", (self.n_history, 3), ("x", "y", "z")),
            ft.HISTORY_ROT: ft.Feature("float32", (self.n_history, 3, 3)),
        }

    def _state_columns(self) -> list[int]:
        return state_columns(self.state_names, "data.source.state")

    def compute_stats(self, episodes: Sequence[AVClip]) -> ft.Stats:
        """Action (over all chunk steps) and state statistics of `episodes`."""
        samples = [self._samples[c.clip_id] for c in episodes]
        actions = np.concatenate([s.action.reshape(-1, 2) for s in samples])
        states = np.concatenate([s.state[:, self._state_columns()] for s in samples])
        return {ft.ACTION: ft.compute_stats(actions), ft.STATE: ft.compute_stats(states)}

    input_description = "a PhysicalAI-AV root (clip_index.parquet)"

    @classmethod
    def recognises(cls, path: Path) -> bool:
        return (path / layout.CLIP_INDEX).is_file()

    def source_split(self, episodes: Sequence[AVClip]) -> tuple[list[AVClip], list[AVClip]]:
        """The released split (`clip_index.parquet`'s `split`): train, and val (test unused)."""
        return (
            [c for c in episodes if c.split == "train"],
            [c for c in episodes if c.split == "val"],
        )

    def natural_action_delta_indices(self) -> list[int]:
        """The whole horizon: every sample carries all `action_space.n_steps` controls."""
        return list(range(self.action_space.n_steps))

    def dataset(
        self,
        episodes: Sequence[AVClip],
        observation_delta_indices: Sequence[int],
        action_delta_indices: Sequence[int],
        transform: Any = None,
    ):
        if list(action_delta_indices) != list(range(self.action_space.n_steps)):
            raise ValueError(
                f"PhysicalAI-AV samples carry {self.action_space.n_steps} control steps; the model "
                f"asks for action_delta_indices {list(action_delta_indices)[:5]}...: set "
                f"model.chunk_size={self.action_space.n_steps} (from Python: load_dataset(..., "
                f"action_delta_indices=range({self.action_space.n_steps})))"
            )
        return AVSamples(self, list(episodes), transform)

    def __repr__(self) -> str:
        return f"PhysicalAIAVClips(root={self.root}, camera={self.camera}, t0={self.t0_mode})"


def read_clip_index(root: Path) -> pd.DataFrame:
    """`clip_index.parquet` indexed by clip_id, with chunk, split and clip_is_valid.

    As in the devkit, where `splits/default.parquet` exists its `split` labels win over the
    index's own (clips it does not label get none and are neither train nor val).
    """
    path = root / layout.CLIP_INDEX
    table = _indexed_by_clip_id(pd.read_parquet(path))
    missing = [c for c in ("chunk", "split", "clip_is_valid") if c not in table.columns]
    if missing:
        raise KeyError(
            f"{path} lacks columns {missing}; expected index clip_id and columns chunk, split, "
            f"clip_is_valid (found {list(table.columns)})"
        )
    splits = root / layout.SPLITS_DEFAULT
    if splits.is_file():
        labels = _indexed_by_clip_id(pd.read_parquet(splits))
        if "split" not in labels.columns:
            raise KeyError(f"{splits} has no 'split' column (found {list(labels.columns)})")
        unknown = labels.index.difference(table.index)
        if len(unknown):
            raise ValueError(
                f"{splits} labels {len(unknown)} clips absent from {path}, e.g. "
                f"{unknown[:3].tolist()}"
            )
        table["split"] = labels["split"].reindex(table.index)
    log.info("PhysicalAI-AV split labels from %s", splits if splits.is_file() else path)
    return table.sort_index()


def _indexed_by_clip_id(table: pd.DataFrame) -> pd.DataFrame:
    return table.set_index("clip_id") if "clip_id" in table.columns else table


def _ranges(numbers: Sequence[int]) -> str:
    """ "0-3, 7, 9-10" for [0, 1, 2, 3, 7, 9, 10]: chunk lists stay one short line."""
    runs: list[list[int]] = []
    for n in numbers:
        if runs and n == runs[-1][-1] + 1:
            runs[-1].append(n)
        else:
            runs.append([n])
    return ", ".join(str(r[0]) if len(r) == 1 else f"{r[0]}-{r[-1]}" for r in runs)


def read_feature_presence(root: Path, needed: Sequence[str]) -> dict[str, bool] | None:
    """clip_id -> whether every `needed` feature is present; None when no presence file."""
    for name in layout.FEATURE_PRESENCE:
        path = root / name
        if path.is_file():
            table = pd.read_parquet(path)
            if "clip_id" in table.columns:
                table = table.set_index("clip_id")
            missing = [c for c in needed if c not in table.columns]
            if missing:
                raise KeyError(f"{path} has no presence column for {missing}")
            return table[list(needed)].all(axis=1).to_dict()
    log.warning(
        "No %s under %s: assuming every clip has %s",
        " or ".join(layout.FEATURE_PRESENCE),
        root,
        list(needed),
    )
    return None
