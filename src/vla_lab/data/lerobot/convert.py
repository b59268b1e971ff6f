"""Read LeRobot v2.1 datasets by converting them to v3.0 in a cache, never in place.

LeRobot (>= 0.4) reads only v3.0 and ships a converter (``convert_dataset_v21_to_v30``) that works
in place: it moves the input aside and the result into its spot. Here the converter gets a tree of
symlinks to the user's files (no copy of the videos), so the user's dataset is left untouched and
the v3.0 result lands in ``<cache_dir>/lerobot_v30/<name>-<hash>``, keyed by the dataset's path and
its ``meta/info.json`` (an edited dataset converts again).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
from pathlib import Path

from vla_lab.utils.io import atomic_write_dir

log = logging.getLogger(__name__)

V30 = "v3.0"
CONVERTIBLE = ("v2.0", "v2.1")
DEFAULT_CACHE_DIR = Path("~/.cache/vla_lab").expanduser()


def codebase_version(root: Path) -> str:
    """The ``codebase_version`` of ``root/meta/info.json`` ("unknown" when absent)."""
    info = json.loads((root / "meta" / "info.json").read_text())
    return str(info.get("codebase_version", "unknown"))


def as_v30(root: Path, cache_dir: str | Path | None) -> Path:
    """``root`` itself when it is v3.0, else its v3.0 copy in the cache (converted on first use)."""
    version = codebase_version(root)
    if version == V30:
        return root
    if version not in CONVERTIBLE:
        raise ValueError(
            f"{root / 'meta' / 'info.json'} says codebase_version {version!r}; vla-lab reads "
            f"LeRobot {V30} datasets and converts {' / '.join(CONVERTIBLE)} ones."
        )
    target = _cache_path(root, Path(cache_dir).expanduser() if cache_dir else DEFAULT_CACHE_DIR)
    if (target / "meta" / "info.json").is_file():
        log.info("LeRobot %s dataset %s: using its v3.0 copy %s", version, root, target)
        return target
    _convert(root, target)
    log.warning(
        "Converted LeRobot %s dataset %s to v3.0 in %s with lerobot's converter (the original is "
        "unchanged; delete the copy to convert again).",
        version,
        root,
        target,
    )
    return target


def _cache_path(root: Path, cache_dir: Path) -> Path:
    root = root.resolve()
    info = root / "meta" / "info.json"
    key = hashlib.sha1(f"{root}\n{info.read_text()}".encode()).hexdigest()[:12]
    return cache_dir / "lerobot_v30" / f"{root.name}-{key}"


def _convert(root: Path, target: Path) -> None:
    from vla_lab.lerobot_api import convert_dataset_v21_to_v30

    def build(work: Path) -> None:
        shutil.copytree(root.resolve(), work, copy_function=_link)
        try:
            # LeRobot 0.6: `root` is the dataset directory itself (0.4 took its parent).
            convert_dataset_v21_to_v30(
                repo_id="dataset", root=work, push_to_hub=False, force_conversion=True
            )
        except Exception as error:
            raise RuntimeError(
                f"Converting the LeRobot v2.1 dataset {root} to v3.0 with lerobot's converter "
                f"failed: {type(error).__name__}: {error}. Convert it yourself with `python -m "
                "lerobot.scripts.convert_dataset_v21_to_v30 --repo-id=<name> "
                "--root=<dataset dir> --push-to-hub=false` (it works in place: use a copy), then "
                "point data.source.root at the result."
            ) from error

    atomic_write_dir(target, build, done=lambda path: (path / "meta" / "info.json").is_file())


def _link(src: str, dst: str) -> None:
    os.symlink(os.path.abspath(src), dst)
