"""Seconds per training step: our LightningModule vs a plain PyTorch loop over the same policy.

Both sides train the same LeRobot policy (ACT, tiny SmolVLA), built the same way from the demo
experiment, on the same pre-collated batches of `lerobot_synthetic` (so data loading cancels
out), with the same optimizer and gradient clipping. The plain loop is lerobot-train's core:
preprocessor -> policy.forward -> backward -> clip -> step. Our side is `trainer.fit` with the
module's default masked loss (`--loss lerobot`: LeRobot's own, for a like-for-like loss).
Ratio = ours / plain; the target is <= 1.05.

    python benchmarks/lerobot_overhead.py [--steps 30] [--repeats 3] [--loss masked|lerobot]
"""

from __future__ import annotations

import argparse
import statistics
import time

import lightning.pytorch as pl
import torch
from hydra.utils import instantiate
from torch.utils.data import DataLoader

from vla_lab.data import datamodule_for
from vla_lab.utils.config import compose_config

EXPERIMENTS = ["roarm_act_demo", "roarm_smolvla_demo"]
WARMUP_STEPS = 3


class StepTimer(pl.Callback):
    """Wall time of the training steps after the warm-up ones."""

    def __init__(self, warmup: int) -> None:
        self.warmup = warmup
        self.start = self.end = 0.0

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if batch_idx == self.warmup:
            self.start = time.perf_counter()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self.end = time.perf_counter()


def build(experiment: str, batches: int, loss: str):
    """The experiment's module (policy built on the data) and `batches` collated batches."""
    cfg = compose_config(
        [f"experiment={experiment}", "hardware.num_workers=0", f"model.loss={loss}"]
    )
    pl.seed_everything(0)
    module = instantiate(cfg.model)
    datamodule = datamodule_for(cfg.data, module)
    module.attach_dataset(datamodule.features, datamodule.stats)
    loader = datamodule.train_dataloader()
    data = []
    while len(data) < batches:
        data.extend(batch for _, batch in zip(range(batches - len(data)), loader, strict=False))
    return cfg, module, data


def plain_loop(cfg, module, data: list[dict]) -> float:
    policy, preprocessor = module.policy, module.preprocessor
    policy.train()
    optimizer = instantiate(cfg.model.optimizer)(
        params=[p for p in policy.parameters() if p.requires_grad]
    )
    for i, batch in enumerate(data):
        if i == WARMUP_STEPS:
            start = time.perf_counter()
        loss, _ = policy.forward(preprocessor(dict(batch)))
        loss.backward()
        torch.nn.utils.clip_grad_norm_(policy.parameters(), cfg.trainer.gradient_clip_val)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    return (time.perf_counter() - start) / (len(data) - WARMUP_STEPS)


def lightning_fit(cfg, module, data: list[dict]) -> float:
    timer = StepTimer(WARMUP_STEPS)
    trainer = pl.Trainer(
        accelerator="cpu",
        max_steps=len(data),
        gradient_clip_val=cfg.trainer.gradient_clip_val,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        limit_val_batches=0,
        num_sanity_val_steps=0,
        callbacks=[timer],
    )
    module.scheduler_cfg = None  # the plain loop has no scheduler either
    trainer.fit(module, train_dataloaders=DataLoader(data, batch_size=None))
    return (timer.end - timer.start) / (len(data) - WARMUP_STEPS)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--experiments", nargs="+", default=EXPERIMENTS)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--loss",
        default="masked",
        choices=["masked", "lerobot"],
        help="our module's loss; lerobot computes exactly what the plain loop computes",
    )
    args = parser.parse_args()
    for experiment in args.experiments:
        plain, ours = [], []
        for _ in range(args.repeats):  # interleaved, so machine load hits both sides alike
            cfg, module, data = build(experiment, args.steps + WARMUP_STEPS, args.loss)
            plain.append(plain_loop(cfg, module, data))
            cfg, module, data = build(experiment, args.steps + WARMUP_STEPS, args.loss)
            ours.append(lightning_fit(cfg, module, data))
        p, o = statistics.median(plain), statistics.median(ours)
        print(
            f"{experiment}: plain {p * 1e3:.1f} ms/step, vla-lab {o * 1e3:.1f} ms/step, "
            f"ratio {o / p:.3f} (median of {args.repeats}, {args.steps} steps each)"
        )


if __name__ == "__main__":
    main()
