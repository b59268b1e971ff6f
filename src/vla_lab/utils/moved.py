"""Where modules went when the package layout changed, so checkpoints written before still load.

A checkpoint stores its resolved run config, `_target_`s included (`vla_lab.av.clips.
PhysicalAIAVClips`, `vla_lab.models.act.ACTModule`); `rewrite_moved_targets` points every old one
at the module's new home when the config is read. Nothing else in a checkpoint names a moved
module: its pickle holds no vla_lab class but `utils.schema`'s (checked on the demo checkpoints).
"""

from __future__ import annotations

import importlib.util
from typing import Any

from omegaconf import DictConfig, ListConfig, OmegaConf

from vla_lab.utils.logging import get_logger

log = get_logger(__name__)

# Old dotted path -> new. A module, or module.Name where a module's contents went to two places
# (the longest match wins).
MOVED: dict[str, str] = {
    "vla_lab.av.clips": "vla_lab.data.physical_ai_av.clips",
    "vla_lab.av.samples": "vla_lab.data.physical_ai_av.samples",
    "vla_lab.av.layout": "vla_lab.data.physical_ai_av.layout",
    "vla_lab.av.video": "vla_lab.data.physical_ai_av.video",
    "vla_lab.av.poses": "vla_lab.data.physical_ai_av.poses",
    "vla_lab.av.calibration": "vla_lab.data.physical_ai_av.calibration",
    "vla_lab.av.synthetic": "vla_lab.data.synthetic.physical_ai_av",
    "vla_lab.av.unicycle": "vla_lab.driving.unicycle",
    "vla_lab.av.metrics": "vla_lab.driving.metrics",
    "vla_lab.av.commands": "vla_lab.driving.commands",
    "vla_lab.av.commands.Commands": "vla_lab.data.physical_ai_av.commands.Commands",
    "vla_lab.av.commands.read_command_file": (
        "vla_lab.data.physical_ai_av.commands.read_command_file"
    ),
    "vla_lab.av.label": "vla_lab.label",
    "vla_lab.av.vlm_labeler": "vla_lab.models.vlm_labeler",
    "vla_lab.data.mobile_vla": "vla_lab.data.mobile_vla.source",
    "vla_lab.data.mobile_vla_h5": "vla_lab.data.mobile_vla.h5",
    "vla_lab.data.mobile_vla_scenario": "vla_lab.data.mobile_vla.scenario",
    "vla_lab.data.mobile_vla_windows": "vla_lab.data.mobile_vla.windows",
    "vla_lab.data.lerobot": "vla_lab.data.lerobot.source",
    "vla_lab.data.lerobot_convert": "vla_lab.data.lerobot.convert",
    "vla_lab.data.lerobot_samples": "vla_lab.data.lerobot.samples",
    "vla_lab.data.lerobot_stats": "vla_lab.data.lerobot.stats",
    "vla_lab.models.lerobot_policy": "vla_lab.models.lerobot.base",
    "vla_lab.models.lerobot_config": "vla_lab.models.lerobot.config",
    "vla_lab.models.lerobot_loss": "vla_lab.models.lerobot.loss",
    "vla_lab.models.act": "vla_lab.models.lerobot.act",
    "vla_lab.models.smolvla": "vla_lab.models.lerobot.smolvla",
    "vla_lab.models.smolvla_unicycle": "vla_lab.models.lerobot.smolvla_unicycle",
}


def _is_module(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):  # a parent that does not exist (any more)
        return False


def moved_target(target: str) -> str | None:
    """The new dotted path of `target` when it names something that moved, else None.

    Some old modules are packages now (`vla_lab.data.lerobot`): a path through one of their
    submodules (`vla_lab.data.lerobot.source.LeRobotEpisodes`) is current and stays.
    """
    for old in sorted(MOVED, key=len, reverse=True):
        if target != old and not target.startswith(f"{old}."):
            continue
        rest = target[len(old) :]
        first = rest[1:].split(".")[0]
        if first and _is_module(f"{old}.{first}"):
            return None
        return MOVED[old] + rest
    return None


def rewrite_moved_targets(config: Any, source: str = "checkpoint config") -> Any:
    """A copy of `config` (nested dicts and lists, as a checkpoint stores it, or an OmegaConf
    container) whose `_target_`s point at the current modules, as plain dicts and lists; one info
    line names the rewrites, `source` says of what."""
    if isinstance(config, DictConfig | ListConfig):
        config = OmegaConf.to_container(config)
    rewritten: dict[str, str] = {}

    def rewrite(node: Any) -> Any:
        if isinstance(node, dict):
            out = {key: rewrite(value) for key, value in node.items()}
            target = out.get("_target_")
            if isinstance(target, str) and (new := moved_target(target)) is not None:
                out["_target_"] = rewritten[target] = new
            return out
        if isinstance(node, list | tuple):
            return type(node)(rewrite(value) for value in node)
        return node

    result = rewrite(config)
    if rewritten:
        changes = ", ".join(f"{old} -> {new}" for old, new in rewritten.items())
        log.info("%s names moved modules, rewritten: %s", source, changes)
    return result
