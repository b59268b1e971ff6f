"""Training-time augmentations of a whole sample (all image frames of a window, actions, text).

One random draw per sample, applied identically to every frame of its observation window, so the
motion between frames stays real. The mirror is the augmentation users get wrong: flipping the
image without negating lateral motion and swapping "left"/"right" in the instruction teaches the
opposite of the data. Here the three always happen together or not at all.

Config (the datamodule's ``augment`` node)::

    color_jitter: {enabled, brightness, contrast, saturation, hue}
    random_shift: {enabled, pad}          # pad by ``pad`` px (edge-replicate), crop back at random
    mirror: {enabled, p}

Randomness comes from torch's global generator, which the DataLoader seeds per worker.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F
import torchvision.transforms.v2.functional as TF

from vla_lab.data.mobile_vla.scenario import swap_sides
from vla_lab.features import ACTION, TASK, image_keys

Sample = dict[str, Any]
Transform = Callable[[Sample], Sample]

# Action dimensions whose sign flips under a left-right mirror (ROS: +y = left, +z = turn left).
MIRRORED_ACTIONS = ("linear_y", "angular_z")


class ColorJitter:
    """Brightness, contrast, saturation and hue factors drawn once per sample."""

    def __init__(
        self,
        brightness: float = 0.0,
        contrast: float = 0.0,
        saturation: float = 0.0,
        hue: float = 0.0,
    ) -> None:
        if not 0.0 <= hue <= 0.5:
            raise ValueError(f"augment.color_jitter.hue must be in [0, 0.5], got {hue}")
        self.brightness, self.contrast, self.saturation, self.hue = (
            brightness,
            contrast,
            saturation,
            hue,
        )

    def __call__(self, sample: Sample) -> Sample:
        b, c, s = (_factor(x) for x in (self.brightness, self.contrast, self.saturation))
        h = float(torch.empty(1).uniform_(-self.hue, self.hue)) if self.hue > 0 else 0.0
        for key in image_keys(sample):
            image = sample[key]
            if b != 1.0:
                image = TF.adjust_brightness(image, b)
            if c != 1.0:
                image = TF.adjust_contrast(image, c)
            if s != 1.0:
                image = TF.adjust_saturation(image, s)
            if h != 0.0:
                image = TF.adjust_hue(image, h)
            sample[key] = image.clamp_(0.0, 1.0)
        return sample


class RandomShift:
    """Shift by up to ``pad`` pixels (DrQ-style: replicate-pad then crop at a random offset)."""

    def __init__(self, pad: int = 4) -> None:
        self.pad = int(pad)

    def __call__(self, sample: Sample) -> Sample:
        if self.pad <= 0:
            return sample
        dx, dy = (int(v) for v in torch.randint(0, 2 * self.pad + 1, (2,)))
        for key in image_keys(sample):
            image = sample[key]
            height, width = image.shape[-2:]
            batch = image.reshape(-1, *image.shape[-3:])
            padded = F.pad(batch, (self.pad,) * 4, mode="replicate")
            shifted = padded[..., dy : dy + height, dx : dx + width]
            sample[key] = shifted.reshape(image.shape).contiguous()
        return sample


class Mirror:
    """With probability ``p``: flip images left-right, negate the mirrored action dimensions
    present in ``action_names``, swap left/right in ``task``. All three or none."""

    def __init__(self, action_names: Sequence[str], p: float = 0.5) -> None:
        self.p = float(p)
        self.columns = [i for i, name in enumerate(action_names) if name in MIRRORED_ACTIONS]

    def __call__(self, sample: Sample) -> Sample:
        if float(torch.rand(())) >= self.p:
            return sample
        for key in image_keys(sample):
            sample[key] = sample[key].flip(-1)
        if ACTION in sample and self.columns:
            action = sample[ACTION].clone()
            action[..., self.columns] = -action[..., self.columns]
            sample[ACTION] = action
        if TASK in sample:
            sample[TASK] = swap_sides(sample[TASK])
        return sample


class Compose:
    def __init__(self, transforms: Sequence[Transform]) -> None:
        self.transforms = list(transforms)

    def __call__(self, sample: Sample) -> Sample:
        for transform in self.transforms:
            sample = transform(sample)
        return sample

    def __repr__(self) -> str:
        return f"Compose({self.transforms})"


def build_train_transform(
    augment_cfg: Mapping[str, Any] | None, action_names: Sequence[str]
) -> Transform | None:
    """The train-split transform described by ``augment_cfg``; ``None`` when nothing is enabled.

    Geometric and photometric steps run before the mirror so the mirror sees the final image.
    """
    cfg = dict(augment_cfg or {})
    unknown = set(cfg) - {"color_jitter", "random_shift", "mirror"}
    if unknown:
        raise ValueError(
            f"augment has unknown keys {sorted(unknown)}; "
            "expected color_jitter, random_shift, mirror"
        )
    transforms: list[Transform] = []
    jitter = dict(cfg.get("color_jitter") or {})
    if jitter.pop("enabled", False):
        transforms.append(ColorJitter(**jitter))
    shift = dict(cfg.get("random_shift") or {})
    if shift.pop("enabled", False):
        transforms.append(RandomShift(**shift))
    mirror = dict(cfg.get("mirror") or {})
    if mirror.pop("enabled", False):
        transforms.append(Mirror(action_names, **mirror))
    return Compose(transforms) if transforms else None


def _factor(strength: float) -> float:
    """A multiplicative factor in ``[1 - strength, 1 + strength]`` (1 when ``strength`` is 0)."""
    if strength <= 0:
        return 1.0
    return float(torch.empty(1).uniform_(max(0.0, 1.0 - strength), 1.0 + strength))
