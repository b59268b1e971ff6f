"""How much of a checkpoint file a job reads: the one-read loader against the reads it replaced.

Each case runs in a fresh child process and reports what that process read after its imports, as
ratios to the checkpoint's file size (the baseline, measured in the same run: "1.0x" is one read
of the whole file):

- rchar (`/proc/self/io`): bytes through read() calls, from the page cache or not. A memory-mapped
  `torch.load` reads tensors by page faults, which rchar does not count: for the mmap cases rchar
  is the pickle (config, stats, the backbone's tokenizer files) and the zip index only.
- ckpt rchar: rchar less the module build's own reads (`build-only`: it writes the backbone's
  config and tokenizer files from the checkpoint to a directory and reads them back).
- from disk: the file's pages in the page cache after the child, having been evicted before it
  (`posix_fadvise(DONTNEED)` works on any file one can open; dropping all caches needs root),
  counted with `mincore`: distinct bytes brought in, by read() or page fault, rounded up by the
  kernel's read-ahead (`/sys/block/*/queue/read_ahead_kb`, 8 MB on some VMs: so the built
  checkpoint has a 2x1024 LSTM head, ~150 MB, two thirds of it Adam's state). A second read of
  the same bytes does not show here, only in rchar.
- read_bytes (`/proc/self/io`): block-device reads; 0 when the file is already in the page cache
  and on machines without storage accounting.

Cases: the reads of the code before the one-read loader, rebuilt from public calls (evaluate: 3x
`torch.load` for the module class, the data config and the experiment's name, then
`load_from_checkpoint`; infer: 2x `torch.load` + `load_from_checkpoint`); `load_checkpoint` once,
without and with mmap; `vla_lab.evaluate` (2 batches) as a job and with its checkpoint already
loaded (its other reads: data, configs), the difference being the job's load and build.

The checkpoint is `--ckpt`, or a short `experiment=mobile_vla_demo debug=limit` run into
`--work-dir` (`debug=fdr` writes no checkpoint).

    python benchmarks/checkpoint_reads.py [--ckpt last.ckpt] [--work-dir DIR]
"""

from __future__ import annotations

import argparse
import ctypes
import json
import mmap
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[1]
BUILD = "module build alone (contents already in memory)"
CASES = {
    BUILD: "build-only",
    "old evaluate: 3x torch.load + load_from_checkpoint": "old-evaluate",
    "old infer: 2x torch.load + load_from_checkpoint": "old-infer",
    "load_checkpoint, mmap off (one full read)": "one-read-no-mmap",
    "load_checkpoint (one read, mmap)": "one-read",
    "evaluate job": "evaluate",
    "evaluate job, checkpoint preloaded": "evaluate-preloaded",
}


def io_counters() -> dict[str, int]:
    lines = Path("/proc/self/io").read_text().splitlines()
    return {k: int(v) for k, v in (line.split(": ") for line in lines)}


def run_child(case: str, ckpt: Path, out: Path) -> dict[str, float]:
    """Runs in the child: the case's reads between two snapshots of /proc/self/io."""
    import torch
    from hydra.utils import get_class

    import vla_lab.evaluate
    from vla_lab.models.module import CHECKPOINT_KEY
    from vla_lab.runtime.checkpoint import LoadedCheckpoint, load_checkpoint
    from vla_lab.utils.config import compose_config
    from vla_lab.utils.moved import rewrite_moved_targets

    def old_reads(torch_loads: int) -> None:
        for _ in range(torch_loads):
            contents = torch.load(ckpt, map_location="cpu", weights_only=False)
        config = rewrite_moved_targets(contents[CHECKPOINT_KEY]["config"])
        get_class(config["model"]["_target_"]).load_from_checkpoint(ckpt, map_location="cpu")

    overrides = [f"ckpt_path={ckpt}", "hardware.num_workers=0", "hardware.batch_size=4"]
    overrides.append("limit_batches=2")
    cfg = compose_config(overrides, "evaluate", output_dir=str(out))
    if case == "build-only":
        contents = torch.load(ckpt, map_location="cpu", weights_only=False)
    if case == "evaluate-preloaded":
        loaded = load_checkpoint(ckpt)
        _ = loaded.module  # built now, outside the measured window
        vla_lab.evaluate.load_checkpoint = lambda path: loaded
    start, before = time.perf_counter(), io_counters()
    if case == "build-only":
        _ = LoadedCheckpoint(ckpt, contents).module
    elif case == "old-evaluate":
        old_reads(3)
    elif case == "old-infer":
        old_reads(2)
    elif case == "one-read-no-mmap":
        contents = torch.load(ckpt, map_location="cpu", weights_only=False)
        _ = LoadedCheckpoint(ckpt, contents).module
    elif case == "one-read":
        _ = load_checkpoint(ckpt).module
    elif case in ("evaluate", "evaluate-preloaded"):
        vla_lab.evaluate.evaluate(cfg)
    after = io_counters()
    return {
        "rchar": after["rchar"] - before["rchar"],
        "read_bytes": after["read_bytes"] - before["read_bytes"],
        "wall_s": time.perf_counter() - start,
    }


def evict(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)


def cached_bytes(path: Path) -> int:
    """Bytes of `path` in the page cache (mincore over a read-only mapping of it)."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.mmap.restype = ctypes.c_void_p
    libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int]
    libc.mmap.argtypes += [ctypes.c_int, ctypes.c_long]
    libc.mincore.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_void_p]
    libc.munmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
    size, page = path.stat().st_size, os.sysconf("SC_PAGE_SIZE")
    fd = os.open(path, os.O_RDONLY)
    try:
        address = libc.mmap(None, size, mmap.PROT_READ, mmap.MAP_SHARED, fd, 0)
        pages = (ctypes.c_ubyte * ((size + page - 1) // page))()
        if libc.mincore(address, size, pages) != 0:
            raise OSError(ctypes.get_errno(), "mincore failed")
        libc.munmap(address, size)
    finally:
        os.close(fd)
    return min(size, sum(p & 1 for p in pages) * page)


def measure(case: str, ckpt: Path, out: Path) -> dict[str, float]:
    evict(ckpt)
    command = [
        sys.executable,
        __file__,
        "--child",
        case,
        "--ckpt",
        str(ckpt),
        "--work-dir",
        str(out),
    ]
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"{case} failed:\n{result.stderr[-3000:]}")
    figures = json.loads(result.stdout.strip().splitlines()[-1])
    return {**figures, "from_disk": cached_bytes(ckpt)}


def train_checkpoint(work_dir: Path) -> Path:
    run = work_dir / "mobile_vla_demo" / "bench"
    ckpt = run / "checkpoints" / "last.ckpt"
    if not ckpt.is_file():
        print(f"Training a short mobile_vla_demo run into {run} ...", flush=True)
        settings = ["debug=limit", "trainer.max_epochs=1", "hardware.num_workers=0"]
        settings += ["hardware.batch_size=4", "logger=csv", "print_config=false"]
        settings += ["head.hidden_size=1024", "head.num_layers=2"]  # a file >> read-ahead
        command = [sys.executable, str(PROJECT_ROOT / "train.py"), f"paths.log_dir={work_dir}"]
        subprocess.run([*command, "run_name=bench", *settings], check=True, capture_output=True)
    return ckpt


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ckpt", type=Path)
    parser.add_argument("--work-dir", type=Path)
    parser.add_argument("--child", choices=sorted(CASES.values()), help=argparse.SUPPRESS)
    args = parser.parse_args()
    work_dir = args.work_dir or Path(tempfile.mkdtemp(prefix="checkpoint_reads_"))
    if args.child:
        print(json.dumps(run_child(args.child, args.ckpt, work_dir)))
        return
    ckpt = (args.ckpt or train_checkpoint(work_dir)).resolve()
    size = ckpt.stat().st_size
    print(f"{ckpt}: {size / 1e6:.2f} MB (the baseline: 1.0x = one read of the whole file)")

    rows = {name: measure(case, ckpt, work_dir / case) for name, case in CASES.items()}
    build, job = rows[BUILD], rows["evaluate job"]
    preloaded = rows["evaluate job, checkpoint preloaded"]
    build["from_disk"] = preloaded["from_disk"] = None  # read outside the measured window
    rows["evaluate job minus preloaded: its load + build"] = {
        key: job[key] - preloaded[key] for key in ("rchar", "read_bytes", "wall_s")
    } | {"from_disk": job["from_disk"]}
    width = max(map(len, rows))
    header = ["rchar", "ckpt rchar", "from disk", "read_bytes", "wall s"]
    print(f"{'case':<{width}}" + "".join(f"{h:>12}" for h in header))
    for name, r in rows.items():
        # rchar less the module build's own reads (the backbone files it writes and reads back)
        # (the jobs' rchar also counts their data: see the difference row)
        builds_one = name not in (BUILD, "evaluate job", "evaluate job, checkpoint preloaded")
        cells = [
            f"{r['rchar'] / size:.2f}x",
            f"{(r['rchar'] - build['rchar']) / size:.2f}x" if builds_one else "-",
            "-" if r["from_disk"] is None else f"{r['from_disk'] / size:.2f}x",
            f"{r['read_bytes'] / size:.2f}x",
            f"{r['wall_s']:.2f}",
        ]
        print(f"{name:<{width}}" + "".join(f"{c:>12}" for c in cells))


if __name__ == "__main__":
    main()
