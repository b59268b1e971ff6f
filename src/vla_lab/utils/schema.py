"""Dataclass schemas of the run-level config nodes, so a config cannot silently lie.

Hydra merges YAML files into these (`train.yaml` lists `schema: train` first in its defaults;
`preview.yaml`, train's config plus the preview's options, overrides it with `schema: preview`),
so a misspelt key in any file or override, or a value of the wrong type, stops the composition
with the key's full name and the file (`In 'experiment/x': Key 'max_epoch' not in
'TrainerConf' full_key: trainer.max_epoch`). Typed here: the run flags, `trainer` (the Lightning
Trainer arguments our configs use, with Lightning's defaults), `paths`, `hardware`, `data` (the
`VLADataModule` interface) and `finetune`. What differs per class (a model's arguments, with its
optimizer and scheduler; a data source's; a callback's, a logger's) is checked against its
`_target_`'s signature by `vla_lab.utils.config_check`, which names the file that set a wrong
key: the constructor is that node's schema, so the two cannot drift apart.

To use another Trainer argument, add it to `TrainerConf` (with Lightning's default). `+key=`
on the command line bypasses the schemas: keep it out of documented commands.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING


@dataclass
class TrainerConf:
    _target_: str = "lightning.pytorch.Trainer"
    default_root_dir: str | None = None
    min_epochs: int | None = None
    max_epochs: int | None = None
    min_steps: int | None = None
    max_steps: int = -1
    max_time: Any = None  # "DD:HH:MM:SS" or a dict
    accelerator: str = "auto"
    devices: Any = "auto"  # an int, "auto" or a list of ids
    num_nodes: int = 1
    strategy: Any = "auto"  # a name or a `_target_` node (FSDP)
    precision: Any = None  # "32-true", "bf16-mixed", 16, ...
    accumulate_grad_batches: int = 1
    gradient_clip_val: float | None = None
    gradient_clip_algorithm: str | None = None
    check_val_every_n_epoch: int | None = 1
    val_check_interval: Any = None  # int (batches) or float (fraction)
    limit_train_batches: Any = None  # int (batches) or float (fraction)
    limit_val_batches: Any = None
    overfit_batches: Any = 0.0
    fast_dev_run: Any = False  # bool or a number of batches
    num_sanity_val_steps: int | None = None
    log_every_n_steps: int | None = None
    enable_checkpointing: bool | None = None
    enable_progress_bar: bool | None = None
    enable_model_summary: bool | None = None
    deterministic: Any = None  # bool or "warn"
    benchmark: bool | None = None
    profiler: str | None = None
    detect_anomaly: bool = False
    sync_batchnorm: bool = False
    use_distributed_sampler: bool = True
    reload_dataloaders_every_n_epochs: int = 0
    plugins: list[Any] | None = None


@dataclass
class PathsConf:
    root_dir: str = MISSING
    data_dir: str = MISSING
    cache_dir: str = MISSING
    log_dir: str = MISSING
    output_dir: str = MISSING


@dataclass
class HardwareConf:
    accelerator: str = "cpu"
    devices: Any = 1
    num_nodes: int = 1
    strategy: Any = "auto"
    precision: Any = "32-true"
    batch_size: int = 16
    num_workers: int = 2
    pin_memory: bool = False
    gradient_checkpointing: bool = False


@dataclass
class SplitConf:
    val_fraction: float = 0.2
    seed: int = 0
    # An episode field to stratify the split by (scenario, task, ...); null: none.
    stratify_by: str | None = None
    use_source: bool = False  # the source's own split (PhysicalAI-AV's clip_index)


@dataclass
class DataConf:
    _target_: str = "vla_lab.data.datamodule.VLADataModule"
    source: Any = MISSING  # a `_target_` node; its keys are checked against that class
    split: SplitConf = field(default_factory=SplitConf)
    augment: Any = None
    batch_size: int = 16
    num_workers: int = 2
    pin_memory: bool = False
    persistent_workers: bool = True


@dataclass
class LoraConf:
    r: int = 32
    alpha: float = 16
    dropout: float = 0.1
    target_modules: list[str] | None = None
    vision: bool = False


@dataclass
class FinetuneConf:
    mode: str = "full"  # full | lora | frozen
    train_vision: bool = True
    lora: LoraConf | None = None


@dataclass
class EnvConf:
    """`conf/env/`: a simulated world for closed-loop evaluation and the rollout callback."""

    id: str = MISSING  # a registered gymnasium id (vla_lab.sim registers ours)
    kwargs: dict[str, Any] = field(default_factory=dict)
    scenarios: list[str] | None = None  # null: all of the world's
    episodes: int = 50
    seed: int = 1_000_000
    n_action_steps: int | None = None  # null: the model's own


@dataclass
class TrainConf:
    """`conf/train.yaml`: the run flags and the typed groups."""

    data: DataConf = field(default_factory=DataConf)
    model: Any = None  # checked against its `_target_` class's constructor
    backbone: Any = None
    head: Any = None
    finetune: FinetuneConf = field(default_factory=FinetuneConf)
    hardware: HardwareConf = field(default_factory=HardwareConf)
    trainer: TrainerConf = field(default_factory=TrainerConf)
    logger: dict[str, Any] | None = None
    callbacks: dict[str, Any] | None = None
    env: EnvConf | None = None
    paths: PathsConf = field(default_factory=PathsConf)
    experiment_name: str = MISSING
    run_name: str = MISSING
    seed: int = 42
    resume: str = "never"  # never | auto
    ckpt_path: str | None = None
    nonfinite_loss: str = "stop"  # stop | skip
    optimized_metric: str | None = None
    print_config: bool = True


@dataclass
class PreviewConf(TrainConf):
    """`conf/preview.yaml`: train's config and the options of `python -m vla_lab.data.preview`."""

    out: str = "preview.png"
    n: int = 16
    split: str = "all"  # all | train | val


def register_schemas() -> None:
    """Put the schemas in Hydra's ConfigStore (idempotent); entry points call it before
    composing. They form the `schema` group, at the config's root."""
    store = ConfigStore.instance()
    store.store(group="schema", name="train", node=TrainConf, package="_global_")
    store.store(group="schema", name="preview", node=PreviewConf, package="_global_")
