"""Check every `_target_` node of a composed config against the signature of what it builds.

The dataclass schemas (`vla_lab.utils.schema`) type the nodes every run has; a model's, a data
source's, a callback's or a logger's arguments differ per class, and the class's constructor is
their schema. A key it does not take, or a plain value of the wrong type (a str where it wants
an int), fails at start-up, before anything is built, with the key's full name, what it accepts,
and the file (or command-line override) that set it. Without this, `model.window_sise: 4` in an
experiment file surfaces as a TypeError from deep inside `instantiate`, naming neither.
"""

from __future__ import annotations

import inspect
import types
import typing
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml
from hydra.core.hydra_config import HydraConfig
from hydra.utils import get_object
from omegaconf import DictConfig, ListConfig, OmegaConf

from vla_lab.utils.config import CONF_DIR

HYDRA_KEYS = {"_target_", "_recursive_", "_partial_", "_convert_", "_args_"}
SIMPLE_TYPES = (bool, int, float, str)


class ConfigCheckError(ValueError):
    """Keys or values that the classes they configure would reject (one line each)."""


def check_targets(cfg: DictConfig, skip: tuple[str, ...] = ("hydra",)) -> None:
    """Raise `ConfigCheckError` naming every bad key of every `_target_` node in `cfg`."""
    problems = []
    for path, node in _target_nodes(cfg, "", skip):
        problems += [
            f"{key}: {reason}; set in {where_set(cfg, key)}"
            for key, reason in _node_problems(path, node)
        ]
    if problems:
        raise ConfigCheckError("config keys that do not fit:\n  " + "\n  ".join(problems))


def check_head_fits(cfg: DictConfig) -> None:
    """Raise `ConfigCheckError` when the head group cannot be the model's head (the model class
    says why: `VLAModule.head_problem`), naming both choices, before anything is built."""
    model_cfg = cfg.get("model")
    if not model_cfg or "_target_" not in model_cfg or "head" not in model_cfg:
        return
    model_class = get_object(str(model_cfg._target_)).built_class(model_cfg)
    problem = model_class.head_problem(model_cfg)
    if problem:
        choices = OmegaConf.select(_hydra_node(cfg), "runtime.choices", default=None) or {}
        model, head = choices.get("model", model_class.__name__), choices.get("head", "?")
        raise ConfigCheckError(
            f"head={head} does not fit model={model} ({model_class.__name__}): {problem}."
        )


def where_set(cfg: DictConfig, full_key: str) -> str:
    """The config files (or the command-line override) that set `full_key`, best effort."""
    hydra = _hydra_node(cfg)
    for override in OmegaConf.select(hydra, "overrides.task", default=None) or []:
        if override.lstrip("+~").split("=", 1)[0] == full_key:
            return f"the command line ({override})"
    choices = OmegaConf.select(hydra, "runtime.choices", default=None) or {}
    primary = OmegaConf.select(hydra, "job.config_name", default=None) or "train"
    files = [
        path
        for root in _config_dirs(hydra)
        for group, option in [("", primary), *choices.items()]
        if option and not str(group).startswith("hydra")
        for path in _files_of(root, str(group), str(option))
        if _sets(path, str(group), full_key)
    ]
    return ", ".join(str(p) for p in files) or "an unknown file"


def _hydra_node(cfg: DictConfig) -> DictConfig:
    """Hydra's own node: in the config when composed by `compose_config`, beside it in a job."""
    if "hydra" in cfg:
        return cfg.hydra
    return HydraConfig.get() if HydraConfig.initialized() else OmegaConf.create()


def _config_dirs(hydra: DictConfig) -> list[Path]:
    """The file directories Hydra searched (conf/ and any `hydra.searchpath`)."""
    sources = OmegaConf.select(hydra, "runtime.config_sources", default=None) or []
    dirs = [Path(s["path"]) for s in sources if s["schema"] == "file"]
    return dirs or [CONF_DIR]


def _target_nodes(node: Any, path: str, skip: tuple[str, ...]) -> Iterator[tuple[str, DictConfig]]:
    if isinstance(node, DictConfig | ListConfig) and node._is_none():
        return
    if isinstance(node, DictConfig):
        if "_target_" in node:
            yield path, node
        children = ((key, node._get_node(key)) for key in node.keys() if key not in skip)
    elif isinstance(node, ListConfig):
        children = ((str(i), node._get_node(i)) for i in range(len(node)))
    else:
        return
    for key, child in children:
        if isinstance(child, DictConfig | ListConfig) and not child._is_interpolation():
            yield from _target_nodes(child, f"{path}.{key}" if path else str(key), ())


def _node_problems(path: str, node: DictConfig) -> Iterator[tuple[str, str]]:
    target_name = node._get_node("_target_")._value()
    try:
        target = get_object(str(target_name))
        signature = inspect.signature(target)
    except Exception as error:  # an unimportable target is the first thing to fix
        yield f"{path}._target_", f"cannot import {target_name!r} ({error})"
        return
    parameters = signature.parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values()):
        return  # it takes any keyword: nothing to check against
    hints = _type_hints(target)
    accepted = [name for name in parameters if name not in ("self", "args")]
    for key in node.keys():
        full_key = f"{path}.{key}" if path else str(key)
        if key in HYDRA_KEYS:
            continue
        if key not in parameters:
            yield full_key, f"{target_name} takes no '{key}' (it takes {', '.join(accepted)})"
            continue
        expected = _simple_type(hints.get(key))
        child = node._get_node(key)
        if expected is None or child._is_interpolation() or child._is_missing():
            continue
        value = child._value()
        if value is not None and not _fits(value, expected):
            names = " or ".join(t.__name__ for t in expected)
            yield full_key, f"{value!r} is not {names} ({target_name}'s '{key}')"


def _type_hints(target: Any) -> dict[str, Any]:
    function = target.__init__ if inspect.isclass(target) else target
    try:
        return typing.get_type_hints(function)
    except Exception:  # unresolvable annotations (a forward reference): no type checks
        return {}


def _simple_type(annotation: Any) -> tuple[type, ...] | None:
    """The plain types an annotation allows, when it is built only of bool/int/float/str and
    None; else None (no check)."""
    if annotation in SIMPLE_TYPES:
        return (annotation,)
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        members = [a for a in typing.get_args(annotation) if a is not type(None)]
        if members and all(a in SIMPLE_TYPES for a in members):
            return tuple(members)
    return None


def _fits(value: Any, expected: tuple[type, ...]) -> bool:
    if isinstance(value, bool):
        return bool in expected
    if isinstance(value, int) and float in expected:
        return True
    return isinstance(value, expected)


def _files_of(root: Path, group: str, option: str) -> list[Path]:
    """The option's file and the files it extends through its defaults list, in its group."""
    path = root / group / f"{option}.yaml"
    if not path.is_file():
        return []
    files = [path]
    for entry in (_load(path) or {}).get("defaults", []):
        if isinstance(entry, str) and entry != "_self_" and not entry.startswith("/"):
            files += _files_of(root, group, entry)
    return files


def _sets(path: Path, group: str, full_key: str) -> bool:
    content = _load(path)
    if not isinstance(content, dict):
        return False
    package = "" if "@package _global_" in path.read_text()[:500] else group.replace("/", ".")
    if package:
        if not full_key.startswith(package + "."):
            return False
        full_key = full_key[len(package) + 1 :]
    node: Any = content
    for part in full_key.split("."):
        if not isinstance(node, dict) or part not in node:
            return False
        node = node[part]
    return True


def _load(path: Path) -> Any:
    return yaml.safe_load(path.read_text())
