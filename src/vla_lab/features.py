"""The sample/batch contract shared by every dataset and every model.

A sample is a flat dict keyed with LeRobot's feature names, so LeRobot policies and processors work
on every dataset and our own models read every dataset the same way:

- ``observation.images.<camera>``: float32 in [0, 1], ``(C, H, W)`` or ``(T_obs, C, H, W)``;
  ``observation.images.<camera>_is_pad``: bool ``(T_obs,)``, history frames before the episode.
- ``observation.state``: float32 ``(S,)`` or ``(T_obs, S)``.
- ``action``: float32 ``(T_act, A)`` chunk in dataset units; ``action_is_pad``: bool ``(T_act,)``,
  steps outside the episode.
- ``task``: str, the language instruction or command.
- ``action.type``: int64 ``(T_act,)``, the Mobile VLA action class (-1 where unknown).
- ``episode_index``, ``frame_index``, ``index``: int64, to trace every prediction to its source.

Driving samples (PhysicalAI-AV) add, with poses in the ego frame at t0:

- ``observation.images.front_wide``: the driving camera (``DRIVING_CAMERA``), whichever camera
  the reader was told to read.
- ``trajectory.future_xyz``: float32 ``(T_fut, 3)``, the logged future positions, one per step
  of the unicycle action space (64), the ground truth of ADE/FDE;
  ``trajectory.history_xyz`` / ``trajectory.history_rot``: float32 ``(T_hist, 3)`` /
  ``(T_hist, 3, 3)``, the past poses (``n_history``, 16).
- ``clip_id``: str and ``t0_us``: int, the clip and the sample's time in the clip's clock.

``T_obs`` and ``T_act`` follow the model's ``observation_delta_indices`` and
``action_delta_indices`` (frame offsets relative to the current frame, as in LeRobot).

Every reader of an on-disk format implements ``DataSource`` (below); the datamodule, the commands
and the runtime only call what it declares.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch

from vla_lab.utils.io import atomic_write_text

IMAGE_PREFIX = "observation.images."
# LeRobot's key for a dataset's or env's only camera (PushT, Meta-World): a camera key too.
SINGLE_IMAGE = "observation.image"
STATE = "observation.state"
ACTION = "action"
ACTION_IS_PAD = "action_is_pad"
ACTION_TYPE = "action.type"
TASK = "task"
EPISODE_INDEX = "episode_index"
FRAME_INDEX = "frame_index"
INDEX = "index"
# Driving (PhysicalAI-AV): poses in the ego frame at t0, and where the sample comes from.
FUTURE_XYZ = "trajectory.future_xyz"
HISTORY_XYZ = "trajectory.history_xyz"
HISTORY_ROT = "trajectory.history_rot"
CLIP_ID = "clip_id"
T0_US = "t0_us"

STAT_NAMES = ("mean", "std", "min", "max", "q01", "q99")
# A state/action dimension whose std is below this never varied in the episodes the stats saw.
MIN_STD = 1e-6


def image_key(camera: str) -> str:
    return f"{IMAGE_PREFIX}{camera}"


# The key a driving sample serves its camera under, whichever camera the reader reads.
DRIVING_CAMERA = image_key("front_wide")


def is_pad_key(key: str) -> str:
    return f"{key}_is_pad"


def is_image_key(key: str) -> bool:
    """A camera's frames (not their `_is_pad` flags)."""
    return key == SINGLE_IMAGE or (key.startswith(IMAGE_PREFIX) and not key.endswith("_is_pad"))


def camera_name(key: str) -> str:
    """The camera of a camera key ("front" of observation.images.front; "image" for LeRobot's
    single-camera key), the short key a robot loop may use."""
    return key[len(IMAGE_PREFIX) :] if key.startswith(IMAGE_PREFIX) else key.rsplit(".", 1)[-1]


def image_keys(keys: Iterable[str]) -> list[str]:
    """The camera keys among `keys` (a sample, a features dict), in order."""
    return [key for key in keys if is_image_key(key)]


@dataclass(frozen=True)
class Feature:
    """What a dataset serves under one key: dtype name and per-frame shape (no time axis)."""

    dtype: str
    shape: tuple[int, ...]
    names: tuple[str, ...] | None = None

    def to_dict(self) -> dict:
        return {"dtype": self.dtype, "shape": list(self.shape), "names": self.names}


Stats = dict[str, dict[str, list[float]]]


def compute_stats(values: np.ndarray) -> dict[str, list[float]]:
    """Per-dimension statistics of ``values`` shaped ``(N, D)``."""
    values = np.asarray(values, dtype=np.float64)
    if values.ndim != 2 or len(values) == 0:
        raise ValueError(
            f"compute_stats expects a non-empty (N, D) array, got shape {values.shape}"
        )
    return {
        "mean": values.mean(0).tolist(),
        "std": values.std(0).tolist(),
        "min": values.min(0).tolist(),
        "max": values.max(0).tolist(),
        "q01": np.quantile(values, 0.01, axis=0).tolist(),
        "q99": np.quantile(values, 0.99, axis=0).tolist(),
    }


def constant_dimensions(stats: Stats, key: str) -> list[int]:
    """Dimensions of the flat ``(D,)`` feature ``key`` that never vary in the stats' episodes
    (std below ``MIN_STD``), e.g. a joint a one-task arm never moves."""
    if key not in stats:
        return []
    std = np.asarray(stats[key]["std"], dtype=np.float64).reshape(-1)
    return np.flatnonzero(std < MIN_STD).tolist()


def unit_scale_for_constant_dimensions(stats: Stats, keys: Iterable[str]) -> Stats:
    """A copy of ``stats`` in which each constant dimension of ``keys`` has unit scale: std 1,
    min and q01 at mean - 1, max and q99 at mean + 1. Every normalisation mode of LeRobot
    (MEAN_STD, MIN_MAX, QUANTILES) then maps that dimension to ``x - mean``.

    Why: LeRobot's normaliser (0.4.4 to 0.6.1) divides by ``std + 1e-8`` (by ``1e-8`` when
    max == min or q99 == q01), so a 0.01 deviation at inference on a joint the train episodes
    never moved becomes ~1e6. Unit scale keeps it 0.01, in dataset units, as scikit-learn's
    ``StandardScaler`` does for zero-variance features. The dataset's own stats (``stats.json``,
    the checkpoint) stay as computed; this is what a normaliser is built with.
    """
    safe = {key: {name: list(values) for name, values in stats[key].items()} for key in stats}
    for key in keys:
        for dim in constant_dimensions(stats, key):
            mean = float(safe[key]["mean"][dim])
            safe[key]["std"][dim] = 1.0
            for name, offset in (("min", -1.0), ("q01", -1.0), ("max", 1.0), ("q99", 1.0)):
                if name in safe[key]:
                    safe[key][name][dim] = mean + offset
    return safe


def save_stats(stats: Stats, path: str | Path) -> None:
    atomic_write_text(path, json.dumps(stats, indent=2))


def load_stats(path: str | Path) -> Stats:
    return json.loads(Path(path).read_text())


def require_features(available: dict[str, Feature], required: list[str], who: str) -> None:
    """Fail at start-up, naming the missing features, when a model and a dataset do not fit."""
    missing = [key for key in required if key not in available]
    if missing:
        raise ValueError(
            f"{who} needs features {missing}, but the dataset serves only {sorted(available)}. "
            "Pick a dataset that provides them or a model that does not need them."
        )


def stats_tensor(stats: Stats, key: str, name: str) -> torch.Tensor:
    return torch.as_tensor(stats[key][name], dtype=torch.float32)


class DataSource(Protocol):
    """What a reader of one on-disk format provides (structural: no base class to inherit).

    Episodes are the unit of the train/val split (never frames); each has `path` (a file or an id
    such as `<root>#<clip_id>`, unique and stable, the split's sort key), `scenario` (a dict the
    split can stratify by) and `num_frames` (the samples it serves). `natural_action_delta_indices`
    is the chunk the data was recorded for, served when no model asks for another.
    `input_description` says what `recognises` accepts, for the message when nothing does.
    """

    input_description: str

    def episodes(self) -> Sequence[Any]:
        """Every usable episode (a synthetic source writes its data on first call)."""
        ...

    def features(self) -> dict[str, Feature]:
        """Name -> type, shape and dimension names of what a sample holds."""
        ...

    def compute_stats(self, episodes: Sequence[Any]) -> Stats:
        """Normalisation stats over `episodes` (the train split only)."""
        ...

    def natural_action_delta_indices(self) -> list[int]: ...

    def dataset(
        self,
        episodes: Sequence[Any],
        observation_delta_indices: Sequence[int],
        action_delta_indices: Sequence[int],
        transform: Any,
    ) -> torch.utils.data.Dataset:
        """Samples of `episodes` in this contract, at the model's relative frames."""
        ...

    def source_split(self, episodes: Sequence[Any]) -> tuple[list, list] | None:
        """The dataset's own (train, val) episodes, or None when it has no split of its own."""
        ...

    @classmethod
    def recognises(cls, path: Path) -> bool:
        """Whether `path` (a file or a directory) is in this format: `infer.py input=<path>`."""
        ...
