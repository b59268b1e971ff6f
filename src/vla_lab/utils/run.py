"""The run directory: where to resume from and the files a finished run leaves behind."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import lightning.pytorch as pl
import torch
from omegaconf import DictConfig

from vla_lab.utils.io import atomic_write_text
from vla_lab.utils.logging import get_logger

log = get_logger(__name__)

RESUME_MODES = ("never", "auto")


def last_checkpoint(output_dir: str | Path) -> Path:
    return Path(output_dir) / "checkpoints" / "last.ckpt"


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
    """Fail before training when the run dir is unwritable or cannot hold `keep` checkpoints.

    A checkpoint holds the weights plus about twice their size in optimizer state (Adam).
    """
    output_dir = Path(output_dir)
    try:
        output_dir.mkdir(parents=True, exist_ok=True)
        atomic_write_text(output_dir / ".write_check", "ok")
        (output_dir / ".write_check").unlink()
    except OSError as error:
        raise OSError(f"run dir {output_dir} is not writable: {error}") from error
    weights = sum(p.numel() * p.element_size() for p in model.parameters())
    needed = 3 * weights * keep
    free = shutil.disk_usage(output_dir).free
    if free < needed:
        raise OSError(
            f"{output_dir} has {free / 2**30:.1f} GiB free but {keep} checkpoints of this model "
            f"need about {needed / 2**30:.1f} GiB; free space or point paths.log_dir elsewhere"
        )


def final_metrics(trainer: pl.Trainer, prefix: str = "val/") -> dict[str, float]:
    """The last logged validation metrics as a flat {name: float} dict."""
    return {
        name: float(value)
        for name, value in sorted(trainer.callback_metrics.items())
        if name.startswith(prefix)
    }


def write_metrics(metrics: dict[str, float], path: str | Path) -> None:
    """Write `metrics.json` atomically; non-finite values become null (valid JSON)."""
    clean = {k: (v if math.isfinite(v) else None) for k, v in metrics.items()}
    atomic_write_text(path, json.dumps(clean, indent=2, sort_keys=True))
