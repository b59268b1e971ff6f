"""Datasets: one reader per source format, each serving samples in the contract of `features.py`."""

from __future__ import annotations

from typing import Any

from hydra.utils import instantiate
from omegaconf import DictConfig, open_dict
from torch.utils.data import Dataset

from vla_lab.utils.config import compose_config


def datamodule_for(data_cfg: DictConfig, model: Any):
    """The datamodule of `data_cfg`, set up to serve exactly the frames `model` asks for.

    `model` is anything with `observation_delta_indices` and `action_delta_indices`.
    """
    datamodule = instantiate(
        data_cfg,
        observation_delta_indices=model.observation_delta_indices,
        action_delta_indices=model.action_delta_indices,
    )
    datamodule.setup("fit")
    return datamodule


def load_datamodule(name: str, overrides: list[str] | None = None, **kwargs: Any):
    """The `VLADataModule` of `conf/data/<name>.yaml`, composed as `train.py data=<name>` would be.

    Keyword overrides go to `data.source.<key>` when the source has that key (e.g. `root=...`),
    else to the datamodule (e.g. `batch_size=4`, `action_delta_indices=[0, 1, 2]`).
    """
    cfg = compose_config([f"data={name}", *(overrides or [])])
    source = {key: value for key, value in kwargs.items() if key in cfg.data.source}
    with open_dict(cfg):
        cfg.data.source.update(source)
    return instantiate(cfg.data, **{k: v for k, v in kwargs.items() if k not in source})


def load_dataset(name: str, split: str = "train", **overrides: Any) -> Dataset:
    """The `split` ("train", "val" or "all") of dataset `name`; its items are sample dicts."""
    datamodule = load_datamodule(name, **overrides)
    datamodule.setup("fit")
    return datamodule.dataset(split)
