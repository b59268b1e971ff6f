"""Closed-loop evaluation of one checkpoint: its Policy rolled out in a simulated world.

`python evaluate.py mode=closed_loop ckpt_path=<ckpt> [env=<name>] [episodes=N]` runs N seeded
episodes (scenarios interleaved, episode i with seed `env.seed + i`, so two checkpoints meet the
same episodes) and writes into the output dir:

- `episodes.parquet`: one row per episode, rewritten as each one finishes; the same command on
  the same output dir continues an interrupted evaluation (`run_name=<the first run's>`);
- `metrics.json` (`rollout/success_rate` with its 95% Wilson interval, the world's metrics,
  latency), `scenarios.md` (per-scenario table), `plots/closed_loop_success.png`, TensorBoard;
- `videos/episode_<i>.mp4` for the first `videos` episodes and `videos/failure_<i>.mp4` for the
  `failure_videos` worst failed ones (lowest `score_metric` of the world).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from lightning.pytorch.loggers import TensorBoardLogger
from omegaconf import DictConfig, OmegaConf

from vla_lab.evaluation.plots import save_figures
from vla_lab.evaluation.rollouts import (
    failure_ranking,
    scenario_markdown,
    scenario_table,
    success_figure,
    summarise,
)
from vla_lab.evaluation.video import PredictionVideo, caption, scaled
from vla_lab.runtime.checkpoint import LoadedCheckpoint
from vla_lab.runtime.policy import Policy
from vla_lab.sim.base import EpisodeSpec, episode_specs
from vla_lab.sim.runner import Episode, RolloutRunner, check_compatible, make_env, world
from vla_lab.utils.config import plain_dict
from vla_lab.utils.device import resolve_device
from vla_lab.utils.io import atomic_write_text
from vla_lab.utils.logging import get_logger
from vla_lab.utils.run import write_metrics

log = get_logger(__name__)

RESULTS_FILE = "episodes.parquet"
VIDEO_HEIGHT = 240


def closed_loop_env(cfg: DictConfig, trained: DictConfig) -> DictConfig:
    """The world to evaluate in: `cfg.env` when given, else the one the checkpoint trained with
    (`trained`: its run config; the rollout callback's world)."""
    env_cfg = cfg.get("env") or trained.get("env")
    if not env_cfg:
        raise ValueError(
            "mode=closed_loop needs a world: give env=<name> (conf/env/), the checkpoint's run "
            "config has none"
        )
    return env_cfg


def rollout_policy(module: Any, env_cfg: DictConfig, device: str = "cpu") -> Policy:
    """The module as the world's agent: `env.n_action_steps` plan steps per prediction (null:
    the model's own), e.g. 1 for a driving plan replanned at every 0.1 s step (10 Hz)."""
    return Policy(module, device, n_action_steps=env_cfg.get("n_action_steps"))


def prepared_world(env_cfg: DictConfig, policy: Policy, model_name: str):
    """The env of `env_cfg`, checked to fit the policy, and its episode specs."""
    env = make_env(env_cfg.id, plain_dict(env_cfg.get("kwargs") or {}))
    check_compatible(env, policy.features, policy.observation_keys, model_name)
    return env


def world_specs(env, env_cfg: DictConfig, episodes: int) -> list[EpisodeSpec]:
    """`episodes` seeded episodes over `env_cfg.scenarios` (null: all of the world's)."""
    scenarios = list(env_cfg.get("scenarios") or world(env).scenarios)
    unknown = sorted(set(scenarios) - set(world(env).scenarios))
    if unknown:
        raise ValueError(
            f"env.scenarios: {unknown} are not scenarios of {env_cfg.id}; it has "
            f"{list(world(env).scenarios)}"
        )
    return episode_specs(scenarios, episodes, int(env_cfg.seed))


class EpisodeVideos:
    """mp4s of the first `first` episodes and of the `failures` worst failed ones so far; a
    failure video is written when it fails and removed once `failures` worse ones exist."""

    def __init__(self, folder: Path, first: int, failures: int, fps: float, score: str) -> None:
        self.folder, self.first, self.failures = folder, first, failures
        self.fps, self.score = fps, score

    def wants_frames(self, spec: EpisodeSpec) -> bool:
        return spec.index < self.first or self.failures > 0

    def on_episode(self, episode: Episode, results: pd.DataFrame) -> None:
        row = episode.row
        if row["episode"] < self.first:
            self._write(self.folder / f"episode_{row['episode']:04d}.mp4", episode)
        if self.failures and row["success"] < 0.5:
            self._write(self.folder / f"failure_{row['episode']:04d}.mp4", episode)
            keep = set(failure_ranking(results, self.score)[: self.failures])
            for path in self.folder.glob("failure_*.mp4"):
                if int(path.stem.split("_")[1]) not in keep:
                    path.unlink()

    def _write(self, path: Path, episode: Episode) -> None:
        if not episode.frames:
            return
        row = episode.row
        verdict = "success" if row["success"] >= 0.5 else f"failed: {row['failure']}"
        with PredictionVideo(path, self.fps) as video:
            for step, frame in enumerate(episode.frames):
                image = scaled(np.asarray(frame), VIDEO_HEIGHT)
                caption(image, [f"{row['scenario']} seed {row['seed']} step {step}", verdict])
                video.add(image)


def evaluate_closed_loop(
    checkpoint: LoadedCheckpoint,
    cfg: DictConfig,
    output_dir: Path,
    instructions: str | None = None,
) -> dict[str, float]:
    """One checkpoint's closed-loop metrics; writes the files of the module docstring.
    `instructions`: the world's instruction set to use (`kwargs.instructions`; None: its own)."""
    env_cfg = closed_loop_env(cfg, checkpoint.config)
    if instructions is not None:
        env_cfg = OmegaConf.merge(env_cfg, {"kwargs": {"instructions": instructions}})
    device = str(resolve_device("cpu" if cfg.hardware.accelerator == "cpu" else "auto"))
    policy = rollout_policy(checkpoint.module, env_cfg, device)
    env = prepared_world(env_cfg, policy, type(checkpoint.module).__name__)
    specs = world_specs(env, env_cfg, int(cfg.get("episodes") or env_cfg.episodes))
    sim = world(env)
    videos = EpisodeVideos(
        output_dir / "videos",
        int(cfg.get("videos", 0)),
        int(cfg.get("failure_videos", 0)),
        float(sim.metadata.get("render_fps", 10)),
        sim.score_metric,
    )
    runner = RolloutRunner(
        env, policy, output_dir / RESULTS_FILE, videos.on_episode, videos.wants_frames
    )
    log.info("Rolling out %s in %s: %d episodes", checkpoint.path, env_cfg.id, len(specs))
    results = runner.run(specs)
    env.close()
    metrics = summarise(results)
    metrics["model/parameters"] = float(sum(p.numel() for p in checkpoint.module.parameters()))
    write_metrics(metrics, output_dir / "metrics.json")
    table = scenario_table(results)
    title = f"{env_cfg.id}: {checkpoint.path}"
    atomic_write_text(output_dir / "scenarios.md", scenario_markdown(table, title))
    figures = {"closed_loop_success": success_figure(table)}
    save_figures(figures, output_dir / "plots")
    logger = TensorBoardLogger(output_dir, name="tensorboard", version="")
    logger.log_metrics(metrics, step=0)
    for name, figure in figures.items():
        logger.experiment.add_figure(f"rollout/{name}", figure, global_step=0, close=False)
    logger.finalize("success")
    log.info("%s in %s:\n%s", checkpoint.path, env_cfg.id, scenario_markdown(table, title))
    return metrics
