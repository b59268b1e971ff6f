"""Kosmos-2 as a per-frame encoder: image + instruction + action token -> one feature vector.

The RoboVLMs "policy head" design (Robot-VLAs/RoboVLMs, MIT): each frame is its
own sequence ``<s> <image> [64 image slots] </image> prompt+task [action] </s>``; the last-layer
hidden state at ``[action]`` is the frame's feature. The learnable action token belongs to the
policy and is passed in, so the backbone holds only HF weights.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from vla_lab.models.backbones.files import pack_dir_files, unpack_dir_files
from vla_lab.models.backbones.hub import local_or_hub_dir
from vla_lab.models.backbones.kosmos2_tiny import build_tiny_kosmos2

log = logging.getLogger(__name__)

DEFAULT_PROMPT = "<grounding>An image of a robot "
OFFLINE_HINT = (
    "Offline you need a local directory with config.json and the processor files "
    "(+ weights), or the tiny model: `backbone=kosmos2_tiny`."
)


class Kosmos2Backbone(nn.Module):
    """HF ``Kosmos2Model`` plus its processor, with tokenisation cached per instruction.

    ``forward`` takes images in [0, 1] and normalises them inside the module, so training,
    evaluation and deployment share one preprocessing path with no PIL. Images are resized
    straight to the processor's crop size (no centre crop): robot cameras are framed on purpose.
    """

    def __init__(
        self,
        pretrained: str,
        tiny: bool = False,
        cache_dir: str = ".cache/vla_lab",
        prompt: str = DEFAULT_PROMPT,
        max_text_tokens: int = 48,
        load_weights: bool = True,
        gradient_checkpointing: bool = False,
        torch_dtype: str | None = None,
    ) -> None:
        super().__init__()
        from transformers import Kosmos2Config, Kosmos2Model, Kosmos2Processor

        self.cache_dir = Path(cache_dir)
        self.pretrained_dir = (
            build_tiny_kosmos2(cache_dir)
            if tiny
            else local_or_hub_dir(
                pretrained,
                ["*.json", "*.model", "*.txt"] + (["*.safetensors"] if load_weights else []),
                what="Kosmos-2 pretrained",
                hint=OFFLINE_HINT,
            )
        )
        self.prompt = prompt
        self.max_text_tokens = max_text_tokens
        dtype = getattr(torch, torch_dtype, None) if torch_dtype else None
        if torch_dtype and not isinstance(dtype, torch.dtype):
            raise ValueError(f"torch_dtype={torch_dtype!r} is not a torch dtype (e.g. 'bfloat16').")
        try:
            self.processor = Kosmos2Processor.from_pretrained(self.pretrained_dir)
            if load_weights:
                self.model = Kosmos2Model.from_pretrained(self.pretrained_dir, dtype=dtype)
            else:
                config = Kosmos2Config.from_pretrained(self.pretrained_dir)
                self.model = Kosmos2Model._from_config(config, dtype=dtype)
        except OSError as err:
            raise OSError(
                f"Cannot load Kosmos-2 from {self.pretrained_dir} (pretrained={pretrained!r}): "
                f"{err}. {OFFLINE_HINT}"
            ) from err
        if gradient_checkpointing:
            self.model.gradient_checkpointing_enable(
                gradient_checkpointing_kwargs={"use_reentrant": False}
            )

        self.hidden_size: int = self.model.config.text_config.embed_dim
        self.num_image_tokens: int = self.model.config.latent_query_num
        crop = self.processor.image_processor.crop_size
        self.image_size: tuple[int, int] = (int(crop["height"]), int(crop["width"]))
        image_processor = self.processor.image_processor
        mean = torch.tensor(image_processor.image_mean, dtype=torch.float32).view(1, 3, 1, 1)
        std = torch.tensor(image_processor.image_std, dtype=torch.float32).view(1, 3, 1, 1)
        # Not persistent: they come from the processor files, so state_dicts stay pure weights.
        self.register_buffer("image_mean", mean, persistent=False)
        self.register_buffer("image_std", std, persistent=False)
        self._token_cache: dict[str, tuple[list[int], list[int]]] = {}

    @classmethod
    def from_files(
        cls, files: dict[str, bytes], cache_dir: str = ".cache/vla_lab", **kwargs
    ) -> Kosmos2Backbone:
        """Rebuild from ``export_files()`` output without weights: a checkpoint supplies them."""
        directory = unpack_dir_files(files, Path(cache_dir) / "backbones", prefix="kosmos2")
        # The original `pretrained`/`tiny` may come along with the saved hparams; the files win.
        kwargs = {
            k: v for k, v in kwargs.items() if k not in ("pretrained", "tiny", "load_weights")
        }
        return cls(str(directory), tiny=False, cache_dir=cache_dir, load_weights=False, **kwargs)

    def export_files(self) -> dict[str, bytes]:
        """The config and tokenizer/processor files of ``pretrained_dir`` (not the weights),
        for a checkpoint to carry."""
        return pack_dir_files(self.pretrained_dir)

    def _tokenize_one(self, task: str) -> tuple[list[int], list[int]]:
        """``(input_ids, image_embeds_position_mask)`` of one prompt+task with the action slot."""
        cached = self._token_cache.get(task)
        if cached is not None:
            return cached
        height, width = self.image_size
        # The processor writes the image slots and their mask only when it sees an image.
        encoding = self.processor(
            text=self.prompt + task,
            images=np.zeros((height, width, 3), dtype=np.uint8),
            add_eos_token=True,
            num_image_tokens=self.num_image_tokens,
        )
        ids = list(encoding["input_ids"])
        image_mask = list(encoding["image_embeds_position_mask"])
        tokenizer = self.processor.tokenizer
        if ids[-1] != tokenizer.eos_token_id:
            raise ValueError(f"Kosmos-2 tokenizer did not end {task!r} with EOS; got id {ids[-1]}.")
        prefix_len = max(i for i, m in enumerate(image_mask) if m) + 2  # through </image>
        text_ids = ids[prefix_len:-1]
        if len(text_ids) > self.max_text_tokens:
            log.warning(
                "Instruction %r: %d text tokens with the prompt, truncated to max_text_tokens=%d",
                task,
                len(text_ids),
                self.max_text_tokens,
            )
            text_ids = text_ids[: self.max_text_tokens]
        slot_id = (
            tokenizer.mask_token_id
            if tokenizer.mask_token_id is not None
            else tokenizer.unk_token_id
        )
        ids = ids[:prefix_len] + text_ids + [slot_id, tokenizer.eos_token_id]
        image_mask = image_mask[:prefix_len] + [0] * (len(text_ids) + 2)
        self._token_cache[task] = (ids, image_mask)
        return ids, image_mask

    def tokenize(self, tasks: list[str]) -> dict[str, Tensor]:
        """Right-padded ``input_ids``, ``attention_mask``, ``image_embeds_position_mask`` (B, L)
        and ``action_token_position`` (B,): the slot right before EOS."""
        if isinstance(tasks, str):
            raise TypeError("tokenize expects a list of instructions, got a single string.")
        rows = [self._tokenize_one(task) for task in tasks]
        length = max(len(ids) for ids, _ in rows)
        pad_id = self.processor.tokenizer.pad_token_id
        input_ids = torch.full((len(rows), length), pad_id, dtype=torch.long)
        attention_mask = torch.zeros((len(rows), length), dtype=torch.long)
        image_mask = torch.zeros((len(rows), length), dtype=torch.long)
        for row, (ids, mask) in enumerate(rows):
            input_ids[row, : len(ids)] = torch.tensor(ids)
            attention_mask[row, : len(ids)] = 1
            image_mask[row, : len(mask)] = torch.tensor(mask)
        positions = torch.tensor([len(ids) - 2 for ids, _ in rows], dtype=torch.long)
        return {
            "input_ids": input_ids,
            "attention_mask": attention_mask,
            "image_embeds_position_mask": image_mask,
            "action_token_position": positions,
        }

    def preprocess_images(self, pixel_values: Tensor) -> Tensor:
        """[0, 1] images (N, 3, H, W) -> resized, normalised pixels in the vision tower's dtype."""
        pixel_values = pixel_values.float()
        if tuple(pixel_values.shape[-2:]) != self.image_size:
            pixel_values = F.interpolate(
                pixel_values,
                size=self.image_size,
                mode="bilinear",
                antialias=True,
                align_corners=False,
            )
        pixel_values = (pixel_values - self.image_mean) / self.image_std
        return pixel_values.to(self.model.dtype)

    def forward(
        self, pixel_values: Tensor, text: dict[str, Tensor], action_token: Tensor
    ) -> Tensor:
        """Features (N, hidden) at the action slot for images (N, 3, H, W) in [0, 1].

        ``text`` is ``tokenize`` output already expanded to N rows and on the right device;
        ``action_token`` (hidden,) is written (unscaled, as HF expects) at the action slot.
        """
        if pixel_values.ndim != 4 or pixel_values.shape[1] != 3:
            raise ValueError(f"pixel_values must be (N, 3, H, W); got {tuple(pixel_values.shape)}.")
        input_ids = text["input_ids"]
        if input_ids.shape[0] != pixel_values.shape[0]:
            raise ValueError(
                f"{input_ids.shape[0]} token rows for {pixel_values.shape[0]} images; expand the "
                "tokenize output to one row per image."
            )
        positions = text["action_token_position"]
        embeds = self.model.get_input_embeddings()(input_ids)
        slot = torch.arange(input_ids.shape[1], device=input_ids.device) == positions[:, None]
        embeds = torch.where(slot[..., None], action_token.to(embeds.dtype), embeds)
        # Image features go in through `image_embeds` so they match the text embeddings' dtype
        # (HF writes them in place with index_put, which refuses mixed dtypes under autocast).
        # transformers 5 returns the vision output with the projected embeddings as pooler_output.
        image_embeds = self.model.get_image_features(
            self.preprocess_images(pixel_values)
        ).pooler_output
        out = self.model(
            image_embeds=image_embeds.to(embeds.dtype),
            inputs_embeds=embeds,
            attention_mask=text["attention_mask"],
            image_embeds_position_mask=text["image_embeds_position_mask"],
            use_cache=False,
        )
        rows = torch.arange(input_ids.shape[0], device=input_ids.device)
        # float32 whatever the backbone's dtype, so a float32 head can consume it directly.
        return out.last_hidden_state[rows, positions].float()
