"""Our PhysicalAI-AV reader against NVIDIA's own devkit (`physical-ai-av`), the way Alpamayo-R1
reads through it: same clips, same t0s -> the same poses in the t0 frame and the same frames.

The clips have the released clock (egomotion from about -2 s, the first frame a few ms off 0,
jittered frame timestamps, B-frames in one clip), so a reader that shifts the clock or assumes
frame i sits at i / fps disagrees here.
"""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from physical_ai_av.egomotion import EgomotionState
from physical_ai_av.video import SeekVideoReader
from scipy.spatial.transform import Rotation

from vla_lab.data.physical_ai_av import layout
from vla_lab.data.physical_ai_av.clips import PhysicalAIAVClips
from vla_lab.data.physical_ai_av.poses import window_offsets_us
from vla_lab.data.physical_ai_av.video import ClipVideo
from vla_lab.data.synthetic.physical_ai_av import write_synthetic_av

AR1_T0_US = 5_100_000
FRAME_OFFSETS_S = [-0.3, -0.2, -0.1, 0.0]  # AR1's 4-frame history


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> PhysicalAIAVClips:
    tmp = tmp_path_factory.mktemp("devkit")
    root = write_synthetic_av(tmp / "root", num_clips=4, clip_seconds=12.0, clips_per_chunk=2)
    return PhysicalAIAVClips(
        str(root),
        image_size=[32, 48],
        t0_mode="stride",
        t0_stride_s=0.7,
        frame_offsets_s=FRAME_OFFSETS_S,
        cache_dir=str(tmp / "cache"),
    )


def member_bytes(zip_path: Path, member: str) -> bytes:
    with zipfile.ZipFile(zip_path) as archive:
        return archive.read(member)


def devkit_poses(egomotion: pd.DataFrame, t0_us: int) -> tuple[np.ndarray, np.ndarray]:
    """AR1's `load_physical_aiavdataset` poses: devkit interpolation, then the t0 frame."""
    interpolate = EgomotionState.from_egomotion_df(egomotion).create_interpolator(
        egomotion["timestamp"].to_numpy()
    )
    pose = interpolate(t0_us + window_offsets_us()).pose
    origin = 15  # t0 is the last of the 16 history poses
    inverse = pose.rotation[origin].inv()
    xyz = inverse.apply(pose.translation - pose.translation[origin])
    return xyz, (inverse * pose.rotation).as_matrix()


def test_poses_equal_the_devkits_at_the_same_clip_clock_t0s(source: PhysicalAIAVClips):
    worst_xyz = worst_angle = 0.0
    for clip in source.episodes():
        samples = source.clip_samples(clip.clip_id)
        # The stride grid runs through AR1's t0 and keeps t0 > 1.6 s and t0 + 6.4 s < last frame.
        assert samples.t0_us.tolist() == [2_300_000, 3_000_000, 3_700_000, 4_400_000, AR1_T0_US]
        zip_path = source.layout.chunk_file(layout.EGOMOTION, clip.chunk)
        member = source.layout.member(layout.EGOMOTION, "egomotion", clip.clip_id)
        egomotion = pd.read_parquet(io.BytesIO(member_bytes(zip_path, member)))
        assert egomotion["timestamp"].iloc[0] < -1_800_000  # history before the clip's 0
        for i, t0 in enumerate(samples.t0_us):
            xyz, rot = devkit_poses(egomotion, int(t0))
            ours_xyz = np.concatenate([samples.hist_xyz[i], samples.fut_xyz[i]])
            ours_rot = np.concatenate([samples.hist_rot[i], samples.fut_rot[i]]).astype(np.float64)
            worst_xyz = max(worst_xyz, float(np.abs(ours_xyz - xyz).max()))
            relative = Rotation.from_matrix(np.swapaxes(ours_rot, 1, 2) @ rot)
            worst_angle = max(worst_angle, float(relative.magnitude().max()))
    assert worst_xyz < 1e-5, f"max pose difference {worst_xyz:.2e} m"
    assert worst_angle < 1e-6, f"max rotation difference {worst_angle:.2e} rad"


def test_frames_are_the_devkits_at_the_same_t0s(source: PhysicalAIAVClips):
    offsets_us = np.round(np.array(FRAME_OFFSETS_S) * 1e6).astype(np.int64)
    for clip in source.episodes():
        samples = source.clip_samples(clip.clip_id)
        zip_path, video_member = source.video_location(clip)
        stamps_member = source.layout.member(source.camera, "frame_timestamps", clip.clip_id)
        timestamps = pd.read_parquet(io.BytesIO(member_bytes(zip_path, stamps_member)))
        timestamps = timestamps["timestamp"].to_numpy(np.int64)
        assert timestamps[0] != 0  # the first frame is a few ms off the clock's 0
        reader = SeekVideoReader(io.BytesIO(member_bytes(zip_path, video_member)), timestamps)
        video = ClipVideo(zip_path, video_member)
        for i, t0 in enumerate(samples.t0_us):
            images, frame_us = reader.decode_images_from_timestamps(int(t0) + offsets_us)
            np.testing.assert_array_equal(timestamps[samples.frame_index[i]], frame_us)
            ours = np.stack(video.frames(samples.frame_index[i].tolist()))
            np.testing.assert_array_equal(ours, images)
        reader.close()
