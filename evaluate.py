"""Evaluate a checkpoint: `python evaluate.py ckpt_path=<file> [split=val] [data=...]`.

Thin Hydra entry point; the work is in `vla_lab.evaluate.evaluate`.
"""

import hydra
from omegaconf import DictConfig

from vla_lab.utils.config import prepare_hydra

prepare_hydra()


@hydra.main(version_base="1.3", config_path="conf", config_name="evaluate")
def main(cfg: DictConfig) -> None:
    from vla_lab.evaluate import evaluate

    evaluate(cfg)


if __name__ == "__main__":
    main()
