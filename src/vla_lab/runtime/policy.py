"""Deploy a checkpoint: `load_policy(ckpt) -> Policy`, then `act(observation)` every control step.

A `Policy` wraps a trained module for online control, one observation at a time, and owns what a
robot loop would otherwise re-implement: the history window (Kosmos-LSTM reads the last W
frames; the first steps repeat the first frame and flag it as padding, as in training), the
action queue (execute `n_action_steps` of each predicted chunk before predicting again) and ACT's
temporal ensembling (predict every step, average the overlapping chunks' actions for now). A
model that encodes each frame of its window on its own (`predict_from_features`: Kosmos-LSTM)
gets only the frames it has not encoded yet; the features of the others are kept.

An observation is a dict: the model's camera keys (`observation.images.<camera>`, or just
`<camera>`) as uint8 (H, W, 3) RGB arrays or float (3, H, W) tensors in [0, 1] (resized to the
training size when they differ), `observation.state` (or `state`) when the model uses one, and
`task` (the instruction or command). The driving policy also takes the ego history
(`trajectory.history_xyz` (16, 3), `trajectory.history_rot` (16, 3, 3)) and returns the
trajectory with `predict_trajectory`. Actions are numpy arrays in dataset units.
"""

from __future__ import annotations

import math
from collections import deque
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from vla_lab import features as ft
from vla_lab.models.module import VLAModule
from vla_lab.runtime.checkpoint import LoadedCheckpoint, load_checkpoint
from vla_lab.utils.device import resolve_device


def load_policy(
    ckpt_path: str | Path | LoadedCheckpoint,
    device: str = "auto",
    n_action_steps: int | None = None,
    temporal_ensemble_coeff: float | None = None,
) -> Policy:
    """The checkpoint's policy, from the file alone (config, stats, tokenizer and backbone files
    travel inside it), on `device` ("auto": CUDA when available). A job that also needs the
    checkpoint's config passes its `LoadedCheckpoint` (`vla_lab.runtime.checkpoint`), so the file
    is read once.

    `n_action_steps` (default: the model's, else its whole chunk) and `temporal_ensemble_coeff`
    (default: the model's, if any) set how `act` turns chunks into actions.
    """
    device = resolve_device(device)
    module = load_checkpoint(ckpt_path).module
    return Policy(module, device, n_action_steps, temporal_ensemble_coeff)


class TemporalEnsembler:
    """ACT's temporal ensembling: the action for now is the weighted mean of what every chunk
    still covering now predicted for it, weights exp(-coeff * i) with i = 0 for the oldest chunk
    (Zhao et al. 2023; a positive coeff favours older predictions, smoothing the motion)."""

    def __init__(self, coeff: float) -> None:
        self.coeff = float(coeff)
        self.reset()

    def reset(self) -> None:
        self.step = 0
        self.chunks: deque[tuple[int, np.ndarray]] = deque()  # (step it was predicted, chunk)

    def update(self, chunk: np.ndarray) -> np.ndarray:
        """Add the chunk predicted now (T, A) and return the ensembled action for now (A,)."""
        self.chunks.append((self.step, chunk))
        while self.step - self.chunks[0][0] >= len(self.chunks[0][1]):
            self.chunks.popleft()  # it ended before now
        actions = np.stack([c[self.step - start] for start, c in self.chunks])  # oldest first
        weights = np.exp(-self.coeff * np.arange(len(actions)))[:, None]
        self.step += 1
        return (weights * actions).sum(0) / weights.sum()


class Policy:
    """A trained module for online control; see the module docstring."""

    def __init__(
        self,
        module: VLAModule,
        device: torch.device | str = "cpu",
        n_action_steps: int | None = None,
        temporal_ensemble_coeff: float | None = None,
    ) -> None:
        self.device = torch.device(device)
        self.module = module.eval().to(self.device)
        self.features = module.dataset_features
        self.camera_keys = ft.image_keys(self.features)
        self.window = len(module.observation_delta_indices)
        hparams = module.hparams
        coeff = temporal_ensemble_coeff
        if coeff is None:
            coeff = hparams.get("temporal_ensemble_coeff")
        self.ensembler = TemporalEnsembler(coeff) if coeff is not None else None
        self.n_action_steps = n_action_steps or hparams.get("n_action_steps")
        # Models that encode each frame of the window on its own (Kosmos-LSTM) keep the features
        # of the frames already seen and encode only the new ones.
        self.caches_features = self.window > 1 and module.capabilities.feature_cache
        self._frames: dict[str, deque[torch.Tensor]] = {}
        self._queue: deque[np.ndarray] = deque()
        self.reset()

    @property
    def observation_keys(self) -> list[str]:
        """The observation keys `act` reads: cameras, state (when trained with one), task and
        the extras the model declares (`Capabilities.observation_extras`)."""
        state = [ft.STATE] if ft.STATE in self.features else []
        extras = list(self.module.capabilities.observation_extras)
        return [*self.camera_keys, *state, ft.TASK, *extras]

    def reset(self) -> None:
        """Forget history, queued actions and ensembled chunks: call at every new episode."""
        self._frames = {key: deque(maxlen=self.window) for key in self.camera_keys}
        self._steps = 0
        self._features: deque[torch.Tensor] = deque(maxlen=self.window)
        self._features_task: str | None = None
        self._unencoded = 0  # frames observed since the features were last brought up to date
        self._queue.clear()
        if self.ensembler is not None:
            self.ensembler.reset()

    # ---- control -------------------------------------------------------------------------
    @torch.inference_mode()
    def predict_chunk(self, observation: dict[str, Any]) -> np.ndarray:
        """One control step: add the observation to the history, return the chunk (T_act, A)."""
        if self.caches_features:
            chunk = self._predict_from_cached_features(observation)
        else:
            chunk = self.module.predict_action_chunk(self._batch(observation))
        return chunk[0].float().cpu().numpy()

    def act(self, observation: dict[str, Any]) -> np.ndarray:
        """One control step: the action (A,) to execute now."""
        if self.ensembler is not None:
            return self.ensembler.update(self.predict_chunk(observation))
        if self._queue:
            self._observe(observation)  # the history moves on even while the queue runs
            return self._queue.popleft()
        chunk = self.predict_chunk(observation)
        self._queue.extend(chunk[: self.n_action_steps or len(chunk)])
        return self._queue.popleft()

    @torch.inference_mode()
    def predict_trajectory(self, observation: dict[str, Any]) -> dict[str, np.ndarray]:
        """Driving models: controls and the trajectory they drive (`action`, `controls`,
        `future_xyz` (64, 3), `future_rot`), one control step."""
        out = self.module.predict_trajectory(self._batch(observation))
        return {k: v[0].float().cpu().numpy() for k, v in out.items()}

    def _predict_from_cached_features(self, observation: dict[str, Any]) -> torch.Tensor:
        """The chunk from the window's features, encoding only the frames not yet encoded (all
        of them at an episode start or when the instruction changes: features depend on it)."""
        self._observe(observation)
        task = _task(observation)
        frames = list(self._frames[self.camera_keys[0]])
        new = len(frames) if task != self._features_task else min(self._unencoded, len(frames))
        if new:
            images = torch.stack(frames[-new:])[None]
            self._features.extend(self.module.encode(images, [task])[0])
        self._features_task, self._unencoded = task, 0
        return self.module.predict_from_features(torch.stack(list(self._features))[None])

    # ---- observations -> a batch of one -----------------------------------------------------
    def _observe(self, observation: dict[str, Any]) -> None:
        for key in self.camera_keys:
            frame = self._image(key, _lookup(observation, key, ft.camera_name(key)))
            frames = self._frames[key]
            if not frames:  # episode start: the window is the first frame, repeated
                frames.extend([frame] * self.window)
            else:
                frames.append(frame)
        self._steps = min(self._steps + 1, self.window)  # real (not padded) frames in the window
        self._unencoded += 1

    def _batch(self, observation: dict[str, Any]) -> dict[str, Any]:
        self._observe(observation)
        batch: dict[str, Any] = {ft.TASK: [_task(observation)]}
        for key, frames in self._frames.items():
            if self.window == 1:
                batch[key] = frames[-1][None]
            else:
                batch[key] = torch.stack(list(frames))[None]
                pad = torch.arange(self.window, device=self.device) < self.window - self._steps
                batch[ft.is_pad_key(key)] = pad[None]
        if ft.STATE in self.features:
            state = _lookup(observation, ft.STATE, "state")
            batch[ft.STATE] = self._tensor(state, self.features[ft.STATE].shape, ft.STATE)[None]
        for key, value in observation.items():  # extras the model reads (e.g. the ego history)
            extra = key in self.features and key not in (ft.ACTION, ft.STATE)
            if extra and key not in batch and key not in self.camera_keys:
                batch[key] = self._tensor(value, self.features[key].shape, key)[None]
        return batch

    def _image(self, key: str, image: Any) -> torch.Tensor:
        """(3, H, W) float in [0, 1] at the training size. A uint8 camera frame is resized
        before it becomes float on the CPU (a quarter of the bytes to touch: the resize was most
        of the time spent outside the network), after it reaches the GPU on CUDA."""
        tensor = torch.as_tensor(np.asarray(image) if not torch.is_tensor(image) else image)
        size = tuple(self.features[key].shape[-2:])
        if tensor.dtype == torch.uint8:
            if tensor.ndim != 3 or tensor.shape[-1] != 3:
                raise ValueError(f"{key}: a uint8 image must be (H, W, 3) RGB, got {tensor.shape}")
            tensor = tensor.permute(2, 0, 1).to(self.device)
            if self.device.type == "cpu":
                return _resized(tensor, size).float().div_(255.0)
            return _resized(tensor.float().div_(255.0), size)
        if tensor.ndim == 4 and tensor.shape[0] == 1:  # a one-frame history, as datasets serve
            tensor = tensor[0]
        if tensor.ndim != 3 or tensor.shape[0] != 3:
            raise ValueError(
                f"{key}: a float image must be (3, H, W) in [0, 1], got {tensor.shape}"
            )
        return _resized(tensor.to(self.device, torch.float32), size)

    def _tensor(self, value: Any, shape: tuple[int, ...], key: str) -> torch.Tensor:
        tensor = torch.as_tensor(np.asarray(value), dtype=torch.float32, device=self.device)
        if tuple(tensor.shape) != tuple(shape) and tensor.numel() == math.prod(shape):
            tensor = tensor.reshape(shape)
        if tuple(tensor.shape) != tuple(shape):
            raise ValueError(
                f"observation['{key}'] has shape {tuple(tensor.shape)}, the model "
                f"was trained on {tuple(shape)}"
            )
        return tensor


def _resized(image: torch.Tensor, size: tuple[int, ...]) -> torch.Tensor:
    """(3, H, W) at `size` (antialiased bilinear, as PIL resizes the training frames)."""
    if tuple(image.shape[-2:]) == size:
        return image
    return F.interpolate(
        image[None], size=size, mode="bilinear", antialias=True, align_corners=False
    )[0]


def _task(observation: dict[str, Any]) -> str:
    if ft.TASK not in observation:
        raise KeyError(f"observation has no '{ft.TASK}' (the instruction or command)")
    return str(observation[ft.TASK])


def _lookup(observation: dict[str, Any], key: str, short: str) -> Any:
    if key in observation:
        return observation[key]
    if short in observation:
        return observation[short]
    raise KeyError(f"observation has neither '{key}' nor '{short}'; keys: {sorted(observation)}")
