"""A new data format and a new policy, added from this module the way a user adds theirs.

Nothing in `runtime/`, `evaluation/` or the entry points knows either: the format is a
`DataSource` (features.py) registered with `register_input_format` and a ConfigStore node in group
`data`; the policy is a `VLAModule` that declares its capabilities and sits in group `model`.
Train, infer (on a path the format recognises), evaluate and a graph export then work on them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from hydra.core.config_store import ConfigStore
from omegaconf import DictConfig
from torch import nn
from torch.utils.data import Dataset

from vla_lab import features as ft
from vla_lab.data.formats import INPUT_FORMATS, data_config_for, register_input_format
from vla_lab.evaluate import evaluate
from vla_lab.infer import infer
from vla_lab.models.module import Capabilities, GraphExport, StepOutput, VLAModule
from vla_lab.runtime.export import export
from vla_lab.runtime.policy import load_policy
from vla_lab.train import train
from vla_lab.utils.config import compose_config

CAMERA = ft.image_key("top")
MARKER = "toy_format.json"
SIZE = 16


# ---- the new format: episodes as .npz files beside a marker file ---------------------------
def write_toy_episodes(root: Path, num_episodes: int = 6, length: int = 12, seed: int = 0) -> None:
    """A bright square on the left or right of each frame; the action steers towards it."""
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    for index in range(num_episodes):
        side = index % 2
        frames = rng.integers(0, 40, (length, SIZE, SIZE, 3), dtype=np.uint8)
        frames[:, 4:12, side * 8 : side * 8 + 8] = 255
        steer = np.full((length, 1), 1.0 if side else -1.0) + rng.normal(0, 0.05, (length, 1))
        actions = np.concatenate([np.full((length, 1), 0.5), steer], axis=1).astype(np.float32)
        np.savez(root / f"episode_{index:03d}.npz", frames=frames, actions=actions)
    (root / MARKER).write_text(json.dumps({"task": "drive to the bright square"}))


@dataclass
class ToyEpisode:
    path: str
    episode_index: int
    num_frames: int
    scenario: dict = field(default_factory=dict)


class ToySamples(Dataset):
    def __init__(self, episodes, task: str, action_delta_indices) -> None:
        self.data = [dict(np.load(e.path)) for e in episodes]
        self.episodes, self.task, self.deltas = episodes, task, list(action_delta_indices)
        self.items = [(i, t) for i, e in enumerate(episodes) for t in range(e.num_frames)]

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> dict:
        i, t = self.items[index]
        data, length = self.data[i], self.episodes[i].num_frames
        steps = [min(max(t + d, 0), length - 1) for d in self.deltas]
        return {
            CAMERA: torch.from_numpy(data["frames"][t]).permute(2, 0, 1).float() / 255,
            ft.ACTION: torch.from_numpy(data["actions"][steps]),
            ft.ACTION_IS_PAD: torch.tensor([not 0 <= t + d < length for d in self.deltas]),
            ft.TASK: self.task,
            ft.EPISODE_INDEX: self.episodes[i].episode_index,
            ft.FRAME_INDEX: t,
            ft.INDEX: index,
        }


class ToyEpisodes:
    """The new format's reader (a `vla_lab.features.DataSource`)."""

    input_description = f"a toy root ({MARKER})"

    def __init__(self, root: str, synthetic: dict | None = None) -> None:
        self.root = Path(root)
        self.synthetic = synthetic

    @classmethod
    def recognises(cls, path: Path) -> bool:
        return (path / MARKER).is_file()

    def episodes(self) -> list[ToyEpisode]:
        if self.synthetic is not None and not self.recognises(self.root):
            write_toy_episodes(self.root, **self.synthetic)
        paths = sorted(self.root.glob("episode_*.npz"))
        return [ToyEpisode(str(p), i, len(np.load(p)["actions"])) for i, p in enumerate(paths)]

    def features(self) -> dict[str, ft.Feature]:
        return {
            CAMERA: ft.Feature("float32", (3, SIZE, SIZE), ("c", "h", "w")),
            ft.ACTION: ft.Feature("float32", (2,), ("speed", "steer")),
            ft.TASK: ft.Feature("string", ()),
        }

    def compute_stats(self, episodes) -> ft.Stats:
        actions = np.concatenate([np.load(e.path)["actions"] for e in episodes])
        return {ft.ACTION: ft.compute_stats(actions)}

    def natural_action_delta_indices(self) -> list[int]:
        return [0]

    def dataset(self, episodes, observation_delta_indices, action_delta_indices, transform):
        task = json.loads((self.root / MARKER).read_text())["task"]
        return ToySamples(episodes, task, action_delta_indices)

    def source_split(self, episodes) -> None:
        return None


# ---- the new policy: a small CNN, exportable as a graph ------------------------------------
class ToyGraph(nn.Module):
    """The policy with its unnormalisation folded in: image (1, 3, H, W) -> actions."""

    def __init__(self, policy: ToyPolicy) -> None:
        super().__init__()
        self.net, self.mean, self.std = policy.net, policy.action_mean, policy.action_std
        self.chunk = policy.chunk_size

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.net(image).view(image.shape[0], self.chunk, -1) * self.std + self.mean


class ToyPolicy(VLAModule):
    required_features = [CAMERA, ft.ACTION]
    capabilities = Capabilities(export_formats=("torchscript", "onnx"))

    def __init__(
        self, optimizer: DictConfig, scheduler: DictConfig | None = None, chunk_size: int = 2
    ) -> None:
        super().__init__(optimizer, scheduler)
        self.save_hyperparameters(logger=False)
        self.chunk_size = chunk_size
        self.net = nn.Sequential(
            nn.Conv2d(3, 8, 3, stride=2), nn.ReLU(), nn.Flatten(), nn.LazyLinear(2 * chunk_size)
        )
        self.net(torch.zeros(1, 3, SIZE, SIZE))  # materialise the lazy layer before loading
        self.register_buffer("action_mean", torch.zeros(2))
        self.register_buffer("action_std", torch.ones(2))

    @property
    def observation_delta_indices(self) -> list[int]:
        return [0]

    @property
    def action_delta_indices(self) -> list[int]:
        return list(range(self.chunk_size))

    def set_normalization(self, stats: ft.Stats) -> None:
        stats = ft.unit_scale_for_constant_dimensions(stats, [ft.ACTION])  # speed never varies
        self.action_mean.copy_(ft.stats_tensor(stats, ft.ACTION, "mean"))
        self.action_std.copy_(ft.stats_tensor(stats, ft.ACTION, "std"))

    @property
    def mean_action(self) -> torch.Tensor:
        return self.action_mean

    def predict_action_chunk(self, batch: dict) -> torch.Tensor:
        return ToyGraph(self)(batch[CAMERA])

    def model_step(self, batch: dict) -> StepOutput:
        pred = self.net(batch[CAMERA]).view(-1, self.chunk_size, 2)
        target = (batch[ft.ACTION] - self.action_mean) / self.action_std
        valid = ~batch[ft.ACTION_IS_PAD]
        loss = ((pred - target) ** 2).mean(-1)[valid].mean()
        first = pred[:, 0] * self.action_std + self.action_mean
        return StepOutput(loss, first_action_pred=first, first_action_true=batch[ft.ACTION][:, 0])

    def export_graph(self, seed: int = 0) -> GraphExport:
        image = torch.rand(1, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(seed))
        with torch.no_grad():
            reference = [self.predict_action_chunk({CAMERA: image})]
        stats = {ft.ACTION: {"mode": "mean_std", "mean": self.action_mean.tolist()}}
        return GraphExport(ToyGraph(self), [CAMERA], ["actions"], {CAMERA: image}, reference, stats)


# ---- registration, as a user's own module would do it ---------------------------------------
@pytest.fixture(autouse=True)
def toy_registered():
    store = ConfigStore.instance()
    store.store(
        group="data",
        name="toy_npz",
        node={
            "_target_": "vla_lab.data.datamodule.VLADataModule",
            "source": {
                "_target_": f"{__name__}.ToyEpisodes",
                "root": "${paths.data_dir}/toy_npz",
                "synthetic": {"num_episodes": 6},
            },
            "split": {"val_fraction": 0.34, "seed": 0, "stratify_by": None},
            "batch_size": "${hardware.batch_size}",
            "num_workers": 0,
        },
    )
    store.store(
        group="model",
        name="toy_policy",
        node={
            "_target_": f"{__name__}.ToyPolicy",
            "_recursive_": False,  # the module builds its optimizer from the node itself
            "chunk_size": 2,
            "optimizer": {"_target_": "torch.optim.Adam", "_partial_": True, "lr": 3e-3},
        },
    )
    store.store(  # what conf/experiment/toy_demo.yaml (`# @package _global_`) would hold
        group="experiment",
        name="toy_demo",
        package="_global_",
        node={
            "defaults": [
                {"override /data": "toy_npz"},
                {"override /model": "toy_policy"},
                "_self_",
            ],
            "trainer": {"max_epochs": 3},
        },
    )
    before = dict(INPUT_FORMATS)
    register_input_format("toy_npz", ToyEpisodes)
    yield
    INPUT_FORMATS.clear()
    INPUT_FORMATS.update(before)


def test_a_new_format_and_policy_train_infer_evaluate_and_export(make_cfg, tmp_path: Path):
    run = tmp_path / "run"
    cfg = make_cfg(["experiment=toy_demo", "logger=csv"], run)
    metrics = train(cfg)
    assert metrics["val/mae"] < metrics["val/baseline_mae"], metrics  # it sees the square
    ckpt = run / "checkpoints" / "last.ckpt"

    root = Path(cfg.paths.data_dir) / "toy_npz"
    assert data_config_for(root) == "toy_npz"
    infer_cfg = compose_config(
        [f"ckpt_path={ckpt}", f"input={root}", "progress=false"], "infer", str(tmp_path / "infer")
    )
    table = pd.read_parquet(infer(infer_cfg))
    assert len(table) == 6 * 12 and table["action_pred"].map(len).eq(2).all()

    eval_cfg = compose_config([f"ckpt_path={ckpt}", "split=val"], "evaluate", str(tmp_path / "ev"))
    [result] = evaluate(eval_cfg).values()
    assert result["val/mae"] == pytest.approx(metrics["val/mae"], rel=1e-4)

    out = export(ckpt, tmp_path / "toy.onnx", format="onnx")
    assert json.loads(Path(f"{out}.json").read_text())["check"]["passed"]
    policy = load_policy(ckpt)
    frame = np.zeros((SIZE, SIZE, 3), np.uint8)
    assert policy.act({CAMERA: frame, ft.TASK: "drive"}).shape == (2,)
