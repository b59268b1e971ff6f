"""The vocabulary of every tiny backbone: a byte-level BPE trained offline on our instructions.

Deterministic (fixed corpus, no randomness in BPE training), so a tiny backbone built twice, or on
another machine, tokenises the same way.
"""

from __future__ import annotations

BPE_VOCAB_SIZE = 400

# The instructions and commands of the synthetic datasets, and words around them.
CORPUS = [
    "An image of a robot",
    "Navigate around the box on the left",
    "Navigate around the box on the right",
    "Navigate around the two boxes on the left",
    "Navigate around the two boxes on the right",
    "Navigate to the target and stop",
    "Go left, then right, then straight ahead",
    "Turn left. Turn right. Move forward. Move backward. Stop.",
    "one box, two boxes, three boxes, four boxes",
    "obstacle on the left side, obstacle on the right side, in the middle",
    "Pick up the red cube. Pick up the blue cube. Place it in the box.",
    "Move the arm to the left. Move the arm to the right.",
    "a robot arm on a table with a red cube, a blue cube and a green cube",
    "Follow the lane. Keep lane. Change lane left. Change lane right. Slow down. Accelerate.",
    "0 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 32 45 64 90 100",
]


def train_bpe(special_tokens: list[str], add_prefix_space: bool):
    """A `tokenizers.Tokenizer` (byte-level BPE) over `CORPUS` with `special_tokens` first."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    bpe = Tokenizer(models.BPE(unk_token="<unk>"))
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=add_prefix_space)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=BPE_VOCAB_SIZE,
        special_tokens=special_tokens,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    bpe.train_from_iterator(CORPUS * 4, trainer=trainer)
    return bpe
