"""Rebuild a trained module and its datamodule from a checkpoint file."""

from __future__ import annotations

from pathlib import Path

import torch
from hydra.utils import get_class
from omegaconf import DictConfig, OmegaConf

from vla_lab.models.module import CHECKPOINT_KEY, VLAModule
from vla_lab.utils.moved import rewrite_moved_targets


def checkpoint_config(ckpt_path: str | Path) -> DictConfig:
    """The resolved run config stored in a vla-lab checkpoint, `_target_`s of moved modules
    pointing at their current place (`vla_lab.utils.moved`)."""
    path = Path(ckpt_path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} does not exist")
    checkpoint = torch.load(path, map_location="cpu", weights_only=False)
    payload = checkpoint.get(CHECKPOINT_KEY)
    if not payload or not payload.get("config"):
        raise ValueError(f"{path} is not a vla-lab checkpoint: it has no '{CHECKPOINT_KEY}.config'")
    return OmegaConf.create(rewrite_moved_targets(payload["config"], f"{path}'s config"))


def load_module(ckpt_path: str | Path, map_location: str = "cpu") -> VLAModule:
    """The LightningModule of a checkpoint, in eval mode, with its dataset stats."""
    cfg = checkpoint_config(ckpt_path)
    module_class = get_class(cfg.model._target_)
    module = module_class.load_from_checkpoint(str(ckpt_path), map_location=map_location)
    return module.eval()
