"""Normalisation stats of a LeRobot dataset, from the train episodes only.

Numeric features (``observation.state``, ``action``, other float vectors) come from the train
episodes' parquet rows; when the train episodes are all of the dataset's episodes, the dataset's
own ``meta/stats.json`` is used as is (same numbers, no read). Camera stats are per channel and
shaped ``(3, 1, 1)`` as nested lists (``[[[r]], [[g]], [[b]]]``, LeRobot's shape, so they broadcast
over ``(C, H, W)``): ImageNet mean/std when ``use_imagenet_stats`` (what ``lerobot-train`` does,
and what ImageNet-pretrained vision backbones expect), with min/max/q01/q99 from
``meta/stats.json``; otherwise all of them from ``meta/stats.json`` (all episodes: decoding every
train frame for stats would cost more than it changes).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.dataset as pa_ds

from vla_lab.features import ACTION, STAT_NAMES, STATE, Stats, compute_stats, constant_dimensions

log = logging.getLogger(__name__)

NUMERIC_DTYPES = ("float32", "float64")
NOT_NORMALISED = ("timestamp",)
CHECKED_FEATURES = (STATE, ACTION)
PIXEL_RANGE = {"min": 0.0, "max": 1.0, "q01": 0.0, "q99": 1.0}


def numeric_keys(features: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """Float features that get normalised (not videos, images, indices or timestamps)."""
    return [
        key
        for key, ft in features.items()
        if ft["dtype"] in NUMERIC_DTYPES and key not in NOT_NORMALISED
    ]


def lerobot_stats(
    data_root: Path,
    features: Mapping[str, Mapping[str, Any]],
    camera_keys: Sequence[str],
    dataset_stats: Mapping[str, Mapping[str, Any]] | None,
    episodes: Iterable[int],
    total_episodes: int,
    use_imagenet_stats: bool,
) -> Stats:
    """Stats of ``episodes`` (the train split) of the v3.0 dataset at ``data_root``."""
    from vla_lab.lerobot_api import IMAGENET_STATS

    episodes = sorted({int(e) for e in episodes})
    if not episodes:
        raise ValueError(f"cannot compute stats of {data_root}: no train episodes")
    dataset_stats = dataset_stats or {}
    keys = numeric_keys(features)
    stats: Stats = {}
    whole = episodes == list(range(total_episodes))
    for key in keys:
        if whole and all(name in dataset_stats.get(key, {}) for name in STAT_NAMES):
            stats[key] = {name: _list(dataset_stats[key][name]) for name in STAT_NAMES}
    missing = [key for key in keys if key not in stats]
    if missing:
        stats.update(_from_parquet(data_root, missing, episodes))
    for key in camera_keys:
        stats[key] = _camera_stats(key, dataset_stats.get(key), use_imagenet_stats, IMAGENET_STATS)
    warn_constant_dimensions(stats, features, data_root)
    return stats


def _from_parquet(data_root: Path, keys: list[str], episodes: list[int]) -> Stats:
    paths = sorted((data_root / "data").glob("*/*.parquet"))
    if not paths:
        raise FileNotFoundError(
            f"{data_root / 'data'} holds no parquet files (data/chunk-*/*.parquet)"
        )
    table = pa_ds.dataset([str(p) for p in paths], format="parquet").to_table(
        columns=keys, filter=pa_ds.field("episode_index").isin(episodes)
    )
    stats: Stats = {}
    for key in keys:
        column = table.column(key).to_pylist()
        stats[key] = compute_stats(np.asarray(column, dtype=np.float64).reshape(len(column), -1))
    return stats


def _camera_stats(
    key: str,
    stored: Mapping[str, Any] | None,
    use_imagenet_stats: bool,
    imagenet: Mapping[str, Any],
) -> dict[str, list]:
    stored = stored or {}
    if use_imagenet_stats:
        shape = np.shape(imagenet["mean"])
        stats = {
            name: _list(stored[name]) if name in stored else _list(np.full(shape, value))
            for name, value in PIXEL_RANGE.items()
        }
        stats.update({name: _list(imagenet[name]) for name in ("mean", "std")})
        return {name: stats[name] for name in STAT_NAMES}
    absent = [name for name in STAT_NAMES if name not in stored]
    if absent:
        raise ValueError(
            f"meta/stats.json has no {absent} for camera {key!r}; set "
            "data.source.use_imagenet_stats=true or recompute the dataset's stats with LeRobot."
        )
    return {name: _list(stored[name]) for name in STAT_NAMES}


def warn_constant_dimensions(
    stats: Stats, features: Mapping[str, Mapping[str, Any]], data_root: Path
) -> None:
    """One warning per state/action dimension the train episodes never move (common: a 6-joint
    arm doing one task). ``lerobot-train`` accepts such a dataset and so do we: LeRobot policies
    normalise the dimension with unit scale (``features.unit_scale_for_constant_dimensions``)."""
    for key in CHECKED_FEATURES:
        names = flat_names(features.get(key, {}).get("names")) or []
        for dim in constant_dimensions(stats, key):
            name = f" ({names[dim]!r})" if dim < len(names) else ""
            log.warning(
                "%s dimension %d%s never varies over the train episodes of %s: it is normalised "
                "with unit scale (x - mean) instead of being divided by its std (~0), so a "
                "deviation at inference stays its own size.",
                key,
                dim,
                name,
                data_root,
            )


def flat_names(names: Any) -> list[str] | None:
    """Feature names as a flat list (LeRobot v2.x sometimes stores ``{"motors": [...]}``)."""
    if isinstance(names, Mapping):
        values = list(names.values())
        return [str(n) for n in values[0]] if len(values) == 1 else None
    return [str(n) for n in names] if names else None


def _list(value: Any) -> list:
    return np.asarray(value, dtype=np.float64).tolist()
