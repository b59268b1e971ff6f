"""Videos of a policy's predictions (`infer.py render=true`): each frame with what was predicted.

What is drawn depends on what the action means:
- planar velocities (Mobile VLA's linear_x, linear_y, angular_z): an arrow from the bottom centre
  (forward is up, left is left) and an arc for the turn rate, predicted in green, recorded in
  white, both scaled by the largest speed in the training stats;
- driving trajectories: the predicted (green) and logged (white) 6.4 s paths projected onto the
  front image with the clip's f-theta calibration, or, without one, in a bird's-eye inset;
- anything else (joint targets of an arm, where an arrow's direction means nothing): one bar
  per action dimension between its training min and max, predicted bar and recorded tick.
Frames are scaled (`scaled`) to a legible height; the mp4 (H.264) is written to a temp file and
renamed when complete (`atomic_file`), so a crash never leaves a half-written video under the
final name.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from types import TracebackType

import av
import numpy as np
from PIL import Image, ImageDraw

from vla_lab.data.physical_ai_av.calibration import FThetaCamera
from vla_lab.data.preview import label_font
from vla_lab.utils.io import atomic_file

PREDICTED = (60, 220, 90)
RECORDED = (255, 255, 255)
PLANAR_NAMES = ("linear_x", "linear_y")
INSET_RANGE_M = (-10.0, 70.0)  # bird's-eye inset: metres ahead shown, bottom to top


class PredictionVideo:
    """An mp4 opened for writing; `add(image)` appends one RGB frame (padded to even sizes, as
    H.264 yuv420p needs; later frames are resized to the first one's size)."""

    def __init__(self, path: str | Path, fps: float) -> None:
        self.path = Path(path)
        self.fps = fps
        self._file = None  # the temp file, opened with the first frame: no frames, no video
        self._container = None
        self._stream = None

    def __enter__(self) -> PredictionVideo:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self._file is None:
            return
        try:
            if kind is None:
                self._container.mux(self._stream.encode())
            self._container.close()
        except BaseException as failure:
            self._file.__exit__(type(failure), failure, failure.__traceback__)
            raise
        self._file.__exit__(kind, error, traceback)  # renamed in, or removed on an error

    def add(self, image: Image.Image) -> None:
        frame = _even(image)
        if self._stream is None:
            self._file = atomic_file(self.path)
            self._container = av.open(str(self._file.__enter__()), mode="w", format="mp4")
            self._stream = self._container.add_stream("libx264", rate=round(self.fps))
            self._stream.width, self._stream.height = frame.size
            self._stream.pix_fmt = "yuv420p"
            self._stream.options = {"crf": "20", "preset": "veryfast"}
        if frame.size != (self._stream.width, self._stream.height):
            frame = frame.resize((self._stream.width, self._stream.height))
        video_frame = av.VideoFrame.from_ndarray(np.asarray(frame), format="rgb24")
        self._container.mux(self._stream.encode(video_frame))


def scaled(frame: np.ndarray, height: int) -> Image.Image:
    """An RGB uint8 (H, W, 3) frame as a PIL image `height` rows tall (aspect kept)."""
    image = Image.fromarray(np.ascontiguousarray(frame))
    width = max(2, round(image.width * height / image.height))
    return image.resize((width, height), Image.Resampling.BILINEAR)


def caption(image: Image.Image, lines: Sequence[str]) -> None:
    """Text in the top-left corner, on a dark band so it reads on any frame."""
    draw = ImageDraw.Draw(image)
    font = label_font()
    box = draw.multiline_textbbox((4, 3), "\n".join(lines), font=font)
    draw.rectangle([0, 0, box[2] + 4, box[3] + 3], fill=(0, 0, 0))
    draw.multiline_text((4, 3), "\n".join(lines), fill=RECORDED, font=font)


def draw_planar_velocity(
    image: Image.Image,
    names: Sequence[str],
    predicted: np.ndarray,
    recorded: np.ndarray | None,
    max_speed: float,
    max_turn: float,
) -> None:
    """Velocity arrows from the bottom centre and turn-rate arcs (see the module docstring)."""
    draw = ImageDraw.Draw(image)
    base = (image.width / 2, image.height * 0.92)
    reach = 0.4 * min(image.width, image.height)
    index = {name: i for i, name in enumerate(names)}
    for action, colour, width in ((recorded, RECORDED, 5), (predicted, PREDICTED, 3)):
        if action is None:
            continue
        forward, left = (float(action[index[n]]) for n in PLANAR_NAMES)
        tip = (base[0] - reach * left / max_speed, base[1] - reach * forward / max_speed)
        _arrow(draw, base, tip, colour, width)
        if "angular_z" in index:  # counter-clockwise positive, as ROS: an arc to the left
            sweep = 90.0 * float(action[index["angular_z"]]) / max_turn
            radius = reach * 0.35
            box = [base[0] - radius, base[1] - radius, base[0] + radius, base[1] + radius]
            start, end = sorted((-90.0, -90.0 - sweep))
            draw.arc(box, start, end, fill=colour, width=width)


def draw_action_bars(
    image: Image.Image,
    names: Sequence[str],
    predicted: np.ndarray,
    recorded: np.ndarray | None,
    low: Sequence[float],
    high: Sequence[float],
) -> None:
    """One bar per dimension along the bottom, from the training min (left) to max (right)."""
    draw = ImageDraw.Draw(image)
    font = label_font()
    row = 14
    top = image.height - row * len(names) - 4
    left, right = image.width * 0.3, image.width - 6
    draw.rectangle([0, top - 2, image.width, image.height], fill=(0, 0, 0))
    for i, name in enumerate(names):
        y = top + i * row
        draw.text((4, y), str(name)[:14], fill=RECORDED, font=font)
        span = max(high[i] - low[i], 1e-6)

        def x_of(value: float, i: int = i, span: float = span) -> float:
            return left + (right - left) * float(np.clip((value - low[i]) / span, 0.0, 1.0))

        draw.rectangle([left, y + 3, x_of(predicted[i]), y + row - 3], fill=PREDICTED)
        if recorded is not None:
            x = x_of(recorded[i])
            draw.line([x, y + 1, x, y + row - 1], fill=RECORDED, width=2)


def draw_trajectory(
    image: Image.Image,
    predicted_xyz: np.ndarray,
    recorded_xyz: np.ndarray | None,
    camera: FThetaCamera | None,
) -> None:
    """Rig-frame paths (T, 3) on the front image through `camera`, else in a bird's-eye inset."""
    draw = ImageDraw.Draw(image)
    paths = [(recorded_xyz, RECORDED, 4), (predicted_xyz, PREDICTED, 3)]
    if camera is not None:
        for xyz, colour, width in paths:
            if xyz is None:
                continue
            pixels, visible = camera.project(xyz, (image.height, image.width))
            points = [tuple(p) for p in pixels[visible]]
            if len(points) > 1:
                draw.line(points, fill=colour, width=width, joint="curve")
        return
    size = image.height // 3
    x0, y0 = image.width - size - 4, image.height - size - 4  # bottom right, clear of the caption
    draw.rectangle([x0, y0, x0 + size, y0 + size], fill=(20, 20, 20), outline=RECORDED)
    near, far = INSET_RANGE_M
    metres_per_px = (far - near) / size
    for xyz, colour, width in paths:
        if xyz is None:
            continue
        u = x0 + size / 2 - np.asarray(xyz)[:, 1] / metres_per_px  # left of the car is left
        v = y0 + size - (np.asarray(xyz)[:, 0] - near) / metres_per_px  # ahead is up
        inside = (u >= x0) & (u <= x0 + size) & (v >= y0) & (v <= y0 + size)
        points = list(zip(u[inside].tolist(), v[inside].tolist(), strict=True))
        if len(points) > 1:
            draw.line(points, fill=colour, width=max(1, width - 1))
    car_y = y0 + size + near / metres_per_px
    draw.ellipse([x0 + size / 2 - 3, car_y - 3, x0 + size / 2 + 3, car_y + 3], fill=PREDICTED)


def _arrow(draw: ImageDraw.ImageDraw, tail, tip, colour, width: int) -> None:
    draw.line([tail, tip], fill=colour, width=width)
    direction = np.subtract(tip, tail)
    length = float(np.hypot(*direction))
    if length < 2:
        return
    unit = direction / length
    normal = np.array([-unit[1], unit[0]])
    head = min(12.0, 0.4 * length)
    back = np.asarray(tip) - unit * head
    wings = [tuple(back + normal * head * 0.5), tuple(back - normal * head * 0.5)]
    draw.polygon([tuple(tip), *wings], fill=colour)


def _even(image: Image.Image) -> Image.Image:
    width, height = image.width + image.width % 2, image.height + image.height % 2
    if (width, height) == image.size:
        return image
    padded = Image.new("RGB", (width, height))
    padded.paste(image)
    return padded
