"""Fine-tuning modes (full / frozen / LoRA) for any backbone exposing its HF model at ``.model``.

The backbone is found by attribute path on the policy module; which of its parts are the
language model and the vision tower is told by name scopes whose defaults fit the HF VLMs we use
(Kosmos-2 and SmolVLM both name them ``text_model`` and ``vision_model``). Everything outside the
backbone (heads, the action token) always trains.
"""

from __future__ import annotations

import logging
import operator
import re
from typing import Any

from torch import nn

log = logging.getLogger(__name__)

MODES = ("full", "frozen", "lora")
# Attention and MLP projections under their usual HF names (Kosmos-2: out_proj/fc1/fc2;
# Llama-style: o_proj/gate_proj/up_proj/down_proj).
DEFAULT_LORA_LAYERS = (
    "q_proj",
    "k_proj",
    "v_proj",
    "out_proj",
    "o_proj",
    "fc1",
    "fc2",
    "gate_proj",
    "up_proj",
    "down_proj",
)
LORA_DEFAULTS: dict[str, Any] = {
    "r": 32,
    "alpha": 16,
    "dropout": 0.1,
    "target_modules": None,  # None: DEFAULT_LORA_LAYERS inside the language model
    "vision": False,
}


def count_parameters(module: nn.Module) -> dict[str, int]:
    """``{"total": N, "trainable": M}`` parameter counts (shared parameters counted once)."""
    params = list(module.parameters())
    return {
        "total": sum(p.numel() for p in params),
        "trainable": sum(p.numel() for p in params if p.requires_grad),
    }


def _in_scope(name: str, scope: str) -> bool:
    """Whether a dotted parameter/module name lies under a submodule called ``scope``."""
    return f".{scope}." in f".{name}."


def _lora_target_regex(layers: list[str] | tuple[str, ...], scopes: list[str]) -> str:
    """A peft ``target_modules`` regex: ``layers`` (leaf names) under any of ``scopes``."""
    scope = "|".join(re.escape(s) for s in scopes)
    names = "|".join(re.escape(n) for n in layers)
    return rf"(.*\.)?({scope})\..*\.({names})$"


def _inject_lora(
    hf_model: nn.Module, lora: dict[str, Any], text_scope: str, vision_scope: str
) -> None:
    """Put peft LoRA adapters into ``hf_model`` in place: its class and call signature stay,
    and a module built the same way has the same state_dict keys."""
    from peft import LoraConfig, inject_adapter_in_model

    unknown = set(lora) - set(LORA_DEFAULTS)
    if unknown:
        raise ValueError(f"Unknown lora keys {sorted(unknown)}; valid: {sorted(LORA_DEFAULTS)}.")
    cfg = {**LORA_DEFAULTS, **lora}
    targets = cfg["target_modules"]
    if isinstance(targets, str):
        if cfg["vision"]:
            log.warning(
                "lora.vision is ignored: lora.target_modules is a regex, which decides alone."
            )
        regex = targets
    else:
        scopes = [text_scope] + ([vision_scope] if cfg["vision"] else [])
        regex = _lora_target_regex(list(targets or DEFAULT_LORA_LAYERS), scopes)
    if any("lora_" in name for name, _ in hf_model.named_parameters()):
        raise RuntimeError("The backbone already has LoRA adapters; apply_finetune runs once.")
    config = LoraConfig(
        r=int(cfg["r"]),
        lora_alpha=cfg["alpha"],
        lora_dropout=float(cfg["dropout"]),
        target_modules=regex,
        bias="none",
    )
    try:
        inject_adapter_in_model(config, hf_model)
    except ValueError as err:
        raise ValueError(
            f"LoRA target_modules {regex!r} matched no layer of the backbone: {err}"
        ) from err


def apply_finetune(
    module: nn.Module,
    backbone_attr: str = "backbone",
    mode: str = "full",
    lora: dict | None = None,
    train_vision: bool = True,
    text_scope: str = "text_model",
    vision_scope: str = "vision_model",
) -> dict[str, int]:
    """Set which parameters of ``module`` train, in place, and return their counts.

    - ``full``: every parameter trains, except the vision tower when ``train_vision`` is False.
    - ``frozen``: the backbone is frozen; only the rest of ``module`` (head, action token) trains.
    - ``lora``: the backbone is frozen and LoRA adapters (peft) train; ``lora`` holds ``r``,
      ``alpha``, ``dropout``, ``target_modules`` (leaf names, or a regex used verbatim) and
      ``vision`` (adapters on the vision tower too). Default targets: the language model's
      attention and MLP projections.

    Call it before the optimizer is built and before loading a checkpoint trained in LoRA mode,
    so the adapter weights have somewhere to go.
    """
    if mode not in MODES:
        raise ValueError(f"Unknown fine-tuning mode {mode!r}; valid modes: {', '.join(MODES)}.")
    try:
        backbone = operator.attrgetter(backbone_attr)(module)
        hf_model = backbone.model
    except AttributeError as err:
        raise AttributeError(
            f"apply_finetune needs the HF model at `{backbone_attr}.model` of "
            f"{type(module).__name__}: {err}"
        ) from err
    if lora is not None and mode != "lora":
        log.info("finetune mode %r: the lora settings are not used.", mode)

    if mode == "lora":
        _inject_lora(hf_model, lora or {}, text_scope, vision_scope)
    for name, param in backbone.named_parameters():
        if mode == "full":
            param.requires_grad_(train_vision or not _in_scope(name, vision_scope))
        elif mode == "frozen":
            param.requires_grad_(False)
        else:
            param.requires_grad_("lora_" in name)
    backbone_params = {id(p) for p in backbone.parameters()}
    for param in module.parameters():
        if id(param) not in backbone_params:
            param.requires_grad_(True)

    counts = count_parameters(module)
    log.info(
        "Fine-tuning %s: %d of %d parameters trainable (%.2f%%).",
        mode,
        counts["trainable"],
        counts["total"],
        100.0 * counts["trainable"] / max(counts["total"], 1),
    )
    return counts
