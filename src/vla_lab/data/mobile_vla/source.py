"""Mobile VLA ``.h5`` episodes as a source of samples in the contract of ``vla_lab.features``.

Both known layouts (collector: BGR ``images`` + ``actions``; guide: RGB ``observations/images`` +
``action`` with the action class) are read, detected per file (``h5``). Every file is
validated once, at scan time, so a corrupt or truncated file is skipped with one warning that names
it (or raises, by config) before training starts, never on step 4000. Actions are tiny and kept in
memory; images are read lazily by the windows dataset (``windows``).

Action classes when only some files have them: the key ``action.type`` is served whenever any
scanned file has the class column (and ``use_action_type``); files without it serve ``-1``
("unknown"), as do padded steps, so a cross-entropy with ``ignore_index=-1`` skips them.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from torch.utils.data import Dataset

from vla_lab.data.mobile_vla.h5 import (
    ACTION_COLUMNS,
    ACTION_TYPE_NAMES,
    LAYOUTS,
    BadEpisodeError,
    EpisodeFile,
    inspect_episode_file,
)
from vla_lab.data.mobile_vla.scenario import UNKNOWN_SCENARIO, build_instruction, parse_scenario
from vla_lab.data.mobile_vla.windows import MobileVLAWindows, WindowEpisode
from vla_lab.features import (
    ACTION,
    ACTION_TYPE,
    EPISODE_INDEX,
    FRAME_INDEX,
    INDEX,
    TASK,
    Feature,
    Stats,
    compute_stats,
    image_key,
)
from vla_lab.utils.io import atomic_write_dir

log = logging.getLogger(__name__)

UNKNOWN_ACTION_TYPE = -1
COLOR_ORDERS = ("auto", "bgr", "rgb")
BAD_FILE_POLICIES = ("skip", "error")
EPISODE_SUFFIXES = (".h5", ".hdf5")


@dataclass(frozen=True)
class EpisodeInfo:
    """One readable episode as found by the scan. ``episode_index`` is its rank in sorted paths."""

    episode_index: int
    path: str
    layout: str
    num_frames: int
    scenario: dict[str, str]
    instruction: str
    has_action_type: bool


class MobileVLAEpisodes:
    """A directory of Mobile VLA episodes (searched recursively for ``*.h5`` / ``*.hdf5``).

    ``color_order``: ``auto`` converts the collector layout from BGR and leaves the guide layout
    as stored; ``bgr`` / ``rgb`` force how stored frames are read, for every file. ``synthetic``:
    a dict of ``write_synthetic_episodes`` arguments; when given and ``root`` holds no episodes,
    synthetic collector-layout episodes are written there first (atomically). ``cache_mb`` bounds
    each data loader worker's cache of decoded, resized frames.
    """

    camera: str = "front"

    def __init__(
        self,
        root: str,
        image_size: Sequence[int] = (224, 224),
        color_order: str = "auto",
        action_names: Sequence[str] = ACTION_COLUMNS,
        use_action_type: bool = True,
        on_bad_file: str = "skip",
        instruction_template: str | None = None,
        synthetic: dict | None = None,
        cache_mb: int = 512,
    ) -> None:
        self.root = Path(str(root)).expanduser()
        self.image_size = tuple(int(x) for x in image_size)
        self.color_order = str(color_order).lower()
        self.action_names = [str(name) for name in action_names]
        self.use_action_type = bool(use_action_type)
        self.on_bad_file = str(on_bad_file).lower()
        self.instruction_template = instruction_template
        self.synthetic = None if synthetic is None else {str(k): v for k, v in synthetic.items()}
        self.cache_mb = int(cache_mb)
        self._check_options()
        if self.synthetic is None and not _episode_paths(self.root):
            raise FileNotFoundError(_no_episodes_message(self.root))
        self._episodes: list[EpisodeInfo] | None = None
        self._files: dict[int, EpisodeFile] = {}

    def _check_options(self) -> None:
        if len(self.image_size) != 2 or min(self.image_size) <= 0:
            raise ValueError(f"image_size must be [height, width], got {list(self.image_size)}")
        if self.color_order not in COLOR_ORDERS:
            raise ValueError(f"color_order must be one of {COLOR_ORDERS}, got {self.color_order!r}")
        if self.on_bad_file not in BAD_FILE_POLICIES:
            raise ValueError(
                f"on_bad_file must be one of {BAD_FILE_POLICIES}, got {self.on_bad_file!r}"
            )
        unknown = [name for name in self.action_names if name not in ACTION_COLUMNS]
        if unknown or not self.action_names:
            raise ValueError(
                f"action_names {self.action_names} must be a non-empty subset of {ACTION_COLUMNS}"
            )

    # ------------------------------------------------------------------ scan
    def episodes(self) -> list[EpisodeInfo]:
        """All readable episodes, sorted by path; scanned and validated once, then cached."""
        if self._episodes is None:
            if self.synthetic is not None and not _episode_paths(self.root):
                _write_synthetic_atomically(self.root, self.synthetic)
            self._episodes = self._scan()
        return self._episodes

    def _scan(self) -> list[EpisodeInfo]:
        paths = _episode_paths(self.root)
        if not paths:
            raise FileNotFoundError(_no_episodes_message(self.root))
        episodes: list[EpisodeInfo] = []
        skipped = 0
        for path in _progress(paths, "Scanning Mobile VLA episodes"):
            try:
                info, file = self._inspect(path, len(episodes))
            except BadEpisodeError as error:
                if self.on_bad_file == "error":
                    raise
                log.warning("Skipping %s", error)
                skipped += 1
                continue
            episodes.append(info)
            self._files[info.episode_index] = file
        if not episodes:
            raise ValueError(f"None of the {len(paths)} .h5 files under {self.root} is readable.")
        layouts = {name: sum(e.layout == name for e in episodes) for name in LAYOUTS}
        log.info(
            "Mobile VLA: %d episodes under %s (%s), %d bad files skipped",
            len(episodes),
            self.root,
            ", ".join(f"{n} {name}" for name, n in layouts.items() if n),
            skipped,
        )
        return episodes

    def _inspect(self, path: Path, episode_index: int) -> tuple[EpisodeInfo, EpisodeFile]:
        episode = inspect_episode_file(path)
        scenario = parse_scenario(path.name)
        if scenario["scenario"] == UNKNOWN_SCENARIO and episode.metadata_scenario:
            from_metadata = parse_scenario(episode.metadata_scenario)
            if from_metadata["scenario"] != UNKNOWN_SCENARIO:
                scenario = from_metadata
        instruction = episode.instruction or build_instruction(scenario, self.instruction_template)
        info = EpisodeInfo(
            episode_index=episode_index,
            path=str(path),
            layout=episode.layout,
            num_frames=episode.num_frames,
            scenario=scenario,
            instruction=instruction,
            has_action_type=episode.action_types is not None,
        )
        return info, episode

    # ------------------------------------------------------------- serving
    input_description = "a Mobile VLA .h5 episode or a directory of them"

    @classmethod
    def recognises(cls, path: Path) -> bool:
        """An episode file, or a directory holding one anywhere below it."""
        if path.is_file():
            return path.suffix in EPISODE_SUFFIXES
        return path.is_dir() and any(p.suffix in EPISODE_SUFFIXES for p in path.rglob("*"))

    def source_split(self, episodes: list[EpisodeInfo]) -> None:
        """None: the collector's files carry no split; the datamodule makes a seeded one."""
        return None

    def serves_action_type(self) -> bool:
        """Whether samples carry ``action.type`` (any scanned file has it, and it is enabled)."""
        return self.use_action_type and any(e.has_action_type for e in self.episodes())

    def features(self) -> dict[str, Feature]:
        """What each sample holds, per frame (no time axis); keys from ``vla_lab.features``."""
        height, width = self.image_size
        features = {
            image_key(self.camera): Feature("float32", (3, height, width), ("c", "h", "w")),
            ACTION: Feature("float32", (len(self.action_names),), tuple(self.action_names)),
            TASK: Feature("string", ()),
            EPISODE_INDEX: Feature("int64", ()),
            FRAME_INDEX: Feature("int64", ()),
            INDEX: Feature("int64", ()),
        }
        if self.serves_action_type():
            features[ACTION_TYPE] = Feature("int64", (), ACTION_TYPE_NAMES)
        return features

    def natural_action_delta_indices(self) -> list[int]:
        """The chunk the files were recorded for: ``range(action_chunk_size)`` (attr, 8 in the
        collector layout); one step when no file says. Files that disagree are an error."""
        self.episodes()
        sizes: dict[int, str] = {}
        for info in self._episodes:
            size = self._files[info.episode_index].action_chunk_size
            if size is not None:
                sizes.setdefault(size, info.path)
        if len(sizes) > 1:
            raise ValueError(
                f"The episodes under {self.root} disagree on attr 'action_chunk_size' "
                f"({', '.join(f'{size} in {path}' for size, path in sorted(sizes.items()))}): "
                "pass action_delta_indices=range(<chunk>) to choose one."
            )
        return list(range(next(iter(sizes), 1)))

    def dataset(
        self,
        episodes: list[EpisodeInfo],
        observation_delta_indices: list[int],
        action_delta_indices: list[int],
        transform: Any = None,
    ) -> Dataset:
        """One item per frame of every given episode: an observation window and an action chunk."""
        serve_types = self.serves_action_type()
        return MobileVLAWindows(
            [self._window_episode(info, serve_types) for info in episodes],
            camera=self.camera,
            image_size=self.image_size,
            observation_delta_indices=observation_delta_indices,
            action_delta_indices=action_delta_indices,
            serve_action_type=serve_types,
            transform=transform,
            cache_mb=self.cache_mb,
        )

    def _window_episode(self, info: EpisodeInfo, serve_types: bool) -> WindowEpisode:
        file = self._file_of(info)
        types = None
        if serve_types:
            types = file.action_types
            if types is None:
                types = np.full(info.num_frames, UNKNOWN_ACTION_TYPE, dtype=np.int64)
        bgr = self.color_order == "bgr" or (
            self.color_order == "auto" and info.layout == "collector"
        )
        return WindowEpisode(
            episode_index=info.episode_index,
            path=info.path,
            images_key=LAYOUTS[info.layout][0],
            bgr=bgr,
            task=info.instruction,
            actions=file.actions[:, self._columns()],
            action_types=types,
        )

    def compute_stats(self, episodes: list[EpisodeInfo]) -> Stats:
        """Per-dimension action stats over ``episodes`` (the datamodule passes the train split)."""
        return {ACTION: compute_stats(self.action_values(episodes))}

    def action_values(self, episodes: list[EpisodeInfo]) -> np.ndarray:
        """``(N_frames, A)`` float32: every real action of ``episodes`` (for stats), no padding."""
        columns = self._columns()
        if not episodes:
            return np.zeros((0, len(columns)), dtype=np.float32)
        return np.concatenate([self._file_of(e).actions[:, columns] for e in episodes])

    def _columns(self) -> list[int]:
        return [ACTION_COLUMNS.index(name) for name in self.action_names]

    def _file_of(self, info: EpisodeInfo) -> EpisodeFile:
        self.episodes()
        file = self._files.get(info.episode_index)
        if file is None or self._episodes[info.episode_index].path != info.path:
            raise KeyError(f"{info.path} is not an episode of this source ({self.root})")
        return file

    def __repr__(self) -> str:
        return f"MobileVLAEpisodes(root={str(self.root)!r}, image_size={list(self.image_size)})"


def _episode_paths(root: Path) -> list[Path]:
    if root.is_file() and root.suffix in EPISODE_SUFFIXES:  # one episode (infer.py input=)
        return [root]
    if not root.is_dir():
        return []
    paths = [p for p in root.rglob("*") if p.suffix in EPISODE_SUFFIXES and p.is_file()]
    # Hidden entries below root (editor temp files, unfinished synthetic writes) are not episodes.
    hidden = [any(part.startswith(".") for part in p.relative_to(root).parts) for p in paths]
    return sorted(p for p, skip in zip(paths, hidden, strict=True) if not skip)


def _no_episodes_message(root: Path) -> str:
    state = "does not exist" if not root.exists() else "holds no .h5/.hdf5 episode files"
    return (
        f"Mobile VLA root {root} {state}. Point data.source.root at your episodes, or set "
        "data.source.synthetic (e.g. data=mobile_vla_synthetic) to generate a synthetic set there."
    )


def _write_synthetic_atomically(root: Path, options: dict) -> None:
    """Write into a temp dir beside ``root``, then rename it in: never half a dataset on disk.

    Several processes (DDP ranks) may race here; the first rename wins and the others discard
    their copy.
    """
    from vla_lab.data.synthetic.mobile_vla import write_synthetic_episodes

    if root.is_dir() and any(root.iterdir()):
        raise FileExistsError(
            f"{root} holds files but no .h5 episodes; synthetic episodes are only written into a "
            "missing or empty directory. Point data.source.root elsewhere or empty it."
        )
    log.info("Writing synthetic Mobile VLA episodes to %s (%s)", root, options)
    atomic_write_dir(
        root,
        lambda tmp: write_synthetic_episodes(tmp, **options),
        done=lambda path: bool(_episode_paths(path)),
    )


def _progress(items: list, desc: str):
    """A progress bar for long scans (real collections hold thousands of files)."""
    try:
        from tqdm.auto import tqdm
    except ImportError:  # pragma: no cover - tqdm ships with transformers
        return items
    return tqdm(items, desc=desc, disable=len(items) < 200, leave=False)
