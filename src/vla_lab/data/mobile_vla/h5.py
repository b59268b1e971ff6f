"""One Mobile VLA ``.h5`` file: which layout it is, and whether it can serve as an episode.

Two layouts exist in the wild (see ``/work/shared/reference/mobile_vla_h5.md``):

- collector (what the ROS2 collector writes): ``images`` (T, H, W, 3) uint8 stored **BGR**,
  ``actions`` (T, 3), ``action_event_types``, attrs; no action class.
- guide (the project guide's layout): ``observations/images`` RGB, ``action`` (T, 4) whose last
  column is the action class (0 move, 1 rotate, 2 stop, 3 special), ``episode_metadata``.

Validation is cheap (keys, shapes, dtypes, finite actions, stored image chunks; no image decoding)
so a whole collection is checked before training starts. Every failure is a ``BadEpisodeError``
whose message names the file, the key and what was expected.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np

ACTION_COLUMNS = ("linear_x", "linear_y", "angular_z")
KEYPRESS_S = 0.3  # the collector's frame period: each keypress drives the robot for 0.3 s
ACTION_TYPE_NAMES = ("move", "rotate", "stop", "special")

# layout -> (images key, actions key, action width)
LAYOUTS = {
    "collector": ("images", "actions", 3),
    "guide": ("observations/images", "action", 4),
}


class BadEpisodeError(ValueError):
    """A file that cannot serve as an episode; the message names the file and what is wrong."""


@dataclass(frozen=True)
class EpisodeFile:
    """What the scan keeps of a valid file: actions are tiny, images stay on disk."""

    layout: str
    num_frames: int
    actions: np.ndarray  # (T, 3) float32, ACTION_COLUMNS
    action_types: np.ndarray | None  # (T,) int64, guide layout only
    instruction: str | None  # a stored ``language_instruction``
    metadata_scenario: str | None  # guide ``episode_metadata`` scenario
    action_chunk_size: int | None = None  # the collector's ``action_chunk_size`` attr


def inspect_episode_file(path: str | Path) -> EpisodeFile:
    """Validate ``path`` and read its actions; ``BadEpisodeError`` says why it is unusable."""
    path = Path(path)
    try:
        with h5py.File(path, "r") as file:
            return _inspect_open(file, path)
    except BadEpisodeError:
        raise
    except Exception as error:  # h5py raises OSError, KeyError, RuntimeError on corrupt files
        raise BadEpisodeError(
            f"{path}: cannot be read as HDF5 (corrupt or truncated?): {error}"
        ) from error


def detect_layout(file: h5py.File) -> str | None:
    """``"collector"``, ``"guide"`` or ``None``, from which image/action keys the file holds."""
    for layout, (images_key, actions_key, _) in LAYOUTS.items():
        if images_key in file and actions_key in file:
            if isinstance(file[images_key], h5py.Dataset):
                return layout
    return None


def _inspect_open(file: h5py.File, path: Path) -> EpisodeFile:
    layout = detect_layout(file)
    if layout is None:
        raise BadEpisodeError(
            f"{path}: neither the collector keys ('images', 'actions') nor the guide keys "
            f"('observations/images', 'action') are present; found {_all_keys(file)}"
        )
    images_key, actions_key, width = LAYOUTS[layout]
    images = file[images_key]
    if images.ndim != 4 or images.shape[-1] != 3 or images.dtype != np.uint8:
        raise BadEpisodeError(
            f"{path}: '{images_key}' must be (T, H, W, 3) uint8, got {images.shape} {images.dtype}"
        )
    _check_chunks_stored(images, path, images_key)
    raw = np.asarray(file[actions_key][()])
    num_frames = images.shape[0]
    if raw.ndim != 2 or raw.shape[1] != width:
        raise BadEpisodeError(
            f"{path}: '{actions_key}' must be (T, {width}) for the {layout} layout, got {raw.shape}"
        )
    if num_frames == 0 or raw.shape[0] != num_frames:
        raise BadEpisodeError(
            f"{path}: '{images_key}' has {num_frames} frames but '{actions_key}' has "
            f"{raw.shape[0]} rows; they must match and be > 0"
        )
    bad = ~np.isfinite(raw)
    if bad.any():
        first = int(np.argwhere(bad)[0][0])
        raise BadEpisodeError(
            f"{path}: '{actions_key}' has {int(bad.sum())} NaN/inf values (first at frame {first})"
        )
    action_types = None
    if layout == "guide":
        action_types = np.rint(raw[:, 3]).astype(np.int64)
        if not np.isin(action_types, range(len(ACTION_TYPE_NAMES))).all():
            raise BadEpisodeError(
                f"{path}: '{actions_key}'[:, 3] (action_type) must be in "
                f"0..{len(ACTION_TYPE_NAMES) - 1} {ACTION_TYPE_NAMES}, "
                f"got {sorted(set(action_types.tolist()))}"
            )
    return EpisodeFile(
        layout=layout,
        num_frames=int(num_frames),
        actions=raw[:, :3].astype(np.float32),
        action_types=action_types,
        instruction=_stored_instruction(file),
        metadata_scenario=_metadata_scenario(file),
        action_chunk_size=_action_chunk_size(file),
    )


def _action_chunk_size(file: h5py.File) -> int | None:
    """The chunk the collector recorded for (attr ``action_chunk_size``), if the file says.

    Metadata only (it sets the chunk served when no model asks): a value that is not a positive
    integer is ignored rather than costing the episode.
    """
    value = np.asarray(file.attrs.get("action_chunk_size"))
    if value.ndim == 0 and np.issubdtype(value.dtype, np.integer) and value >= 1:
        return int(value)
    return None


def _check_chunks_stored(images: h5py.Dataset, path: Path, key: str) -> None:
    """An interrupted write can leave chunks unallocated, which read back as black frames."""
    if images.chunks is None:
        return
    expected = math.prod(math.ceil(n / c) for n, c in zip(images.shape, images.chunks, strict=True))
    stored = images.id.get_num_chunks()
    if stored < expected:
        raise BadEpisodeError(
            f"{path}: only {stored} of {expected} chunks of '{key}' are stored (truncated write?)"
        )


def _stored_instruction(file: h5py.File) -> str | None:
    if "language_instruction" not in file:
        return None
    value = np.asarray(file["language_instruction"][()]).reshape(-1)
    if value.size == 0:
        return None
    text = value[0].decode("utf-8") if isinstance(value[0], bytes) else str(value[0])
    return text.strip() or None


def _metadata_scenario(file: h5py.File) -> str | None:
    """Guide files may carry the scenario in ``episode_metadata`` (group attrs or a dataset)."""
    if "episode_metadata" not in file:
        return None
    node = file["episode_metadata"]
    value = node.attrs.get("scenario")
    if value is None and isinstance(node, h5py.Group) and "scenario" in node:
        value = node["scenario"][()]
    if value is None:
        return None
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)


def _all_keys(file: h5py.File) -> list[str]:
    keys: list[str] = []
    file.visit(keys.append)
    return sorted(keys)
