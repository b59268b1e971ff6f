"""The PhysicalAI-AV loader on clips written in the released layout (vla_lab.data.synthetic)."""

from __future__ import annotations

import io
import logging
import shutil
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from scipy.spatial.transform import Rotation

from vla_lab.data.datamodule import VLADataModule
from vla_lab.data.physical_ai_av import layout
from vla_lab.data.physical_ai_av.clips import BadClipError, PhysicalAIAVClips
from vla_lab.data.physical_ai_av.poses import EgoTrajectory, window_offsets_us
from vla_lab.data.physical_ai_av.video import ClipVideo, read_timestamps
from vla_lab.data.synthetic.physical_ai_av import write_synthetic_av
from vla_lab.driving.unicycle import UnicycleActionSpace

AR1_T0_US = 5_100_000  # Alpamayo-R1's t0, in the clip clock


@pytest.fixture(scope="module")
def av_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("av") / "root"
    return write_synthetic_av(root, num_clips=5, clip_seconds=12.0, clips_per_chunk=3)


def make_source(root: Path, tmp_path: Path, **options) -> PhysicalAIAVClips:
    options = {"image_size": [32, 48], "cache_dir": str(tmp_path / "cache"), **options}
    return PhysicalAIAVClips(str(root), **options)


def clip_ids(root: Path) -> list[str]:
    return sorted(pd.read_parquet(root / layout.CLIP_INDEX).index)


def rewrite_member(zip_path: Path, member: str, data: bytes | None) -> None:
    """Replace (or with None, drop) one member of a chunk zip."""
    with zipfile.ZipFile(zip_path) as archive:
        members = {name: archive.read(name) for name in archive.namelist()}
    if data is None:
        members.pop(member)
    else:
        members[member] = data
    with zipfile.ZipFile(zip_path, "w", zipfile.ZIP_STORED) as archive:
        for name, content in members.items():
            archive.writestr(name, content)


def egomotion_of(root: Path, clip_id: str) -> tuple[Path, pd.DataFrame]:
    chunk = int(pd.read_parquet(root / layout.CLIP_INDEX).loc[clip_id, "chunk"])
    zip_path = layout.egomotion_zip(root, chunk)
    with zipfile.ZipFile(zip_path) as archive:
        table = pd.read_parquet(io.BytesIO(archive.read(layout.egomotion_member(clip_id))))
    return zip_path, table


def parquet_bytes(table: pd.DataFrame) -> bytes:
    buffer = io.BytesIO()
    table.to_parquet(buffer)
    return buffer.getvalue()


def test_samples_follow_the_contract_and_the_released_split(av_root: Path, tmp_path: Path):
    source = make_source(av_root, tmp_path, t0_mode="stride", t0_stride_s=1.0)
    datamodule = VLADataModule(
        source,
        split={"use_source": True, "stratify_by": "split"},
        num_workers=0,
        action_delta_indices=range(64),
    )
    datamodule.setup()
    index = pd.read_parquet(av_root / layout.CLIP_INDEX)
    assert {c.clip_id for c in datamodule.val_episodes} == set(index.index[index.split == "val"])
    item = datamodule.train_dataset[0]
    assert item["observation.images.front_wide"].shape == (3, 32, 48)
    assert item["action"].shape == (64, 2) and item["trajectory.future_xyz"].shape == (64, 3)
    assert item["trajectory.history_xyz"].shape == (16, 3)
    assert item["task"] == "Follow the lane"
    # The 1 s grid through AR1's 5.1 s, between t0 > 1.6 s and t0 + 6.4 s <= the last frame
    # (~11.9 s): 2.1, 3.1, 4.1, 5.1 s.
    assert datamodule.train_episodes[0].num_frames == 4
    samples = source.clip_samples(datamodule.train_episodes[0].clip_id)
    assert samples.t0_us.tolist() == [2_100_000, 3_100_000, 4_100_000, AR1_T0_US]
    batch = next(iter(datamodule.train_dataloader()))
    assert batch["observation.state"].shape == (8, 1)


def test_frame_is_the_latest_at_or_before_t0(av_root: Path, tmp_path: Path):
    source = make_source(av_root, tmp_path, t0_mode="stride", t0_stride_s=0.73)
    clip = source.episodes()[0]
    samples = source.clip_samples(clip.clip_id)
    zip_path, member = source.video_location(clip)
    timestamps = read_timestamps(zip_path, layout.timestamps_member(clip.clip_id, source.camera))
    video = ClipVideo(zip_path, member)
    for t0, (frame,) in zip(samples.t0_us, samples.frame_index, strict=True):
        assert timestamps[frame] <= t0 < timestamps[frame + 1]
        by_seek = video.frames([frame])[0]
        from_start = video.frames([frame], seek=False)[0]
        np.testing.assert_array_equal(by_seek, from_start)
    # Neighbouring frames differ (the road moves), so the check above can fail.
    assert not np.array_equal(video.frames([10])[0], video.frames([11])[0])


def test_poses_are_in_the_t0_ego_frame_whatever_the_anchor(av_root: Path):
    _, table = egomotion_of(av_root, clip_ids(av_root)[0])
    t = table["timestamp"].to_numpy(np.int64)
    xyz = table[["x", "y", "z"]].to_numpy().copy()
    quat = table[["qx", "qy", "qz", "qw"]].to_numpy().copy()
    assert not np.allclose(quat[0], [0, 0, 0, 1], atol=1e-3)  # the anchor is rotated
    # Move the anchor frame again: rotate about all axes and offset by hundreds of metres.
    extra = Rotation.from_euler("zyx", [2.1, 0.05, -0.03])
    moved_xyz = extra.apply(xyz) + np.array([300.0, -120.0, 4.0])
    moved_quat = (extra * Rotation.from_quat(quat)).as_quat()
    offsets = window_offsets_us()
    t0 = AR1_T0_US
    original = EgoTrajectory(t, xyz, quat).window(t0, offsets, 16)
    moved = EgoTrajectory(t, moved_xyz, moved_quat).window(t0, offsets, 16)
    np.testing.assert_allclose(moved.fut_xyz, original.fut_xyz, atol=1e-3)
    np.testing.assert_allclose(moved.fut_rot, original.fut_rot, atol=1e-5)
    np.testing.assert_allclose(original.hist_xyz[-1], 0.0, atol=1e-6)
    np.testing.assert_allclose(original.hist_rot[-1], np.eye(3), atol=1e-6)
    # In the ego frame the car drives forward (x), at its logged speed.
    speed = np.linalg.norm(table[["vx", "vy"]].to_numpy(), axis=1)
    v_t0 = np.interp(t0, t, speed)
    assert original.fut_xyz[0, 0] == pytest.approx(v_t0 * 0.1, rel=0.1)
    assert abs(original.fut_xyz[0, 1]) < 0.05


def test_ground_truth_controls_rebuild_the_future(av_root: Path, tmp_path: Path):
    source = make_source(av_root, tmp_path)
    space = UnicycleActionSpace()
    for clip in source.episodes():
        s = source.clip_samples(clip.clip_id)
        xyz, _ = space.action_to_traj(
            torch.from_numpy(s.action), torch.from_numpy(s.hist_xyz), torch.from_numpy(s.hist_rot)
        )
        error = np.linalg.norm(xyz.numpy()[..., :2] - s.fut_xyz[..., :2], axis=-1).mean()
        assert error < 0.02


def test_ground_truth_is_cached_so_later_runs_fit_nothing(av_root, tmp_path, monkeypatch):
    first = make_source(av_root, tmp_path, t0_mode="stride")
    actions = [first.clip_samples(c.clip_id).action for c in first.episodes()]

    def refuse(*args, **kwargs):
        raise AssertionError("least squares ran again despite the cache")

    monkeypatch.setattr(UnicycleActionSpace, "traj_to_action", refuse)
    second = make_source(av_root, tmp_path, t0_mode="stride")
    again = [second.clip_samples(c.clip_id).action for c in second.episodes()]
    for a, b in zip(actions, again, strict=True):
        np.testing.assert_array_equal(a, b)


def test_rule_commands_label_each_sample(av_root: Path, tmp_path: Path):
    source = make_source(av_root, tmp_path, t0_mode="stride", commands={"mode": "rule"})
    tasks = {t for c in source.episodes() for t in source.clip_samples(c.clip_id).task}
    assert tasks and tasks <= set(source.commands.labeler.commands.values())


@pytest.fixture()
def damaged_root(av_root: Path, tmp_path: Path) -> Path:
    root = tmp_path / "damaged"
    shutil.copytree(av_root, root)
    return root


def damage(root: Path, clip_id: str, how: str) -> None:
    chunk = int(pd.read_parquet(root / layout.CLIP_INDEX).loc[clip_id, "chunk"])
    if how == "missing member":
        zip_path, _ = egomotion_of(root, clip_id)
        rewrite_member(zip_path, layout.egomotion_member(clip_id), None)
        return
    if how == "video shorter than timestamps":
        zip_path = layout.camera_zip(root, layout.FRONT_WIDE, chunk)
        member = layout.timestamps_member(clip_id, layout.FRONT_WIDE)
        timestamps = read_timestamps(zip_path, member)
        longer = np.concatenate([timestamps, timestamps[-1] + 100_000 * np.arange(1, 21)])
        rewrite_member(zip_path, member, parquet_bytes(pd.DataFrame({"timestamp": longer})))
        return
    zip_path, table = egomotion_of(root, clip_id)
    t0 = AR1_T0_US
    if how == "egomotion gap around t0":
        table = table[(table.timestamp < t0 - 200_000) | (table.timestamp > t0 + 200_000)]
    elif how == "non-finite poses":
        table.loc[table.index[40], "x"] = np.nan
    rewrite_member(zip_path, layout.egomotion_member(clip_id), parquet_bytes(table))


@pytest.mark.parametrize(
    ("how", "expected"),
    [
        ("missing member", "has no member"),
        ("video shorter than timestamps", "frames but its timestamps"),
        ("egomotion gap around t0", "gap"),
        ("non-finite poses", "non-finite"),
    ],
)
def test_bad_clips_are_skipped_with_a_warning_naming_them(
    damaged_root: Path, tmp_path: Path, caplog, how: str, expected: str
):
    victim = clip_ids(damaged_root)[0]
    damage(damaged_root, victim, how)
    with caplog.at_level(logging.WARNING):
        source = make_source(damaged_root, tmp_path)
        kept = {c.clip_id for c in source.episodes()}
    assert victim not in kept and len(kept) >= 2
    warnings = [r.getMessage() for r in caplog.records if victim in r.getMessage()]
    assert len(warnings) == 1 and expected in warnings[0], warnings
    assert source.skipped["bad clips"] >= 1
    with pytest.raises(BadClipError, match=victim):
        make_source(damaged_root, tmp_path / "strict", on_bad_clip="error").episodes()


def test_t0_outside_the_margins_is_refused_not_clamped(av_root: Path, tmp_path: Path):
    # Egomotion starts ~2 s before 0, but the video does not: 1 s leaves no 1.6 s of video.
    with pytest.raises(BadClipError, match="t0 1000000 us is outside"):
        make_source(av_root, tmp_path, t0_us=1_000_000, on_bad_clip="error").episodes()
    source = make_source(av_root, tmp_path, t0_us=1_000_000)
    with pytest.raises(ValueError, match="No usable clip"):
        source.episodes()
    # AR1 refuses t0 <= 1.6 s whatever the first frame's timestamp (a few ms either side of 0).
    with pytest.raises(BadClipError, match="t0 1600000 us is outside"):
        make_source(av_root, tmp_path, t0_us=1_600_000, on_bad_clip="error").episodes()


def test_a_root_without_the_layout_names_what_is_missing(tmp_path: Path):
    with pytest.raises(FileNotFoundError, match="clip_index.parquet"):
        make_source(tmp_path / "nowhere", tmp_path).episodes()


def full_release_index(root: Path, extra_clips: int) -> None:
    """Make `root`'s index list `extra_clips` more clips, 100 per chunk, in chunks not on disk,
    as the released index does for a user who downloaded a chunk or two."""
    index = pd.read_parquet(root / layout.CLIP_INDEX)
    ids = pd.Index([f"absent-{i:06d}" for i in range(extra_clips)], name="clip_id")
    first_absent = int(index["chunk"].max()) + 1
    absent = pd.DataFrame(
        {
            "chunk": first_absent + np.arange(extra_clips, dtype=np.int64) // 100,
            "split": "train",
            "clip_is_valid": True,
        },
        index=ids,
    )
    pd.concat([index, absent]).to_parquet(root / layout.CLIP_INDEX)


def test_clips_of_chunks_not_downloaded_are_skipped_with_one_summary_line(
    damaged_root: Path, tmp_path: Path, caplog
):
    full_release_index(damaged_root, extra_clips=30_000)
    with caplog.at_level(logging.INFO, logger="vla_lab.data.physical_ai_av.clips"):
        source = make_source(damaged_root, tmp_path, on_bad_clip="error")
        assert len(source.episodes()) == 5
    messages = [r.getMessage() for r in caplog.records]
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING], messages
    summary = [m for m in messages if "30005 clips in 302 chunks" in m]
    assert len(summary) == 1 and "on disk: chunks 0-1" in summary[0], messages
    assert len(messages) <= 5, messages


def test_chunks_option_selects_chunks_on_disk_and_names_absent_ones(av_root, tmp_path):
    source = make_source(av_root, tmp_path, chunks=[1])
    index = pd.read_parquet(av_root / layout.CLIP_INDEX)
    assert {c.clip_id for c in source.episodes()} == set(index.index[index.chunk == 1])
    with pytest.raises(FileNotFoundError, match=r"chunks \[7\].*on disk: 0-1"):
        make_source(av_root, tmp_path, chunks=[1, 7]).episodes()


def test_a_chunk_with_some_of_its_files_warns_once_naming_the_file(
    damaged_root: Path, tmp_path: Path, caplog
):
    layout.egomotion_zip(damaged_root, 1).unlink()
    with caplog.at_level(logging.WARNING):
        source = make_source(damaged_root, tmp_path, on_bad_clip="error")
        kept = {c.chunk for c in source.episodes()}
    assert kept == {0}
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "chunk 1 is incomplete" in warnings[0], warnings
    assert "egomotion.chunk_0001.zip" in warnings[0]


def test_file_names_come_from_features_csv_where_it_exists(damaged_root: Path, tmp_path: Path):
    """A root whose features.csv names other zips and members (as a new release may) reads."""
    features = pd.read_csv(damaged_root / layout.FEATURES_CSV, dtype=str, keep_default_na=False)
    row = features.index[features.feature == layout.FRONT_WIDE][0]
    features.loc[row, "chunk_path"] = "camera/front/front.{chunk_id:04d}.zip"
    features.loc[row, "clip_files_in_zip"] = (
        '{"video": "{clip_id}/front.mp4", "frame_timestamps": "{clip_id}/front.ts.parquet"}'
    )
    features.to_csv(damaged_root / layout.FEATURES_CSV, index=False)
    for chunk in (0, 1):
        old = layout.camera_zip(damaged_root, layout.FRONT_WIDE, chunk)
        new = damaged_root / f"camera/front/front.{chunk:04d}.zip"
        new.parent.mkdir(parents=True, exist_ok=True)
        with zipfile.ZipFile(old) as src, zipfile.ZipFile(new, "w", zipfile.ZIP_STORED) as dst:
            for name in src.namelist():
                clip_id, rest = name.split(".", 1)
                renamed = "front.mp4" if rest.endswith(".mp4") else "front.ts.parquet"
                dst.writestr(f"{clip_id}/{renamed}", src.read(name))
        old.unlink()
    source = make_source(damaged_root, tmp_path)
    assert len(source.episodes()) == 5 and source.layout.source.endswith("features.csv")
    datamodule = VLADataModule(source, num_workers=0, action_delta_indices=range(64))
    datamodule.setup()
    assert datamodule.train_dataset[0]["observation.images.front_wide"].shape == (3, 32, 48)


def test_split_labels_of_splits_default_win_over_the_index(damaged_root, tmp_path):
    ids = clip_ids(damaged_root)
    labels = pd.DataFrame({"split": ["val"] + ["train"] * (len(ids) - 1)}, index=ids)
    (damaged_root / "splits").mkdir()
    labels.rename_axis("clip_id").to_parquet(damaged_root / layout.SPLITS_DEFAULT)
    source = make_source(damaged_root, tmp_path)
    train, val = source.source_split(source.episodes())
    assert [c.clip_id for c in val] == [ids[0]] and len(train) == len(ids) - 1
