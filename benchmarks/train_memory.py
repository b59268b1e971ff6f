"""Peak accelerator memory and step time of one training step of the real Mobile VLA experiments.

For each experiment x hardware config, the config is composed as `train.py` would compose it and
the model is built at the real Kosmos-2 size (1.6B). Weights are random unless `--kosmos2-dir`
points at a downloaded microsoft/kosmos-2-patch14-224: memory and time do not depend on their
values, and the machines here reach no model hub. One step = forward + backward + optimizer step
at the hardware's batch size, precision and gradient checkpointing, on a synthetic batch of
224x224 windows. The seed's budget for `hardware=jetson_orin` (LoRA, fp16, batch 2) is 14 GB.

    python benchmarks/train_memory.py [--hardware rtx4090 jetson_orin ...] [--steps 3]

Needs a CUDA GPU for real figures; `--device cpu --tiny` only checks that the script runs.
"""

from __future__ import annotations

import argparse
import statistics
import time
from contextlib import nullcontext
from pathlib import Path

import torch
from hydra.utils import instantiate

from vla_lab.utils.config import PROJECT_ROOT, compose_config

EXPERIMENTS = ["mobile_vla_kosmos_lstm_lora", "mobile_vla_kosmos_lstm_full"]
HARDWARE = ["rtx4090", "gpu16gb", "jetson_orin", "a100", "h100"]
JETSON_BUDGET_GB = 14.0
AUTOCAST = {"bf16-mixed": torch.bfloat16, "16-mixed": torch.float16}


def random_kosmos2_dir(cache_dir: Path) -> Path:
    """A Kosmos-2 directory with the released architecture (config only) and a local tokenizer."""
    from transformers import CLIPImageProcessor, Kosmos2Config, Kosmos2Processor

    from vla_lab.models.backbones.kosmos2_tiny import build_tiny_kosmos2

    directory = cache_dir / "kosmos2_full_size_random"
    if not (directory / "config.json").is_file():
        tiny = Kosmos2Processor.from_pretrained(build_tiny_kosmos2(cache_dir))
        images = CLIPImageProcessor(size={"shortest_edge": 224}, crop_size=224)
        Kosmos2Processor(images, tiny.tokenizer, num_patch_index_tokens=16).save_pretrained(
            directory
        )
        Kosmos2Config().save_pretrained(directory)  # the defaults are kosmos-2-patch14-224's
    return directory


def synthetic_batch(cfg, device: torch.device) -> dict:
    batch_size = cfg.hardware.batch_size
    window, chunk = cfg.model.window_size, cfg.model.chunk_size
    steps = window + chunk - 1
    return {
        "observation.images.front": torch.rand(batch_size, window, 3, 224, 224, device=device),
        "observation.images.front_is_pad": torch.zeros(batch_size, window, dtype=torch.bool),
        "action": torch.rand(batch_size, steps, cfg.model.action_dim, device=device) * 2 - 1,
        "action_is_pad": torch.zeros(batch_size, steps, dtype=torch.bool, device=device),
        "task": ["Navigate around the box on the left"] * batch_size,
    }


def measure(experiment: str, hardware: str, args: argparse.Namespace) -> dict:
    backbone = ["backbone=kosmos2_tiny"] if args.tiny else [f"backbone.pretrained={args.kosmos2}"]
    weights = [] if args.tiny or args.kosmos2_dir else ["backbone.load_weights=false"]
    cfg = compose_config(
        [f"experiment={experiment}", f"hardware={hardware}", *backbone, *weights],
        output_dir=str(args.cache_dir / "bench"),
    )
    device = torch.device(args.device)
    model = instantiate(cfg.model).to(device).train()
    batch = synthetic_batch(cfg, device)
    batch["observation.images.front_is_pad"] = batch["observation.images.front_is_pad"].to(device)
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = instantiate(cfg.model.optimizer)(params=trainable)
    dtype = AUTOCAST.get(cfg.trainer.precision)
    # CPU (smoke test only) has no fp16 LSTM kernel: run it in fp32.
    use_autocast = dtype is not None and device.type == "cuda"
    autocast = torch.autocast(device.type, dtype=dtype) if use_autocast else nullcontext()

    def step() -> None:
        with autocast:
            loss = model.model_step(batch).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    step()  # warm-up: allocator, kernels, optimizer state
    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    times = []
    for _ in range(args.steps):
        start = time.perf_counter()
        step()
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    peak = torch.cuda.max_memory_allocated() / 2**30 if device.type == "cuda" else float("nan")
    counts = model.parameter_counts()
    return {
        "experiment": experiment,
        "hardware": hardware,
        "precision": cfg.trainer.precision,
        "batch": cfg.hardware.batch_size,
        "ckpt": cfg.hardware.gradient_checkpointing,
        "trainable_M": counts["params/trainable"] / 1e6,
        "peak_GB": peak,
        "step_s": statistics.median(times),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--experiments", nargs="+", default=EXPERIMENTS)
    parser.add_argument("--hardware", nargs="+", default=HARDWARE)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--kosmos2-dir", type=Path, default=None, help="a local Kosmos-2 dir")
    parser.add_argument("--tiny", action="store_true", help="tiny backbone: a smoke test only")
    parser.add_argument("--cache-dir", type=Path, default=PROJECT_ROOT / ".cache" / "vla_lab")
    args = parser.parse_args()
    if args.device == "cpu" and not args.tiny:
        parser.error("no CUDA device: real-size figures need a GPU (use --tiny for a smoke test)")
    args.kosmos2 = args.kosmos2_dir or random_kosmos2_dir(args.cache_dir)

    rows = []
    for experiment in args.experiments:
        for hardware in args.hardware:
            rows.append(measure(experiment, hardware, args))
            if torch.cuda.is_available():
                torch.cuda.empty_cache()  # the last model is gone: start the next one clean
    print(
        f"{'experiment':32} {'hardware':12} {'precision':10} {'batch':>5} {'ckpt':>5} "
        f"{'train M':>8} {'peak GB':>8} {'step s':>7}"
    )
    for r in rows:
        print(
            f"{r['experiment']:32} {r['hardware']:12} {r['precision']:10} {r['batch']:>5} "
            f"{r['ckpt']!s:>5} {r['trainable_M']:8.1f} {r['peak_GB']:8.2f} {r['step_s']:7.3f}"
        )
    for r in rows:
        if r["hardware"] == "jetson_orin" and r["experiment"].endswith("lora"):
            print(
                f"jetson_orin LoRA peak / {JETSON_BUDGET_GB} GB budget: "
                f"{r['peak_GB'] / JETSON_BUDGET_GB:.2f}"
            )


if __name__ == "__main__":
    main()
