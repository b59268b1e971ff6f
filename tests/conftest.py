"""Shared fixtures: one synthetic dataset and one tiny-backbone cache per test session."""

from __future__ import annotations

from pathlib import Path

import pytest
from hydra.core.global_hydra import GlobalHydra
from omegaconf import DictConfig

from vla_lab.utils.config import compose_config


@pytest.fixture(scope="session")
def shared_dirs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Data and cache dirs reused by every test: synthetic episodes and tiny models build once."""
    root = tmp_path_factory.mktemp("shared")
    return {"data_dir": root / "data", "cache_dir": root / "cache"}


@pytest.fixture()
def make_cfg(shared_dirs: dict[str, Path], tmp_path: Path):
    """Compose the train config as `python train.py <overrides>` would, writing under tmp_path."""

    def _make(overrides: list[str] | None = None, output_dir: Path | None = None) -> DictConfig:
        output_dir = output_dir or tmp_path / "run"
        return compose_config(
            [
                f"paths.data_dir={shared_dirs['data_dir']}",
                f"paths.cache_dir={shared_dirs['cache_dir']}",
                f"paths.log_dir={tmp_path / 'outputs'}",
                "print_config=false",
                *(overrides or []),
            ],
            output_dir=str(output_dir),
        )

    yield _make
    GlobalHydra.instance().clear()
