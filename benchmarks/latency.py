"""Control-step latency of `Policy.act` at batch 1: percentiles, rate, share outside the network.

Each model is deployed as a robot deploys it, `load_policy(ckpt, n_action_steps=1)`, then called
once per control step with a raw camera frame (uint8 (H, W, 3) RGB at `--camera`, 480x640 by
default, which the Policy resizes to the training size), the state and the task; the driving
model also gets the ego history (16 poses of a straight drive at 10 m/s). Frames change from
step to step and the history window is kept, as in a drive. `n_action_steps=1` makes every call
predict: with an action queue most calls only pop a queued action, so these are the figures of
the calls that predict. The driving model is also timed on `predict_trajectory`, what the
drive loop's Agent calls every tick (`vla_lab.runtime.drive`). `--warmup` calls, then `--iters`.

- tiny: the four demo experiments, each trained for one short epoch on its synthetic data
  (`debug=limit`; latency does not depend on the weights' values), checkpoints kept under
  `--work-dir` (delete it to retrain).
- real size (`--real-size`, CUDA only): mobile_vla_kosmos_lstm_lora (Kosmos-2 1.6B, window 8,
  LoRA) and av_smolvla_unicycle (SmolVLM2-500M's first 16 layers + action expert, 512 px) at the
  released architectures with random weights (no model hub is reachable here), on the synthetic
  data's features at the real experiments' image sizes. Targets: >= 30 Hz and >= 20 Hz.

Each call is timed on the wall clock (CUDA synchronised), and so are the module's inference call
inside it (`module.predict_action_chunk`, or `module.predict_trajectory`) and the network alone
inside that (Kosmos-LSTM's `forward`; LeRobot's `policy.predict_action_chunk`, which leaves out
its processors). Kosmos-LSTM's Policy keeps the window's frame features and encodes only the new
frame (`Policy.caches_features`): there module and network are `encode` +
`predict_from_features`. "outside" = 1 - network / call: resizing, the history window, building the
batch, tokenising, normalising, decoding and numpy conversions; target < 10%. "policy" is the
part of it spent in `Policy` itself (1 - module / call). Hz = 1 / mean latency.

    python benchmarks/latency.py [--models ...] [--device auto|cpu|cuda] [--iters 200]
        [--warmup 10] [--real-size] [--threads N] [--autocast bf16] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from contextlib import ExitStack, nullcontext
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import numpy as np
import torch
from hydra.utils import instantiate

from vla_lab import features as ft
from vla_lab.data import datamodule_for
from vla_lab.features import HISTORY_ROT, HISTORY_XYZ
from vla_lab.runtime.policy import Policy, load_policy
from vla_lab.train import train
from vla_lab.utils.config import PROJECT_ROOT, compose_config

DEMOS = ["mobile_vla_demo", "roarm_act_demo", "roarm_smolvla_demo", "av_smolvla_unicycle_demo"]
REAL_SIZE_TARGET_HZ = {"mobile_vla_kosmos_lstm_lora": 30.0, "av_smolvla_unicycle": 20.0}
SHARE_OUTSIDE_TARGET = 0.10
SHORT_RUN = [
    "debug=limit",
    "trainer.max_epochs=1",
    "hardware.num_workers=0",
    "hardware.batch_size=4",
    "print_config=false",
]
TASKS = {
    "mobile_vla": "Navigate around the box on the left side to reach the target",
    "roarm": "Pick up the cube and place it in the bin",
    "av": "Follow the lane",
}
AUTOCAST = {"bf16": torch.bfloat16, "fp16": torch.float16}
HISTORY_SPEED_MPS, HISTORY_DT_S = 10.0, 0.1
# HuggingFaceTB/SmolVLM2-500M-Video-Instruct: SigLIP-B/16 at 512 px, pixel shuffle 4 (64 image
# tokens), SmolLM2-360M as the text model.
SMOLVLM2_500M = {
    "scale_factor": 4,
    "text_config": {
        "model_type": "llama",
        "hidden_size": 960,
        "intermediate_size": 2560,
        "num_hidden_layers": 32,
        "num_attention_heads": 15,
        "num_key_value_heads": 5,
        "head_dim": 64,
        "rms_norm_eps": 1e-5,
        "rope_theta": 100000.0,
        "max_position_embeddings": 8192,
        "vocab_size": 49280,
    },
    "vision_config": {
        "hidden_size": 768,
        "intermediate_size": 3072,
        "num_hidden_layers": 12,
        "num_attention_heads": 12,
        "image_size": 512,
        "patch_size": 16,
    },
}


# ------------------------------------------------------------------------------- policies --


def demo_policy(experiment: str, work_dir: Path, device: torch.device) -> Policy:
    """The demo's policy from a checkpoint of one short training run (trained once, then kept)."""
    run = work_dir / experiment
    ckpt = run / "checkpoints" / "last.ckpt"
    if not ckpt.is_file():
        overrides = [f"experiment={experiment}", *SHORT_RUN, f"paths.log_dir={work_dir / 'logs'}"]
        train(compose_config(overrides, output_dir=str(run)))
    return load_policy(ckpt, device=str(device), n_action_steps=1)


def random_smolvlm2_dir(cache_dir: Path) -> Path:
    """A SmolVLM2-500M directory (config only: SmolVLA builds random weights from it) with the tiny
    SmolVLM's tokenizer, which holds the special image tokens SmolVLA looks up."""
    from transformers import SmolVLMConfig, SmolVLMProcessor

    from vla_lab.models.backbones.smolvlm_tiny import IMAGE_TOKENS, build_tiny_smolvlm

    directory = cache_dir / "smolvlm2_500m_random"
    if not (directory / "config.json").is_file():
        processor = SmolVLMProcessor.from_pretrained(build_tiny_smolvlm(cache_dir))
        processor.save_pretrained(directory)
        tokenizer = processor.tokenizer
        text_ids = {
            "pad_token_id": tokenizer.pad_token_id,
            "bos_token_id": tokenizer.bos_token_id,
            "eos_token_id": tokenizer.eos_token_id,
        }
        SmolVLMConfig(
            image_token_id=tokenizer.convert_tokens_to_ids(IMAGE_TOKENS["image_token"]),
            scale_factor=SMOLVLM2_500M["scale_factor"],
            vocab_size=SMOLVLM2_500M["text_config"]["vocab_size"],
            text_config={**SMOLVLM2_500M["text_config"], **text_ids},
            vision_config=SMOLVLM2_500M["vision_config"],
        ).save_pretrained(directory)
    return directory


def real_size_overrides(experiment: str, cache_dir: Path) -> list[str]:
    """Overrides that build `experiment` offline at its real size on its synthetic twin's data."""
    if experiment == "mobile_vla_kosmos_lstm_lora":
        sys.path.insert(0, str(Path(__file__).parent))
        from train_memory import random_kosmos2_dir  # the memory benchmark's random Kosmos-2

        return [
            "data=mobile_vla_synthetic",
            "data.source.image_size=[224,224]",
            f"backbone.pretrained={random_kosmos2_dir(cache_dir)}",
            "backbone.load_weights=false",
        ]
    if experiment == "av_smolvla_unicycle":
        return [
            "data=av_synthetic",  # the experiment keeps its 288x512 frames and state
            "backbone.pretrained_policy=null",
            f"backbone.vlm_model_name={random_smolvlm2_dir(cache_dir)}",
            "backbone.load_vlm_weights=false",
        ]
    raise ValueError(f"no real-size recipe for {experiment}; known: {list(REAL_SIZE_TARGET_HZ)}")


def real_size_policy(experiment: str, work_dir: Path, device: torch.device) -> Policy:
    """`experiment`'s module built (random weights) and sized by the synthetic data, no training."""
    cache_dir = PROJECT_ROOT / ".cache" / "vla_lab"
    overrides = [
        f"experiment={experiment}",
        *real_size_overrides(experiment, cache_dir),
        "hardware.num_workers=0",
        "print_config=false",
    ]
    cfg = compose_config(overrides, output_dir=str(work_dir / f"{experiment}_real_size"))
    pl.seed_everything(0)
    module = instantiate(cfg.model)
    datamodule = datamodule_for(cfg.data, module)
    module.attach_dataset(datamodule.features, datamodule.stats)
    return Policy(module, device, n_action_steps=1)


# --------------------------------------------------------------------------- observations --


def observations(
    policy: Policy, task: str, camera_hw: tuple[int, int], count: int = 8
) -> list[dict[str, Any]]:
    """`count` observations as a robot delivers them: fresh uint8 frames, state, task, history."""
    rng = np.random.default_rng(0)
    history_xyz = np.zeros((16, 3), dtype=np.float32)
    history_xyz[:, 0] = HISTORY_SPEED_MPS * HISTORY_DT_S * (np.arange(16) - 15)
    history_rot = np.broadcast_to(np.eye(3, dtype=np.float32), (16, 3, 3)).copy()
    out = []
    for _ in range(count):
        observation: dict[str, Any] = {ft.TASK: task}
        for key in policy.camera_keys:
            observation[key] = rng.integers(0, 256, (*camera_hw, 3), dtype=np.uint8)
        if ft.STATE in policy.features:
            shape = policy.features[ft.STATE].shape
            observation[ft.STATE] = rng.standard_normal(shape).astype(np.float32)
        if HISTORY_XYZ in policy.features:
            observation[HISTORY_XYZ], observation[HISTORY_ROT] = history_xyz, history_rot
        out.append(observation)
    return out


# ---------------------------------------------------------------------------------- timing --


class CallTimer:
    """Times every call of `owner.<name>` (an instance-level wrapper, removed on exit), with
    CUDA synchronised on both sides so queued kernels count where they were launched."""

    def __init__(self, owner: Any, name: str, device: torch.device) -> None:
        if name in vars(owner):
            raise ValueError(f"{type(owner).__name__}.{name} is already replaced on the instance")
        self.owner, self.name = owner, name
        self.sync = torch.cuda.synchronize if device.type == "cuda" else lambda: None
        self.seconds: list[float] = []

    def __enter__(self) -> CallTimer:
        inner = getattr(self.owner, self.name)

        def timed(*args: Any, **kwargs: Any) -> Any:
            self.sync()
            start = time.perf_counter()
            result = inner(*args, **kwargs)
            self.sync()
            self.seconds.append(time.perf_counter() - start)
            return result

        setattr(self.owner, self.name, timed)
        return self

    def __exit__(self, *exc: object) -> None:
        delattr(self.owner, self.name)


def measure(
    policy: Policy, call: str, batch: list[dict], args: argparse.Namespace, device: torch.device
) -> dict[str, float]:
    """Latency of `policy.<call>` over `args.iters` calls after `args.warmup`, and where it goes."""
    module = policy.module
    step = getattr(policy, call)
    module_call = "predict_trajectory" if call == "predict_trajectory" else "predict_action_chunk"
    lerobot = getattr(module, "policy", None)
    if policy.caches_features and call == "act":  # the new frames' features, then the head
        module_calls = network_calls = [(module, "encode"), (module, "predict_from_features")]
    else:
        module_calls = [(module, module_call)]
        network_calls = [(lerobot, "predict_action_chunk") if lerobot else (module, "forward")]
    sync = torch.cuda.synchronize if device.type == "cuda" else lambda: None
    dtype = AUTOCAST.get(args.autocast)
    autocast = torch.autocast(device.type, dtype=dtype) if dtype else nullcontext()

    policy.reset()
    with autocast:
        for i in range(args.warmup):
            step(batch[i % len(batch)])
        totals = []
        with ExitStack() as timers:
            inside = [timers.enter_context(CallTimer(*c, device)) for c in module_calls]
            net = inside
            if network_calls != module_calls:
                net = [timers.enter_context(CallTimer(*c, device)) for c in network_calls]
            for i in range(args.iters):
                sync()
                start = time.perf_counter()
                step(batch[(args.warmup + i) % len(batch)])
                sync()
                totals.append(time.perf_counter() - start)
    predictions = len(inside[-1].seconds)
    if predictions != args.iters:
        raise RuntimeError(
            f"{call}: {predictions} predictions in {args.iters} steps; every step should predict "
            "once (n_action_steps=1)"
        )
    inside_s = sum(sum(timer.seconds) for timer in inside)
    net_s = sum(sum(timer.seconds) for timer in net)
    total = np.asarray(totals)
    p50, p95, p99 = np.percentile(total, [50, 95, 99]) * 1e3
    return {
        "p50_ms": float(p50),
        "p95_ms": float(p95),
        "p99_ms": float(p99),
        "mean_ms": float(total.mean() * 1e3),
        "hz": float(1.0 / total.mean()),
        "share_outside": float(1.0 - net_s / total.sum()),
        "share_in_policy": float(1.0 - inside_s / total.sum()),
    }


# ------------------------------------------------------------------------------- report --


def device_description(device: torch.device) -> str:
    if device.type == "cuda":
        return f"cuda ({torch.cuda.get_device_name(device)})"
    return f"cpu ({os.cpu_count()} cores)"


def print_table(rows: list[dict]) -> None:
    print(
        f"{'model':30}{'size':>5}{'device':>7}  {'call':19}{'p50 ms':>8}{'p95 ms':>8}"
        f"{'p99 ms':>8}{'Hz':>7}{'outside':>9}{'policy':>8}  target"
    )
    for r in rows:
        outside = f"{r['share_outside']:.1%}" + (
            "!" if r["share_outside"] >= SHARE_OUTSIDE_TARGET else " "
        )
        target = "-"
        if r["target_hz"] is not None:
            verdict = "pass" if r["hz"] >= r["target_hz"] else "FAIL"
            target = f">= {r['target_hz']:.0f} Hz {verdict}"
        print(
            f"{r['model']:30}{r['size']:>5}{r['device']:>7}  {r['call']:19}{r['p50_ms']:8.1f}"
            f"{r['p95_ms']:8.1f}{r['p99_ms']:8.1f}{r['hz']:7.1f}{outside:>9}"
            f"{r['share_in_policy']:8.1%}  {target}"
        )


def task_of(experiment: str) -> str:
    return next(text for prefix, text in TASKS.items() if experiment.startswith(prefix))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=DEMOS, choices=DEMOS)
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    parser.add_argument("--iters", type=int, default=200)
    parser.add_argument("--warmup", type=int, default=10, help="> the history window (8)")
    parser.add_argument("--camera", default="480x640", help="raw frame size, HxW")
    parser.add_argument("--real-size", action="store_true", help="also the real sizes (CUDA)")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: as is)")
    parser.add_argument("--autocast", choices=sorted(AUTOCAST), default=None)
    parser.add_argument("--work-dir", type=Path, default=PROJECT_ROOT / ".cache" / "latency")
    parser.add_argument("--json", type=Path, default=None, help="write the rows here")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.device == "auto":
        args.device = "cuda" if torch.cuda.is_available() else "cpu"
    if args.device == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda: no CUDA device here")
    device = torch.device(args.device)
    camera_hw = tuple(int(side) for side in args.camera.lower().split("x"))

    runs = [(experiment, "tiny", None) for experiment in args.models]
    if args.real_size and device.type == "cuda":
        runs += [(e, "real", hz) for e, hz in REAL_SIZE_TARGET_HZ.items()]
    rows = []
    for experiment, size, target_hz in runs:
        if size == "tiny":
            policy = demo_policy(experiment, args.work_dir, device)
        else:
            policy = real_size_policy(experiment, args.work_dir, device)
        batch = observations(policy, task_of(experiment), camera_hw)
        calls = ["act"]
        if hasattr(policy.module, "predict_trajectory"):
            calls.append("predict_trajectory")
        for call in calls:
            figures = measure(policy, call, batch, args, device)
            rows.append(
                {"model": experiment, "size": size, "device": device.type, "call": call}
                | figures
                | {"target_hz": target_hz}
            )
        del policy
        if device.type == "cuda":
            torch.cuda.empty_cache()

    print(
        f"\nPolicy latency at batch 1 on {device_description(device)}, torch {torch.__version__}, "
        f"torch threads {torch.get_num_threads()}, autocast {args.autocast or 'off'}; frames "
        f"{camera_hw[0]}x{camera_hw[1]} uint8, n_action_steps=1 (every call predicts); "
        f"{args.iters} calls after {args.warmup} warm-up. Hz = 1 / mean; outside = share of the "
        f"call outside the network (target < {SHARE_OUTSIDE_TARGET:.0%}, ! above); policy = the "
        "part of it in Policy itself."
    )
    print_table(rows)
    if args.real_size and device.type != "cuda":
        print(f"real size skipped: GPU only, and {device_description(device)} is not a GPU")
    if args.json:
        meta = {
            "device": device_description(device),
            "torch": torch.__version__,
            "threads": torch.get_num_threads(),
            "autocast": args.autocast,
            "camera_hw": list(camera_hw),
            "iters": args.iters,
            "warmup": args.warmup,
            "n_action_steps": 1,
        }
        args.json.write_text(json.dumps({**meta, "rows": rows}, indent=2) + "\n")


if __name__ == "__main__":
    main()
