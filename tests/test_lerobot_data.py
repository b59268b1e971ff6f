"""LeRobot source: synthetic writer, delta timestamps, split, stats, bad input, video backend."""

from __future__ import annotations

import logging
import re
import shutil
from pathlib import Path

import av
import numpy as np
import pytest
import torch

from vla_lab.data.datamodule import VLADataModule
from vla_lab.data.lerobot.samples import resolve_video_backend
from vla_lab.data.lerobot.source import LeRobotEpisodes
from vla_lab.data.synthetic.lerobot import (
    TASKS,
    joint_names,
    render_episode,
    write_synthetic_lerobot,
)
from vla_lab.lerobot_api import IMAGENET_STATS, LeRobotDataset
from vla_lab.runtime.checkpoint import load_checkpoint
from vla_lab.train import train

IMAGE = "observation.images.front"
EPISODES, FRAMES, FPS = 8, 12, 10


@pytest.fixture(scope="module")
def root(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("lerobot") / "synthetic"
    return write_synthetic_lerobot(
        path, num_episodes=EPISODES, frames_per_episode=FRAMES, fps=FPS, seed=3
    )


@pytest.fixture(scope="module")
def source(root) -> LeRobotEpisodes:
    return LeRobotEpisodes(root=str(root), video_backend="pyav")


def video_file(root: Path) -> Path:
    return next(root.glob("videos/*/*/*.mp4"))


def test_synthetic_dataset_reads_with_plain_lerobot_dataset_offline(root):
    dataset = LeRobotDataset("local/synthetic", root=root, video_backend="pyav")
    item = dataset[FRAMES + 3]
    assert len(dataset) == EPISODES * FRAMES
    assert item[IMAGE].shape == (3, 64, 64) and item[IMAGE].dtype == torch.float32
    assert 0.0 <= float(item[IMAGE].min()) and float(item[IMAGE].max()) <= 1.0
    assert item["observation.state"].shape == (6,) and item["action"].shape == (6,)
    assert item["task"] in ("Pick up the red cube", "Pick up the blue cube")
    assert int(item["episode_index"]) == 1 and int(item["frame_index"]) == 3


def test_delta_indices_become_delta_timestamps_with_padding_past_the_episode_end(source):
    episodes = source.episodes()[:2]
    dataset = source.dataset(episodes, [-1, 0], list(range(8)), None)
    last = dataset[FRAMES - 1]  # last frame of episode 0
    assert last["action"].shape == (8, 6)
    assert last["action_is_pad"].tolist() == [False] + [True] * 7
    assert last[IMAGE].shape == (2, 3, 64, 64) and last["observation.state"].shape == (2, 6)
    first = dataset[0]
    assert first[f"{IMAGE}_is_pad"].tolist() == [True, False]
    assert not first["action_is_pad"].any()
    # The chunk is the episode's next actions: action[k] of frame 0 is frame k's action.
    assert torch.allclose(first["action"][3], dataset[3]["action"][0])


def test_split_is_by_episode_and_stratified_by_task(source):
    datamodule = VLADataModule(source, split={"stratify_by": "task"}, num_workers=0)
    datamodule.setup()
    train = {e.episode_index for e in datamodule.train_episodes}
    val = {e.episode_index for e in datamodule.val_episodes}
    assert not train & val and train | val == set(range(EPISODES))
    served = {int(datamodule.val_dataset[i]["episode_index"]) for i in range(0, 2 * FRAMES, 5)}
    assert served <= val
    tasks = {e.scenario["task"] for e in datamodule.val_episodes}
    assert tasks == {"Pick up the red cube", "Pick up the blue cube"}


def test_stats_come_from_train_episodes_only(source, root):
    stored = LeRobotDataset("local/synthetic", root=root, video_backend="pyav").meta.stats
    episodes = source.episodes()
    partial = source.compute_stats(episodes[:4])["action"]
    whole = source.compute_stats(episodes)["action"]
    assert not np.allclose(partial["mean"], stored["action"]["mean"])
    np.testing.assert_allclose(whole["mean"], stored["action"]["mean"])
    np.testing.assert_allclose(whole["q99"], stored["action"]["q99"])
    assert set(whole) == {"mean", "std", "min", "max", "q01", "q99"}


def test_camera_stats_are_imagenet_by_default(source, root):
    stats = source.compute_stats(source.episodes()[:4])[IMAGE]
    assert stats["mean"] == IMAGENET_STATS["mean"] and stats["std"] == IMAGENET_STATS["std"]
    assert np.array(stats["min"]).reshape(3, 1, 1).shape == (3, 1, 1)
    own = LeRobotEpisodes(root=str(root), video_backend="pyav", use_imagenet_stats=False)
    stored = LeRobotDataset("local/synthetic", root=root, video_backend="pyav").meta.stats
    mean = own.compute_stats(own.episodes()[:4])[IMAGE]["mean"]
    np.testing.assert_allclose(np.array(mean).reshape(3, 1, 1), stored[IMAGE]["mean"])


def test_missing_info_json_error_names_the_path(tmp_path):
    (tmp_path / "data").mkdir()
    with pytest.raises(FileNotFoundError, match=re.escape(str(tmp_path / "meta" / "info.json"))):
        LeRobotEpisodes(root=str(tmp_path))


def write_with_a_constant_joint(root: Path, joint: int, value: float) -> Path:
    """A LeRobot-written dataset (LeRobot's own writer) whose ``joint`` never moves."""
    names = joint_names(6)
    features = {
        IMAGE: {"dtype": "video", "shape": (64, 64, 3), "names": ["height", "width", "channels"]},
        "observation.state": {"dtype": "float32", "shape": (6,), "names": names},
        "action": {"dtype": "float32", "shape": (6,), "names": names},
    }
    dataset = LeRobotDataset.create("local/constant_joint", fps=FPS, features=features, root=root)
    rng = np.random.default_rng(0)
    for episode in range(6):
        task = TASKS[episode % len(TASKS)]
        images, states, actions = render_episode(task, FRAMES, (64, 64), 6, rng)
        states[:, joint] = actions[:, joint] = value
        for t in range(FRAMES):
            frame = {IMAGE: images[t], "observation.state": states[t], "action": actions[t]}
            dataset.add_frame({**frame, "task": task})
        dataset.save_episode()
    dataset.finalize()
    return root


def test_a_joint_the_train_episodes_never_move_warns_trains_and_normalises_safely(
    make_cfg, tmp_path, caplog
):
    """lerobot-train accepts such a dataset; LeRobot's normaliser alone would turn a 0.01
    deviation on that joint into ~1e6 (it divides by std + 1e-8)."""
    joint, value, deviation = 3, 0.25, 0.01
    root = write_with_a_constant_joint(tmp_path / "constant_joint", joint, value)
    run = tmp_path / "run"
    overrides = [
        "experiment=roarm_act_demo",
        "data=roarm_lerobot",
        f"data.source.root={root}",
        "data.source.video_backend=pyav",
        "hardware.num_workers=0",
        "hardware.batch_size=4",
        "trainer.max_steps=2",
        "trainer.limit_val_batches=1",
    ]
    with caplog.at_level(logging.WARNING, logger="vla_lab.data.lerobot.stats"):
        metrics = train(make_cfg(overrides, output_dir=run))
    assert np.isfinite(metrics["val/loss"])
    for key in ("observation.state", "action"):
        warning = f"{key} dimension {joint} ('wrist_roll') never varies over the train episodes"
        assert caplog.text.count(warning) == 1 and str(root) in caplog.text

    module = load_checkpoint(run / "checkpoints" / "last.ckpt").module
    mean = torch.tensor(module.dataset_stats["observation.state"]["mean"], dtype=torch.float32)
    moved = mean.clone()
    moved[joint] = value + deviation
    batch = {
        IMAGE: torch.rand(1, 3, 64, 64),
        "observation.state": moved[None],
        "action": moved.expand(1, module.chunk_size, 6).clone(),
        "action_is_pad": torch.zeros(1, module.chunk_size, dtype=torch.bool),
        "task": TASKS[0],
    }
    processed = module.preprocess(batch)
    assert processed["observation.state"][0, joint].item() == pytest.approx(deviation, abs=1e-5)
    assert processed["action"][0, :, joint].tolist() == pytest.approx(
        [deviation] * module.chunk_size, abs=1e-5
    )


def test_truncated_video_fails_at_scan_naming_the_file(root, tmp_path):
    copy = Path(shutil.copytree(root, tmp_path / "copy"))
    video = video_file(copy)
    video.write_bytes(video.read_bytes()[: video.stat().st_size // 2])
    with pytest.raises(ValueError, match=re.escape(str(video))):
        LeRobotEpisodes(root=str(copy), video_backend="pyav").episodes()


def test_video_shorter_than_its_episodes_fails_at_scan(root, tmp_path):
    copy = Path(shutil.copytree(root, tmp_path / "copy"))
    video = video_file(copy)
    _keep_first_seconds(video, (EPISODES - 2) * FRAMES / FPS)
    with pytest.raises(
        ValueError, match=rf"{re.escape(str(video))} holds frames up to t=7\.200s.*truncated"
    ):
        LeRobotEpisodes(root=str(copy), video_backend="pyav").episodes()


def test_decoding_error_names_the_file_and_timestamp(root, tmp_path):
    copy = Path(shutil.copytree(root, tmp_path / "copy"))
    source = LeRobotEpisodes(root=str(copy), video_backend="pyav")
    dataset = source.dataset(source.episodes(), [0], [0, 1], None)
    video = video_file(copy)
    video.write_bytes(b"not a video")
    with pytest.raises(RuntimeError, match=rf"{re.escape(str(video))} at t=1\.700s"):
        dataset[FRAMES + 5]


def test_video_backend_auto_falls_back_to_pyav_without_ffmpeg_libraries(root, caplog):
    try:
        from torchcodec.decoders import VideoDecoder  # noqa: F401
    except Exception:
        pass
    else:
        pytest.skip("torchcodec loads on this machine")
    with caplog.at_level(logging.INFO, logger="vla_lab.data.lerobot.samples"):
        assert resolve_video_backend("auto", video_file(root)) == "pyav"
    assert "pyav" in caplog.text


def test_datamodule_with_two_workers_yields_a_collated_batch(root):
    source = LeRobotEpisodes(root=str(root))
    datamodule = VLADataModule(
        source,
        split={"stratify_by": "task"},
        batch_size=4,
        num_workers=2,
        persistent_workers=False,
        action_delta_indices=list(range(5)),
    )
    batch = next(iter(datamodule.train_dataloader()))
    assert batch[IMAGE].shape == (4, 3, 64, 64)
    assert batch["action"].shape == (4, 5, 6) and batch["action_is_pad"].shape == (4, 5)
    assert len(batch["task"]) == 4


def _keep_first_seconds(video: Path, seconds: float) -> None:
    """Rewrite ``video`` with only its packets before ``seconds`` (no re-encoding)."""
    short = video.with_suffix(".short.mp4")
    with av.open(str(video)) as source, av.open(str(short), "w") as target:
        stream = source.streams.video[0]
        out = target.add_stream_from_template(stream, opaque=True)
        for packet in source.demux(stream):
            if packet.dts is None or packet.pts is None:
                continue
            if float(packet.pts * stream.time_base) >= seconds:
                break
            packet.stream = out
            target.mux(packet)
    short.replace(video)


def test_v21_dataset_is_converted_into_the_cache_and_left_unchanged(root, tmp_path, caplog):
    old = _as_v21(root, tmp_path / "v21", num_episodes=3)
    before = sorted((p.relative_to(old), p.stat().st_mtime) for p in old.rglob("*"))
    with caplog.at_level(logging.WARNING, logger="vla_lab.data.lerobot.convert"):
        source = LeRobotEpisodes(root=str(old), video_backend="pyav", cache_dir=str(tmp_path / "c"))
        episodes = source.episodes()
    assert [e.num_frames for e in episodes] == [FRAMES] * 3
    assert "Converted LeRobot v2.1 dataset" in caplog.text and str(tmp_path / "c") in caplog.text
    item = source.dataset(episodes, [0], [0, 1], None)[FRAMES + 2]
    assert item[IMAGE].shape == (3, 64, 64) and int(item["episode_index"]) == 1
    assert sorted((p.relative_to(old), p.stat().st_mtime) for p in old.rglob("*")) == before


def _as_v21(root: Path, out: Path, num_episodes: int) -> Path:
    """The first episodes of the v3.0 dataset at ``root`` in the v2.1 layout LeRobot converts."""
    import json

    import pandas as pd

    info = json.loads((root / "meta" / "info.json").read_text())
    frames = pd.read_parquet(next(root.glob("data/*/*.parquet")))
    meta = pd.read_parquet(next(root.glob("meta/episodes/*/*.parquet")))
    (out / "meta").mkdir(parents=True)
    tasks = pd.read_parquet(root / "meta" / "tasks.parquet")
    lines = {"tasks": [], "episodes": [], "episodes_stats": []}
    for task, row in tasks.iterrows():
        lines["tasks"].append({"task_index": int(row["task_index"]), "task": task})
    for ep in range(num_episodes):
        rows = frames[frames["episode_index"] == ep]
        data = out / f"data/chunk-000/episode_{ep:06d}.parquet"
        data.parent.mkdir(parents=True, exist_ok=True)
        rows.to_parquet(data, index=False)
        row = meta[meta["episode_index"] == ep].iloc[0]
        lines["episodes"].append(
            {"episode_index": ep, "tasks": list(row["tasks"]), "length": len(rows)}
        )
        stats = {
            key: {
                s: _nested(row[f"stats/{key}/{s}"]) for s in ("min", "max", "mean", "std", "count")
            }
            for key in info["features"]
        }
        lines["episodes_stats"].append({"episode_index": ep, "stats": stats})
        video = out / f"videos/chunk-000/{IMAGE}/episode_{ep:06d}.mp4"
        video.parent.mkdir(parents=True, exist_ok=True)
        start, end = row[f"videos/{IMAGE}/from_timestamp"], row[f"videos/{IMAGE}/to_timestamp"]
        _cut(video_file(root), video, start, end)
    for name, items in lines.items():
        (out / "meta" / f"{name}.jsonl").write_text("".join(json.dumps(i) + "\n" for i in items))
    info.update(
        codebase_version="v2.1",
        total_episodes=num_episodes,
        total_frames=num_episodes * FRAMES,
        total_chunks=1,
        total_videos=num_episodes,
        splits={"train": f"0:{num_episodes}"},
        data_path="data/chunk-{episode_chunk:03d}/episode_{episode_index:06d}.parquet",
        video_path="videos/chunk-{episode_chunk:03d}/{video_key}/episode_{episode_index:06d}.mp4",
    )
    (out / "meta" / "info.json").write_text(json.dumps(info, indent=2))
    return out


def _nested(value):
    """Parquet's nested arrays (object arrays of arrays) as plain lists."""
    if isinstance(value, np.ndarray):
        return [_nested(v) for v in value] if value.dtype == object else value.tolist()
    return value


def _cut(video: Path, out: Path, start_s: float, end_s: float) -> None:
    """Remux the packets of ``video`` in ``[start_s, end_s)`` into ``out``, starting at t=0."""
    with av.open(str(video)) as source, av.open(str(out), "w") as target:
        stream = source.streams.video[0]
        copy = target.add_stream_from_template(stream, opaque=True)
        offset = round(start_s / stream.time_base)
        for packet in source.demux(stream):
            if packet.pts is None or not start_s <= float(packet.pts * stream.time_base) < end_s:
                continue
            packet.pts -= offset
            packet.dts -= offset
            packet.stream = copy
            target.mux(packet)
