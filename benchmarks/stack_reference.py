"""Reference outputs of the software stack (Python, torch, LeRobot, transformers) that a version
move must not change, recorded on one stack and compared on another.

Entries, each on fixed seeded inputs built here (no dataset but the unicycle's, so a changed data
writer or video decoder cannot hide in the others):
- `kosmos2_tiny.*`: the tiny Kosmos-2 built from its recipe (tokenizer and seeded weights): token
  ids of three instructions (exact), the projected image embeddings, the text model's hidden
  states alone, and our backbone's fused feature at the action slot;
- `act_demo.*`, `smolvla_demo.*`: the policies as `roarm_act_demo` / `roarm_smolvla_demo` build
  them (their model, backbone and head config; the demo data's shapes and fixed stats), fresh
  from a fixed seed: our masked loss and LeRobot's own loss on one fixed batch in training mode,
  and the predicted action chunk in eval mode. SmolVLA's flow noise and time are fixed tensors
  (patched `sample_noise` / `sample_time`), ACT's VAE draws after a fixed seed.
- `smolvla_unicycle_demo.*`: the driving agent as `av_smolvla_unicycle_demo` builds it, likewise
  (flow and trajectory losses; the sampled controls and trajectory in eval mode).
Tensors are summarised (shape, mean, std, first 8 values), scalars kept as they are. All four
sections take about 2.5 min on 2 busy CPU cores, 1.5 of them the unicycle's clips; `--sections`
runs some (a comparison then covers those only).

The demos' final validation metrics are not recomputed here (training them takes minutes each):
they come from the closing notes table of the run that recorded this file.

    python benchmarks/stack_reference.py    # -> benchmarks/reference/stack_<py>_<lerobot>_<tf>.json
    python benchmarks/stack_reference.py --out ref.json [--sections kosmos2 act smolvla]
    # old vs new, one row per entry; exits 1 when an entry differs beyond --atol (default 1e-5):
    python benchmarks/stack_reference.py \
        --compare benchmarks/reference/stack_3.11_0.4.4_4.57.6.json [--atol 1e-5]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import platform
import sys
import tempfile
import time
from pathlib import Path

import torch

REFERENCE_DIR = Path(__file__).resolve().parent / "reference"
SEED = 0
FIRST = 8
B = 2
TASKS = ["Navigate around the box on the left", "Pick up the red cube", "Stop."]


def stack() -> dict[str, str]:
    """The versions this run measured."""
    import lerobot
    import tokenizers
    import transformers

    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "lerobot": lerobot.__version__,
        "transformers": transformers.__version__,
        "tokenizers": tokenizers.__version__,
    }


def default_out() -> Path:
    versions = stack()
    python = ".".join(versions["python"].split(".")[:2])
    name = f"stack_{python}_{versions['lerobot']}_{versions['transformers']}.json"
    return REFERENCE_DIR / name


def summary(value) -> dict:
    """A tensor as shape, mean, std and its first values; a number as itself."""
    if not torch.is_tensor(value):
        return {"value": float(value)}
    flat = value.detach().double().flatten()
    return {
        "shape": list(value.shape),
        "mean": flat.mean().item(),
        "std": flat.std().item() if flat.numel() > 1 else 0.0,
        "first": flat[:FIRST].tolist(),
    }


# ---- Kosmos-2 ---------------------------------------------------------------------------------
def kosmos2_entries(cache_dir: Path) -> dict[str, dict]:
    from vla_lab.models.backbones.kosmos2 import Kosmos2Backbone

    backbone = Kosmos2Backbone("unused", tiny=True, cache_dir=str(cache_dir)).eval()
    text = backbone.tokenize(TASKS)
    gen = torch.Generator().manual_seed(SEED)
    pixels = torch.rand(len(TASKS), 3, 64, 64, generator=gen)
    action_token = torch.randn(backbone.hidden_size, generator=gen)
    model = backbone.model
    with torch.no_grad():
        image = model.get_image_features(backbone.preprocess_images(pixels))
        image = image if torch.is_tensor(image) else image.pooler_output  # transformers 5
        words = model.text_model(
            input_ids=text["input_ids"], attention_mask=text["attention_mask"]
        ).last_hidden_state
        fused = backbone(pixels, text, action_token)
    return {
        "kosmos2_tiny.input_ids": {"exact": text["input_ids"].tolist()},
        "kosmos2_tiny.image_embeds": summary(image),
        "kosmos2_tiny.text_hidden_states": summary(words),
        "kosmos2_tiny.fused_feature": summary(fused),
    }


# ---- LeRobot policies -------------------------------------------------------------------------
def demo(experiment: str, cache_dir: Path, overrides: tuple[str, ...] = ()):
    """The demo's composed config and its model, instantiated from a fixed seed (no data yet)."""
    from hydra.utils import instantiate

    from vla_lab.utils.config import compose_config

    cfg = compose_config(
        [
            f"experiment={experiment}",
            f"paths.cache_dir={cache_dir}",
            f"paths.data_dir={cache_dir / 'data'}",
            f"paths.log_dir={cache_dir / 'outputs'}",
            *overrides,
        ],
        output_dir=str(cache_dir / "run"),
    )
    torch.manual_seed(SEED)
    return cfg, instantiate(cfg.model)


def arm_features_stats(joints: int = 6, size: int = 64):
    """The shapes of `lerobot_synthetic` (one 64x64 camera, 6 joints), with fixed stats."""
    from vla_lab.data.synthetic.lerobot import CAMERA
    from vla_lab.features import Feature

    features = {
        CAMERA: Feature("float32", (3, size, size)),
        "observation.state": Feature("float32", (joints,)),
        "action": Feature("float32", (joints,)),
        "task": Feature("string", ()),
    }
    dims = {"mean": 0.1, "std": 0.5, "min": -1.0, "max": 1.0, "q01": -0.9, "q99": 0.9}
    stats = {k: {s: [v] * joints for s, v in dims.items()} for k in ("observation.state", "action")}
    return features, stats


def arm_batch(chunk_size: int, joints: int = 6, size: int = 64) -> dict:
    from vla_lab.data.synthetic.lerobot import CAMERA

    gen = torch.Generator().manual_seed(SEED + 1)
    pad = torch.zeros(B, chunk_size, dtype=torch.bool)
    pad[0, chunk_size // 2 :] = True
    return {
        CAMERA: torch.rand(B, 3, size, size, generator=gen),
        "observation.state": torch.randn(B, joints, generator=gen),
        "action": torch.randn(B, chunk_size, joints, generator=gen),
        "action_is_pad": pad,
        "task": ["Pick up the red cube", "Pick up the blue cube"][:B],
    }


@contextlib.contextmanager
def fixed_flow(policy, chunk_size: int):
    """SmolVLA's flow noise and time as fixed tensors, whatever order LeRobot draws them in."""
    model = policy.model
    gen = torch.Generator().manual_seed(SEED + 2)
    noise = torch.randn(B, chunk_size, policy.config.max_action_dim, generator=gen)
    times = torch.rand(B, generator=gen) * 0.999 + 0.001
    saved = model.sample_noise, model.sample_time
    model.sample_noise = lambda shape, device: noise[: shape[0]].to(device)
    model.sample_time = lambda n, device: times[:n].to(device)
    try:
        yield
    finally:
        model.sample_noise, model.sample_time = saved


def loss_entries(prefix: str, module, batch: dict, fixed) -> dict[str, dict]:
    """Masked and LeRobot losses (training mode) and the predicted chunk (eval mode)."""
    out = {}
    module.train()
    for mode in ("masked", "lerobot"):
        module.loss_mode = mode
        torch.manual_seed(SEED)
        with torch.no_grad(), fixed():
            step = module.model_step(batch)
        out[f"{prefix}.loss_{mode}"] = summary(step.loss)
        for name, term in sorted(step.terms.items()):
            out[f"{prefix}.loss_{mode}.{name}"] = summary(term)
    module.loss_mode = "masked"
    module.eval()
    torch.manual_seed(SEED)
    with torch.no_grad(), fixed():
        out[f"{prefix}.action_chunk"] = summary(module.predict_action_chunk(batch))
    return out


def act_entries(cache_dir: Path) -> dict[str, dict]:
    _, module = demo("roarm_act_demo", cache_dir)
    module.attach_dataset(*arm_features_stats())
    return loss_entries("act_demo", module, arm_batch(module.chunk_size), contextlib.nullcontext)


def smolvla_entries(cache_dir: Path) -> dict[str, dict]:
    _, module = demo("roarm_smolvla_demo", cache_dir)
    module.attach_dataset(*arm_features_stats())
    batch = arm_batch(module.chunk_size)
    return loss_entries(
        "smolvla_demo", module, batch, lambda: fixed_flow(module.policy, module.chunk_size)
    )


def unicycle_entries(cache_dir: Path) -> dict[str, dict]:
    """The driving agent on one batch of its synthetic clips (the av_synthetic writer, seeded)."""
    from vla_lab.data import datamodule_for

    overrides = ("hardware.num_workers=0", f"hardware.batch_size={B}")
    cfg, module = demo("av_smolvla_unicycle_demo", cache_dir, overrides)
    datamodule = datamodule_for(cfg.data, module)
    module.attach_dataset(datamodule.features, datamodule.stats)
    batch = next(iter(datamodule.dataloader("val")))
    out = loss_entries(
        "smolvla_unicycle_demo",
        module,
        batch,
        lambda: fixed_flow(module.policy, module.chunk_size),
    )
    with torch.no_grad(), fixed_flow(module.policy, module.chunk_size):
        trajectory = module.predict_trajectory(batch)
    out["smolvla_unicycle_demo.future_xyz"] = summary(trajectory["future_xyz"])
    return out


SECTIONS = {
    "kosmos2": kosmos2_entries,
    "act": act_entries,
    "smolvla": smolvla_entries,
    "smolvla_unicycle": unicycle_entries,  # most of its ~90 s: writing the synthetic clips
}
PREFIXES = {
    "kosmos2": "kosmos2_tiny.",
    "act": "act_demo.",
    "smolvla": "smolvla_demo.",
    "smolvla_unicycle": "smolvla_unicycle_demo.",
}


def record(sections: list[str]) -> dict:
    torch.manual_seed(SEED)
    entries: dict[str, dict] = {}
    seconds: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name in sections:
            start = time.perf_counter()
            entries.update(SECTIONS[name](Path(tmp)))
            seconds[name] = round(time.perf_counter() - start, 1)
    return {"stack": stack(), "seconds": seconds, "entries": entries}


# ---- comparison -------------------------------------------------------------------------------
def numbers(entry: dict) -> list[float]:
    """Every number an entry holds, in a fixed order (shape included)."""
    out: list[float] = []

    def walk(value) -> None:
        if isinstance(value, dict):
            for key in sorted(value):
                walk(value[key])
        elif isinstance(value, list):
            for item in value:
                walk(item)
        else:
            out.append(float(value))

    walk(entry)
    return out


def difference(old: dict | None, new: dict | None) -> float:
    """Max absolute difference of two entries; inf when one is missing or their shapes differ."""
    if old is None or new is None or old.get("shape") != new.get("shape"):
        return math.inf
    if "exact" in old:
        return 0.0 if old == new else math.inf
    a, b = numbers(old), numbers(new)
    if len(a) != len(b):
        return math.inf
    return max((abs(x - y) for x, y in zip(a, b, strict=True)), default=0.0)


def brief(entry: dict | None) -> str:
    if entry is None:
        return "missing"
    if "exact" in entry:
        return "ids " + str(entry["exact"])[:24] + "..."
    if "value" in entry:
        return f"{entry['value']:.6g}"
    return f"{entry['shape']} mean {entry['mean']:.6g}"


def compare(old: dict, new: dict, atol: float) -> bool:
    """Print old vs new per entry; True when every entry is within `atol`."""
    print(f"old: {old['stack']}\nnew: {new['stack']}\natol: {atol:g}\n")
    prefixes = tuple(PREFIXES[section] for section in new["seconds"])  # the sections run now
    names = sorted(n for n in set(old["entries"]) | set(new["entries"]) if n.startswith(prefixes))
    width = max(len(n) for n in names)
    print(f"{'entry':<{width}}  {'old':<28}  {'new':<28}  {'max |diff|':>10}")
    ok = True
    for name in names:
        a, b = old["entries"].get(name), new["entries"].get(name)
        diff = difference(a, b)
        bad = not diff <= atol
        ok &= not bad
        print(
            f"{name:<{width}}  {brief(a):<28}  {brief(b):<28}  {diff:>10.3g}"
            + ("  BEYOND ATOL" if bad else "")
        )
    return ok


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, help="JSON to write (default: by stack versions)")
    parser.add_argument("--compare", type=Path, help="a recorded JSON to compare against")
    parser.add_argument("--atol", type=float, default=1e-5, help="largest allowed |difference|")
    parser.add_argument(
        "--sections", nargs="+", choices=list(SECTIONS), default=list(SECTIONS), metavar="NAME"
    )
    args = parser.parse_args(argv)
    torch.set_num_threads(min(torch.get_num_threads(), 2))
    new = record(args.sections)
    if args.compare is None or args.out is not None:
        out = args.out or default_out()
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(new, indent=1) + "\n")
        print(f"wrote {out} ({new['seconds']} s)")
    if args.compare is None:
        return 0
    return 0 if compare(json.loads(args.compare.read_text()), new, args.atol) else 1


if __name__ == "__main__":
    sys.exit(main())
