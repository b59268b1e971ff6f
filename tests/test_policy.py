"""The deployment API: `load_policy` from a bare checkpoint, `Policy.act` as a robot calls it."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from vla_lab.runtime.policy import Policy, TemporalEnsembler, load_policy
from vla_lab.train import train

FAST = ["hardware.num_workers=0", "hardware.batch_size=4", "debug=limit", "trainer.max_epochs=1"]
CAMERA = "observation.images.front"


@pytest.fixture()
def bare_checkpoint(make_cfg, tmp_path: Path) -> Path:
    """A Mobile VLA demo checkpoint moved away, its run dir and tiny-backbone cache deleted."""
    run, cache = tmp_path / "run", tmp_path / "cache"
    train(make_cfg([*FAST, f"paths.cache_dir={cache}"], output_dir=run))
    bare = tmp_path / "elsewhere" / "policy.ckpt"
    bare.parent.mkdir()
    shutil.move(run / "checkpoints" / "last.ckpt", bare)
    shutil.rmtree(run)
    shutil.rmtree(cache)
    return bare


def frame(seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (120, 160, 3), dtype=np.uint8)


def test_a_bare_checkpoint_acts_offline_on_raw_frames(bare_checkpoint: Path):
    policy = load_policy(bare_checkpoint, device="cpu")
    task = "Navigate around the box on the left side to reach the target"
    actions = [policy.act({CAMERA: frame(i), "task": task}) for i in range(3)]
    assert all(a.shape == (3,) and np.isfinite(a).all() for a in actions)
    chunk = policy.predict_chunk({"front": frame(9), "task": task})  # the short camera name
    assert chunk.ndim == 2 and chunk.shape[1] == 3


def test_history_window_repeats_the_first_frame_and_flags_it(bare_checkpoint: Path):
    policy = load_policy(bare_checkpoint, device="cpu")
    policy.caches_features = False  # the window goes to the module as a batch
    seen = []
    policy.module.predict_action_chunk = lambda batch: seen.append(batch) or torch.zeros(1, 2, 3)
    for i in range(3):
        policy.predict_chunk({CAMERA: frame(i), "task": "go"})
    window = policy.window
    images, pad = seen[-1][CAMERA][0], seen[-1][CAMERA + "_is_pad"][0]
    assert images.shape[0] == window and pad.tolist() == [True] * (window - 3) + [False] * 3
    raw = torch.from_numpy(frame(2)).permute(2, 0, 1)  # resized as uint8, then made float
    resized = torch.nn.functional.interpolate(
        raw[None], size=images.shape[-2:], mode="bilinear", antialias=True
    )[0]
    torch.testing.assert_close(images[-1], resized.float() / 255)
    torch.testing.assert_close(images[0], images[window - 3])  # padding = the first frame
    policy.reset()
    policy.predict_chunk({CAMERA: frame(5), "task": "go"})
    assert seen[-1][CAMERA + "_is_pad"][0].sum() == window - 1


def test_cached_frame_features_give_the_chunks_of_encoding_the_whole_window(checkpoint_of):
    """Kosmos-LSTM encodes each frame on its own, so the Policy encodes only the new frame per
    step; across an action queue, a new instruction and a reset it must match the full window."""
    cached = load_policy(checkpoint_of("mobile_vla_demo"), device="cpu", n_action_steps=2)
    full = load_policy(checkpoint_of("mobile_vla_demo"), device="cpu", n_action_steps=2)
    full.caches_features = False
    assert cached.caches_features and cached.window > 1
    encoded = []
    encode = cached.module.encode
    cached.module.encode = lambda images, tasks: encoded.append(images.shape[1]) or encode(
        images, tasks
    )

    for step in range(12):
        if step == 9:
            cached.reset(), full.reset()
        task = "Navigate around the box on the left" if step < 6 else "Stop"
        observation = {CAMERA: frame(step), "task": task}
        np.testing.assert_allclose(cached.act(observation), full.act(observation), atol=1e-5)

    window = cached.window
    # episode start, then the 2 frames of each queue run, a new task, the steps, a reset:
    assert encoded == [window, 2, 2, window, 2, window, 2]


class ScriptedModule(torch.nn.Module):
    """A stand-in module whose chunk at call k is k * 10 + step index (A = 1)."""

    def __init__(self, chunk_size: int) -> None:
        super().__init__()
        self.chunk_size = chunk_size
        self.calls = 0
        self.dataset_features = {}
        self.observation_delta_indices = [0]
        self.hparams = {}

    def predict_action_chunk(self, batch) -> torch.Tensor:
        chunk = self.calls * 10 + torch.arange(self.chunk_size, dtype=torch.float32)
        self.calls += 1
        return chunk.view(1, -1, 1)


def test_action_queue_runs_n_steps_of_each_chunk_before_predicting_again():
    module = ScriptedModule(chunk_size=5)
    policy = Policy(module, n_action_steps=3)
    actions = [policy.act({"task": "go"})[0] for _ in range(7)]
    assert actions == [0, 1, 2, 10, 11, 12, 20] and module.calls == 3


def test_temporal_ensembling_equals_the_hand_computation():
    coeff = 0.5
    module = ScriptedModule(chunk_size=3)
    policy = Policy(module, temporal_ensemble_coeff=coeff)
    got = [policy.act({"task": "go"})[0] for _ in range(4)]
    # Step t sees chunk k (predicted at step k) at index t - k, for the chunks still covering t;
    # weights exp(-coeff * i), i = 0 for the oldest of them.
    w = np.exp(-coeff * np.arange(3))
    expected = [
        0.0,  # chunk 0, index 0
        (w[0] * 1 + w[1] * 10) / w[:2].sum(),  # chunk 0 index 1, chunk 1 index 0
        (w[0] * 2 + w[1] * 11 + w[2] * 20) / w.sum(),
        (w[0] * 12 + w[1] * 21 + w[2] * 30) / w.sum(),  # chunk 0 has ended
    ]
    np.testing.assert_allclose(got, expected, rtol=1e-6)
    ensembler = TemporalEnsembler(coeff)
    ensembler.update(np.zeros((3, 1)))
    ensembler.reset()
    assert ensembler.update(np.ones((3, 1)))[0] == 1.0  # reset forgets old chunks


def test_a_wrong_observation_names_the_key_and_the_expected_shape(bare_checkpoint: Path):
    policy = load_policy(bare_checkpoint, device="cpu")
    with pytest.raises(KeyError, match="task"):
        policy.act({CAMERA: frame(0)})
    with pytest.raises(ValueError, match=r"\(H, W, 3\)"):
        policy.act({CAMERA: frame(0)[..., :2], "task": "go"})
