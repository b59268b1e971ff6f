"""Where the config tree lives, how to compose it outside a Hydra entry point (API, tests), and
how a library job becomes a `python -m vla_lab.<verb>` command."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import hydra
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf, open_dict

from vla_lab.utils.metric_names import sweep_direction
from vla_lab.utils.schema import register_schemas

# An editable install keeps the package at <repo>/src/vla_lab, beside <repo>/conf.
PROJECT_ROOT = Path(__file__).resolve().parents[3]
CONF_DIR = PROJECT_ROOT / "conf"


def prepare_hydra() -> None:
    """Before composing: let the configs' `${oc.env:PROJECT_ROOT}` resolve (unless the user
    pointed it elsewhere), register `${direction_of:<metric>}` (the sweep direction that
    optimises a metric: maximize for `rollout/success_rate`) and put the config schemas in
    Hydra's ConfigStore."""
    os.environ.setdefault("PROJECT_ROOT", str(PROJECT_ROOT))
    OmegaConf.register_new_resolver("direction_of", sweep_direction, replace=True)
    register_schemas()


def compose_config(
    overrides: list[str] | None = None, config_name: str = "train", output_dir: str | None = None
) -> DictConfig:
    """Compose ``conf/<config_name>.yaml`` with command-line style overrides, as `train.py` would.

    The Hydra node is kept and registered so `${hydra:...}` interpolations resolve; ``output_dir``
    stands in for the run dir Hydra would have created.
    """
    prepare_hydra()
    if not CONF_DIR.is_dir():
        raise FileNotFoundError(
            f"config directory {CONF_DIR} not found: is vla-lab installed with -e?"
        )
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose(config_name, overrides=list(overrides or []), return_hydra_config=True)
    with open_dict(cfg):
        cfg.hydra.runtime.output_dir = output_dir or str(PROJECT_ROOT / "outputs" / "_compose")
        cfg.hydra.job.num = 0
    HydraConfig.instance().set_config(cfg)
    return cfg


def hydra_app(job: Callable[[DictConfig], Any], config_name: str) -> Callable[[], Any]:
    """`job` as a Hydra command on ``conf/<config_name>.yaml``: call the result from a module's
    `main()` and it reads ``sys.argv`` (``key=value`` overrides, ``--help``, ``--cfg job``).

    Nothing happens at import time; the job itself stays a plain function of a DictConfig that a
    test calls with `compose_config(..., config_name=...)`. Ctrl-C ends the command with exit
    status 130 (the shell's convention) once the job has saved what it had, without a traceback.
    """
    prepare_hydra()
    app = hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name=config_name)(job)

    def run() -> Any:
        try:
            return app()
        except KeyboardInterrupt:
            sys.exit(130)

    return run


def plain_dict(node: Mapping[str, Any]) -> dict[str, Any]:
    """A config node (DictConfig or any mapping) as a plain dict, interpolations resolved."""
    if isinstance(node, DictConfig):
        return dict(OmegaConf.to_container(node, resolve=True))
    return dict(node)
