"""Shared fixtures: one synthetic dataset and one tiny-backbone cache per test session."""

from __future__ import annotations

from pathlib import Path

import pytest
from hydra.core.global_hydra import GlobalHydra
from omegaconf import DictConfig

from vla_lab.train import train
from vla_lab.utils.config import compose_config

DEMOS = ["mobile_vla_demo", "roarm_act_demo", "roarm_smolvla_demo", "av_smolvla_unicycle_demo"]
# The driving demo's data, smaller: 12 recorded drives (curves and overtakes) instead of 120 (3 min
# to record). Written into the shared data dir before the first driving config reads it.
SMALL_AV_DEMO = {"num_clips": 12, "clip_seconds": 20.0, "scenarios": ("curves", "overtake")}


# The arm-in-simulation experiments' recordings, smaller: 4 expert episodes (2 a task) of at most
# 60 steps instead of 100 full ones (4 min to record), rendered at 64x64 without shadows (the full
# roarm_*_sim experiments render LeRobot's 480x480), and a 60-step budget in the world.
SMALL_SIM = [
    "data.source.record.episodes=4",
    "env.kwargs.max_steps=60",
    "env.kwargs.image_size=64",
    "env.kwargs.shadows=false",
]


def small_sim(overrides: list[str]) -> list[str]:
    """The overrides that shrink an arm-in-simulation experiment (`roarm_*_sim*`) for the tests,
    less those the test sets itself."""
    if not any("_sim" in override for override in overrides):
        return []
    given = {override.split("=", 1)[0] for override in overrides}
    return [o for o in SMALL_SIM if o.split("=", 1)[0] not in given]


def ensure_small_av_data(data_dir: Path, overrides: list[str]) -> None:
    """Record the small driving demo data once, when a config about to be composed reads it."""
    if any("av_" in override for override in overrides):
        from vla_lab.data.synthetic.physical_ai_av import write_synthetic_av

        write_synthetic_av(data_dir / "av_road", **SMALL_AV_DEMO)


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
        ensure_small_av_data(shared_dirs["data_dir"], overrides or [])
        return compose_config(
            [
                f"paths.data_dir={shared_dirs['data_dir']}",
                f"paths.cache_dir={shared_dirs['cache_dir']}",
                f"paths.log_dir={tmp_path / 'outputs'}",
                "print_config=false",
                *(overrides or []),
                *small_sim(overrides or []),
            ],
            output_dir=str(output_dir),
        )

    yield _make
    GlobalHydra.instance().clear()


@pytest.fixture(scope="session")
def checkpoint_of(shared_dirs, tmp_path_factory: pytest.TempPathFactory):
    """`checkpoint_of(experiment)`: a short run's last.ckpt, trained once per test session and
    shared by the evaluate, infer and policy tests (they check what is written, not how good)."""
    root = tmp_path_factory.mktemp("demo_runs")
    trained: dict[str, Path] = {}

    def _get(experiment: str) -> Path:
        if experiment not in trained:
            run = root / experiment
            ensure_small_av_data(shared_dirs["data_dir"], [experiment])
            cfg = compose_config(
                [
                    f"paths.data_dir={shared_dirs['data_dir']}",
                    f"paths.cache_dir={shared_dirs['cache_dir']}",
                    f"paths.log_dir={root / 'outputs'}",
                    "print_config=false",
                    f"experiment={experiment}",
                    "hardware.num_workers=0",
                    "hardware.batch_size=4",
                    "debug=limit",
                    "trainer.max_epochs=1",
                    *small_sim([experiment]),
                ],
                output_dir=str(run),
            )
            train(cfg)
            GlobalHydra.instance().clear()
            trained[experiment] = run / "checkpoints" / "last.ckpt"
        return trained[experiment]

    return _get
