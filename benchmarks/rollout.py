"""Closed-loop throughput per world: env steps per second alone, and with the policy in the loop.

For each world the same seeded episodes run twice through the rollout runner, in one process on
one thread (`torch.set_num_threads(1)`): with the world's scripted expert (it reads the true state:
the env's own cost, the baseline) and with the experiment's tiny policy (`Policy`, the deployed
code path). Reported: steps/s of each, the policy's share of a step's time
(1 - policy rate / env rate), the policy's ms per step, and how many simulated seconds pass per
wall-clock second (the driving world steps 0.1 s of simulated time: a rate under 10 steps/s is
slower than real time, which slows the rollout and never changes its outcome: the world's clock
is the step count, not the wall clock).

The policy is `--ckpt-<world>` when given, else the experiment's model untrained (same size and
code path; its actions are random, so its episodes may end sooner: the rates are per step).

    python benchmarks/rollout.py [--episodes 8] [--worlds mobile_vla driving arm_act arm_smolvla]
        [--ckpt-mobile_vla last.ckpt] [--ckpt-driving last.ckpt] [--ckpt-arm_act last.ckpt] ...
"""

from __future__ import annotations

import argparse
import json
import time

import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf

from vla_lab.data import datamodule_for
from vla_lab.evaluation.closed_loop import prepared_world, rollout_policy, world_specs
from vla_lab.runtime.checkpoint import load_checkpoint
from vla_lab.sim.runner import RolloutRunner, world
from vla_lab.utils.config import compose_config

WORLDS = {  # world (and policy) -> the demo experiment whose tiny model drives it
    "mobile_vla": "mobile_vla_demo",
    "driving": "av_smolvla_unicycle_demo",
    # Meta-World through LeRobot (96x96, no shadows), with each RoArm policy in the loop.
    "arm_act": "roarm_act_sim_demo",
    "arm_smolvla": "roarm_smolvla_sim_demo",
}


def untrained_module(experiment: str):
    """The experiment's model, built as training builds it, before any step."""
    cfg = compose_config([f"experiment={experiment}"])
    torch.manual_seed(0)
    module = instantiate(cfg.model)
    datamodule = datamodule_for(cfg.data, module)
    module.attach_dataset(features=datamodule.features, stats=datamodule.stats)
    return module, cfg


def timed(runner: RolloutRunner, specs) -> tuple[float, int, float]:
    """(wall seconds, env steps, seconds inside the agent) of one pass over `specs`."""
    start = time.perf_counter()
    results = runner.run(specs)
    wall = time.perf_counter() - start
    steps = int(results["steps"].sum())
    return wall, steps, float((results["policy_ms"] * results["steps"]).sum() / 1e3)


def measure(name: str, ckpt: str | None, episodes: int) -> dict[str, float]:
    experiment = WORLDS[name]
    if ckpt:
        checkpoint = load_checkpoint(ckpt)
        module, run_cfg = checkpoint.module, checkpoint.config
    else:
        module, run_cfg = untrained_module(experiment)
    env_cfg = OmegaConf.create(OmegaConf.to_container(run_cfg.env, resolve=True))
    policy = rollout_policy(module, env_cfg, "cpu")
    env = prepared_world(env_cfg, policy, type(module).__name__)
    specs = world_specs(env, env_cfg, episodes)
    dt = float(world(env).metadata.get("dt_s", 0.0))
    timed(RolloutRunner(env, world(env).expert()), specs[:1])  # warm caches, lazy imports
    env_wall, env_steps, _ = timed(RolloutRunner(env, world(env).expert()), specs)
    timed(RolloutRunner(env, policy), specs[:1])
    wall, steps, policy_s = timed(RolloutRunner(env, policy), specs)
    env_rate, rate = env_steps / env_wall, steps / wall
    row = {
        "world": name,
        "env steps/s (expert)": round(env_rate, 1),
        "steps/s with policy": round(rate, 1),
        "policy share of a step": round(1 - rate / env_rate, 3),
        "policy ms/step": round(1e3 * policy_s / steps, 2),
    }
    if dt:
        row["simulated s per wall s (policy)"] = round(rate * dt, 2)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--episodes", type=int, default=8)
    parser.add_argument("--worlds", nargs="+", default=list(WORLDS), choices=list(WORLDS))
    for name in WORLDS:
        parser.add_argument(f"--ckpt-{name}", default=None)
    args = parser.parse_args()
    torch.set_num_threads(1)
    for name in args.worlds:
        row = measure(name, getattr(args, f"ckpt_{name}"), args.episodes)
        print(json.dumps(row))


if __name__ == "__main__":
    main()
