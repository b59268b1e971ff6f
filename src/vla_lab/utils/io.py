"""Atomic writes of files and directories: a reader never sees half of one, a crash never loses
the old file, and a write that fails leaves neither a partial result nor a temp behind.

Both build beside their destination (same filesystem, so the final rename is atomic on POSIX),
fsync what they wrote, rename it into place and fsync the parent directory, so the rename itself
survives a power cut.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

# Plain `logging`, not `get_logger`: utils.logging writes through this module, and the rank that
# loses a build race (not rank 0, often) is the one with something to say.
log = logging.getLogger(__name__)


@contextmanager
def atomic_file(path: str | Path) -> Iterator[Path]:
    """A temp file beside ``path`` (it exists, empty) that replaces ``path`` when the block ends
    without an error; on an error it is removed and ``path`` keeps its old content. For writers
    that stream (a video); others call `atomic_write`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        _fsync_file(tmp)
        tmp.chmod(0o666 & ~_umask())  # mkstemp makes it 0600; give it a normal file's mode
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)


def atomic_write(path: str | Path, write: Callable[[Path], None]) -> Path:
    """Call ``write(tmp)`` on a temp file beside ``path`` (it exists, empty), then rename it
    over ``path``. If ``write`` raises, ``path`` keeps its old content and the temp is removed."""
    with atomic_file(path) as tmp:
        write(tmp)
    return Path(path)


def atomic_write_text(path: str | Path, text: str) -> Path:
    return atomic_write(path, lambda tmp: tmp.write_text(text))


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    return atomic_write(path, lambda tmp: tmp.write_bytes(data))


def atomic_write_dir(
    path: str | Path,
    build: Callable[[Path], None],
    done: Callable[[Path], bool] | None = None,
) -> Path:
    """Call ``build(tmp)`` to create and fill the directory ``tmp`` (a path that does not exist
    yet, in a hidden temp directory beside ``path``), then rename it to ``path``.

    An empty directory at ``path`` is replaced. If ``build`` raises, nothing is left behind. When
    the rename finds ``path`` already filled by another process (DDP ranks building the same
    cache) and ``done(path)`` says that copy is complete, it is kept and ours is discarded;
    otherwise the rename's error is raised. Callers check for a finished ``path`` beforehand.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    tmp = work / path.name
    try:
        build(tmp)
        if not tmp.is_dir():
            raise FileNotFoundError(f"Building {path} created no directory at {tmp}.")
        _fsync_tree(tmp)
        try:
            if path.is_dir() and not any(path.iterdir()):
                path.rmdir()
            os.rename(tmp, path)
        except OSError:
            if done is None or not done(path):
                raise
            log.info("Another process wrote %s first; keeping its copy", path)
        else:
            _fsync_dir(path.parent)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return path


def _fsync_file(path: Path) -> None:
    with open(path, "rb") as handle:
        os.fsync(handle.fileno())


def _fsync_dir(path: Path) -> None:
    """Make a directory's entries (a rename into it) durable; a no-op where directories cannot
    be opened (Windows)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _fsync_tree(root: Path) -> None:
    """fsync every regular file and directory under ``root`` (symlinks are left alone: their
    targets were not written here)."""
    for folder, _, files in os.walk(root):
        for name in files:
            file = Path(folder) / name
            if not file.is_symlink():
                _fsync_file(file)
        _fsync_dir(Path(folder))


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
