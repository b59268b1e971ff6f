"""Auto-labelling driving samples with commands: rule and VLM labelers, resume, HTML check page."""

from __future__ import annotations

import logging
import re
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from hydra.core.global_hydra import GlobalHydra
from hydra.utils import instantiate

from vla_lab import label
from vla_lab.data.synthetic.physical_ai_av import write_synthetic_av
from vla_lab.driving.commanders import RuleCommander
from vla_lab.driving.commands import RuleLabeler
from vla_lab.models.backbones.smolvlm_tiny import build_tiny_smolvlm
from vla_lab.models.vlm_labeler import VLMLabeler, snap_to_vocabulary
from vla_lab.utils.config import compose_config

COMMANDS = set(RuleLabeler.commands.values())
STEPS = np.arange(1, 65) * 0.1  # the future's times, s after t0
# A SmolVLM-style chat template, to exercise the chat-template branch with the tiny model.
CHAT_TEMPLATE = (
    "{% for message in messages %}<|im_start|>{{ message['role'] | capitalize }}:"
    "{% for part in message['content'] %}{% if part['type'] == 'image' %}<image>"
    "{% else %}{{ part['text'] }}{% endif %}{% endfor %}<end_of_utterance>\n{% endfor %}"
    "{% if add_generation_prompt %}Assistant:{% endif %}"
)


def run_label(*overrides: str) -> Path:
    """`python -m vla_lab.label <overrides>`, in-process."""
    return label.label_dataset(compose_config(list(overrides), config_name="label"))


@pytest.fixture(autouse=True)
def _clear_hydra():
    yield
    GlobalHydra.instance().clear()


@pytest.fixture(scope="module")
def data_args(tmp_path_factory, shared_dirs) -> list[str]:
    """Overrides for four synthetic clips of 12 s (7 samples each: t0 = 2.1 .. 5.1 s, 0.5 s apart,
    in the clip clock; 5.6 s would need video to 12.0 s)."""
    root = write_synthetic_av(tmp_path_factory.mktemp("av") / "clips", num_clips=4, seed=3)
    return [
        "data=av_synthetic",
        f"data.source.root={root}",
        f"paths.cache_dir={shared_dirs['cache_dir']}",
    ]


@pytest.fixture(scope="module")
def labelled(tmp_path_factory, data_args) -> Path:
    """A rule-labelled parquet of the synthetic clips (read-only: copy it to change it)."""
    out = tmp_path_factory.mktemp("labels") / "labels.parquet"
    assert run_label(*data_args, "labeler=rule", f"out={out}") == out
    return out


def source_of(data_args: list[str], *overrides: str):
    return instantiate(compose_config([*data_args, *overrides]).data.source, _convert_="all")


def test_rule_labels_every_sample_with_a_known_command(labelled, data_args):
    table = pd.read_parquet(labelled)
    source = source_of(data_args)
    expected = {
        (c.clip_id, int(t0))
        for c in source.episodes()
        for t0 in source.clip_samples(c.clip_id).t0_us
    }
    assert list(table.columns) == ["clip_id", "t0_us", "command", "reasoning"]
    assert set(zip(table.clip_id, table.t0_us.astype(int), strict=True)) == expected
    assert len(table) == len(expected) == 28
    assert set(table.command) <= COMMANDS
    assert table.reasoning.str.contains(r"yaw change [+-]\d\.\d\d rad").all()


def test_labels_file_serves_its_commands_as_tasks(labelled, data_args):
    table = pd.read_parquet(labelled)
    keys = zip(table.clip_id, table.t0_us.astype(int), strict=True)
    commands = dict(zip(keys, table.command, strict=True))
    source = source_of(
        data_args, "data.source.commands.mode=file", f"data.source.commands.file={labelled}"
    )
    clips = source.episodes()
    for clip in clips:
        samples = source.clip_samples(clip.clip_id)
        assert samples.task == [commands[(clip.clip_id, int(t0))] for t0 in samples.t0_us]
    dataset = source.dataset(clips, [0], list(range(64)))
    item = dataset[len(dataset) - 1]
    assert item["task"] == commands[(item["clip_id"], item["t0_us"])]


def test_rerun_labels_only_the_clips_missing_from_the_file(
    labelled, data_args, tmp_path, monkeypatch, caplog
):
    full = pd.read_parquet(labelled)
    dropped = sorted(set(full.clip_id))[:2]
    arrow = pq.read_table(labelled)
    out = tmp_path / "labels.parquet"
    kept = arrow.filter(~pd.Series(arrow.column("clip_id").to_pylist()).isin(dropped).to_numpy())
    pq.write_table(kept, out)  # keeps the settings stored in the schema metadata
    relabelled = []
    original = label.label_clip

    def counting(commander, clip_id, samples, frames):
        relabelled.append(len(samples))
        return original(commander, clip_id, samples, frames)

    monkeypatch.setattr(label, "label_clip", counting)
    with caplog.at_level(logging.INFO, logger="vla_lab.label"):
        run_label(*data_args, "labeler=rule", f"out={out}")
    assert relabelled == [7, 7]
    assert "2 of 4 clips already labelled" in caplog.text
    key = ["clip_id", "t0_us"]
    again = pd.read_parquet(out).sort_values(key).reset_index(drop=True)
    pd.testing.assert_frame_equal(again, full.sort_values(key).reset_index(drop=True))


def test_interrupted_run_keeps_finished_clips_and_resumes(
    labelled, data_args, tmp_path, monkeypatch
):
    out = tmp_path / "labels.parquet"
    original = label.label_clip
    calls = []

    def interrupted(commander, clip_id, samples, frames):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return original(commander, clip_id, samples, frames)

    monkeypatch.setattr(label, "label_clip", interrupted)
    with pytest.raises(KeyboardInterrupt):
        run_label(*data_args, f"out={out}", "flush_every=1")
    assert pd.read_parquet(out).clip_id.nunique() == 2
    assert not list(tmp_path.glob(".*.tmp"))
    monkeypatch.setattr(label, "label_clip", original)
    run_label(*data_args, f"out={out}")
    assert len(pd.read_parquet(out)) == len(pd.read_parquet(labelled))


def test_resuming_with_other_thresholds_is_refused(labelled, data_args, tmp_path):
    out = tmp_path / "labels.parquet"
    shutil.copy(labelled, out)
    with pytest.raises(ValueError, match=r"labeler\.thresholds\.turn_yaw: 0\.5 -> 0\.9"):
        run_label(*data_args, f"out={out}", "data.source.commands.rule.turn_yaw=0.9")


def test_out_is_required(data_args):
    with pytest.raises(ValueError, match="out= is required"):
        run_label(*data_args)


def test_sample_page_shows_labelled_frames(labelled, data_args, tmp_path):
    out = tmp_path / "labels.parquet"
    shutil.copy(labelled, out)
    run_label(*data_args, f"out={out}", "sample=3")
    page = (tmp_path / "labels.html").read_text()
    assert page.count("<img src='data:image/jpeg;base64,") == 3
    commands = re.findall(r"<div class='command'>([^<]*)</div>", page)
    assert len(commands) == 3 and set(commands) <= COMMANDS
    assert "yaw change" in page and "t0_us=" in page


def future(x: np.ndarray, y: np.ndarray, heading: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(64, 3) positions and (64, 3, 3) yaw rotations in the t0 frame."""
    c, s, zero, one = np.cos(heading), np.sin(heading), np.zeros(64), np.ones(64)
    rot = np.stack(
        [np.stack([c, -s, zero], -1), np.stack([s, c, zero], -1), np.stack([zero, zero, one], -1)],
        -2,
    )
    return np.stack([x, y, zero], -1), rot


def arc(yaw_end: float, speed: float = 10.0):
    rate = yaw_end / STEPS[-1]
    radius = speed / rate
    return future(radius * np.sin(rate * STEPS), radius * (1 - np.cos(rate * STEPS)), rate * STEPS)


def lane_change(offset: float, speed: float = 10.0):
    y = offset * (STEPS / STEPS[-1] - np.sin(2 * np.pi * STEPS / STEPS[-1]) / (2 * np.pi))
    dy = offset / STEPS[-1] * (1 - np.cos(2 * np.pi * STEPS / STEPS[-1]))
    return future(speed * STEPS, y, np.arctan2(dy, speed))


def speed_change(v0: float, v_end: float):
    accel = (v_end - v0) / STEPS[-1]
    return future(v0 * STEPS + accel * STEPS**2 / 2, np.zeros(64), np.zeros(64))


def stop(v0: float = 8.0, decel: float = 2.0):
    t = np.minimum(STEPS, v0 / decel)
    return future(v0 * t - decel * t**2 / 2, np.zeros(64), np.zeros(64))


@pytest.mark.parametrize(
    ("trajectory", "v0", "command"),
    [
        (future(10.0 * STEPS, np.zeros(64), np.zeros(64)), 10.0, "Keep lane"),
        (arc(0.8), 10.0, "Turn left"),
        (arc(-0.8), 10.0, "Turn right"),
        (stop(), 8.0, "Stop"),
        (lane_change(3.5), 10.0, "Change lane to the left"),
        (lane_change(-3.5), 10.0, "Change lane to the right"),
        (speed_change(10.0, 6.0), 10.0, "Slow down"),
        (speed_change(6.0, 10.0), 6.0, "Accelerate"),
    ],
    ids=["straight", "left_arc", "right_arc", "stop", "lane_left", "lane_right", "slow", "fast"],
)
def test_rule_labeler_names_the_manoeuvre_of_a_future(trajectory, v0, command):
    fut_xyz, fut_rot = trajectory
    assert RuleLabeler().label(fut_xyz, fut_rot, v0) == command
    labelled_command, reasoning = RuleCommander().label(fut_xyz, fut_rot, v0)
    assert labelled_command == command and "over 6.4 s" in reasoning


def test_rule_reasoning_reports_the_measured_numbers():
    _, reasoning = RuleCommander().label(*arc(0.8), 10.0)
    assert reasoning.startswith("yaw change +0.80 rad")
    assert "speed 10.0 -> 10.0 m/s" in reasoning


def test_free_text_snaps_to_the_nearest_command():
    vocabulary = list(RuleLabeler.commands.values())
    assert snap_to_vocabulary("The car should turn left.", vocabulary) == "Turn left"
    assert snap_to_vocabulary("change into the left lane", vocabulary) == "Change lane to the left"
    assert snap_to_vocabulary("keep the lane, no lane changes", vocabulary) == "Keep lane"
    assert snap_to_vocabulary("brake to a stop", vocabulary) == "Stop"
    assert snap_to_vocabulary("#@!?", vocabulary) in vocabulary


def test_vlm_vocabulary_is_the_rule_labelers_commands(data_args):
    cfg = compose_config([*data_args, "labeler=vlm", "out=x.parquet"], config_name="label")
    assert list(cfg.labeler.vocabulary) == list(RuleLabeler.commands.values())


def test_vlm_labeler_writes_commands_of_its_vocabulary(data_args, tmp_path):
    out = tmp_path / "vlm.parquet"
    run_label(
        *data_args,
        "labeler=vlm",
        "labeler.tiny=true",
        "labeler.max_new_tokens=8",
        "data.source.max_clips=2",
        "data.source.t0_mode=fixed",
        f"out={out}",
    )
    table = pd.read_parquet(out)
    assert len(table) == 2 and table.clip_id.nunique() == 2
    assert set(table.command) <= COMMANDS
    assert table.reasoning.map(type).eq(str).all()


def test_vlm_labeler_uses_the_processors_chat_template(shared_dirs):
    labeler = VLMLabeler(
        build_tiny_smolvlm(shared_dirs["cache_dir"]),
        reasoning_prompt="What should the car do?",
        command_prompt="Condense: {reasoning}",
        max_new_tokens=4,
        max_command_tokens=4,
        vocabulary=["Stop", "Keep lane"],
    )
    assert labeler.prompt("hi", with_image=True).startswith("<|im_start|>User:<image>hi")
    labeler.processor.chat_template = CHAT_TEMPLATE
    assert labeler.prompt("hi", with_image=True) == (
        "<|im_start|>User:<image>hi<end_of_utterance>\nAssistant:"
    )
    command, reasoning = labeler.label(np.full((48, 64, 3), 128, np.uint8))
    assert command in ("Stop", "Keep lane") and isinstance(reasoning, str)
    with pytest.raises(ValueError, match="RGB uint8"):
        labeler.label(np.zeros((48, 64), np.uint8))


def test_a_dataset_without_driving_clips_is_refused(tmp_path):
    with pytest.raises(TypeError, match="labelling needs a driving dataset"):
        run_label("data=mobile_vla_synthetic", f"out={tmp_path / 'labels.parquet'}")
