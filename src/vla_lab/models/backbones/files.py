"""A pretrained directory's small files (config, tokenizer, processor) as bytes, and back.

A Lightning checkpoint must load offline with the original model directory gone, so it carries
these files; weights travel in the state_dict, not here.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from vla_lab.utils.io import atomic_write_dir

# Weight files stay out: the checkpoint's state_dict holds the weights.
WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".ckpt", ".h5", ".msgpack", ".onnx")


def pack_dir_files(directory: str | Path) -> dict[str, bytes]:
    """Read the top-level non-weight files of ``directory`` (symlinks followed, as in HF caches)."""
    directory = Path(directory)
    if not directory.is_dir():
        raise FileNotFoundError(f"Cannot pack model files: {directory} is not a directory.")
    files = {
        path.name: path.read_bytes()
        for path in sorted(directory.iterdir())
        if path.is_file()
        and not path.name.startswith(".")
        and not path.name.endswith(WEIGHT_SUFFIXES)
    }
    if "config.json" not in files:
        raise FileNotFoundError(f"{directory} has no config.json; is it a pretrained model dir?")
    return files


def unpack_dir_files(files: dict[str, bytes], cache_dir: str | Path, prefix: str = "model") -> Path:
    """Write ``files`` to ``<cache_dir>/<prefix>_<content hash>`` (once) and return that dir.

    The content hash makes the directory name a function of the files, so two checkpoints of the
    same backbone share one directory and a changed tokenizer never overwrites another's.
    """
    if not files:
        raise ValueError(
            "No backbone files given: the checkpoint carries no config/tokenizer files."
        )
    for name in files:
        if Path(name).name != name or name.startswith("."):
            raise ValueError(f"Backbone file name {name!r} must be a plain file name.")
    digest = hashlib.sha256()
    for name in sorted(files):
        digest.update(name.encode() + b"\0" + hashlib.sha256(files[name]).digest())
    final = Path(cache_dir) / f"{prefix}_{digest.hexdigest()[:16]}"
    if final.is_dir():
        return final

    def write(tmp: Path) -> None:
        tmp.mkdir()
        for name, data in files.items():
            (tmp / name).write_bytes(data)

    return atomic_write_dir(final, write, done=Path.is_dir)
