"""Train a VLA policy: `python train.py experiment=<name> [group=option ...] [key=value ...]`.

Thin Hydra entry point; the work is in `vla_lab.train.train`. In a multirun (`-m`) a failed job is
logged and the sweep goes on. Ranks > 0 of a multi-process launch (Lightning's DDP launcher, srun,
torchrun) share rank 0's run dir and write nothing in it: no `.hydra/`, no `train.log`.
"""

import sys

import hydra
from omegaconf import DictConfig

from vla_lab.utils.config import prepare_hydra
from vla_lab.utils.run import (
    SECONDARY_RANK_OVERRIDES,
    is_secondary_rank,
    run_sweep_job,
    sweeper_reads_return_value,
)

prepare_hydra()


@hydra.main(version_base="1.3", config_path="conf", config_name="train")
def main(cfg: DictConfig) -> float | None:
    from vla_lab.train import metric_for_sweeper, train

    name, required = cfg.get("optimized_metric"), sweeper_reads_return_value()
    return run_sweep_job(lambda: metric_for_sweeper(train(cfg), name, required))


if __name__ == "__main__":
    if is_secondary_rank():
        sys.argv += SECONDARY_RANK_OVERRIDES
    main()
