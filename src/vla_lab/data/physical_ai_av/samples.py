"""The torch Dataset of PhysicalAI-AV samples: ground truth from the scan, frames decoded here.

Each item is a sample dict in the contract of `vla_lab.features`, plus the driving keys:
`trajectory.future_xyz` (64, 3), `trajectory.history_xyz` (16, 3), `trajectory.history_rot`
(16, 3, 3), `clip_id` and `t0_us`. Workers only seek-decode and resize frames.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset

from vla_lab import features as ft
from vla_lab.data.physical_ai_av.video import ClipVideo

if TYPE_CHECKING:  # the source builds its dataset: samples.py never imports clips.py at runtime
    from vla_lab.data.physical_ai_av.clips import AVClip, PhysicalAIAVClips


class AVSamples(Dataset):
    """Samples of `clips` (in order), one per (clip, t0)."""

    def __init__(
        self, source: PhysicalAIAVClips, clips: Sequence[AVClip], transform: Any = None
    ) -> None:
        self.source = source
        self.clips = list(clips)
        self.transform = transform
        self._index = [(e, c, i) for e, c in enumerate(self.clips) for i in range(c.num_frames)]
        self._state_columns = source._state_columns()

    def __len__(self) -> int:
        return len(self._index)

    def frames(self, index: int, seek: bool = True) -> list[np.ndarray]:
        """The sample's frames, RGB uint8 at the video's size (oldest first)."""
        _, clip, i = self._index[index]
        samples = self.source.clip_samples(clip.clip_id)
        video = ClipVideo(*self.source.video_location(clip))
        return video.frames(samples.frame_index[i].tolist(), seek=seek)

    def __getitem__(self, index: int) -> dict[str, Any]:
        episode, clip, i = self._index[index]
        samples = self.source.clip_samples(clip.clip_id)
        images = torch.stack([self._to_tensor(f) for f in self.frames(index)])
        n_steps = samples.action.shape[1]
        item = {
            ft.DRIVING_CAMERA: images[0] if len(images) == 1 else images,
            ft.STATE: torch.from_numpy(samples.state[i, self._state_columns]),
            ft.ACTION: torch.from_numpy(samples.action[i]),
            ft.ACTION_IS_PAD: torch.zeros(n_steps, dtype=torch.bool),
            ft.TASK: samples.task[i],
            ft.FUTURE_XYZ: torch.from_numpy(samples.fut_xyz[i]),
            ft.HISTORY_XYZ: torch.from_numpy(samples.hist_xyz[i]),
            ft.HISTORY_ROT: torch.from_numpy(samples.hist_rot[i]),
            ft.CLIP_ID: clip.clip_id,
            ft.T0_US: int(samples.t0_us[i]),
            ft.EPISODE_INDEX: episode,
            ft.FRAME_INDEX: i,
            ft.INDEX: index,
        }
        return self.transform(item) if self.transform is not None else item

    def _to_tensor(self, frame: np.ndarray) -> torch.Tensor:
        height, width = self.source.image_size
        if frame.shape[:2] != (height, width):
            frame = np.array(
                Image.fromarray(frame).resize((width, height), Image.Resampling.BILINEAR)
            )
        return torch.from_numpy(frame).permute(2, 0, 1).float().div_(255.0)
