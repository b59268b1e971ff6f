"""The Commander-Agent drive: safety layer, commanders, and replays of synthetic clips."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hydra.core.global_hydra import GlobalHydra

from vla_lab.driving.commanders import Frame, RuleCommander, ScriptedCommander
from vla_lab.runtime.drive import drive, summary
from vla_lab.runtime.drive_clock import LatestSlot, ReplayClock
from vla_lab.runtime.drive_commander import Command, CommanderThread
from vla_lab.runtime.drive_safety import SafetyLayer
from vla_lab.utils.config import compose_config

SCHEDULE = [
    {"time_s": 0.0, "command": "Follow the lane"},
    {"time_s": 5.0, "command": "Slow down"},
]


def _frame(t_s: float, fut_xyz: np.ndarray | None = None, v0: float = 5.0) -> Frame:
    if fut_xyz is None:
        fut_xyz = np.stack([np.arange(1, 65) * 0.5, np.zeros(64), np.zeros(64)], axis=-1)
    fut_rot = np.broadcast_to(np.eye(3), (64, 3, 3))
    image = np.zeros((8, 8, 3), np.uint8)
    return Frame(t_s, "clip", int(t_s * 1e6), image, fut_xyz, fut_rot, v0)


# ---- safety layer ------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("plan", "expected", "event"),
    [
        ([[5.0, 0.05], [2.0, 0.05]], [[3.0, 0.05], [2.0, 0.05]], "accel_above_max"),
        ([[-7.0, 0.05], [-1.0, 0.05]], [[-6.0, 0.05], [-1.0, 0.05]], "accel_below_min"),
        ([[1.0, 0.1], [1.0, 0.3]], [[1.0, 0.1], [1.0, 0.2]], "curvature_above_max"),
        ([[1.0, -0.3], [1.0, 0.0]], [[1.0, -0.2], [1.0, 0.0]], "curvature_above_max"),
    ],
)
def test_safety_layer_clamps_each_bound_and_keeps_the_rest(plan, expected, event):
    safety = SafetyLayer(max_accel=3.0, min_accel=-6.0, max_abs_curvature=0.2, brake_decel=4.0)
    safe, events = safety.check(np.array(plan), latency_s=0.01, deadline_s=0.1)
    np.testing.assert_array_equal(safe, expected)
    assert events == [event]
    assert safety.counts == {event: 1}


def test_safety_layer_passes_a_plan_within_bounds_unchanged():
    safety = SafetyLayer()
    plan = np.array([[3.0, 0.2], [-6.0, -0.2], [0.5, 0.01]])
    safe, events = safety.check(plan, latency_s=0.1, deadline_s=0.1)  # on time: == deadline
    np.testing.assert_array_equal(safe, plan)
    assert events == [] and not safety.counts


def test_a_missed_deadline_brakes_to_standstill_holding_the_last_safe_curvature():
    safety = SafetyLayer(brake_decel=4.0, brake_curvature="hold", dt=0.1)
    safety.check(np.array([[1.0, 0.05], [1.0, 0.07]]), latency_s=0.02, deadline_s=0.1)
    late = np.array([[2.0, 0.1]] * 4)
    safe, events = safety.check(late, latency_s=0.15, deadline_s=0.1, v0=1.0)
    # 1.0 m/s at 4 m/s^2 for 0.1 s steps: 1.0 -> 0.6 -> 0.2 -> 0 (the third step takes 2 m/s^2).
    np.testing.assert_allclose(safe, [[-4.0, 0.05], [-4.0, 0.05], [-2.0, 0.05], [0.0, 0.05]])
    assert events == ["deadline_brake"]
    assert safety.counts["deadline_brake"] == 1


def test_a_non_finite_plan_brakes_straight():
    safety = SafetyLayer(brake_decel=4.0, brake_curvature="zero")
    plan = np.array([[0.5, 0.1], [np.nan, 0.1], [0.5, np.inf]])
    safe, events = safety.check(plan, latency_s=0.01, deadline_s=0.1)
    np.testing.assert_array_equal(safe, [[-4.0, 0.0]] * 3)
    assert events == ["nonfinite_brake"]


def test_a_brake_harder_than_the_braking_bound_is_refused_at_start_up():
    with pytest.raises(ValueError, match="brake_decel"):
        SafetyLayer(min_accel=-3.0, brake_decel=5.0)


# ---- commanders --------------------------------------------------------------------------------
def test_scripted_commander_switches_command_at_its_time():
    commander = ScriptedCommander(SCHEDULE)
    assert commander.command(_frame(4.9))[0] == "Follow the lane"
    assert commander.command(_frame(5.0))[0] == "Slow down"
    assert commander.command(_frame(9.0))[0] == "Slow down"


def test_rule_commander_reads_the_logged_future():
    stopping = np.stack([np.full(64, 3.0), np.zeros(64), np.zeros(64)], axis=-1)  # stands still
    assert RuleCommander().command(_frame(0.0, stopping, v0=5.0))[0] == "Stop"
    assert RuleCommander().command(_frame(0.0, v0=5.0))[0] == "Keep lane"


def test_commander_thread_publishes_on_its_own_clock_what_the_latest_frame_asks_for():
    clock, frames = ReplayClock(), LatestSlot()
    commands = LatestSlot(Command("Follow the lane", -np.inf, -np.inf, 0.0))
    thread = CommanderThread(ScriptedCommander(SCHEDULE), 2.0, clock, frames, commands)
    frames.put(_frame(0.0))
    thread.start()
    for k in range(1, 80):  # 8 s of drive at 10 Hz; the agent side never waits for the thread
        frames.put(_frame(k / 10))
        clock.advance(k / 10)
        time.sleep(0.002)
    clock.close()
    thread.join(timeout=5)
    assert not thread.is_alive() and thread.error is None
    published = thread.published
    assert 2 <= len(published) <= 17  # at most one per 0.5 s tick
    for command in published:
        assert command.text == ("Slow down" if command.frame_t_s >= 5.0 else "Follow the lane")
    assert commands.get() == published[-1]


# ---- drives on a tiny checkpoint ---------------------------------------------------------------
@pytest.fixture()
def driving_ckpt(checkpoint_of) -> Path:
    return checkpoint_of("av_smolvla_unicycle_demo")


@pytest.fixture()
def drive_cfg(driving_ckpt: Path, shared_dirs: dict[str, Path], tmp_path: Path):
    def _make(overrides: list[str]):
        return compose_config(
            [
                f"ckpt_path={driving_ckpt}",
                f"paths.data_dir={shared_dirs['data_dir']}",
                f"paths.cache_dir={shared_dirs['cache_dir']}",
                "device=cpu",
                "max_clips=1",
                "threads=1",
                *overrides,
            ],
            config_name="drive",
            output_dir=str(tmp_path / "drive"),
        )

    yield _make
    GlobalHydra.instance().clear()


def test_a_replay_logs_commands_and_actions_and_reports_rates_and_latency(drive_cfg, tmp_path):
    cfg = drive_cfg(
        [
            "realtime=false",
            "duration_s=1.0",
            "agent_hz=10",
            "commander_hz=4",
            "commander.schedule=[{time_s: 0.0, command: Follow the lane},"
            " {time_s: 0.5, command: Slow down}]",
        ]
    )
    report = drive(cfg)
    out = tmp_path / "drive"
    assert json.loads((out / "drive_report.json").read_text()) == report
    log = pd.read_parquet(out / "drive_log.parquet")
    assert len(log) == report["steps"] == 10
    np.testing.assert_allclose(log["t_s"], np.arange(10) / 10)
    assert report["agent_hz"] == pytest.approx(10.0)
    assert report["commander_hz"] > 0 and report["commands_published"] >= 1
    latency = report["latency_ms"]
    assert 0 < latency["p50"] <= latency["p95"] <= latency["p99"] <= latency["max"]
    assert log["command"].iloc[0] == "Follow the lane"
    assert set(log["command"]) <= {"Follow the lane", "Slow down"}
    assert sum(report["commands"].values()) == 10
    for column in ("accel", "curvature", "safe_accel", "safe_curvature", "latency_ms"):
        assert np.isfinite(log[column]).all(), column
    assert (log["safe_accel"].between(-6.0, 3.0)).all()
    assert (log["safe_curvature"].abs() <= 0.2).all()
    assert report["missed_deadlines"] == int(log["deadline_missed"].sum())
    commands = pd.read_parquet(out / "command_log.parquet")
    assert len(commands) == report["commands_published"]
    assert "steps" in summary(report)


def test_a_slow_agent_misses_its_deadlines_and_is_braked(drive_cfg, tmp_path):
    cfg = drive_cfg(["realtime=false", "duration_s=0.3", "agent_hz=10", "simulate_latency_ms=120"])
    report = drive(cfg)
    log = pd.read_parquet(tmp_path / "drive" / "drive_log.parquet")
    assert report["steps"] == 3
    assert report["missed_deadlines"] == 3 and report["missed_deadline_fraction"] == 1.0
    assert report["safety_events"]["deadline_brake"] == 3 == report["braking_steps"]
    assert (log["latency_ms"] > 100).all() and log["deadline_missed"].all()
    assert (log["safe_accel"] <= 0).all() and (log["safe_accel"] >= -4.0).all()
    assert log["safety_events"].str.contains("deadline_brake").all()


def test_a_realtime_drive_ticks_on_the_wall_clock(drive_cfg):
    report = drive(drive_cfg(["realtime=true", "duration_s=0.5", "agent_hz=10", "commander=rule"]))
    assert report["steps"] >= 1
    assert report["steps"] + report["dropped_ticks"] <= 5
    assert 0.3 <= report["duration_s"] <= 5.0 and report["agent_hz"] > 0
