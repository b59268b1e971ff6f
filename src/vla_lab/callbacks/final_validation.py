"""Know whether a run ends on weights no validation has seen, so `train()` can validate them."""

from __future__ import annotations

import lightning.pytorch as pl
from lightning.pytorch.trainer.states import TrainerStatus


class FinalValidation(pl.Callback):
    """Records the optimizer step of each validation; `is_due` after `fit` says whether the
    weights the run ended with went unvalidated.

    Lightning validates at epoch ends (and every `val_check_interval`). A run that stops on
    `max_steps` mid-epoch, or whose last epoch falls between `check_val_every_n_epoch`
    validations, ends on weights no validation saw: `metrics.json` would be empty or describe
    older weights. `train()` then calls `trainer.validate` once (a hook cannot start a nested
    validation loop inside `fit`); that saves no checkpoint, `last.ckpt` already holds the weights.
    """

    def __init__(self) -> None:
        self.validated_step: int | None = None

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if not trainer.sanity_checking:
            self.validated_step = trainer.global_step

    def is_due(self, trainer: pl.Trainer) -> bool:
        """Fit finished (not interrupted), validation is on, and the last step went unvalidated."""
        return (
            trainer.state.status == TrainerStatus.FINISHED
            and trainer.limit_val_batches != 0
            and self.validated_step != trainer.global_step
        )
