"""``python -m vla_lab.sim.record env=<name> episodes=50``: a world's expert as a LeRobot dataset.

See ``conf/record.yaml`` and ``vla_lab.sim.lerobot_recorder``.
"""

from __future__ import annotations

from pathlib import Path

from omegaconf import DictConfig

from vla_lab.sim.lerobot_recorder import record_lerobot_dataset
from vla_lab.utils.config import hydra_app, plain_dict
from vla_lab.utils.logging import get_logger

log = get_logger(__name__)


def record(cfg: DictConfig) -> Path:
    """Record ``cfg.episodes`` expert episodes of ``cfg.env`` into ``cfg.root``."""
    if not cfg.get("env"):
        raise ValueError("record needs a world: env=<name> (conf/env/)")
    root = record_lerobot_dataset(
        cfg.root,
        cfg.env.id,
        plain_dict(cfg.env.get("kwargs") or {}),
        episodes=int(cfg.episodes),
        scenarios=list(cfg.env.scenarios) if cfg.env.get("scenarios") else None,
        seed=int(cfg.seed),
        noise=float(cfg.noise),
        robot_type=cfg.get("robot_type"),
    )
    log.info("LeRobot dataset at %s: python train.py data.source.root=%s ...", root, root)
    return root


def main() -> None:
    """Console entry point: Hydra reads ``sys.argv``."""
    hydra_app(record, "record")()


if __name__ == "__main__":
    main()
