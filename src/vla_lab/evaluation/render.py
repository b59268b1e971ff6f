"""`infer.py render=true`: one video frame per streamed frame, with what the policy predicted.

Picks the drawing from what the model predicts (see `vla_lab.evaluation.video`) and the frame
to draw on: driving clips are drawn at the video's own resolution (the model saw a resized copy)
with the clip's calibration when the root has one; other datasets on the frame the model saw.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from vla_lab import features as ft
from vla_lab.data.physical_ai_av.calibration import FThetaCamera, read_camera
from vla_lab.evaluation import video
from vla_lab.features import FUTURE_XYZ
from vla_lab.models.module import VLAModule


class InferenceRenderer:
    """Draws each streamed frame with its prediction row into `path` (an mp4): open
    `renderer.video` (a context manager) around the `add` calls."""

    def __init__(
        self,
        module: VLAModule,
        dataset: Any,
        source: Any,
        path: str | Path,
        fps: float = 10.0,
        height: int = 360,
    ) -> None:
        self.dataset = dataset
        self.source = source
        self.video = video.PredictionVideo(path, fps)
        self.height = int(height)
        features = module.dataset_features
        self.camera_key = ft.image_keys(features)[0]
        self.names = list(features[ft.ACTION].names or [])
        self.driving = module.capabilities.trajectories
        stats = module.dataset_stats.get(ft.ACTION, {})
        self.low = stats.get("min", [-1.0] * len(self.names))
        self.high = stats.get("max", [1.0] * len(self.names))
        self.planar = all(name in self.names for name in video.PLANAR_NAMES)
        if self.planar:
            speeds = [max(abs(self.low[i]), abs(self.high[i])) for i in self._indices("linear")]
            turns = [max(abs(self.low[i]), abs(self.high[i])) for i in self._indices("angular")]
            self.max_speed = max(speeds + [1e-3])
            self.max_turn = max(turns + [1e-3])
        self._cameras: dict[str, FThetaCamera | None] = {}
        self._clips: dict[str, Any] | None = None

    def add(self, index: int, item: dict[str, Any], row: dict[str, Any]) -> None:
        image = video.scaled(self._frame(index, item), self.height)
        predicted = np.asarray(row["action_pred"], np.float64)
        recorded = row.get("action_true")
        recorded = None if recorded is None else np.asarray(recorded, np.float64)
        lines = [f"episode {row[ft.EPISODE_INDEX]}  frame {row[ft.FRAME_INDEX]}", row[ft.TASK]]
        if self.driving:
            future = np.asarray(row["future_xyz_pred"], np.float64).reshape(-1, 3)
            logged = torch.as_tensor(item[FUTURE_XYZ]).numpy() if FUTURE_XYZ in item else None
            video.draw_trajectory(image, future, logged, self._camera(item["clip_id"]))
            lines.append(f"ADE {row['ade']:.2f} m, green: predicted")
        elif self.planar:
            video.draw_planar_velocity(
                image, self.names, predicted, recorded, self.max_speed, self.max_turn
            )
            lines.append("green: predicted, white: recorded")
        else:
            video.draw_action_bars(image, self.names, predicted, recorded, self.low, self.high)
        video.caption(image, lines)
        self.video.add(image)

    def _frame(self, index: int, item: dict[str, Any]) -> np.ndarray:
        if self.driving and hasattr(self.dataset, "frames"):
            return self.dataset.frames(index)[-1]  # full resolution, the calibration's
        frame = torch.as_tensor(item[self.camera_key])
        if frame.ndim == 4:  # a history window: the newest
            frame = frame[-1]
        return (frame.clamp(0, 1) * 255).round().byte().permute(1, 2, 0).numpy()

    def _camera(self, clip_id: str) -> FThetaCamera | None:
        if clip_id not in self._cameras:
            if self._clips is None:
                self._clips = {c.clip_id: c for c in self.source.episodes()}
            clip = self._clips[clip_id]
            camera = read_camera(self.source.layout, clip.chunk, clip_id, self.source.camera)
            self._cameras[clip_id] = camera
        return self._cameras[clip_id]

    def _indices(self, prefix: str) -> list[int]:
        return [i for i, name in enumerate(self.names) if name.startswith(prefix)]
