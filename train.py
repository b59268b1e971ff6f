"""Train a VLA policy: `python train.py experiment=<name> [group=option ...] [key=value ...]`.

Thin Hydra entry point; the work is in `vla_lab.train.train`.
"""

import hydra
from omegaconf import DictConfig

from vla_lab.utils.config import set_project_root_env

set_project_root_env()


@hydra.main(version_base="1.3", config_path="conf", config_name="train")
def main(cfg: DictConfig) -> float | None:
    from vla_lab.train import metric_for_sweeper, train

    return metric_for_sweeper(train(cfg), cfg.get("optimized_metric"))


if __name__ == "__main__":
    main()
