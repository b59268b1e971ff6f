"""The training job as a plain function of the composed config (CLI: the top-level train.py)."""

from __future__ import annotations

import sys
from pathlib import Path

import lightning.pytorch as pl
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from vla_lab.callbacks.final_validation import FinalValidation
from vla_lab.data import datamodule_for
from vla_lab.models.module import NONFINITE_POLICIES
from vla_lab.utils.config_check import check_head_fits, check_targets
from vla_lab.utils.instantiate import instantiate_callbacks, instantiate_loggers
from vla_lab.utils.io import atomic_write_text
from vla_lab.utils.logging import get_logger, print_config_tree
from vla_lab.utils.run import (
    check_multirun_launch,
    check_output_dir,
    checkpoint_to_resume,
    effective_batch_size,
    final_metrics,
    write_metrics,
)

log = get_logger(__name__)


def train(cfg: DictConfig) -> dict[str, float]:
    """Train `cfg.model` on `cfg.data`; return the final validation metrics (also in metrics.json).

    A run that stops before validating its last step (e.g. on `trainer.max_steps` mid-epoch) is
    validated once at its end, so the metrics always describe the weights it ends with.
    Re-running with the same `run_name` and `resume=auto` continues from the run's `last.ckpt`.
    """
    check_head_fits(cfg)  # before the keys: a head of another family has none that fit
    check_targets(cfg)  # a misspelt model or source argument fails here, naming its file
    output_dir = Path(cfg.paths.output_dir)
    pl.seed_everything(cfg.seed, workers=True)

    model = instantiate(cfg.model)
    datamodule = datamodule_for(cfg.data, model)
    model.attach_dataset(features=datamodule.features, stats=datamodule.stats)
    model.run_config = _resolved_container(cfg)
    model.nonfinite_loss = _choice(cfg.nonfinite_loss, NONFINITE_POLICIES, "nonfinite_loss")

    loggers = instantiate_loggers(cfg.get("logger"))
    final_validation = FinalValidation()
    callbacks = [*instantiate_callbacks(cfg.get("callbacks")), final_validation]
    trainer: pl.Trainer = instantiate(cfg.trainer, callbacks=callbacks, logger=loggers or False)
    check_multirun_launch(trainer)
    if trainer.is_global_zero:
        check_output_dir(output_dir, model, keep=cfg.callbacks.model_checkpoint.save_top_k + 2)
        _write_run_files(cfg, output_dir, datamodule)
        batch = effective_batch_size(trainer, cfg.hardware.batch_size)
        log.info("Effective batch size: %d samples per optimizer step", batch)
        for logger in loggers:
            logger.log_hyperparams(
                {**model.parameter_counts(), "seed": cfg.seed, "effective_batch_size": batch}
            )

    try:
        trainer.fit(model, datamodule=datamodule, ckpt_path=checkpoint_to_resume(cfg, output_dir))
        if final_validation.is_due(trainer):
            log.info(
                "Training ended at step %d without validating it: validating once",
                trainer.global_step,
            )
            trainer.validate(model, datamodule=datamodule, verbose=False)
    finally:
        for logger in loggers:
            logger.finalize("success")
        _finish_wandb()

    metrics = final_metrics(trainer)
    if trainer.is_global_zero and not trainer.fast_dev_run:
        write_metrics(metrics, output_dir / "metrics.json")
    log.info("Run dir: %s", output_dir)
    return metrics


def metric_for_sweeper(metrics: dict[str, float], name: str | None, required: bool) -> float | None:
    """The value a Hydra sweeper optimises (`optimized_metric`), None when it was not logged.

    `required`: a sweeper reads the value (Optuna): a metric the run never logged is then an
    error that lists the logged ones; elsewhere it is only a warning.
    """
    if not name:
        return None
    if name in metrics:
        return metrics[name]
    message = f"optimized_metric={name!r} was not logged; the run logged {sorted(metrics)}"
    if required:
        raise ValueError(
            f"{message}. The sweeper optimises it: set optimized_metric to one of them."
        )
    log.warning("%s (no sweeper reads it in this run)", message)
    return None


def _choice(value: str, allowed: tuple[str, ...], key: str) -> str:
    if value not in allowed:
        raise ValueError(f"{key}={value!r} is not one of {allowed}")
    return value


def _resolved_container(cfg: DictConfig) -> dict:
    container = OmegaConf.to_container(cfg, resolve=True)
    container.pop("hydra", None)
    return container


def _write_run_files(cfg: DictConfig, output_dir: Path, datamodule) -> None:
    config_yaml = OmegaConf.to_yaml(OmegaConf.create(_resolved_container(cfg)))
    atomic_write_text(output_dir / "config_resolved.yaml", config_yaml)
    print_config_tree(cfg, save_to=output_dir / "config_tree.log", show=cfg.print_config)
    datamodule.save_stats(output_dir / "stats.json")


def _finish_wandb() -> None:
    """Close a W&B run even after a crash, so the next job of a multirun starts a fresh one."""
    wandb = sys.modules.get("wandb")  # only when a W&B logger imported it
    if wandb is not None and wandb.run is not None:
        wandb.finish()
