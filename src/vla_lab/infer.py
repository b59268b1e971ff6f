"""The inference job: a checkpoint's predicted actions for every frame of a split, as a table."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import torch
from omegaconf import DictConfig

from vla_lab import features as ft
from vla_lab.data import datamodule_for
from vla_lab.runtime.checkpoint import checkpoint_config, load_module
from vla_lab.utils.io import atomic_write
from vla_lab.utils.logging import get_logger

log = get_logger(__name__)


@torch.inference_mode()
def infer(cfg: DictConfig) -> Path:
    """Write `predictions.parquet`: one row per frame with indices, predicted and true action."""
    output_dir = Path(cfg.paths.output_dir)
    module = load_module(cfg.ckpt_path)
    data_cfg = cfg.data if cfg.get("data") else checkpoint_config(cfg.ckpt_path).data
    datamodule = datamodule_for(data_cfg, module)
    now = module.action_delta_indices.index(0)
    rows = []
    for batch in datamodule.dataloader(cfg.split):
        predicted = module.predict_action_chunk(batch)[:, 0]
        true = batch[ft.ACTION][:, now]
        for i in range(len(predicted)):
            rows.append(
                {
                    ft.EPISODE_INDEX: int(batch[ft.EPISODE_INDEX][i]),
                    ft.FRAME_INDEX: int(batch[ft.FRAME_INDEX][i]),
                    ft.INDEX: int(batch[ft.INDEX][i]),
                    ft.TASK: batch[ft.TASK][i],
                    "action_pred": predicted[i].tolist(),
                    "action_true": true[i].tolist(),
                }
            )
    path = output_dir / "predictions.parquet"
    atomic_write(path, lambda tmp: pd.DataFrame(rows).to_parquet(tmp))
    log.info("Wrote %d predictions to %s", len(rows), path)
    return path
