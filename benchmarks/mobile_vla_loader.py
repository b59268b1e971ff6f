"""Windows per second of the Mobile VLA training loader vs a naive loader, measured in one run.

Both loaders serve the same windows (window 8 = observation deltas -7..0, chunk 10 = action deltas
-7..9, 224x224 RGB float images) through the same DataLoader settings (2 workers, batch 8,
shuffled, persistent workers). The naive loader is what people write first: open the .h5 file for
every item, read each frame of the window on its own, convert BGR->RGB, resize. Ours keeps
per-worker handles, reads a window's missing frames as one slice and caches resized frames per
episode.

Epoch 1 is the cold-cache figure (every frame decoded once per worker); later epochs show the cache.

    python benchmarks/mobile_vla_loader.py                     # 480x640 frames, temp dir
    python benchmarks/mobile_vla_loader.py --height 720 --width 1280 --episodes 8
"""

from __future__ import annotations

import argparse
import logging
import tempfile
import time
from pathlib import Path

import h5py
import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset

from vla_lab.data.datamodule import VLADataModule
from vla_lab.data.mobile_vla.source import MobileVLAEpisodes
from vla_lab.data.synthetic.mobile_vla import write_synthetic_episodes

OBSERVATION_DELTAS = list(range(-7, 1))
ACTION_DELTAS = list(range(-7, 10))


class NaiveWindows(Dataset):
    """The baseline: no handle reuse, no cache, one h5 read per frame."""

    def __init__(self, paths: list[str], lengths: list[int], image_size: int) -> None:
        self.items = [(p, t) for p, n in zip(paths, lengths, strict=True) for t in range(n)]
        self.image_size = image_size

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> dict:
        path, t = self.items[index]
        with h5py.File(path, "r") as file:
            images, actions = file["images"], file["actions"][()]
            last = len(actions) - 1
            frames = []
            for delta in OBSERVATION_DELTAS:
                frame = images[min(max(t + delta, 0), last)][..., ::-1]
                frame = Image.fromarray(np.ascontiguousarray(frame))
                frame = frame.resize((self.image_size, self.image_size), Image.BILINEAR)
                frames.append(torch.from_numpy(np.array(frame)).permute(2, 0, 1))
        at = np.array([t + d for d in ACTION_DELTAS])
        pad = (at < 0) | (at > last)
        chunk = actions[np.clip(at, 0, last)]
        chunk[pad] = 0
        return {
            "observation.images.front": torch.stack(frames).float() / 255,
            "action": torch.from_numpy(chunk),
            "action_is_pad": torch.from_numpy(pad),
        }


def windows_per_second(loader: DataLoader, epochs: int) -> list[float]:
    """Rate per epoch; the first includes worker start-up, as a training run's first epoch does."""
    rates = []
    for _ in range(epochs):
        start, count = time.perf_counter(), 0
        for batch in loader:
            count += len(batch["action"])
        rates.append(count / (time.perf_counter() - start))
    return rates


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", help="episode dir (written if empty); default: a temp dir")
    parser.add_argument("--height", type=int, default=480)
    parser.add_argument("--width", type=int, default=640)
    parser.add_argument("--episodes", type=int, default=12)
    parser.add_argument("--frames", type=int, default=18)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--image-size", type=int, default=224)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(args.root or tmp)
        if not any(root.glob("*.h5")):
            start = time.perf_counter()
            write_synthetic_episodes(
                root, args.episodes, args.frames, args.height, args.width, short_fraction=0.0
            )
            print(
                f"wrote {args.episodes} episodes of {args.frames} frames "
                f"{args.height}x{args.width} in {time.perf_counter() - start:.0f} s"
            )
        source = MobileVLAEpisodes(str(root), image_size=[args.image_size] * 2)
        datamodule = VLADataModule(
            source,
            split={"val_fraction": 0.0, "seed": 0, "stratify_by": "scenario"},
            batch_size=args.batch_size,
            num_workers=args.workers,
            observation_delta_indices=OBSERVATION_DELTAS,
            action_delta_indices=ACTION_DELTAS,
        )
        datamodule.setup()
        episodes = datamodule.train_episodes
        naive = NaiveWindows(
            [e.path for e in episodes], [e.num_frames for e in episodes], args.image_size
        )
        settings = dict(
            batch_size=args.batch_size,
            shuffle=True,
            num_workers=args.workers,
            persistent_workers=args.workers > 0,
        )

        torch.manual_seed(0)
        ours = windows_per_second(datamodule.train_dataloader(), args.epochs)
        torch.manual_seed(0)
        base = windows_per_second(DataLoader(naive, **settings), args.epochs)

    print(
        f"frames {args.height}x{args.width} -> {args.image_size}x{args.image_size}, window 8, "
        f"chunk 10, {len(naive)} windows/epoch, {args.workers} workers, batch {args.batch_size}"
    )
    for epoch, (a, b) in enumerate(zip(ours, base, strict=True), start=1):
        print(
            f"epoch {epoch}: ours {a:7.1f} windows/s  naive {b:7.1f} windows/s  ratio {a / b:5.1f}x"
        )
    total_ours = len(ours) / sum(1 / r for r in ours)
    total_base = len(base) / sum(1 / r for r in base)
    print(
        f"all {args.epochs} epochs: ours {total_ours:.1f} windows/s, naive {total_base:.1f} "
        f"windows/s, ratio {total_ours / total_base:.1f}x"
    )


if __name__ == "__main__":
    main()
