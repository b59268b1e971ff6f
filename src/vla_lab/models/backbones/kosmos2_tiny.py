"""A tiny Kosmos-2 (config, processor, random weights) built offline, for tests and CPU demos.

The result is an ordinary pretrained directory, so ``Kosmos2Backbone`` loads it through the same
``from_pretrained`` code as ``microsoft/kosmos-2-patch14-224``; only the sizes differ.
Deterministic: the tokenizer is trained on a fixed in-code corpus and the weights are seeded.
"""

from __future__ import annotations

import logging
from pathlib import Path

import torch

from vla_lab.models.backbones.tiny_tokenizer import train_unigram
from vla_lab.utils.io import atomic_write_dir

log = logging.getLogger(__name__)

# Bump TINY_VERSION when the recipe changes, so stale caches are not reused.
# 5: a Unigram vocabulary (transformers 5 rejects a BPE one for XLM-R); 6: audible token embeddings
TINY_VERSION = 6
TINY_DIR_NAME = f"kosmos2_tiny_v{TINY_VERSION}"
IMAGE_SIZE = 64
LATENT_QUERY_NUM = 64  # the processor's default image-token count; both must agree
NUM_PATCH_INDEX_TOKENS = 16
SEED = 0
SPECIAL_TOKENS = ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]  # XLM-R order: bos 0, pad 1, eos 2


def _train_tokenizer():
    """A Unigram with XLM-R's special tokens, wrapped as the fast tokenizer Kosmos-2 uses."""
    from tokenizers import processors
    from transformers import XLMRobertaTokenizerFast

    unigram = train_unigram(SPECIAL_TOKENS, unk_token="<unk>")
    bos, eos = unigram.token_to_id("<s>"), unigram.token_to_id("</s>")
    unigram.post_processor = processors.TemplateProcessing(
        single="<s> $A </s>",
        pair="<s> $A </s> </s> $B </s>",
        special_tokens=[("<s>", bos), ("</s>", eos)],
    )
    return XLMRobertaTokenizerFast(
        tokenizer_object=unigram,
        bos_token="<s>",
        eos_token="</s>",
        sep_token="</s>",
        cls_token="<s>",
        unk_token="<unk>",
        pad_token="<pad>",
        mask_token="<mask>",
        padding_side="right",
    )


def _build(directory: Path) -> None:
    from transformers import CLIPImageProcessor, Kosmos2Config, Kosmos2Model, Kosmos2Processor

    image_processor = CLIPImageProcessor(
        size={"shortest_edge": IMAGE_SIZE}, crop_size={"height": IMAGE_SIZE, "width": IMAGE_SIZE}
    )
    processor = Kosmos2Processor(
        image_processor, _train_tokenizer(), num_patch_index_tokens=NUM_PATCH_INDEX_TOKENS
    )
    tokenizer = processor.tokenizer
    config = Kosmos2Config(
        text_config=dict(
            embed_dim=64,
            layers=2,
            attention_heads=4,
            ffn_dim=128,
            vocab_size=len(tokenizer),
            max_position_embeddings=256,
            # No dropout: the tiny model must learn the demo task in a few CPU minutes.
            dropout=0.0,
            attention_dropout=0.0,
            activation_dropout=0.0,
            pad_token_id=tokenizer.pad_token_id,
            bos_token_id=tokenizer.bos_token_id,
            eos_token_id=tokenizer.eos_token_id,
        ),
        vision_config=dict(
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=2,
            num_attention_heads=2,
            image_size=IMAGE_SIZE,
            patch_size=8,
        ),
        latent_query_num=LATENT_QUERY_NUM,
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(SEED)
        model = Kosmos2Model(config)
        _rescale_image_projection(model)
        _rescale_token_embeddings(model)
    processor.save_pretrained(directory)
    model.save_pretrained(directory)


def _rescale_image_projection(model) -> None:
    """Give the image-to-text projection a fan-in init so images are heard at random init.

    HF initialises its linear layers with std 0.02 (tuned for 2048-wide layers): at this width
    the image embeddings come out ~100x smaller than the token embeddings and a freshly built
    tiny model is nearly blind. A pretrained Kosmos-2 has no such problem.
    """
    for layer in model.image_to_text_projection.modules():
        if isinstance(layer, torch.nn.Linear):
            torch.nn.init.normal_(layer.weight, std=layer.in_features**-0.5)


def build_tiny_kosmos2(cache_dir: str | Path) -> Path:
    """``<cache_dir>/kosmos2_tiny_v<N>``, built the first time (atomically, offline)."""
    final = Path(cache_dir) / TINY_DIR_NAME
    if (final / "config.json").is_file():
        return final
    log.info("Building a tiny offline Kosmos-2 in %s", final)
    return atomic_write_dir(final, _build, done=Path.is_dir)


def _rescale_token_embeddings(model) -> None:
    """Give the token embeddings unit scale, so one word of the instruction is heard at init.

    HF's std 0.02 times Kosmos-2's sqrt(64) embedding scale leaves tokens at ~0.16 per dimension
    beside sinusoidal positions of ~0.7: an instruction that differs in one word ("left" or
    "right") moved the tiny model's action-slot feature by 0.002 (of ~0.9), before and after
    training, and the demo policy ignored which side to pass on. Measured on the box course.
    """
    embeddings = model.text_model.model.embed_tokens
    dim = embeddings.weight.shape[1]
    torch.nn.init.normal_(embeddings.weight, std=dim**-0.5)
