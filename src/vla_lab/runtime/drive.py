"""Drive a logged route with the Commander-Agent pair: the driving plan's runtime, on a replay.

    python -m vla_lab.runtime.drive ckpt_path=<agent ckpt> [input=synthetic|<AV root>]
        [commander=scripted|rule|vlm] [commander_hz=1] [agent_hz=10] [duration_s=10]
        [realtime=true] [max_clips=2] [simulate_latency_ms=0] [safety.max_accel=3.0 ...]

The input is a PhysicalAI-AV root or `synthetic` (data=av_synthetic's clips, written on first
use). Its clips are replayed in order, one sample every 1/agent_hz s (the sample's front frame,
ego state and history poses), as the sensors would give them. The Commander (its own thread, at
commander_hz) reads the latest frame and publishes a text command; the Field Agent (the
checkpoint's `Policy`, at agent_hz) plans 64 controls from the latest frame, state and command,
and never waits for the Commander. The `SafetyLayer` clamps each plan to the configured bounds
and brakes instead when the plan missed its deadline (1/agent_hz) or is not finite.

`realtime=false` replays as fast as the machine allows, in the drive's own time (the Commander
still ticks at commander_hz of it); latency is always measured on the wall clock against the
deadline. The run dir gets `drive_log.parquet` (one row per Agent step), `command_log.parquet`
(one row per published command) and `drive_report.json` (achieved rates, latency percentiles,
missed deadlines, safety events).
"""

from __future__ import annotations

import json
import math
import time
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from omegaconf import DictConfig, OmegaConf

from vla_lab import features as ft
from vla_lab.data.physical_ai_av.clips import PhysicalAIAVClips
from vla_lab.data.physical_ai_av.samples import AVSamples
from vla_lab.driving.commanders import Frame
from vla_lab.runtime.checkpoint import load_checkpoint
from vla_lab.runtime.commanders import build_commander
from vla_lab.runtime.drive_clock import LatestSlot, RealtimeClock, ReplayClock
from vla_lab.runtime.drive_commander import Command, CommanderThread
from vla_lab.runtime.drive_safety import EVENTS, SafetyLayer
from vla_lab.runtime.policy import Policy, load_policy
from vla_lab.utils.config import hydra_app
from vla_lab.utils.io import atomic_write, atomic_write_text
from vla_lab.utils.logging import get_logger

log = get_logger(__name__)

SYNTHETIC = "synthetic"
PERCENTILES = (50, 95, 99)


def replay_source(cfg: DictConfig, trained: DictConfig) -> PhysicalAIAVClips:
    """The checkpoint's own sample source (`trained`: its run config; image size, state, action
    space), reading `cfg.input` with one sample every 1/agent_hz s and the Commander's initial
    command as the task."""
    source = trained.data.source
    target = f"{PhysicalAIAVClips.__module__}.{PhysicalAIAVClips.__name__}"
    if source.get("_target_") != target:
        raise TypeError(
            f"{cfg.ckpt_path} was trained on {source.get('_target_')}; driving needs a model "
            "trained on PhysicalAI-AV clips (experiment=av_smolvla_unicycle[_demo])"
        )
    options = OmegaConf.to_container(source, resolve=True)
    options.pop("_target_")
    if str(cfg.input) == SYNTHETIC:
        # The clips the checkpoint trained on when they were synthetic, else the writer's defaults.
        options["root"] = str(Path(str(cfg.paths.data_dir)) / "av_synthetic")
        options["synthetic"] = options.get("synthetic") or {}
    else:
        root = Path(str(cfg.input)).expanduser()
        if not PhysicalAIAVClips.recognises(root):
            raise FileNotFoundError(
                f"input={root} is not a PhysicalAI-AV root (no clip_index.parquet); give the "
                f"root of a download or input={SYNTHETIC}"
            )
        options["root"], options["synthetic"] = str(root), None
    options.update(
        t0_mode="stride",
        t0_stride_s=1.0 / float(cfg.agent_hz),
        commands={"mode": "fixed", "text": str(cfg.commander.initial_command)},
        max_clips=cfg.max_clips,
        cache_dir=str(cfg.paths.cache_dir),
    )
    return PhysicalAIAVClips(**options)


def _sensors(source: PhysicalAIAVClips, samples: AVSamples, k: int, t_s: float):
    """Sample k as the Agent's observation (without the task) and the Commander's `Frame`."""
    item = samples[k]
    image = (item[ft.DRIVING_CAMERA].mul(255).round().byte().permute(1, 2, 0)).numpy()
    logged = source.clip_samples(item[ft.CLIP_ID])
    i = int(item[ft.FRAME_INDEX])
    observation = {
        ft.DRIVING_CAMERA: image,
        ft.STATE: item[ft.STATE].numpy(),
        ft.HISTORY_XYZ: item[ft.HISTORY_XYZ].numpy(),
        ft.HISTORY_ROT: item[ft.HISTORY_ROT].numpy(),
    }
    frame = Frame(
        t_s,
        item[ft.CLIP_ID],
        int(item[ft.T0_US]),
        image,
        logged.fut_xyz[i],
        logged.fut_rot[i],
        float(logged.state[i, 0]),
    )
    return observation, frame


class Agent:
    """The Field Agent's step: plan from the observation, time it, pass it through the safety
    layer. `simulate_latency_ms` adds a sleep inside the timed step (a slower model or machine)."""

    def __init__(self, policy: Policy, safety: SafetyLayer, simulate_latency_ms: float = 0.0):
        self.policy = policy
        self.safety = safety
        self.simulate_latency_s = float(simulate_latency_ms) / 1e3

    def step(self, observation: dict[str, Any], deadline_s: float, v0: float) -> dict[str, Any]:
        start = time.perf_counter()
        if self.simulate_latency_s > 0:
            time.sleep(self.simulate_latency_s)
        controls = self.policy.predict_trajectory(observation)["controls"]
        latency_s = time.perf_counter() - start
        safe, events = self.safety.check(controls, latency_s, deadline_s, v0)
        return {
            "latency_ms": latency_s * 1e3,
            "deadline_missed": latency_s > deadline_s,
            "safety_events": ",".join(events),
            "braking": any(e.endswith("_brake") for e in events),
            "accel": float(controls[0, 0]),
            "curvature": float(controls[0, 1]),
            "safe_accel": float(safe[0, 0]),
            "safe_curvature": float(safe[0, 1]),
        }


def drive(cfg: DictConfig) -> dict[str, Any]:
    """Run the drive of `cfg` (see the module docstring); returns the report it wrote and logs
    its `summary`."""
    agent_hz, duration_s = float(cfg.agent_hz), float(cfg.duration_s)
    if agent_hz <= 0 or duration_s <= 0:
        raise ValueError(f"agent_hz={agent_hz} and duration_s={duration_s} must be > 0")
    period_s = 1.0 / agent_hz
    threads = torch.get_num_threads()
    if cfg.get("threads"):
        torch.set_num_threads(int(cfg.threads))
    try:
        report = _drive(cfg, agent_hz, duration_s, period_s)
    finally:
        torch.set_num_threads(threads)
    log.info("%s", summary(report))
    return report


def _drive(cfg: DictConfig, agent_hz: float, duration_s: float, period_s: float) -> dict:
    output_dir = Path(str(cfg.paths.output_dir))
    checkpoint = load_checkpoint(cfg.ckpt_path)
    policy = load_policy(checkpoint, device=str(cfg.device))
    if not policy.module.capabilities.trajectories:
        raise TypeError(f"{cfg.ckpt_path} is not a driving model (it plans no trajectories)")
    source = replay_source(cfg, checkpoint.config)
    clips = source.episodes()
    if not clips:
        raise ValueError(f"input={cfg.input}: no usable clip ({dict(source.skipped)})")
    samples = AVSamples(source, clips)
    safety = SafetyLayer(**OmegaConf.to_container(cfg.safety, resolve=True))
    agent = Agent(policy, safety, float(cfg.simulate_latency_ms))
    commander_options = OmegaConf.to_container(cfg.commander, resolve=True)
    commander = build_commander(commander_options, str(cfg.paths.cache_dir))
    realtime = bool(cfg.realtime)
    clock = RealtimeClock() if realtime else ReplayClock()
    frames: LatestSlot[Frame] = LatestSlot()
    commands = LatestSlot(Command(str(cfg.commander.initial_command), -math.inf, -math.inf, 0.0))
    thread = CommanderThread(commander, float(cfg.commander_hz), clock, frames, commands)
    log.info(
        "Driving %d clips (%d steps of %.0f ms) with commander=%s for %.1f s%s",
        len(clips), len(samples), period_s * 1e3, commander_options["name"], duration_s,
        "" if realtime else " (replay time)",
    )  # fmt: skip

    n_ticks = math.ceil(duration_s * agent_hz - 1e-6)
    rows: list[dict[str, Any]] = []
    clip_id, k, dropped = None, 0, 0
    wall_start = time.perf_counter()
    clock.start()
    try:
        while k < min(n_ticks, len(samples)):
            t_s = k * period_s
            observation, frame = _sensors(source, samples, k, t_s)
            frames.put(frame)
            if thread.ident is None:
                thread.start()  # after the first frame, so the first tick has one
            if thread.error is not None:
                raise RuntimeError(f"commander={commander_options['name']} failed") from (
                    thread.error
                )
            if frame.clip_id != clip_id:
                clip_id = frame.clip_id
                policy.reset()
                safety.reset()
            command = commands.get()
            observation[ft.TASK] = command.text
            row = {"t_s": t_s, "clip_id": frame.clip_id, "t0_us": frame.t0_us}
            row |= {"command": command.text, "command_age_s": clock.now() - command.t_s}
            row |= agent.step(observation, period_s, frame.v0)
            rows.append(row)
            if realtime:  # the next tick still ahead; the frames of ticks overrun are dropped
                next_k = max(k + 1, math.floor(clock.now() / period_s) + 1)
                dropped += min(next_k, n_ticks) - k - 1
                k = next_k
                clock.sleep_until(min(k, n_ticks) * period_s)
            else:
                k += 1
                if k < min(n_ticks, len(samples)):
                    clock.advance(k * period_s)
    finally:
        elapsed_s = clock.now() if realtime else len(rows) * period_s
        clock.close()
        thread.join(timeout=5.0)
    wall_s = time.perf_counter() - wall_start
    if len(samples) < n_ticks:
        log.warning(
            "The replay ran out of samples at %.1f s (max_clips=%s)",
            len(samples) * period_s,
            cfg.max_clips,
        )

    report = drive_report(rows, thread.published, safety, elapsed_s, wall_s, period_s, dropped)
    report |= {"ckpt_path": str(cfg.ckpt_path), "input": str(cfg.input)}
    report |= {"commander": commander_options["name"], "realtime": realtime}
    report |= {"agent_hz_target": agent_hz, "commander_hz_target": float(cfg.commander_hz)}
    write_logs(output_dir, rows, thread.published, report)
    return report


def drive_report(
    rows: list[dict[str, Any]],
    published: list[Command],
    safety: SafetyLayer,
    elapsed_s: float,
    wall_s: float,
    deadline_s: float,
    dropped_ticks: int,
) -> dict[str, Any]:
    """Rates (in the drive's time, and Agent steps per wall second), latency percentiles,
    missed deadlines and safety events of a drive."""
    latency = np.array([r["latency_ms"] for r in rows]) if rows else np.zeros(1)
    missed = sum(bool(r["deadline_missed"]) for r in rows)
    elapsed_s = max(elapsed_s, 1e-9)
    return {
        "steps": len(rows),
        "duration_s": elapsed_s,
        "wall_s": wall_s,
        "agent_hz": len(rows) / elapsed_s,
        "agent_steps_per_wall_s": len(rows) / max(wall_s, 1e-9),
        "commander_hz": len(published) / elapsed_s,
        "commands_published": len(published),
        "deadline_ms": deadline_s * 1e3,
        "latency_ms": {
            **{f"p{p}": float(np.percentile(latency, p)) for p in PERCENTILES},
            "mean": float(latency.mean()),
            "max": float(latency.max()),
        },
        "missed_deadlines": missed,
        "missed_deadline_fraction": missed / max(len(rows), 1),
        "dropped_ticks": dropped_ticks,
        "braking_steps": sum(bool(r["braking"]) for r in rows),
        "safety_events": {name: int(safety.counts[name]) for name in EVENTS},
        "commands": dict(Counter(r["command"] for r in rows)),
    }


def write_logs(
    output_dir: Path, rows: list[dict], published: list[Command], report: dict[str, Any]
) -> None:
    """`drive_log.parquet`, `command_log.parquet` and `drive_report.json`, atomically."""
    steps = pd.DataFrame(rows)
    commands = pd.DataFrame(
        [vars(c) for c in published],
        columns=["text", "t_s", "frame_t_s", "compute_ms", "reasoning"],
    ).rename(columns={"text": "command"})
    atomic_write(output_dir / "drive_log.parquet", lambda tmp: steps.to_parquet(tmp))
    atomic_write(output_dir / "command_log.parquet", lambda tmp: commands.to_parquet(tmp))
    atomic_write_text(output_dir / "drive_report.json", json.dumps(report, indent=2) + "\n")
    log.info("Wrote the drive log and report to %s", output_dir)


def summary(report: dict[str, Any]) -> str:
    """A few lines a person reads after a drive."""
    latency = report["latency_ms"]
    events = ", ".join(f"{k} {v}" for k, v in report["safety_events"].items() if v) or "none"
    return "\n".join(
        [
            f"drive: {report['steps']} agent steps in {report['duration_s']:.2f} s of "
            f"{'real' if report['realtime'] else 'replay'} time (wall {report['wall_s']:.2f} s)",
            f"  agent {report['agent_hz']:.2f} Hz (target {report['agent_hz_target']:g}), "
            f"commander {report['commander_hz']:.2f} Hz "
            f"(target {report['commander_hz_target']:g})",
            f"  latency p50 {latency['p50']:.1f} / p95 {latency['p95']:.1f} / p99 "
            f"{latency['p99']:.1f} ms (deadline {report['deadline_ms']:.0f} ms)",
            f"  missed deadlines {report['missed_deadlines']} "
            f"({report['missed_deadline_fraction']:.1%}), dropped ticks {report['dropped_ticks']}",
            f"  safety events: {events}",
            "  commands: " + ", ".join(f"{k} x{v}" for k, v in report["commands"].items()),
        ]
    )


def main() -> None:
    """`python -m vla_lab.runtime.drive key=value ...` (`conf/drive.yaml`; `--help` lists them)."""
    hydra_app(drive, "drive")()


if __name__ == "__main__":
    main()
