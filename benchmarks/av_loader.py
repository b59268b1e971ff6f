"""Samples per second of the PhysicalAI-AV loader: decoding by seek vs decoding from the start.

A sample needs the front frame at or before t0; the naive reader decodes the clip from its first
frame up to t0, ours seeks to the keyframe before it. Clips are written in the released layout at
the released frame rate and length (30 fps, 20 s; smaller frames than 1080p to keep the write
short), once, into `data/bench_av`. Both readers run in the same process on the same samples,
after one warm-up pass over the zips (page cache). Ratio = seek / from start.

    python benchmarks/av_loader.py [--clips 6] [--stride 1.0] [--height 360 --width 640]
"""

from __future__ import annotations

import argparse
import time

import torch

from vla_lab.data.physical_ai_av.clips import PhysicalAIAVClips
from vla_lab.data.physical_ai_av.samples import AVSamples
from vla_lab.data.synthetic.physical_ai_av import write_synthetic_av
from vla_lab.utils.config import PROJECT_ROOT


def samples_per_second(dataset: AVSamples, seek: bool) -> float:
    start = time.perf_counter()
    for index in range(len(dataset)):
        dataset.frames(index, seek=seek)
    return len(dataset) / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, default=6)
    parser.add_argument("--stride", type=float, default=1.0, help="seconds between t0s")
    parser.add_argument("--height", type=int, default=360)
    parser.add_argument("--width", type=int, default=640)
    args = parser.parse_args()
    torch.set_num_threads(1)
    root = PROJECT_ROOT / "data" / f"bench_av_{args.clips}_{args.height}x{args.width}"
    write_synthetic_av(
        root,
        num_clips=args.clips,
        clip_seconds=20.0,
        fps=30,
        image_size=(args.height, args.width),
        clips_per_chunk=args.clips,
    )
    source = PhysicalAIAVClips(
        str(root),
        image_size=(224, 224),
        t0_mode="stride",
        t0_stride_s=args.stride,
        cache_dir=str(PROJECT_ROOT / ".cache" / "vla_lab"),
    )
    dataset = AVSamples(source, source.episodes())
    samples_per_second(dataset, seek=True)  # warm-up: zips in the page cache
    seek = samples_per_second(dataset, seek=True)
    from_start = samples_per_second(dataset, seek=False)
    start = time.perf_counter()
    for index in range(len(dataset)):
        dataset[index]
    full = len(dataset) / (time.perf_counter() - start)
    print(
        f"{len(dataset)} samples of {args.clips} clips (20 s, 30 fps, {args.height}x"
        f"{args.width}; t0 every {args.stride} s between the 1.6 s / 6.4 s margins), 1 thread"
    )
    print(f"{'reader':<28}{'samples/s':>12}")
    print(f"{'decode from the start':<28}{from_start:>12.1f}")
    print(f"{'seek (ours)':<28}{seek:>12.1f}")
    print(f"{'seek + resize + sample dict':<28}{full:>12.1f}")
    print(f"ratio seek / from start: {seek / from_start:.1f}x")


if __name__ == "__main__":
    main()
