"""Look at the data before training on it: a PNG grid of samples and a text summary.

Most data bugs users hit (swapped colours, left/right confusion, wrong action units) are obvious
in a picture of image + instruction + actions and invisible in a loss curve. The grid shows, per
sample, the current frame, its instruction and the action chunk drawn as a top-down path from the
bottom centre (up = +linear_x, left = +linear_y; the first step in yellow, later ones in cyan,
padded steps omitted).

    python -m vla_lab.data.preview data=<name> [data.source.root=...] [out=preview.png] [n=16]
        [split=all|train|val]

takes the same overrides as train.py (`conf/preview.yaml` is train's config plus `out`, `n`,
`split`), logs the features, stats and split, and writes the grid.
"""

from __future__ import annotations

import textwrap
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from hydra.utils import instantiate
from omegaconf import DictConfig
from PIL import Image, ImageDraw, ImageFont

from vla_lab.features import ACTION, ACTION_IS_PAD, EPISODE_INDEX, FRAME_INDEX, TASK, image_keys
from vla_lab.utils.config import hydra_app
from vla_lab.utils.io import atomic_write
from vla_lab.utils.logging import get_logger

log = get_logger(__name__)

TILE = 224
TEXT_HEIGHT = 44
COLUMNS = 4
PREVIEW_CHUNK = 10  # action steps drawn per sample


def write_preview(dataset: Any, out_png: str | Path, n: int = 16) -> Path:
    """Write a grid of ``n`` samples spread evenly over ``dataset`` to ``out_png`` (atomically)."""
    if len(dataset) == 0:
        raise ValueError("cannot preview an empty dataset")
    indices = np.linspace(0, len(dataset) - 1, num=min(n, len(dataset))).round().astype(int)
    deltas = getattr(dataset, "action_delta_indices", None)
    tiles = [_tile(dataset[int(i)], deltas) for i in indices]
    rows = -(-len(tiles) // COLUMNS)
    grid = Image.new("RGB", (COLUMNS * TILE, rows * (TILE + TEXT_HEIGHT)), "white")
    for k, tile in enumerate(tiles):
        grid.paste(tile, ((k % COLUMNS) * TILE, (k // COLUMNS) * (TILE + TEXT_HEIGHT)))
    return atomic_write(out_png, lambda tmp: grid.save(tmp, format="PNG"))


def _tile(sample: dict[str, Any], deltas: Sequence[int] | None) -> Image.Image:
    frames = sample[image_keys(sample)[0]]
    frame = frames[-1] if frames.ndim == 4 else frames  # the current frame ends the window
    pixels = (frame.clamp(0, 1).permute(1, 2, 0).numpy() * 255).astype(np.uint8)
    tile = Image.new("RGB", (TILE, TILE + TEXT_HEIGHT), "white")
    tile.paste(Image.fromarray(pixels).resize((TILE, TILE), Image.BILINEAR))
    draw = ImageDraw.Draw(tile)
    _draw_actions(draw, sample, deltas)
    font = label_font()
    caption = f"ep {int(sample.get(EPISODE_INDEX, -1))} t {int(sample.get(FRAME_INDEX, -1))}: "
    lines = textwrap.wrap(caption + str(sample.get(TASK, "")), width=38)[:3]
    draw.multiline_text((3, TILE + 1), "\n".join(lines), fill="black", font=font, spacing=1)
    return tile


def _draw_actions(
    draw: ImageDraw.ImageDraw, sample: dict[str, Any], deltas: Sequence[int] | None
) -> None:
    if ACTION not in sample:
        return
    actions = torch.as_tensor(sample[ACTION])
    actions = actions.reshape(-1, actions.shape[-1])
    pad = torch.as_tensor(sample.get(ACTION_IS_PAD, torch.zeros(len(actions), dtype=torch.bool)))
    if deltas is None:
        future = list(range(len(actions)))
    else:
        future = [i for i, d in enumerate(deltas) if d >= 0]
    scale = TILE / 12 / max(1.0, float(actions[:, :2].abs().max()))
    x, y = TILE / 2, TILE - 8
    for step, i in enumerate(future):
        if bool(pad[i]):
            continue
        forward = float(actions[i, 0])
        lateral = float(actions[i, 1]) if actions.shape[1] > 1 else 0.0
        nx, ny = x - lateral * scale, y - forward * scale
        colour = "yellow" if step == 0 else "cyan"
        draw.line([(x, y), (nx, ny)], fill=colour, width=3 if step == 0 else 2)
        draw.ellipse([nx - 2, ny - 2, nx + 2, ny + 2], fill=colour)
        x, y = nx, ny


def label_font() -> ImageFont.ImageFont:
    """The small font of labels drawn on images (previews, infer videos)."""
    try:
        return ImageFont.load_default(size=11)
    except TypeError:  # Pillow < 10.1 has no size argument
        return ImageFont.load_default()


def describe(data: Any) -> str:
    """A text summary: features, stats and split of a datamodule, or length and sample shapes of
    a dataset."""
    lines: list[str] = []
    if hasattr(data, "setup") and hasattr(data, "features"):
        data.setup()
        lines.append(f"source: {data.source!r}")
        lines.append("features:")
        for key, feature in data.features.items():
            names = f" {list(feature.names)}" if feature.names else ""
            lines.append(f"  {key}: {feature.dtype} {list(feature.shape)}{names}")
        lines.append("stats (train split):")
        for key, stats in data.stats.items():
            for name, values in stats.items():
                lines.append(f"  {key}.{name}: {np.round(values, 4).tolist()}")
        lines.append(f"split: {data.split_summary}")
        lines.append(f"windows: train {len(data.train_dataset)}, val {len(data.val_dataset)}")
        dataset = data.train_dataset
    else:
        dataset = data
    lines.append(f"{type(dataset).__name__}: {len(dataset)} samples; sample 0:")
    if len(dataset):
        for key, value in dataset[0].items():
            if isinstance(value, torch.Tensor):
                lines.append(f"  {key}: {value.dtype} {list(value.shape)}")
            else:
                lines.append(f"  {key}: {value!r}")
    return "\n".join(lines)


def preview(cfg: DictConfig) -> Path:
    """The job of `python -m vla_lab.data.preview` (`conf/preview.yaml`): log `describe` of
    `cfg.data` and write a grid of `cfg.n` samples of `cfg.split` to `cfg.out`."""
    datamodule = instantiate(cfg.data, action_delta_indices=list(range(PREVIEW_CHUNK)))
    log.info("%s", describe(datamodule))
    path = write_preview(datamodule.dataset(cfg.split), cfg.out, n=int(cfg.n))
    log.info("Wrote %s", path)
    return path


def main() -> None:
    """`python -m vla_lab.data.preview key=value ...` (`--help` lists the keys)."""
    hydra_app(preview, "preview")()


if __name__ == "__main__":
    main()
