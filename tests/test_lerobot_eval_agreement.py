"""The outside check of the arm world: a checkpoint's LeRobot export, run by LeRobot's own
evaluator on LeRobot's own Meta-World env, gets the same episodes as our closed-loop evaluation
on the same seeds.

The policy is trained on recordings of the world as LeRobot renders it (env=metaworld: 480x480,
shadows), so both evaluators feed it the same pixels: LeRobot's loop gives the env's frames
as they are, ours resizes to the training size, which is the same size. ACT is deterministic at
inference, so the episodes must agree step for step: same success, same summed reward. The fast
test runs LeRobot's evaluation loop (`lerobot.scripts.lerobot_eval.eval_policy`) in process on
episodes cut to a few steps; the slow one runs the `lerobot-eval` command on whole episodes.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from vla_lab.evaluate import evaluate
from vla_lab.runtime.export import export
from vla_lab.train import train
from vla_lab.utils.config import compose_config

TASK = "button-press-topdown-v3"
SEED = 4242


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """(checkpoint, LeRobot export) of a two-step ACT run on one 20-step recording of
    Meta-World as LeRobot renders it."""
    root = tmp_path_factory.mktemp("agreement")
    cfg = compose_config(
        [
            f"paths.data_dir={root / 'data'}",
            f"paths.cache_dir={root / 'cache'}",
            f"paths.log_dir={root / 'outputs'}",
            "print_config=false",
            "experiment=roarm_act_sim_demo",
            "env=metaworld",
            f"env.kwargs.tasks=[{TASK}]",
            "env.kwargs.max_steps=20",
            "data.source.record.episodes=1",
            "data.split.val_fraction=0",
            "hardware.num_workers=0",
            "hardware.batch_size=2",
            "trainer.max_steps=2",
            "trainer.max_epochs=1",
            "callbacks.rollout=null",
        ],
        output_dir=str(root / "run"),
    )
    train(cfg)
    ckpt = root / "run" / "checkpoints" / "last.ckpt"
    return ckpt, export(ckpt, root / "export", format="lerobot")


def ours(ckpt: Path, out: Path, episodes: int, max_steps: int, *extra: str) -> pd.DataFrame:
    """Our closed-loop evaluation of `ckpt` in LeRobot's render of TASK (`extra` overrides)."""
    cfg = compose_config(
        [
            f"ckpt_path={ckpt}",
            "mode=closed_loop",
            "env=metaworld",
            f"env.kwargs.tasks=[{TASK}]",
            f"env.kwargs.max_steps={max_steps}",
            f"env.seed={SEED}",
            f"episodes={episodes}",
            "videos=0",
            "failure_videos=0",
            *extra,
        ],
        "evaluate",
        str(out),
    )
    evaluate(cfg)
    return pd.read_parquet(out / "episodes.parquet")


def test_lerobots_evaluation_loop_agrees_with_ours_step_for_step(exported, tmp_path):
    from lerobot.configs.policies import PreTrainedConfig
    from lerobot.envs.configs import MetaworldEnv
    from lerobot.envs.factory import make_env, make_env_pre_post_processors
    from lerobot.policies.factory import make_policy, make_pre_post_processors
    from lerobot.scripts.lerobot_eval import eval_policy

    ckpt, export_dir = exported
    steps, episodes = 12, 2
    env_cfg = MetaworldEnv(task=TASK)
    vector_env = make_env(env_cfg, n_envs=1)[TASK][0]
    vector_env.envs[0]._max_episode_steps = steps  # LeRobot's loop runs this many steps at most
    policy_cfg = PreTrainedConfig.from_pretrained(export_dir)
    policy_cfg.pretrained_path, policy_cfg.device = str(export_dir), "cpu"
    policy = make_policy(policy_cfg, env_cfg=env_cfg).eval()
    pre, post = make_pre_post_processors(
        policy_cfg,
        pretrained_path=str(export_dir),
        preprocessor_overrides={"device_processor": {"device": "cpu"}},
    )
    env_pre, env_post = make_env_pre_post_processors(env_cfg, policy_cfg)
    theirs = eval_policy(
        vector_env, policy, env_pre, env_post, pre, post, n_episodes=episodes, start_seed=SEED
    )["per_episode"]
    vector_env.close()

    mine = ours(ckpt, tmp_path / "ours", episodes, steps)
    assert [e["seed"] for e in theirs] == mine["seed"].tolist()
    assert [float(e["success"]) for e in theirs] == mine["success"].tolist()
    assert [e["sum_reward"] for e in theirs] == pytest.approx(mine["sum_reward"].tolist(), rel=1e-5)
    assert [e["max_reward"] for e in theirs] == pytest.approx(mine["max_reward"].tolist(), rel=1e-5)
    # The check can fail: the same policy shown other pixels (no shadows) drives otherwise.
    other = ours(ckpt, tmp_path / "other", episodes, steps, "env.kwargs.shadows=false")
    assert [e["sum_reward"] for e in theirs] != pytest.approx(
        other["sum_reward"].tolist(), rel=1e-5
    )


@pytest.mark.slow
def test_lerobot_eval_command_agrees_with_ours(exported, tmp_path):
    """`lerobot-eval --policy.path=<export> --env.type=metaworld` on whole (500-step) episodes."""
    ckpt, export_dir = exported
    episodes = 2
    command = [
        str(Path(sys.executable).with_name("lerobot-eval")),
        f"--policy.path={export_dir}",
        "--policy.device=cpu",
        "--env.type=metaworld",
        f"--env.task={TASK}",
        f"--eval.n_episodes={episodes}",
        "--eval.batch_size=1",
        f"--seed={SEED}",
        f"--output_dir={tmp_path / 'lerobot_eval'}",
    ]
    subprocess.run(command, check=True, env={**os.environ, "MUJOCO_GL": "egl"})
    info = json.loads((tmp_path / "lerobot_eval" / "eval_info.json").read_text())
    [task] = info["per_task"]
    theirs = task["metrics"]  # episode i has seed SEED + i, as ours
    mine = ours(ckpt, tmp_path / "ours", episodes, 500)
    assert [float(s) for s in theirs["successes"]] == mine["success"].tolist()
    assert theirs["sum_rewards"] == pytest.approx(mine["sum_reward"].tolist(), rel=1e-4)
    assert theirs["max_rewards"] == pytest.approx(mine["max_reward"].tolist(), rel=1e-4)
