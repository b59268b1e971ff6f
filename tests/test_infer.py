"""infer.py: a checkpoint streamed over recorded data frame by frame, from any supported input,
with a video of the predictions on request."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import pandas as pd
import pytest
from conftest import DEMOS

from vla_lab.data.formats import data_config_for
from vla_lab.data.physical_ai_av import layout
from vla_lab.data.physical_ai_av.calibration import read_camera
from vla_lab.data.physical_ai_av.layout import RootLayout
from vla_lab.data.synthetic.physical_ai_av import write_synthetic_av
from vla_lab.evaluation.video import PREDICTED
from vla_lab.infer import infer
from vla_lab.utils.config import compose_config

FRAMES = 6


def run_infer(ckpt: Path, out: Path, *overrides: str) -> pd.DataFrame:
    cfg = compose_config(
        [f"ckpt_path={ckpt}", "progress=false", *overrides], "infer", output_dir=str(out)
    )
    return pd.read_parquet(infer(cfg))


def video_frames(path: Path) -> list[np.ndarray]:
    with av.open(str(path)) as container:
        return [frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)]


def green_pixels(frame: np.ndarray) -> int:
    """Pixels close to the colour predictions are drawn in (H.264 shifts colours a little)."""
    return int((np.abs(frame.astype(int) - PREDICTED).max(-1) < 40).sum())


@pytest.mark.parametrize("experiment", DEMOS)
def test_each_demo_streams_its_data_into_predictions_and_a_video(
    experiment: str, checkpoint_of, tmp_path: Path
):
    out = tmp_path / "infer"
    table = run_infer(
        checkpoint_of(experiment), out, f"limit_frames={FRAMES}", "render=true", "render_height=120"
    )

    assert len(table) == FRAMES and table["index"].tolist() == list(range(FRAMES))
    assert table["action_pred"].map(len).nunique() == 1
    assert len(table["action_pred"].iloc[0]) == len(table["action_true"].iloc[0])
    frames = video_frames(out / "predictions.mp4")
    assert len(frames) == FRAMES and frames[0].shape[0] == 120
    assert all(green_pixels(frame) > 20 for frame in frames), "the prediction is not drawn"
    assert not list(out.glob(".*.tmp"))


def test_one_h5_episode_streams_every_frame(checkpoint_of, shared_dirs, tmp_path: Path):
    episode = sorted((shared_dirs["data_dir"] / "mobile_vla_box_course").rglob("*.h5"))[0]
    table = run_infer(checkpoint_of("mobile_vla_demo"), tmp_path / "infer", f"input={episode}")
    assert table["episode_index"].nunique() == 1
    assert table["frame_index"].tolist() == list(range(len(table)))
    assert len(table["action_pred"].iloc[0]) == len(table["action_true"].iloc[0]) == 3


def test_a_driving_checkpoint_on_an_av_root_without_calibration_draws_an_inset(
    checkpoint_of, tmp_path: Path
):
    root = write_synthetic_av(tmp_path / "drives", num_clips=3, seed=7, write_calibration=False)
    out = tmp_path / "infer"
    ckpt = checkpoint_of("av_smolvla_unicycle_demo")
    table = run_infer(ckpt, out, f"input={root}", "render=true", "render_height=150")

    assert table["clip_id"].nunique() == 3
    assert len(table["future_xyz_pred"].iloc[0]) == 64 * 3 and (table["ade"] >= 0).all()
    frame = video_frames(out / "predictions.mp4")[0]
    inset = frame[-(150 // 3 + 8) :, -(150 // 3 + 8) :]  # bottom-right corner
    assert green_pixels(inset) > 0


def test_the_f_theta_calibration_projects_like_the_pinhole_that_rendered_the_clip(tmp_path):
    """The synthetic writer renders with a pinhole (f from a 100 deg FOV, camera 1.5 m ahead and
    1.5 m up) and stores f-theta polynomials fitted to it: both must put a point on one pixel."""
    root = write_synthetic_av(tmp_path / "drives", num_clips=1, seed=3, image_size=(64, 96))
    clip_id = pd.read_parquet(root / layout.CLIP_INDEX).index[0]
    camera = read_camera(RootLayout.of(root), 0, clip_id, layout.FRONT_WIDE)
    points = np.array([[10.0, 0.0, 0.0], [12.0, 3.0, 0.0], [30.0, -4.0, 1.0], [-5.0, 0.0, 0.0]])

    pixels, visible = camera.project(points)

    focal = 48 / np.tan(np.radians(50))
    depth = points[:, 0] - 1.5
    expected_u = 47.5 - focal * points[:, 1] / depth
    expected_v = 31.5 + focal * (1.5 - points[:, 2]) / depth
    assert visible.tolist() == [True, True, True, False]  # behind the camera
    np.testing.assert_allclose(pixels[:3, 0], expected_u[:3], atol=0.3)
    np.testing.assert_allclose(pixels[:3, 1], expected_v[:3], atol=0.3)
    resized, _ = camera.project(points[:1], image_size=(128, 192))
    np.testing.assert_allclose(resized[0], pixels[0] * 2)


def test_a_root_without_calibration_has_no_camera(tmp_path: Path):
    root = write_synthetic_av(tmp_path / "drives", num_clips=1, seed=3, write_calibration=False)
    clip_id = pd.read_parquet(root / layout.CLIP_INDEX).index[0]
    assert read_camera(RootLayout.of(root), 0, clip_id, layout.FRONT_WIDE) is None


def test_an_unknown_input_names_the_formats_it_could_be(tmp_path: Path):
    with pytest.raises(FileNotFoundError, match="LeRobot dataset root"):
        data_config_for(tmp_path)
