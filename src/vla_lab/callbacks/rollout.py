"""Closed-loop success during training: roll the model out in its world every N epochs.

The numbers a researcher selects checkpoints by should describe what the policy achieves, not
only its loss (diffusion_policy's env runner, physical-ai-studio's rollout metric). At the end of
every `every_n_epochs`-th validation (and the first and the last one) the model, as a `Policy`,
drives `episodes` seeded episodes of `env` (the same episodes every time, so epochs compare), and
`rollout/*` is logged: `rollout/success_rate` and its 95% Wilson interval, the world's metrics,
policy latency. Between rollouts the last measured values are logged again, so checkpointing and
sweeps can monitor `rollout/success_rate` at every validation (`mode: max`).

Only global rank 0 rolls out; the values are broadcast, so every rank logs the same numbers.
Without an `env` (the run's `env` group unset) the callback does nothing.
"""

from __future__ import annotations

import lightning.pytorch as pl
from omegaconf import DictConfig

from vla_lab.evaluation.closed_loop import prepared_world, rollout_policy, world_specs
from vla_lab.evaluation.rollouts import summarise
from vla_lab.sim.runner import RolloutRunner
from vla_lab.utils.logging import get_logger

log = get_logger(__name__)


class RolloutEvaluation(pl.Callback):
    """See the module docstring. `episodes`: per rollout (scenarios interleaved)."""

    def __init__(
        self, env: DictConfig | None = None, every_n_epochs: int = 5, episodes: int = 16
    ) -> None:
        if every_n_epochs < 1 or episodes < 1:
            raise ValueError(
                f"callbacks.rollout: every_n_epochs={every_n_epochs} and episodes={episodes} "
                "must be >= 1 (set callbacks.rollout=null to switch rollouts off)"
            )
        self.env_cfg = env
        self.every_n_epochs = every_n_epochs
        self.episodes = episodes
        self.latest: dict[str, float] | None = None
        self._env = None

    def on_validation_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self.env_cfg is None or trainer.sanity_checking:
            return
        if self._due(trainer):
            metrics = self._rollout(pl_module) if trainer.is_global_zero else None
            self.latest = trainer.strategy.broadcast(metrics, src=0)
        for name, value in (self.latest or {}).items():
            pl_module.log(name, value, on_epoch=True, sync_dist=False)

    def _due(self, trainer: pl.Trainer) -> bool:
        epoch = trainer.current_epoch + 1
        last = trainer.max_epochs is not None and epoch >= trainer.max_epochs
        return self.latest is None or last or epoch % self.every_n_epochs == 0

    def _rollout(self, pl_module: pl.LightningModule) -> dict[str, float]:
        policy = rollout_policy(pl_module, self.env_cfg, str(pl_module.device))
        if self._env is None:
            self._env = prepared_world(self.env_cfg, policy, type(pl_module).__name__)
        specs = world_specs(self._env, self.env_cfg, self.episodes)
        results = RolloutRunner(self._env, policy).run(specs)
        metrics = summarise(results)
        log.info(
            "Rollout in %s: success %.3f [%.3f, %.3f] over %d episodes",
            self.env_cfg.id,
            metrics["rollout/success_rate"],
            metrics["rollout/success_ci_low"],
            metrics["rollout/success_ci_high"],
            len(specs),
        )
        return metrics
