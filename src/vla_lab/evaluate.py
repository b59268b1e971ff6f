"""The evaluation job: a checkpoint's validation metrics on a split, written to metrics.json."""

from __future__ import annotations

from pathlib import Path

import lightning.pytorch as pl
from lightning.pytorch.loggers import TensorBoardLogger
from omegaconf import DictConfig

from vla_lab.data import datamodule_for
from vla_lab.runtime.checkpoint import checkpoint_config, load_module
from vla_lab.utils.logging import get_logger
from vla_lab.utils.run import final_metrics, write_metrics

log = get_logger(__name__)


def evaluate(cfg: DictConfig) -> dict[str, float]:
    """The model's validation metrics on `cfg.split` of its training data (or of `cfg.data`)."""
    output_dir = Path(cfg.paths.output_dir)
    pl.seed_everything(cfg.seed, workers=True)
    module = load_module(cfg.ckpt_path)
    data_cfg = cfg.data if cfg.get("data") else checkpoint_config(cfg.ckpt_path).data
    datamodule = datamodule_for(data_cfg, module)
    trainer = pl.Trainer(
        accelerator=cfg.hardware.accelerator,
        devices=1,
        precision=cfg.hardware.precision,
        logger=TensorBoardLogger(output_dir, name="tensorboard", version=""),
        enable_checkpointing=False,
    )
    trainer.validate(module, dataloaders=datamodule.dataloader(cfg.split))
    metrics = final_metrics(trainer)
    write_metrics(metrics, output_dir / "metrics.json")
    log.info("%s on split %s: %s (written to %s)", cfg.ckpt_path, cfg.split, metrics, output_dir)
    return metrics
