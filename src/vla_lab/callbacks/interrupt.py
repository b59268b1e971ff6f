"""Save a checkpoint when a run is stopped (SIGTERM, Ctrl-C) and say how to resume it."""

from __future__ import annotations

import lightning.pytorch as pl
from lightning.pytorch.utilities.exceptions import SIGTERMException

from vla_lab.utils.logging import get_logger

log = get_logger(__name__)


class SaveOnInterrupt(pl.Callback):
    """On SIGTERM or SIGINT, write `<dirpath>/last.ckpt` (atomically) and log the resume command.

    Lightning turns SIGTERM into a `SIGTERMException` at the next step boundary and Ctrl-C into a
    `KeyboardInterrupt`; both reach `on_exception`, where the model and optimizer are consistent.
    """

    def __init__(self, dirpath: str, filename: str = "last.ckpt") -> None:
        self.path = f"{dirpath}/{filename}"

    def on_exception(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, exception: BaseException
    ) -> None:
        if not isinstance(exception, SIGTERMException | KeyboardInterrupt):
            return
        signal_name = "SIGTERM" if isinstance(exception, SIGTERMException) else "SIGINT"
        trainer.save_checkpoint(self.path)
        log.warning(
            "%s at global step %d: saved %s. Re-run the same command with run_name=<this run's "
            "name> resume=auto (or ckpt_path=%s) to continue.",
            signal_name,
            trainer.global_step,
            self.path,
            self.path,
        )
