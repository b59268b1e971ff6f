"""Mobile VLA episodes written in the two on-disk layouts ``h5`` reads (recorders, test data).

Frames are given as RGB, as everything in vla-lab holds them; the collector layout stores them BGR
because that is what the ROS2 collector's cv_bridge ("bgr8") writes. Writes are atomic, so an
interrupted recording never leaves a truncated episode behind.
"""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np

from vla_lab.data.mobile_vla.h5 import KEYPRESS_S
from vla_lab.utils.io import atomic_write

COLLECTOR_CHUNK_SIZE = 8  # the collector's attr ``action_chunk_size``


def write_collector_episode(path: str | Path, images: np.ndarray, actions: np.ndarray) -> Path:
    """Collector layout: BGR ``images``, ``actions`` (T, 3), ``action_event_types``, attrs
    (``episode_name`` is the file's stem, which carries the scenario)."""
    path = Path(path)
    events = ["episode_start"] + ["start_action"] * (len(actions) - 1)

    def write(tmp: Path) -> None:
        with h5py.File(tmp, "w") as file:
            file.create_dataset(
                "images", data=np.ascontiguousarray(images[..., ::-1]), compression="gzip"
            )
            file.create_dataset("actions", data=np.asarray(actions, dtype=np.float32))
            file.create_dataset("action_event_types", data=events, dtype=h5py.string_dtype())
            file.attrs["episode_name"] = path.stem
            file.attrs["num_frames"] = len(actions)
            file.attrs["total_duration"] = round(len(actions) * KEYPRESS_S, 3)
            file.attrs["action_chunk_size"] = COLLECTOR_CHUNK_SIZE

    return atomic_write(path, write)


def write_guide_episode_file(
    path: str | Path,
    images: np.ndarray,
    actions: np.ndarray,
    action_types: np.ndarray,
    metadata: dict[str, str],
) -> Path:
    """Guide layout: RGB ``observations/images``, ``action`` (T, 4) = actions + the action class,
    ``episode_metadata`` group attrs (e.g. ``scenario``, ``distance``)."""
    action = np.concatenate(
        [np.asarray(actions, np.float32), np.asarray(action_types, np.float32).reshape(-1, 1)],
        axis=1,
    )

    def write(tmp: Path) -> None:
        with h5py.File(tmp, "w") as file:
            file.create_dataset("observations/images", data=images, compression="gzip")
            file.create_dataset("action", data=action)
            meta = file.create_group("episode_metadata")
            for key, value in metadata.items():
                meta.attrs[key] = value

    return atomic_write(path, write)
