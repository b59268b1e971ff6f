"""The evaluation job: checkpoints' metrics on a split (open loop) or in a simulated world (closed
loop), with plots, and a table comparing them.

`mode=closed_loop` rolls each checkpoint's Policy out in `env` (default: the world it was trained
with) for `episodes` seeded episodes: see `vla_lab.evaluation.closed_loop`.

`mode=open_loop` (the default), for each checkpoint: `trainer.validate` gives the metrics under
training's names (`val/loss`, loss terms, `val/action_type_acc`, ...); a second pass over the
split through the agent interface (`predict_action_chunk`, `predict_trajectory`) keeps every
frame's prediction and gives
`val/mae_<dim>` and, for driving models, ADE/FDE at 0.5/1/3/5/6.4 s and the comfort rate. The
second pass also supplies `val/mae`, `val/baseline_mae`, `val/ade`, ... (the same definitions as in
training), so for models that sample (flow matching) every number in `metrics.json` describes the
same predictions: the per-dimension MAEs average to `val/mae`, `val/ade_6.4s` equals `val/ade`.
Driving models sample K trajectories per frame (`min_ade_samples`, default the checkpoint's
`model.min_ade_samples`): `val/ade`, `val/fde` and comfort are of the first (one prediction, as
deployed), `val/min_ade@K`/`val/min_fde@K` of the best of K by ADE (AR1's minADE6), so
`val/min_ade@K <= val/ade`.

Outputs (in the run dir, or one subdir per checkpoint when several are given): `metrics.json`,
`plots/*.png`, and TensorBoard scalars and images under `tensorboard/`; with several checkpoints
also `comparison.md` and `comparison.json` in the run dir (closed loop: `plots/comparison.png`).
Closed loop, `instructions=[train,paraphrase]` rolls each checkpoint out under each instruction
set of the world (the RoArm seed's paraphrase test), one subdir and one comparison column each.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

import lightning.pytorch as pl
from lightning.pytorch.loggers import TensorBoardLogger
from omegaconf import DictConfig, ListConfig, OmegaConf, open_dict

from vla_lab.data import datamodule_for
from vla_lab.evaluation.closed_loop import evaluate_closed_loop
from vla_lab.evaluation.comparison import EvaluatedCheckpoint, write_comparison
from vla_lab.evaluation.metrics import prediction_metrics
from vla_lab.evaluation.plots import evaluation_figures, save_figures
from vla_lab.evaluation.predictions import collect_predictions
from vla_lab.features import require_features
from vla_lab.runtime.checkpoint import LoadedCheckpoint, load_checkpoint
from vla_lab.utils.logging import get_logger
from vla_lab.utils.run import final_metrics, write_metrics

log = get_logger(__name__)

MODES = ("open_loop", "closed_loop")
# Data loader settings the evaluation's `hardware` group decides, even for the checkpoint's data.
LOADER_KEYS = ("batch_size", "num_workers", "pin_memory")


def checkpoint_paths(ckpt_path: str | Sequence[str]) -> list[Path]:
    """The checkpoint files of `ckpt_path` (one path or a list), all checked to exist up front."""
    if isinstance(ckpt_path, ListConfig | list | tuple):
        paths = [Path(str(p)) for p in ckpt_path]
    else:
        paths = [Path(str(ckpt_path))]
    if not paths:
        raise ValueError("ckpt_path is an empty list; give one checkpoint file or a list of them")
    missing = [str(p) for p in paths if not p.is_file()]
    if missing:
        raise FileNotFoundError(
            f"ckpt_path: checkpoint file(s) {missing} do not exist; point ckpt_path at a "
            "<run dir>/checkpoints/*.ckpt file (or a list: ckpt_path=[a.ckpt,b.ckpt])"
        )
    return paths


def checkpoint_labels(paths: list[Path]) -> list[str]:
    """A short, unique, file-name-safe name per checkpoint: `<run name>-<checkpoint stem>`."""
    labels = []
    for path in paths:
        run_dir = path.parent.parent if path.parent.name == "checkpoints" else path.parent
        label = re.sub(r"[^A-Za-z0-9._=-]+", "_", f"{run_dir.name}-{path.stem}")
        unique, n = label, 2
        while unique in labels:
            unique, n = f"{label}-{n}", n + 1
        labels.append(unique)
    return labels


def evaluate(cfg: DictConfig) -> dict[str, dict[str, float]]:
    """Evaluate every checkpoint of `cfg.ckpt_path` on `cfg.split`; {label: metrics}.

    One checkpoint writes into the run dir itself; several write one subdir each, named by their
    label, plus `comparison.md`/`comparison.json` side by side in the run dir.
    """
    output_dir = Path(cfg.paths.output_dir)
    mode = cfg.get("mode", "open_loop")
    if mode not in MODES:
        raise ValueError(f"mode={mode!r}: expected one of {MODES}")
    limit = cfg.get("limit_batches")
    if limit is not None and (not isinstance(limit, int) or limit < 1):
        raise ValueError(f"limit_batches={limit!r}: give a number of batches >= 1, or null")
    paths = checkpoint_paths(cfg.ckpt_path)
    labels = checkpoint_labels(paths)
    variants = instruction_variants(cfg, mode)
    several = len(paths) * len(variants) > 1
    evaluated = []
    for path, label in zip(paths, labels, strict=True):
        checkpoint = load_checkpoint(path)
        experiment = checkpoint.config.get("experiment_name") or "?"
        for variant in variants:
            name = label if variant is None else f"{label}-{variant}"
            ckpt_dir = output_dir / name if several else output_dir
            if mode == "closed_loop":
                metrics = evaluate_closed_loop(checkpoint, cfg, ckpt_dir, variant)
            else:
                metrics = evaluate_checkpoint(checkpoint, cfg, ckpt_dir)
            evaluated.append(
                EvaluatedCheckpoint(name, str(path), experiment, str(ckpt_dir), metrics)
            )
        del checkpoint  # its module goes before the next checkpoint's is built
    if several:
        where = f"split `{cfg.split}`" if mode == "open_loop" else "closed loop"
        table = write_comparison(evaluated, output_dir, where)
        log.info("Compared %d checkpoints (%s): %s", len(paths), where, table)
    return {c.label: c.metrics for c in evaluated}


def instruction_variants(cfg: DictConfig, mode: str) -> list[str | None]:
    """The instruction sets each checkpoint is rolled out under (`instructions=[train,paraphrase]`
    sets the world's `kwargs.instructions`: the training wording, then held-out paraphrases);
    [None]: the world's own setting."""
    variants = cfg.get("instructions")
    if not variants:
        return [None]
    if mode != "closed_loop":
        raise ValueError("instructions= applies to mode=closed_loop (a world's instructions)")
    return [str(v) for v in (variants if isinstance(variants, ListConfig | list) else [variants])]


def evaluate_checkpoint(
    checkpoint: LoadedCheckpoint, cfg: DictConfig, output_dir: Path
) -> dict[str, float]:
    """One checkpoint's metrics on `cfg.split`; writes metrics.json, plots and TensorBoard logs."""
    pl.seed_everything(cfg.seed, workers=True)
    module = checkpoint.module
    set_min_ade_samples(module, cfg.get("min_ade_samples"))
    datamodule = datamodule_for(evaluation_data_config(cfg, checkpoint.config), module)
    # The checkpoint carries its own stats; only check that the data serves what the model reads.
    require_features(datamodule.features, module.required_features, type(module).__name__)
    logger = TensorBoardLogger(output_dir, name="tensorboard", version="")
    trainer = pl.Trainer(
        accelerator=cfg.hardware.accelerator,
        devices=1,
        precision=cfg.hardware.precision,
        logger=logger,
        enable_checkpointing=False,
        limit_val_batches=cfg.get("limit_batches") or 1.0,
    )
    loader = datamodule.dataloader(cfg.split)
    trainer.validate(module, dataloaders=loader, verbose=False)
    metrics = final_metrics(trainer)

    pl.seed_everything(cfg.seed, workers=True)
    with trainer.precision_plugin.forward_context():
        predictions = collect_predictions(
            module, loader, trainer.strategy.root_device, cfg.get("limit_batches")
        )
    metrics.update(prediction_metrics(predictions))
    metrics = dict(sorted(metrics.items()))
    write_metrics(metrics, output_dir / "metrics.json")
    logger.log_metrics({f"eval/{k.removeprefix('val/')}": v for k, v in metrics.items()}, step=0)

    figures = evaluation_figures(predictions)
    save_figures(figures, output_dir / "plots")
    for name, figure in figures.items():
        logger.experiment.add_figure(f"eval/{name}", figure, global_step=0, close=False)
    logger.finalize("success")
    log.info("%s on split %s: %s (written to %s)", checkpoint.path, cfg.split, metrics, output_dir)
    return metrics


def set_min_ade_samples(module, k: int | None) -> None:
    """Sample K trajectories per frame for `val/min_ade@K`, whatever K a driving checkpoint was
    trained with (None: its own). Other models predict one chunk: nothing to choose from."""
    if k is not None and module.capabilities.trajectories:
        module.min_ade_samples = k


def evaluation_data_config(cfg: DictConfig, trained: DictConfig) -> DictConfig:
    """`cfg.data` when given, else the data config the checkpoint was trained with (`trained`:
    its run config), loading with this job's `hardware` settings (batch size, workers)."""
    if cfg.get("data"):
        return cfg.data
    data_cfg = OmegaConf.create(OmegaConf.to_container(trained.data))
    with open_dict(data_cfg):
        for key in LOADER_KEYS:
            if key in data_cfg and key in cfg.hardware:
                data_cfg[key] = cfg.hardware[key]
    return data_cfg
