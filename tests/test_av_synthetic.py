"""Synthetic PhysicalAI-AV clips: released layout, video, egomotion, calibration, atomic writes."""

from __future__ import annotations

import io
import json
import math
import zipfile
from pathlib import Path

import av
import numpy as np
import pandas as pd
import pytest
from av.video.frame import PictureType

from vla_lab.data.physical_ai_av import layout, writer
from vla_lab.data.synthetic import physical_ai_av as synthetic
from vla_lab.data.synthetic.physical_ai_av import write_synthetic_av

CLIPS, SECONDS, FPS, HZ, SIZE = 3, 3.0, 10, 50, (64, 96)
SPEEDS, MAX_CURVATURE = (5.0, 12.0), 0.03


@pytest.fixture(scope="module")
def root(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("av") / "synthetic"
    return write_synthetic_av(
        path,
        num_clips=CLIPS,
        clip_seconds=SECONDS,
        fps=FPS,
        image_size=SIZE,
        egomotion_hz=HZ,
        seed=5,
        clips_per_chunk=2,
        val_fraction=0.34,
        speed_range=SPEEDS,
        max_curvature=MAX_CURVATURE,
    )


@pytest.fixture(scope="module")
def clip_index(root) -> pd.DataFrame:
    return pd.read_parquet(root / layout.CLIP_INDEX)


def read_member(path: Path, member: str) -> bytes:
    with zipfile.ZipFile(path) as archive:
        assert archive.getinfo(member).compress_type == zipfile.ZIP_STORED
        return archive.read(member)


def egomotion(root: Path, clip_id: str, chunk: int) -> pd.DataFrame:
    data = read_member(layout.egomotion_zip(root, chunk), layout.egomotion_member(clip_id))
    return pd.read_parquet(io.BytesIO(data))


def frames_and_timestamps(root: Path, clip_id: str, chunk: int) -> tuple[list, np.ndarray]:
    archive = layout.camera_zip(root, layout.FRONT_WIDE, chunk)
    stamps = read_member(archive, layout.timestamps_member(clip_id, layout.FRONT_WIDE))
    video = read_member(archive, layout.video_member(clip_id, layout.FRONT_WIDE))
    with av.open(io.BytesIO(video)) as container:
        assert container.streams.video[0].codec_context.name == "h264"
        assert container.streams.video[0].average_rate == FPS
        frames = [(f.to_ndarray(format="rgb24"), f.key_frame) for f in container.decode(video=0)]
    return frames, pd.read_parquet(io.BytesIO(stamps))[layout.TIMESTAMP_COLUMN].to_numpy()


def rotation(qx: float, qy: float, qz: float, qw: float) -> np.ndarray:
    return np.array(
        [
            [1 - 2 * (qy**2 + qz**2), 2 * (qx * qy - qz * qw), 2 * (qx * qz + qy * qw)],
            [2 * (qx * qy + qz * qw), 1 - 2 * (qx**2 + qz**2), 2 * (qy * qz - qx * qw)],
            [2 * (qx * qz - qy * qw), 2 * (qy * qz + qx * qw), 1 - 2 * (qx**2 + qy**2)],
        ]
    )


def test_released_layout_with_index_presence_metadata_and_features(root, clip_index):
    assert clip_index.index.name == "clip_id" and len(clip_index) == CLIPS
    assert clip_index["chunk"].tolist() == [0, 0, 1] and clip_index["chunk"].dtype == np.int64
    assert clip_index["clip_is_valid"].dtype == bool and clip_index["clip_is_valid"].all()
    assert sorted(clip_index["split"]) == ["train", "train", "val"]
    presence = pd.read_parquet(root / layout.FEATURE_PRESENCE[0])
    assert presence.loc[clip_index.index, [layout.FRONT_WIDE, layout.EGOMOTION]].all().all()
    collection = pd.read_parquet(root / layout.DATA_COLLECTION)
    assert {"country", "month", "hour_of_day", "platform_class"} <= set(collection.columns)
    features = pd.read_csv(root / layout.FEATURES_CSV, index_col="feature")
    for chunk in (0, 1):
        camera = features.at[layout.FRONT_WIDE, "chunk_path"].format(chunk_id=chunk)
        assert root / camera == layout.camera_zip(root, layout.FRONT_WIDE, chunk)
        ego = features.at[layout.EGOMOTION, "chunk_path"].format(chunk_id=chunk)
        assert root / ego == layout.egomotion_zip(root, chunk)
        assert layout.intrinsics_parquet(root, chunk).is_file()
    members = json.loads(features.at[layout.FRONT_WIDE, "clip_files_in_zip"])
    clip_id = clip_index.index[0]
    assert members["video"].format(clip_id=clip_id) == layout.video_member(
        clip_id, layout.FRONT_WIDE
    )
    assert not list(root.parent.glob(".synthetic.*"))  # no temp dir left behind


def test_video_decodes_one_frame_per_timestamp_at_constant_rate(root, clip_index):
    for clip_id, chunk in clip_index["chunk"].items():
        frames, stamps = frames_and_timestamps(root, clip_id, chunk)
        assert stamps.dtype == np.int64 and len(frames) == len(stamps) == SECONDS * FPS
        assert all(image.shape == (*SIZE, 3) for image, _ in frames)
        # The released clock: the first frame a few ms off 0, then the rate with capture jitter.
        nominal = np.round(np.arange(len(stamps)) * 1e6 / FPS).astype(np.int64)
        first = stamps[0]
        assert 0 < abs(first) <= 21_000
        assert np.abs(stamps - first - nominal).max() <= 2_000
        assert np.any(stamps - first != nominal)
        keys = [i for i, (_, key) in enumerate(frames) if key]
        assert keys == list(range(0, len(frames), synthetic.KEYFRAME_INTERVAL))
        assert not np.array_equal(frames[0][0], frames[-1][0])  # the road moves


def test_one_clip_has_b_frames_so_decode_order_differs_from_display_order(root, clip_index):
    """Clip 1 (the second written) has B-frames; the others none."""
    has_b_frames = []
    for clip_id, chunk in clip_index["chunk"].items():
        archive = layout.camera_zip(root, layout.FRONT_WIDE, chunk)
        video = read_member(archive, layout.video_member(clip_id, layout.FRONT_WIDE))
        with av.open(io.BytesIO(video)) as container:
            types = {frame.pict_type for frame in container.decode(video=0)}
        has_b_frames.append(PictureType.B in types)
    assert has_b_frames == [False, True, False]  # the index lists clips in written order


def test_egomotion_is_consistent_in_a_rotated_offset_anchor_frame(root, clip_index):
    dt = 1.0 / HZ
    anchor_offsets = []
    for clip_id, chunk in clip_index["chunk"].items():
        ego = egomotion(root, clip_id, chunk)
        assert list(ego.columns[:8]) == list(layout.EGOMOTION_COLUMNS)
        stamps = ego[layout.TIMESTAMP_COLUMN]
        # Egomotion starts about 2 s before the clip's 0 and runs to its end, at HZ.
        assert stamps.dtype == np.int64 and -2_100_000 <= stamps.iloc[0] <= -1_900_000
        assert SECONDS * 1e6 - 1e6 / HZ < stamps.iloc[-1] <= SECONDS * 1e6
        np.testing.assert_allclose(np.diff(stamps), 1e6 / HZ, atol=1)
        assert np.isfinite(ego.drop(columns=layout.TIMESTAMP_COLUMN).to_numpy()).all()
        speed = np.hypot(ego["vx"], ego["vy"])
        assert speed.min() >= SPEEDS[0] - 1e-3 and speed.max() <= SPEEDS[1] + 1e-3
        assert ego["curvature"].abs().max() <= MAX_CURVATURE + 1e-9
        # Velocities are anchor-frame derivatives of the positions; yaw rate is v * curvature.
        xy = ego[["x", "y"]].to_numpy()
        np.testing.assert_allclose(
            (xy[2:] - xy[:-2]) / (2 * dt), ego[["vx", "vy"]].to_numpy()[1:-1], atol=1e-2
        )
        yaw = np.unwrap(2 * np.arctan2(ego["qz"], ego["qw"]))
        np.testing.assert_allclose(
            (yaw[2:] - yaw[:-2]) / (2 * dt), (speed * ego["curvature"])[1:-1], atol=1e-3
        )
        first = ego.iloc[0]
        anchor_offsets.append(math.hypot(first["x"], first["y"]) + abs(yaw[0]))
    assert max(anchor_offsets) > 1.0  # the first pose is deliberately not the identity


def test_calibration_projects_the_lane_lines_onto_white_pixels(root, clip_index):
    """Egomotion + extrinsics + f-theta intrinsics put the lane lines 8 m ahead where the video
    shows them, the way a loader would draw a trajectory on the image."""
    clip_id, chunk = next(iter(clip_index["chunk"].items()))
    intrinsics = pd.read_parquet(layout.intrinsics_parquet(root, chunk)).loc[
        (clip_id, layout.FRONT_WIDE)
    ]
    extrinsics_path = layout.extrinsics_parquet(root, chunk)
    extrinsics = pd.read_parquet(extrinsics_path).loc[(clip_id, layout.FRONT_WIDE)]
    cam_to_rig = rotation(*extrinsics[["qx", "qy", "qz", "qw"]])
    np.testing.assert_allclose(cam_to_rig, synthetic.CAMERA_TO_RIG, atol=1e-12)
    cam_origin = extrinsics[["x", "y", "z"]].to_numpy(dtype=float)
    fw_poly = intrinsics[[f"fw_poly_{k}" for k in range(5)]].to_numpy(dtype=float)
    ego = egomotion(root, clip_id, chunk)
    frames, stamps = frames_and_timestamps(root, clip_id, chunk)
    travelled = np.r_[0.0, np.cumsum(np.hypot(np.diff(ego["x"]), np.diff(ego["y"])))]
    for i in (0, 5, 10):
        j = int(np.searchsorted(ego[layout.TIMESTAMP_COLUMN], stamps[i]))
        k = int(np.searchsorted(travelled, travelled[j] + 8.0))
        pose = ego.iloc[j]
        rig_to_anchor = rotation(*pose[["qx", "qy", "qz", "qw"]])
        yaw = 2 * math.atan2(ego["qz"].iloc[k], ego["qw"].iloc[k])
        for side in (-synthetic.LANE_HALF_WIDTH_M, synthetic.LANE_HALF_WIDTH_M):
            left = np.array([-math.sin(yaw), math.cos(yaw), 0.0])
            point = ego[["x", "y", "z"]].iloc[k].to_numpy(dtype=float) + side * left
            rig = rig_to_anchor.T @ (point - pose[["x", "y", "z"]].to_numpy(dtype=float))
            x, y, z = cam_to_rig.T @ (rig - cam_origin)
            rho = math.hypot(x, y)
            radius = np.polyval(fw_poly[::-1], math.atan2(rho, z))
            u = intrinsics["cx"] + x * radius / rho
            v = intrinsics["cy"] + y * radius / rho
            pixel = frames[i][0][round(v), round(u)].astype(int)
            assert pixel.min() > 170, f"frame {i}, side {side}: {pixel} at ({u:.1f}, {v:.1f})"


def test_clips_depend_only_on_seed_and_index(tmp_path, clip_index):
    fewer = write_synthetic_av(
        tmp_path / "fewer", num_clips=2, clip_seconds=1.0, seed=5, write_calibration=False
    )
    ids = pd.read_parquet(fewer / layout.CLIP_INDEX).index
    assert ids.tolist() == clip_index.index[:2].tolist()
    features = pd.read_csv(fewer / layout.FEATURES_CSV)["feature"]
    assert set(features) == {layout.FRONT_WIDE, layout.EGOMOTION}
    assert not (fewer / "calibration").exists()


def test_existing_root_is_kept_and_a_failed_write_leaves_nothing(tmp_path, monkeypatch):
    root = write_synthetic_av(tmp_path / "data", num_clips=1, clip_seconds=1.0, seed=1)
    before = pd.read_parquet(root / layout.CLIP_INDEX)
    assert write_synthetic_av(root, num_clips=4, clip_seconds=1.0, seed=2) == root
    pd.testing.assert_frame_equal(pd.read_parquet(root / layout.CLIP_INDEX), before)

    def crash(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(writer, "encode_h264", crash)
    with pytest.raises(RuntimeError, match="disk full"):
        write_synthetic_av(tmp_path / "broken", num_clips=1, clip_seconds=1.0)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data"]


def test_bad_arguments_are_refused_before_writing(tmp_path):
    with pytest.raises(ValueError, match="image_size must be even"):
        write_synthetic_av(tmp_path / "odd", image_size=(63, 96))
    with pytest.raises(ValueError, match="speed_range"):
        write_synthetic_av(tmp_path / "slow", speed_range=(0.5, 3.0))
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("not a dataset")
    with pytest.raises(FileExistsError, match="clip_index.parquet"):
        write_synthetic_av(tmp_path / "other")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["other"]
