"""Mobile VLA reader: both layouts, colours, padding, bad files, scenarios, augmentations."""

from __future__ import annotations

import logging
import pickle
import re
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

from vla_lab.data.augment import build_train_transform
from vla_lab.data.mobile_vla.scenario import build_instruction, parse_scenario, swap_sides
from vla_lab.data.mobile_vla.source import MobileVLAEpisodes
from vla_lab.data.synthetic.mobile_vla import write_guide_episode, write_synthetic_episodes
from vla_lab.sim.base import EpisodeSpec
from vla_lab.sim.mobile_vla.env import BoxCourseEnv
from vla_lab.sim.mobile_vla.recorder import record_episode

IMAGE = "observation.images.front"
WINDOW = list(range(-7, 1))
CHUNK = list(range(-7, 10))


def write_collector(path: Path, images_bgr: np.ndarray, actions: np.ndarray, **extra) -> Path:
    with h5py.File(path, "w") as file:
        file.create_dataset("images", data=images_bgr, compression="gzip")
        file.create_dataset("actions", data=actions)
        file.create_dataset(
            "action_event_types", data=["start_action"] * len(actions), dtype=h5py.string_dtype()
        )
        for key, value in extra.items():
            file.create_dataset(key, data=value)
    return path


def solid(num_frames: int, bgr: tuple[int, int, int], size: tuple[int, int] = (16, 24)):
    return np.broadcast_to(np.array(bgr, np.uint8), (num_frames, *size, 3)).copy()


def forward_actions(num_frames: int) -> np.ndarray:
    actions = np.zeros((num_frames, 3), np.float32)
    actions[:, 0] = 1.15
    actions[:, 1] = np.arange(num_frames) / 100  # tells frames apart
    return actions


@pytest.fixture(scope="module")
def synthetic_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("mobile_vla")
    write_synthetic_episodes(root, num_episodes=16, num_frames=12, height=32, width=48, seed=1)
    return root


def test_collector_layout_is_converted_from_bgr(tmp_path):
    write_collector(
        tmp_path / "episode_1box_vert_left.h5", solid(4, (0, 0, 255)), forward_actions(4)
    )
    red = MobileVLAEpisodes(str(tmp_path), image_size=[8, 8])
    image = red.dataset(red.episodes(), [0], [0])[0][IMAGE][0]
    assert torch.allclose(image[:, 0, 0], torch.tensor([1.0, 0.0, 0.0]))

    forced = MobileVLAEpisodes(str(tmp_path), image_size=[8, 8], color_order="rgb")
    image = forced.dataset(forced.episodes(), [0], [0])[0][IMAGE][0]
    assert torch.allclose(image[:, 0, 0], torch.tensor([0.0, 0.0, 1.0]))


def test_guide_layout_loads_rgb_and_action_type(tmp_path):
    write_guide_episode(tmp_path / "episode_20250101_120000_1box_vert_left_50cm.h5", num_frames=10)
    source = MobileVLAEpisodes(str(tmp_path), image_size=[32, 48])
    (episode,) = source.episodes()
    assert episode.layout == "guide" and episode.has_action_type
    assert episode.scenario["distance"] == "50cm"
    assert "action.type" in source.features()
    dataset = source.dataset([episode], [0], [0, 1])
    first, last = dataset[0], dataset[9]
    red = (first[IMAGE][0, 0] > 0.8) & (first[IMAGE][0, 1] < 0.2) & (first[IMAGE][0, 2] < 0.2)
    blue = (first[IMAGE][0, 2] > 0.8) & (first[IMAGE][0, 0] < 0.2)
    assert red.any() and not blue.any()
    assert first["action.type"].tolist() == [0, 0]
    assert last["action.type"].tolist() == [2, -1]  # stop, then a padded step
    assert last["action.type"].dtype == torch.int64


def test_mixed_layouts_serve_unknown_action_type_for_collector_files(tmp_path):
    write_guide_episode(tmp_path / "episode_1box_vert_left.h5", num_frames=6)
    write_collector(
        tmp_path / "episode_1box_vert_right.h5", solid(6, (0, 0, 255)), forward_actions(6)
    )
    source = MobileVLAEpisodes(str(tmp_path), image_size=[8, 8])
    dataset = source.dataset(source.episodes(), [0], [0])
    types = {source.episodes()[i].layout: dataset[i * 6]["action.type"].item() for i in range(2)}
    assert types == {"guide": 0, "collector": -1}
    without = MobileVLAEpisodes(str(tmp_path), image_size=[8, 8], use_action_type=False)
    assert "action.type" not in without.dataset(without.episodes(), [0], [0])[0]


def test_windows_cover_every_frame_and_clamp_history(synthetic_root):
    source = MobileVLAEpisodes(str(synthetic_root), image_size=[32, 48])
    episodes = source.episodes()
    dataset = source.dataset(episodes, WINDOW, CHUNK)
    assert len(dataset) == sum(e.num_frames for e in episodes)
    sample = dataset[2]
    assert sample[IMAGE].shape == (8, 3, 32, 48) and sample[IMAGE].dtype == torch.float32
    assert sample["observation.images.front_is_pad"].tolist() == [True] * 5 + [False] * 3
    assert torch.equal(sample[IMAGE][0], sample[IMAGE][5])  # clamped to frame 0
    assert sample["action"].shape == (17, 3)
    real = torch.from_numpy(source.action_values([episodes[0]]))
    assert torch.equal(sample["action"][7:17], real[2:12])
    assert torch.equal(sample["action"][:5], torch.zeros(5, 3))
    assert sample["action_is_pad"].tolist() == [True] * 5 + [False] * 12
    assert (int(sample["episode_index"]), int(sample["frame_index"]), int(sample["index"])) == (
        0,
        2,
        2,
    )
    second = dataset[episodes[0].num_frames]
    assert (int(second["episode_index"]), int(second["frame_index"])) == (1, 0)


def test_short_episode_is_padded_not_dropped(tmp_path, caplog):
    write_collector(
        tmp_path / "episode_1box_vert_left.h5", solid(5, (0, 0, 255)), forward_actions(5)
    )
    write_collector(
        tmp_path / "episode_1box_vert_right.h5", solid(20, (0, 0, 255)), forward_actions(20)
    )
    source = MobileVLAEpisodes(str(tmp_path), image_size=[8, 8])
    with caplog.at_level(logging.INFO):
        dataset = source.dataset(source.episodes(), WINDOW, list(range(0, 10)))
    assert len(dataset) == 25
    assert "1 of 2 episodes are shorter than window 8 + chunk 10" in caplog.text
    last = dataset[4]
    assert last["action_is_pad"].tolist() == [False] + [True] * 9
    assert torch.equal(last["action"][1:], torch.zeros(9, 3))


def test_bad_files_are_skipped_with_one_warning_naming_each(tmp_path, caplog):
    write_collector(tmp_path / "episode_good.h5", solid(4, (0, 0, 255)), forward_actions(4))
    (tmp_path / "episode_corrupt.h5").write_bytes(b"not an hdf5 file" * 64)
    good_bytes = (tmp_path / "episode_good.h5").read_bytes()
    (tmp_path / "episode_truncated.h5").write_bytes(good_bytes[: len(good_bytes) // 2])
    with h5py.File(tmp_path / "episode_missing_key.h5", "w") as file:
        file.create_dataset("images", data=solid(4, (0, 0, 255)))
    write_collector(tmp_path / "episode_mismatch.h5", solid(4, (0, 0, 255)), forward_actions(3))
    nan = forward_actions(4)
    nan[2, 1] = np.nan
    write_collector(tmp_path / "episode_nan.h5", solid(4, (0, 0, 255)), nan)
    write_collector(tmp_path / "episode_width.h5", solid(4, (0, 0, 255)), np.zeros((4, 2)))
    bad = ["corrupt", "truncated", "missing_key", "mismatch", "nan", "width"]

    with caplog.at_level(logging.WARNING):
        episodes = MobileVLAEpisodes(str(tmp_path), image_size=[8, 8]).episodes()

    assert [Path(e.path).name for e in episodes] == ["episode_good.h5"]
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == len(bad)
    for name in bad:
        assert sum(f"episode_{name}.h5" in w for w in warnings) == 1, name
    text = "\n".join(warnings)
    assert "found ['images']" in text
    assert "4 frames but 'actions' has 3 rows" in text
    assert "NaN/inf" in text and "first at frame 2" in text
    assert "must be (T, 3)" in text


def test_bad_file_errors_when_configured(tmp_path):
    write_collector(tmp_path / "episode_good.h5", solid(4, (0, 0, 255)), forward_actions(4))
    nan = forward_actions(4)
    nan[0, 0] = np.inf
    write_collector(tmp_path / "episode_nan.h5", solid(4, (0, 0, 255)), nan)
    source = MobileVLAEpisodes(str(tmp_path), on_bad_file="error")
    with pytest.raises(ValueError, match=r"episode_nan\.h5.*NaN/inf"):
        source.episodes()


def test_missing_root_is_a_clear_error(tmp_path):
    missing = tmp_path / "nowhere"
    with pytest.raises(FileNotFoundError, match=re.escape(str(missing))):
        MobileVLAEpisodes(str(missing))
    with pytest.raises(FileNotFoundError, match="holds no .h5"):
        MobileVLAEpisodes(str(tmp_path))


def test_synthetic_source_writes_its_episodes_on_first_use(tmp_path):
    root = tmp_path / "data" / "synthetic"
    options = {"num_episodes": 8, "num_frames": 6, "height": 16, "width": 24, "seed": 0}
    source = MobileVLAEpisodes(str(root), image_size=[16, 24], synthetic=options)
    episodes = source.episodes()
    assert len(episodes) == 8
    assert {e.scenario["scenario"] for e in episodes} == {
        f"{b}_{o}_{s}"
        for b in ("1box", "2box")
        for o in ("vert", "hori")
        for s in ("left", "right")
    }
    assert sorted(p.name for p in root.parent.iterdir()) == ["synthetic"]  # no temp dir left
    again = MobileVLAEpisodes(str(root), image_size=[16, 24], synthetic=options)
    assert [e.path for e in again.episodes()] == [e.path for e in episodes]


def test_scenario_parsed_from_all_name_styles():
    plain = parse_scenario("episode_20250101_120000_1box_vert_left.h5")
    assert plain["scenario"] == "1box_vert_left" and plain["date"] == "20250101"
    newer = parse_scenario("episode_20250101_120000_2box_hori_right_core_close.h5")
    assert newer["scenario"] == "2box_hori_right"
    assert (newer["variant"], newer["distance"]) == ("core", "close")
    guide = parse_scenario("episode_20250101_120000_1box_vert_left_50cm.h5")
    assert guide["scenario"] == "1box_vert_left" and guide["distance"] == "50cm"
    odd = parse_scenario("episode_20250101_120000_2box_vert_right_retake_v2.h5")
    assert odd["scenario"] == "2box_vert_right" and odd["extra"] == "retake_v2"
    assert parse_scenario("recording_7.h5")["scenario"] == "unknown"


def test_instruction_names_the_side_unless_stored(tmp_path):
    assert build_instruction(parse_scenario("x_2box_hori_right.h5")) == (
        "Navigate around the two boxes on the right"
    )
    assert build_instruction(parse_scenario("x.h5")) == "Navigate to the goal"
    assert build_instruction(
        parse_scenario("x_1box_vert_left"), "Pass the {boxes}, {side} side"
    ) == ("Pass the box, left side")
    write_collector(
        tmp_path / "episode_1box_vert_left.h5",
        solid(3, (0, 0, 255)),
        forward_actions(3),
        language_instruction="Go left of the red box",
    )
    write_collector(
        tmp_path / "episode_1box_vert_right.h5", solid(3, (0, 0, 255)), forward_actions(3)
    )
    source = MobileVLAEpisodes(str(tmp_path), image_size=[8, 8])
    assert [e.instruction for e in source.episodes()] == [
        "Go left of the red box",
        "Navigate around the box on the right",
    ]


def test_mirror_flips_image_action_and_text_together(synthetic_root):
    source = MobileVLAEpisodes(str(synthetic_root), image_size=[32, 48])
    dataset = source.dataset(source.episodes(), WINDOW, CHUNK)
    original = dataset[5]
    mirror = build_train_transform({"mirror": {"enabled": True, "p": 1.0}}, source.action_names)
    flipped = mirror({k: (v.clone() if torch.is_tensor(v) else v) for k, v in dataset[5].items()})
    assert torch.equal(flipped[IMAGE], original[IMAGE].flip(-1))
    assert torch.equal(flipped["action"][:, 0], original["action"][:, 0])
    assert torch.equal(flipped["action"][:, 1:], -original["action"][:, 1:])
    assert flipped["task"] == swap_sides(original["task"]) != original["task"]
    assert swap_sides("Left of the box, not RIGHT") == "Right of the box, not LEFT"

    never = build_train_transform({"mirror": {"enabled": True, "p": 0.0}}, source.action_names)
    kept = never(dataset[5])
    assert kept["task"] == original["task"] and torch.equal(kept[IMAGE], original[IMAGE])


def test_color_jitter_and_shift_keep_one_transform_per_window(synthetic_root):
    source = MobileVLAEpisodes(str(synthetic_root), image_size=[32, 48])
    still = source.dataset(source.episodes()[:1], [0, 0], [0])[3]  # the same frame twice
    augment = {
        "color_jitter": {"enabled": True, "brightness": 0.4, "contrast": 0.4, "saturation": 0.4},
        "random_shift": {"enabled": True, "pad": 4},
    }
    torch.manual_seed(0)
    out = build_train_transform(augment, source.action_names)(still)
    assert torch.equal(out[IMAGE][0], out[IMAGE][1])
    assert out[IMAGE].min() >= 0 and out[IMAGE].max() <= 1
    with pytest.raises(ValueError, match="unknown keys"):
        build_train_transform({"flip": {}}, source.action_names)


def test_dataset_pickles_without_open_handles_after_use(synthetic_root):
    source = MobileVLAEpisodes(str(synthetic_root), image_size=[32, 48])
    dataset = source.dataset(source.episodes(), WINDOW, CHUNK)
    before = dataset[7][IMAGE]
    copy = pickle.loads(pickle.dumps(dataset))
    assert copy._frames is None
    assert torch.equal(copy[7][IMAGE], before)
    uncached = MobileVLAEpisodes(str(synthetic_root), image_size=[32, 48], cache_mb=0)
    assert torch.equal(uncached.dataset(uncached.episodes(), WINDOW, CHUNK)[7][IMAGE], before)


def test_synthetic_sidestep_timing_is_only_in_the_image():
    env = BoxCourseEnv(24, 32, max_steps=18)
    starts = set()
    for seed in range(6):
        actions = record_episode(env, EpisodeSpec(seed, "1box_vert_left", seed), 18).actions
        sidesteps = np.flatnonzero(actions[:, 1] != 0)
        assert sidesteps.size and (actions[sidesteps, 1] > 0).all()  # left = +linear_y
        starts.add(int(sidesteps[0]))
        assert set(np.unique(np.abs(actions))) <= {0.0, np.float32(1.15)}
    assert len(starts) >= 3  # same text, different timing


@pytest.mark.slow
def test_synthetic_task_needs_the_image_to_beat_the_mean(tmp_path):
    """A small CNN that sees the image (and the side from the text) predicts the first action far
    better than the mean; the best text-only constant (per-side median) cannot."""
    write_synthetic_episodes(tmp_path, num_episodes=48, num_frames=18, height=96, width=128)
    source = MobileVLAEpisodes(str(tmp_path), image_size=[48, 64])
    from vla_lab.data.datamodule import VLADataModule

    dm = VLADataModule(source, split={"val_fraction": 0.25, "seed": 0, "stratify_by": "scenario"})
    dm.setup()

    def tensors(dataset):
        items = [dataset[i] for i in range(len(dataset))]
        images = torch.stack([s[IMAGE][0] for s in items])
        side = torch.tensor([[1.0 if "left" in s["task"] else -1.0] for s in items])
        return images, side, torch.stack([s["action"][0] for s in items])

    (xt, st, yt), (xv, sv, yv) = tensors(dm.train_dataset), tensors(dm.val_dataset)
    mean_mae = (yv - yt.mean(0)).abs().mean()
    medians = {s: yt[st[:, 0] == s].median(0).values for s in (1.0, -1.0)}
    text_mae = (yv - torch.stack([medians[float(s)] for s in sv[:, 0]])).abs().mean()

    torch.manual_seed(0)
    conv = torch.nn.Sequential(
        torch.nn.Conv2d(3, 16, 5, 2, 2), torch.nn.ReLU(),
        torch.nn.Conv2d(16, 32, 3, 2, 1), torch.nn.ReLU(),
        torch.nn.Conv2d(32, 32, 3, 2, 1), torch.nn.ReLU(), torch.nn.Flatten(),
    )  # fmt: skip
    head = torch.nn.Sequential(torch.nn.Linear(32 * 6 * 8 + 1, 64), torch.nn.ReLU())
    out = torch.nn.Linear(64, 3)
    params = [*conv.parameters(), *head.parameters(), *out.parameters()]
    optimizer = torch.optim.Adam(params, lr=1e-3)

    def predict(x, s):
        return out(head(torch.cat([conv(x), s], dim=1)))

    for _ in range(30):
        for batch in torch.randperm(len(xt)).split(32):
            loss = torch.nn.functional.smooth_l1_loss(predict(xt[batch], st[batch]), yt[batch])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    with torch.no_grad():
        image_mae = (predict(xv, sv) - yv).abs().mean()
    assert image_mae < 0.5 * mean_mae, (image_mae, mean_mae)
    assert text_mae > 0.6 * mean_mae, (text_mae, mean_mae)
