"""Build callbacks and loggers from their config groups (each entry a `_target_` node)."""

from __future__ import annotations

from hydra.utils import instantiate
from lightning.pytorch import Callback
from lightning.pytorch.loggers import Logger
from omegaconf import DictConfig


def instantiate_callbacks(callbacks_cfg: DictConfig | None) -> list[Callback]:
    """Callbacks from a dict of `_target_` nodes; entries set to null are switched off."""
    return [
        instantiate(node) for node in (callbacks_cfg or {}).values() if node and "_target_" in node
    ]


def instantiate_loggers(logger_cfg: DictConfig | None) -> list[Logger]:
    """Loggers from a dict of `_target_` nodes; `~logger` on the command line trains without any."""
    return [
        instantiate(node) for node in (logger_cfg or {}).values() if node and "_target_" in node
    ]
