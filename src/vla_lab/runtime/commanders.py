"""Build a Commander (`vla_lab.driving.commanders`) from its config node: the one factory of the
drive loop (`commander=...`) and the labelling job (`labeler=...`)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from vla_lab.driving.commanders import RuleCommander, ScriptedCommander, VLMCommander

COMMANDERS = ("scripted", "rule", "vlm")


def build_commander(options: Mapping[str, Any], cache_dir: str) -> Any:
    """The Commander of `options` (a resolved `commander` or `labeler` node); `vlm` loads its
    model here (`tiny: true` builds an offline random-weight SmolVLM under `cache_dir`)."""
    options = dict(options)
    name = options.pop("name", None)
    options.pop("initial_command", None)
    if name == "scripted":
        return ScriptedCommander(options.get("schedule") or [])
    if name == "rule":
        return RuleCommander(options.get("thresholds"))
    if name == "vlm":
        from vla_lab.models.vlm_labeler import VLMLabeler

        if options.pop("tiny", False):
            from vla_lab.models.backbones.smolvlm_tiny import build_tiny_smolvlm

            options["model_id"] = str(build_tiny_smolvlm(cache_dir))
        return VLMCommander(VLMLabeler(**options))
    raise ValueError(f"name={name!r}; expected one of {COMMANDERS} (conf/commander/, labeler/)")
