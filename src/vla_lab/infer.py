"""The inference job: run a checkpoint over recorded data as a robot would, frame by frame.

`python infer.py ckpt_path=<ckpt> [input=<path>] [split=all]`. The input is a Mobile VLA `.h5`
episode or a directory of them, a LeRobot dataset root or a PhysicalAI-AV root (recognised by
its files); without one, the checkpoint's own data. Each episode (clip) is streamed through
`vla_lab.runtime.Policy` in order, after a `reset()`, so history windows, action queues and
ensembling behave as on the robot. `predictions.parquet` gets one row per frame: indices, the
action executed (`action_pred`), the recorded one (`action_true`), and for driving models the
predicted trajectory and its ADE against the logged future. `render=true` also writes
`predictions.mp4`: every frame with the prediction drawn on it (`vla_lab.evaluation.render`).
"""

from __future__ import annotations

from contextlib import nullcontext
from pathlib import Path
from typing import Any

import pandas as pd
import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf, open_dict

from vla_lab import features as ft
from vla_lab.data.formats import data_config_for
from vla_lab.driving.metrics import ade
from vla_lab.evaluation.render import InferenceRenderer
from vla_lab.features import FUTURE_XYZ
from vla_lab.runtime.checkpoint import load_checkpoint
from vla_lab.runtime.policy import load_policy
from vla_lab.utils.config import compose_config
from vla_lab.utils.io import atomic_write
from vla_lab.utils.logging import get_logger

log = get_logger(__name__)


def input_data_config(input_path: str | None, trained: DictConfig, paths: DictConfig) -> DictConfig:
    """The data config reading `input_path`: the checkpoint's own when it reads that format
    (keeping its options: cameras, image size, commands), else the format's default."""
    if not input_path:
        return trained.data
    path = Path(input_path).expanduser().resolve()
    default = compose_config([f"data={data_config_for(path)}"]).data
    same_reader = trained.data.source._target_ == default.source._target_
    data = OmegaConf.create(OmegaConf.to_container(trained.data if same_reader else default))
    with open_dict(data):
        data.source.root = str(path)
        data.source.synthetic = None
        if "cache_dir" in data.source:
            data.source.cache_dir = str(paths.cache_dir)
        data.split = {**data.get("split", {}), "val_fraction": 0.0, "use_source": False}
    return data


@torch.inference_mode()
def infer(cfg: DictConfig) -> Path:
    """Write `predictions.parquet` in the run dir; see the module docstring."""
    output_dir = Path(cfg.paths.output_dir)
    checkpoint = load_checkpoint(cfg.ckpt_path)
    policy = load_policy(checkpoint, device=cfg.get("device", "auto"))
    module = policy.module
    trained = checkpoint.config
    data_cfg = (
        cfg.data if cfg.get("data") else input_data_config(cfg.get("input"), trained, cfg.paths)
    )
    driving = module.capabilities.trajectories
    # One frame per item (the policy keeps the history); driving samples carry their whole future.
    actions = module.action_delta_indices if driving else [0]
    datamodule = instantiate(data_cfg, observation_delta_indices=[0], action_delta_indices=actions)
    dataset = datamodule.dataset(cfg.split)
    renderer = None
    if cfg.get("render", False):
        video_path = output_dir / "predictions.mp4"
        renderer = InferenceRenderer(
            module, dataset, datamodule.source, video_path, cfg.render_fps, cfg.render_height
        )
    rows = []
    episode = None
    with renderer.video if renderer is not None else nullcontext():
        for index, item in _progress(dataset, cfg.get("progress", True), cfg.get("limit_frames")):
            if item[ft.EPISODE_INDEX] != episode:
                episode = item[ft.EPISODE_INDEX]
                policy.reset()
            rows.append(_row(policy, item, driving))
            if renderer is not None:
                renderer.add(index, item, rows[-1])
    path = output_dir / "predictions.parquet"
    atomic_write(path, lambda tmp: pd.DataFrame(rows).to_parquet(tmp))
    log.info("Wrote %d predictions to %s", len(rows), path)
    if renderer is not None and video_path.is_file():
        log.info("Wrote the video of them to %s", video_path)
    return path


def _row(policy, item: dict[str, Any], driving: bool) -> dict[str, Any]:
    row = {key: int(item[key]) for key in (ft.EPISODE_INDEX, ft.FRAME_INDEX, ft.INDEX)}
    row[ft.TASK] = item[ft.TASK]
    true = item.get(ft.ACTION)
    if driving:
        out = policy.predict_trajectory(item)
        row["clip_id"], row["t0_us"] = item["clip_id"], int(item["t0_us"])
        row["action_pred"] = out["action"][0].tolist()
        row["future_xyz_pred"] = out["future_xyz"].reshape(-1).tolist()
        row["ade"] = float(ade(torch.from_numpy(out["future_xyz"]), item[FUTURE_XYZ]))
    else:
        row["action_pred"] = policy.act(item).tolist()
    if true is not None:
        row["action_true"] = torch.as_tensor(true).reshape(-1, true.shape[-1])[0].tolist()
    return row


def _progress(dataset, enabled: bool, limit: int | None):
    total = len(dataset) if limit is None else min(int(limit), len(dataset))
    items = ((i, dataset[i]) for i in range(total))
    if not enabled:
        return items
    from tqdm.auto import tqdm

    return tqdm(items, total=total, desc="infer", unit="frame")
