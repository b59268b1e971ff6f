"""The run directory: where to resume from, which process writes it, what a finished run leaves."""

from __future__ import annotations

import json
import math
import os
import shutil
from collections.abc import Callable
from pathlib import Path

import lightning.pytorch as pl
import torch
from hydra.core.hydra_config import HydraConfig
from hydra.experimental.callback import Callback
from hydra.types import RunMode
from omegaconf import DictConfig

from vla_lab.utils.io import atomic_write_text
from vla_lab.utils.logging import get_logger

log = get_logger(__name__)

RESUME_MODES = ("never", "auto")
# Set to a process's rank by torchrun, Lightning's DDP launcher (LOCAL_RANK, NODE_RANK) and srun.
_RANK_VARIABLES = ("RANK", "LOCAL_RANK", "NODE_RANK", "SLURM_PROCID")
# Hydra overrides for ranks > 0: share rank 0's run dir without writing `.hydra/` or `train.log`.
SECONDARY_RANK_OVERRIDES = (
    "hydra.output_subdir=null",
    "hydra.job_logging.root.handlers=[console]",
    "~hydra.job_logging.handlers.file",
)
# Hydra's grid sweeper: it launches the jobs and ignores what they return.
BASIC_SWEEPER = "hydra._internal.core_plugins.basic_sweeper.BasicSweeper"


def is_secondary_rank() -> bool:
    """True in the extra processes of a multi-process launch (read before Hydra or Lightning)."""
    return any(os.environ.get(name, "0") != "0" for name in _RANK_VARIABLES)


def effective_batch_size(trainer: pl.Trainer, batch_size: int) -> int:
    """Samples per optimizer step: per-process batch x devices x nodes x accumulation."""
    return batch_size * trainer.world_size * trainer.accumulate_grad_batches


def last_checkpoint(output_dir: str | Path) -> Path:
    """`checkpoints/last.ckpt` (every checkpoint callback keeps it current), or the checkpoint
    Lightning saves on SLURM's requeue signal (`hpc_ckpt_<n>.ckpt`) when that one is newer."""
    output_dir = Path(output_dir)
    last = output_dir / "checkpoints" / "last.ckpt"
    existing = [*([last] if last.is_file() else []), *output_dir.glob("hpc_ckpt_*.ckpt")]
    return max(existing, key=lambda path: path.stat().st_mtime) if existing else last


def checkpoint_to_resume(cfg: DictConfig, output_dir: str | Path) -> str | None:
    """What `trainer.fit` continues from: `ckpt_path`, else `last.ckpt` when resume=auto."""
    if cfg.resume not in RESUME_MODES:
        raise ValueError(f"resume={cfg.resume!r} is not one of {RESUME_MODES}")
    if cfg.ckpt_path:
        path = Path(cfg.ckpt_path)
        if not path.is_file():
            raise FileNotFoundError(f"ckpt_path={path} does not exist or is not a file")
        log.info("Resuming from ckpt_path=%s", path)
        return str(path)
    last = last_checkpoint(output_dir)
    if cfg.resume == "auto":
        if last.is_file():
            log.info("resume=auto: continuing the run from %s", last)
            return str(last)
        log.info("resume=auto: no %s yet, starting a fresh run", last)
    elif last.is_file():
        log.warning(
            "%s exists but resume=never: training starts from scratch and will overwrite it. "
            "Use resume=auto to continue the run.",
            last,
        )
    return None


def check_output_dir(output_dir: str | Path, model: torch.nn.Module, keep: int) -> None:
    """Fail before training when the run dir is unwritable or cannot hold `keep` checkpoints;
    remove temp files of checkpoint writes a crash cut short (the checkpoints themselves are
    whole: they are renamed into place only once written).

    A checkpoint holds the weights plus about twice their size in optimizer state (Adam).
    """
    output_dir = Path(output_dir)
    try:
        output_dir.mkdir(parents=True, exist_ok=True)
        atomic_write_text(output_dir / ".write_check", "ok")
        (output_dir / ".write_check").unlink()
    except OSError as error:
        raise OSError(f"run dir {output_dir} is not writable: {error}") from error
    for stale in (output_dir / "checkpoints").glob(".*.tmp"):  # a write a kill -9 cut short
        log.warning("Removing %s, the remains of a checkpoint write cut short", stale)
        stale.unlink(missing_ok=True)
    weights = sum(p.numel() * p.element_size() for p in model.parameters())
    needed = 3 * weights * keep
    free = shutil.disk_usage(output_dir).free
    if free < needed:
        raise OSError(
            f"{output_dir} has {free / 2**30:.1f} GiB free but {keep} checkpoints of this model "
            f"need about {needed / 2**30:.1f} GiB; free space or point paths.log_dir elsewhere"
        )


def final_metrics(
    trainer: pl.Trainer, prefixes: tuple[str, ...] = ("val/", "rollout/")
) -> dict[str, float]:
    """The last logged validation and closed-loop metrics as a flat {name: float} dict."""
    return {
        name: float(value)
        for name, value in sorted(trainer.callback_metrics.items())
        if name.startswith(prefixes)
    }


def write_metrics(metrics: dict[str, float], path: str | Path) -> None:
    """Write `metrics.json` atomically; non-finite values become null (valid JSON)."""
    clean = {k: (v if math.isfinite(v) else None) for k, v in metrics.items()}
    atomic_write_text(path, json.dumps(clean, indent=2, sort_keys=True))


def sweeper_reads_return_value() -> bool:
    """True in a multirun whose sweeper optimises the task's return value (Optuna, Nevergrad, Ax),
    where a missing `optimized_metric` must fail; the basic (grid) sweeper ignores the value."""
    if not HydraConfig.initialized():
        return False
    hydra_cfg = HydraConfig.get()
    return hydra_cfg.mode == RunMode.MULTIRUN and hydra_cfg.sweeper._target_ != BASIC_SWEEPER


def run_sweep_job(job: Callable[[], float | None]) -> float | None:
    """Run `job` so that in a multirun its failure is logged and the other jobs go on.

    A failed job returns the worst value for the sweeper's direction: the Optuna sweeper (1.2.0)
    stops the whole sweep on None or nan (its `study.tell` rejects both) but records +-inf as a
    completed, worst trial. Outside a multirun the exception propagates.
    """
    hydra_cfg = HydraConfig.get()
    if hydra_cfg.mode != RunMode.MULTIRUN:
        return job()
    try:
        return job()
    except Exception:
        log.exception(
            "Sweep job %s failed; the sweep goes on. Overrides: %s. Run dir: %s",
            hydra_cfg.job.num,
            " ".join(hydra_cfg.overrides.task),
            hydra_cfg.runtime.output_dir,
        )
        maximize = str(hydra_cfg.sweeper.get("direction", "minimize")).lower() == "maximize"
        return -math.inf if maximize else math.inf


def check_multirun_launch(trainer: pl.Trainer) -> None:
    """Refuse a multi-process job of a sweep whose ranks Lightning would start itself.

    Lightning starts the extra ranks of DDP by re-running the command line; inside a `-m` sweep
    on Hydra's basic launcher that command is the whole sweep, so every rank would start it
    again. Launchers that start each job's ranks themselves (SLURM, torchrun) are fine.
    """
    if trainer.world_size == 1 or not HydraConfig.initialized():
        return
    if HydraConfig.get().mode != RunMode.MULTIRUN:
        return
    environment = getattr(trainer.strategy, "cluster_environment", None)
    if environment is None or environment.creates_processes_externally:
        return
    raise RuntimeError(
        f"This sweep job asks for {trainer.world_size} processes (hardware: devices x "
        "num_nodes), which Lightning would start by re-running the sweep's command line. "
        "Sweep multi-GPU jobs with hydra/launcher=slurm (one SLURM job per trial, its ranks "
        "started by srun), or run the trials one at a time without -m."
    )


class SweepStorageDir(Callback):
    """Create the folder of the sweeper's sqlite storage (`hydra.sweeper.storage`) before the
    sweeper opens it: sqlite creates the database file but not its folder."""

    def on_multirun_start(self, config: DictConfig, **kwargs) -> None:
        storage = config.hydra.sweeper.get("storage") or ""
        if storage.startswith("sqlite:///"):
            Path(storage.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
