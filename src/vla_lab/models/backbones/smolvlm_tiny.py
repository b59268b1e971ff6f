"""A tiny SmolVLM (config, processor, tokenizer, random weights) built offline, for tests and demos.

SmolVLA reads its VLM through ``AutoConfig``/``AutoProcessor``/``AutoTokenizer.from_pretrained(
vlm_model_name)``, so a local directory with these files stands in for
``HuggingFaceTB/SmolVLM2-500M-Video-Instruct``: same code, other sizes. The tokenizer must declare
SmolVLM's image special tokens as ``extra_special_tokens``, or SmolVLA fails with "has no attribute
fake_image_token_id". Deterministic: the tokenizer is trained on a fixed in-code corpus and the
weights are seeded.
"""

from __future__ import annotations

import logging
from pathlib import Path

import torch

from vla_lab.models.backbones.tiny_tokenizer import train_bpe
from vla_lab.utils.io import atomic_write_dir

log = logging.getLogger(__name__)

# Bump TINY_VERSION when the recipe changes, so stale caches are not reused.
TINY_VERSION = 2
TINY_DIR_NAME = f"smolvlm_tiny_v{TINY_VERSION}"
IMAGE_SIZE = 32  # SmolVLA resizes (with padding) to this: set resize_imgs_with_padding to match
PATCH_SIZE = 8
SCALE_FACTOR = 2  # pixel shuffle: (32 / 8)^2 / 2^2 = 4 image tokens
SEED = 0
SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<pad>", "<unk>"]
IMAGE_TOKENS = {
    "fake_image_token": "<fake_token_around_image>",
    "image_token": "<image>",
    "global_image_token": "<global-img>",
    "end_of_utterance_token": "<end_of_utterance>",
}


def _train_tokenizer():
    """A byte-level BPE fast tokenizer holding SmolVLM's special image tokens."""
    from transformers import PreTrainedTokenizerFast

    bpe = train_bpe(SPECIAL_TOKENS + list(IMAGE_TOKENS.values()), add_prefix_space=False)
    return PreTrainedTokenizerFast(
        tokenizer_object=bpe,
        bos_token="<|im_start|>",
        eos_token="<|endoftext|>",
        pad_token="<pad>",
        unk_token="<unk>",
        additional_special_tokens=list(IMAGE_TOKENS.values()),
        extra_special_tokens=dict(IMAGE_TOKENS),
        padding_side="right",
    )


def _build(directory: Path, image_size: int = IMAGE_SIZE) -> None:
    from transformers import (
        SmolVLMConfig,
        SmolVLMForConditionalGeneration,
        SmolVLMImageProcessor,
        SmolVLMProcessor,
        SmolVLMVideoProcessor,
    )

    tokenizer = _train_tokenizer()
    image_seq_len = (image_size // PATCH_SIZE) ** 2 // SCALE_FACTOR**2
    processor = SmolVLMProcessor(
        image_processor=SmolVLMImageProcessor(
            size={"longest_edge": image_size},
            max_image_size={"longest_edge": image_size},
            do_image_splitting=False,
        ),
        tokenizer=tokenizer,
        video_processor=SmolVLMVideoProcessor(),
        image_seq_len=image_seq_len,
    )
    config = SmolVLMConfig(
        image_token_id=tokenizer.convert_tokens_to_ids(IMAGE_TOKENS["image_token"]),
        scale_factor=SCALE_FACTOR,
        vocab_size=len(tokenizer),
        text_config=dict(
            model_type="llama",
            hidden_size=64,
            intermediate_size=128,
            num_hidden_layers=4,
            num_attention_heads=4,
            num_key_value_heads=2,
            head_dim=16,
            vocab_size=len(tokenizer),
            max_position_embeddings=512,
            pad_token_id=tokenizer.pad_token_id,
            bos_token_id=tokenizer.bos_token_id,
            eos_token_id=tokenizer.eos_token_id,
        ),
        vision_config=dict(
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=2,
            num_attention_heads=2,
            image_size=image_size,
            patch_size=PATCH_SIZE,
        ),
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(SEED)
        model = SmolVLMForConditionalGeneration(config)
    processor.save_pretrained(directory)
    model.save_pretrained(directory)


def build_tiny_smolvlm(cache_dir: str | Path, image_size: int = IMAGE_SIZE) -> Path:
    """``<cache_dir>/smolvlm_tiny_v<N>[_<size>px]``, built the first time (atomically, offline).

    Pass it to SmolVLA as ``vlm_model_name``; with ``load_vlm_weights=True`` its seeded random
    weights are loaded, with False SmolVLA initialises the VLM itself from the config.
    ``image_size`` (a multiple of 16) is the vision tower's input side: 32 (4 image tokens) by
    default, more where a task needs finer detail (the driving demo reads a distant bend).
    """
    if image_size % (PATCH_SIZE * SCALE_FACTOR):
        raise ValueError(f"tiny SmolVLM image_size must be a multiple of 16, got {image_size}")
    name = TINY_DIR_NAME if image_size == IMAGE_SIZE else f"{TINY_DIR_NAME}_{image_size}px"
    final = Path(cache_dir) / name
    if (final / "config.json").is_file():
        return final
    log.info("Building a tiny offline SmolVLM in %s", final)
    return atomic_write_dir(
        final, lambda directory: _build(directory, image_size), done=Path.is_dir
    )
