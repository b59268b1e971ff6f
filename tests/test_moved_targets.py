"""Checkpoints written before the package layout changed still load: their `_target_`s are
rewritten to the modules' new homes when the config is read."""

from __future__ import annotations

import importlib
import logging
from pathlib import Path

import pytest
import torch
from hydra.utils import get_class, instantiate
from omegaconf import OmegaConf

from vla_lab.data.mobile_vla.source import MobileVLAEpisodes
from vla_lab.data.physical_ai_av.clips import PhysicalAIAVClips
from vla_lab.data.physical_ai_av.commands import Commands
from vla_lab.driving.commands import RuleLabeler
from vla_lab.driving.unicycle import UnicycleActionSpace
from vla_lab.models.module import CHECKPOINT_KEY
from vla_lab.runtime.checkpoint import load_checkpoint
from vla_lab.utils.moved import MOVED, moved_target, rewrite_moved_targets


def old_run_config() -> dict:
    """A run config as checkpoints of the old layout stored it (resolved, plain containers)."""
    return {
        "data": {
            "_target_": "vla_lab.data.datamodule.VLADataModule",
            "source": {"_target_": "vla_lab.av.clips.PhysicalAIAVClips", "root": "/data/av"},
        },
        "model": {
            "_target_": "vla_lab.models.smolvla_unicycle.SmolVLAUnicycleModule",
            "optimizer": {"_target_": "torch.optim.AdamW", "_partial_": True, "lr": 1e-4},
        },
        "parts": [
            {"_target_": "vla_lab.av.unicycle.UnicycleActionSpace", "n_steps": 8},
            {"_target_": "vla_lab.av.commands.RuleLabeler", "turn_yaw": 0.4},
            {"_target_": "vla_lab.av.commands.Commands", "cfg": {"mode": "rule"}},
        ],
        "experiment_name": "av_smolvla_unicycle_demo",
    }


def test_old_targets_are_rewritten_and_instantiable(caplog: pytest.LogCaptureFixture) -> None:
    config = old_run_config()
    with caplog.at_level(logging.INFO, logger="vla_lab.utils.moved"):
        new = OmegaConf.create(rewrite_moved_targets(config, "old.ckpt's config"))

    assert new.data.source._target_ == "vla_lab.data.physical_ai_av.clips.PhysicalAIAVClips"
    assert get_class(new.data.source._target_) is PhysicalAIAVClips
    assert new.model._target_ == "vla_lab.models.lerobot.smolvla_unicycle.SmolVLAUnicycleModule"
    assert get_class(new.model._target_).__name__ == "SmolVLAUnicycleModule"
    space, labeler, commands = (instantiate(node) for node in new.parts)
    assert isinstance(space, UnicycleActionSpace) and space.n_steps == 8
    assert isinstance(labeler, RuleLabeler) and labeler.turn_yaw == 0.4
    assert isinstance(commands, Commands) and commands.mode == "rule"
    # What did not move stays, and the caller's config is not modified.
    assert new.data._target_ == "vla_lab.data.datamodule.VLADataModule"
    assert new.model.optimizer._target_ == "torch.optim.AdamW"
    assert new.experiment_name == "av_smolvla_unicycle_demo"
    assert config == old_run_config()

    lines = [r.getMessage() for r in caplog.records if r.name == "vla_lab.utils.moved"]
    assert len(lines) == 1 and "old.ckpt's config" in lines[0]
    assert "vla_lab.av.clips.PhysicalAIAVClips -> " in lines[0]


@pytest.mark.parametrize(
    "target",
    [
        "vla_lab.data.mobile_vla.source.MobileVLAEpisodes",
        "vla_lab.data.lerobot.source.LeRobotEpisodes",
        "vla_lab.models.lerobot.act.ACTModule",
        "vla_lab.models.lerobot.base.LeRobotPolicyModule",
        "vla_lab.data.physical_ai_av.clips.PhysicalAIAVClips",
        "torch.optim.AdamW",
    ],
)
def test_current_targets_are_left_alone(target: str, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="vla_lab.utils.moved"):
        assert rewrite_moved_targets({"node": {"_target_": target}}) == {
            "node": {"_target_": target}
        }
    assert moved_target(target) is None
    assert not [r for r in caplog.records if r.name == "vla_lab.utils.moved"]


def test_old_checkpoint_config_is_read_with_current_targets(tmp_path: Path) -> None:
    ckpt = tmp_path / "old.ckpt"
    config = {
        "data": {"source": {"_target_": "vla_lab.data.mobile_vla.MobileVLAEpisodes"}},
        "model": {"_target_": "vla_lab.models.act.ACTModule"},
    }
    torch.save({CHECKPOINT_KEY: {"config": config}}, ckpt)

    cfg = load_checkpoint(ckpt).config

    assert get_class(cfg.data.source._target_) is MobileVLAEpisodes
    assert cfg.model._target_ == "vla_lab.models.lerobot.act.ACTModule"


@pytest.mark.parametrize("old", sorted(MOVED))
def test_every_new_path_exists(old: str) -> None:
    new = MOVED[old]
    try:
        importlib.import_module(new)
    except ImportError:  # module.Name
        module, _, name = new.rpartition(".")
        assert hasattr(importlib.import_module(module), name), f"{old} -> {new}: no {name}"
