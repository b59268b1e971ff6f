"""The one atomic-write helper for files and the one for directories (vla_lab.utils.io)."""

from __future__ import annotations

from pathlib import Path

import pytest

from vla_lab.utils.io import atomic_file, atomic_write, atomic_write_dir, atomic_write_text


def _half_write_then_fail(tmp: Path) -> None:
    tmp.write_text("half of the new")
    raise RuntimeError("disk full")


def test_a_write_that_raises_keeps_the_old_file_and_leaves_no_temp(tmp_path: Path):
    path = atomic_write_text(tmp_path / "stats.json", "old")
    with pytest.raises(RuntimeError, match="disk full"):
        atomic_write(path, _half_write_then_fail)
    assert path.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["stats.json"]


def test_a_write_lands_whole_with_a_normal_files_mode(tmp_path: Path):
    path = atomic_write(tmp_path / "sub" / "stats.json", lambda tmp: tmp.write_text("new"))
    assert path.read_text() == "new"
    assert path.stat().st_mode & 0o644 == 0o644  # not mkstemp's 0600
    assert sorted(p.name for p in path.parent.iterdir()) == ["stats.json"]


def test_a_streamed_file_that_fails_midway_leaves_nothing(tmp_path: Path):
    path = tmp_path / "predictions.mp4"
    with pytest.raises(KeyboardInterrupt), atomic_file(path) as tmp:
        tmp.write_bytes(b"frames")
        raise KeyboardInterrupt
    assert not list(tmp_path.iterdir())


def test_a_directory_build_that_raises_leaves_no_directory_and_no_temp(tmp_path: Path):
    def build(tmp: Path) -> None:
        (tmp / "meta").mkdir(parents=True)
        (tmp / "meta" / "info.json").write_text("{}")
        raise RuntimeError("encoder crashed")

    with pytest.raises(RuntimeError, match="encoder crashed"):
        atomic_write_dir(tmp_path / "dataset", build)
    assert not list(tmp_path.iterdir())


def test_a_directory_lands_whole_in_place_of_an_empty_one(tmp_path: Path):
    (tmp_path / "dataset").mkdir()

    def build(tmp: Path) -> None:
        assert not tmp.exists()  # the builder creates it (LeRobot's writers insist)
        (tmp / "data").mkdir(parents=True)
        (tmp / "data" / "episode_0.h5").write_bytes(b"h5")

    path = atomic_write_dir(tmp_path / "dataset", build)
    assert (path / "data" / "episode_0.h5").read_bytes() == b"h5"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dataset"]


def test_a_directory_another_process_finished_first_is_kept_when_complete(tmp_path: Path):
    final = tmp_path / "tiny_model"

    def racing_build(tmp: Path) -> None:
        tmp.mkdir()
        (tmp / "config.json").write_text("ours")
        final.mkdir()  # another rank renamed its copy in meanwhile
        (final / "config.json").write_text("theirs")

    atomic_write_dir(final, racing_build, done=lambda path: (path / "config.json").is_file())
    assert (final / "config.json").read_text() == "theirs"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tiny_model"]

    (final / "config.json").unlink()
    (final / "stray.txt").write_text("not ours")
    with pytest.raises(OSError):
        atomic_write_dir(
            final, lambda tmp: tmp.mkdir(), done=lambda p: (p / "config.json").exists()
        )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tiny_model"]
