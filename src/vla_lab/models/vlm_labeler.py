"""A driving command from a front-camera frame by a vision-language model, Alpamayo-R1 style.

The model first reasons in free text about the scene and what the ego car should do, then a
second, text-only generation condenses that reasoning into one short command. With a
`vocabulary` the command is snapped to the nearest allowed one by word overlap, so a labels file
only ever holds commands a policy is trained to follow.

Any transformers `AutoModelForImageTextToText` checkpoint works (a hub id reachable from this
machine, or a local directory with config, processor and weights). The prompt is built with the
processor's chat template when it has one, else as a SmolVLM-style turn holding the image token
(the tiny offline SmolVLM of `vla_lab.models.backbones.smolvlm_tiny` has no chat template).
"""

from __future__ import annotations

import difflib
import inspect
import logging
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from vla_lab.utils.device import resolve_device

log = logging.getLogger(__name__)

REASONING_SLOT = "{reasoning}"
VOCABULARY_SLOT = "{vocabulary}"
# Words that say nothing about the manoeuvre, ignored when snapping to the vocabulary.
_FILLER = frozenset(
    "a an the to of and or in on at it its is be this that car ego vehicle should will please "
    "command answer driving drive".split()
)
_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def _words(text: str) -> set[str]:
    words = re.findall(r"[a-z]+", text.lower())
    stems = {w[:-1] if len(w) > 3 and w.endswith("s") else w for w in words}
    return stems - _FILLER


def snap_to_vocabulary(text: str, vocabulary: Sequence[str]) -> str:
    """The entry of `vocabulary` nearest `text`: most of its words in the text, then the best
    word-set overlap (Jaccard), then character similarity, so noise still maps somewhere."""
    if not vocabulary:
        raise ValueError("snap_to_vocabulary needs a non-empty vocabulary")
    words = _words(text)
    lowered = text.lower().strip()

    def score(entry: str) -> tuple[float, float, float]:
        entry_words = _words(entry)
        shared = len(words & entry_words)
        coverage = shared / max(len(entry_words), 1)
        jaccard = shared / max(len(words | entry_words), 1)
        return coverage, jaccard, difflib.SequenceMatcher(None, lowered, entry.lower()).ratio()

    return max(vocabulary, key=score)


class VLMLabeler:
    """`label(image) -> (command, reasoning)` for one RGB uint8 (H, W, 3) frame.

    `reasoning_prompt` asks for the scene and what the car should do; `command_prompt` must hold
    `{reasoning}` (the first answer) and may hold `{vocabulary}` (the allowed commands, comma
    separated). Generation is greedy, so a model and a frame give one label.
    """

    def __init__(
        self,
        model_id: str | Path,
        reasoning_prompt: str,
        command_prompt: str,
        max_new_tokens: int = 128,
        max_command_tokens: int = 16,
        vocabulary: Sequence[str] | None = None,
        device: str = "auto",
        dtype: str = "auto",
    ) -> None:
        if REASONING_SLOT not in command_prompt:
            raise ValueError(
                f"labeler.command_prompt must contain {REASONING_SLOT} (where the model's "
                f"reasoning goes); got {command_prompt!r}"
            )
        if dtype != "auto" and dtype not in _DTYPES:
            raise ValueError(f"labeler.dtype={dtype!r}; expected auto or one of {list(_DTYPES)}")
        self.model_id = str(model_id)
        self.reasoning_prompt = reasoning_prompt
        self.vocabulary = [str(v) for v in vocabulary] if vocabulary else None
        self.command_prompt = command_prompt.replace(
            VOCABULARY_SLOT, ", ".join(self.vocabulary or [])
        )
        self.max_new_tokens = int(max_new_tokens)
        self.max_command_tokens = int(max_command_tokens)
        self.device = resolve_device(device)
        self.processor, self.model = self._load(dtype)
        accepted = inspect.signature(self.model.forward).parameters
        self._accepted_inputs = {
            name for name, p in accepted.items() if p.kind is not p.VAR_KEYWORD
        }

    def _load(self, dtype: str):
        from transformers import AutoModelForImageTextToText, AutoProcessor

        try:
            processor = AutoProcessor.from_pretrained(self.model_id)
            model = AutoModelForImageTextToText.from_pretrained(
                self.model_id, dtype=_DTYPES.get(dtype, "auto")
            )
        except (OSError, ValueError) as error:
            raise RuntimeError(
                f"labeler.model_id={self.model_id!r} could not be loaded as an image-text-to-text "
                f"model ({error}). Give a transformers AutoModelForImageTextToText id reachable "
                "from this machine (hub or local HF cache) or a local directory with config, "
                "processor and weights; labeler.tiny=true uses a tiny offline SmolVLM."
            ) from error
        if getattr(processor, "tokenizer", None) is None:
            raise RuntimeError(
                f"{self.model_id}: its processor ({type(processor).__name__}) has no tokenizer; "
                "an image-text-to-text processor (image processor + tokenizer) is needed"
            )
        log.info("VLM labeler: %s on %s", self.model_id, self.device)
        return processor, model.to(self.device).eval()

    # ------------------------------------------------------------------ prompts
    def prompt(self, text: str, with_image: bool) -> str:
        """One user turn (the image first, then `text`) ending where the assistant answers."""
        template = getattr(self.processor, "chat_template", None)
        if template:
            content = ([{"type": "image"}] if with_image else []) + [{"type": "text", "text": text}]
            return self.processor.apply_chat_template(
                [{"role": "user", "content": content}], add_generation_prompt=True, tokenize=False
            )
        image_token = getattr(self.processor, "image_token", None) or "<image>"
        image = image_token if with_image else " "
        return f"<|im_start|>User:{image}{text}<end_of_utterance>\nAssistant:"

    def generate(self, text: str, image: Image.Image | None, max_new_tokens: int) -> str:
        """The model's greedy answer to one turn, without the prompt and special tokens."""
        prompt = self.prompt(text, with_image=image is not None)
        if image is None:
            inputs = self.processor(text=prompt, return_tensors="pt")
        else:
            inputs = self.processor(text=prompt, images=[image], return_tensors="pt")
        inputs = {k: v for k, v in inputs.items() if k in self._accepted_inputs}
        inputs = {
            k: v.to(self.device, self.model.dtype) if v.is_floating_point() else v.to(self.device)
            for k, v in inputs.items()
        }
        tokenizer = self.processor.tokenizer
        with torch.inference_mode():
            tokens = self.model.generate(
                **inputs,
                max_new_tokens=max_new_tokens,
                do_sample=False,
                pad_token_id=tokenizer.pad_token_id
                if tokenizer.pad_token_id is not None
                else tokenizer.eos_token_id,
            )
        new = tokens[:, inputs["input_ids"].shape[1] :]
        return tokenizer.batch_decode(new, skip_special_tokens=True)[0].strip()

    # ------------------------------------------------------------------ labels
    def label(self, image: np.ndarray) -> tuple[str, str]:
        """(command, reasoning) for one RGB uint8 (H, W, 3) frame."""
        if image.ndim != 3 or image.shape[-1] != 3 or image.dtype != np.uint8:
            raise ValueError(
                f"VLMLabeler.label takes an RGB uint8 (H, W, 3) frame; got {image.dtype} "
                f"{image.shape}"
            )
        reasoning = self.generate(
            self.reasoning_prompt, Image.fromarray(image), self.max_new_tokens
        )
        condensed = self.generate(
            self.command_prompt.replace(REASONING_SLOT, reasoning), None, self.max_command_tokens
        )
        command = self.command(condensed)
        if command != condensed:
            log.debug("VLM command %r snapped to %r", condensed, command)
        return command, reasoning

    def command(self, text: str) -> str:
        """The free-text command as stored: snapped to the vocabulary when there is one."""
        text = text.strip().splitlines()[0].strip(" .\"'") if text.strip() else ""
        if self.vocabulary:
            return snap_to_vocabulary(text, self.vocabulary)
        return text
