"""Rank-zero aware logging and the config tree printed at the start of a run."""

from __future__ import annotations

import io
import logging
from pathlib import Path

import rich.syntax
import rich.tree
from lightning.pytorch.utilities import rank_zero_only
from omegaconf import DictConfig, OmegaConf
from rich.console import Console

from vla_lab.utils.io import atomic_write_text


def get_logger(name: str) -> logging.Logger:
    """A `logging` logger whose messages are emitted by rank 0 only in multi-process runs."""
    logger = logging.getLogger(name)
    for level in ("debug", "info", "warning", "error", "exception", "fatal", "critical"):
        setattr(logger, level, rank_zero_only(getattr(logger, level)))
    return logger


@rank_zero_only
def print_config_tree(cfg: DictConfig, save_to: Path | None = None, show: bool = True) -> None:
    """Print the resolved config as a rich tree (one branch per top-level group) and save it."""
    tree = rich.tree.Tree("CONFIG", style="dim", guide_style="dim")
    for key, value in cfg.items():
        if key == "hydra":
            continue
        text = (
            OmegaConf.to_yaml(value, resolve=True) if isinstance(value, DictConfig) else str(value)
        )
        tree.add(str(key), style="bold").add(rich.syntax.Syntax(text, "yaml"))
    if show:
        Console().print(tree)
    if save_to is not None:
        # force_jupyter=False: in a notebook rich would display it despite the StringIO.
        console = Console(record=True, width=120, file=io.StringIO(), force_jupyter=False)
        console.print(tree)
        atomic_write_text(save_to, console.export_text())
