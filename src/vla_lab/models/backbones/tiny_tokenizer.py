"""The vocabularies of the tiny backbones, trained offline on our instructions.

SmolVLM's is a byte-level BPE, as SmolVLM2's is; Kosmos-2's is a SentencePiece-style Unigram, as
XLM-R's is (transformers 5 rebuilds an XLM-R tokenizer from its (piece, score) list and rejects
a BPE vocabulary). Deterministic (fixed corpus, no randomness in training), so a tiny backbone
built twice, or on another machine, tokenises the same way.
"""

from __future__ import annotations

import string

BPE_VOCAB_SIZE = 400
UNIGRAM_VOCAB_SIZE = 400
# SentencePiece's word-boundary mark; transformers' XLM-R tokenizer hard-codes it.
METASPACE = "\u2581"

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


def train_unigram(special_tokens: list[str], unk_token: str):
    """A `tokenizers.Tokenizer` (Unigram, (piece, score) vocabulary) over `CORPUS`.

    Laid out exactly as transformers 5's `XLMRobertaTokenizer` rebuilds one from its vocabulary
    (no normaliser, whitespace split, then a Metaspace that always prepends the mark), so
    transformers 4.57, which reads the file as it is, and 5.x tokenise alike. Every printable
    ASCII character is a piece, so an unseen word splits into characters, not `unk_token`.
    """
    import json

    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    unigram = Tokenizer(models.Unigram())
    unigram.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.WhitespaceSplit(),
            pre_tokenizers.Metaspace(replacement=METASPACE, prepend_scheme="always"),
        ]
    )
    unigram.decoder = decoders.Metaspace(replacement=METASPACE, prepend_scheme="always")
    trainer = trainers.UnigramTrainer(
        vocab_size=UNIGRAM_VOCAB_SIZE,
        special_tokens=special_tokens,
        unk_token=unk_token,
        show_progress=False,
    )
    unigram.train_from_iterator(CORPUS * 4, trainer=trainer)
    vocab = _deterministic_vocab(json.loads(unigram.to_str())["model"]["vocab"], special_tokens)
    unigram.model = models.Unigram(vocab, unk_id=special_tokens.index(unk_token))
    return unigram


def _deterministic_vocab(trained: list[list], special_tokens: list[str]) -> list[tuple[str, float]]:
    """The trained (piece, score) list in an order and with scores that do not vary by run.

    The trainer's EM runs in parallel: scores differ in the 11th digit, and the characters it
    keeps only for coverage get the lowest score minus a run-dependent offset. Those, and every
    printable ASCII character not yet a piece, get one fixed score below all others; the rest
    are rounded; pieces follow the special tokens by score, then alphabetically.
    """
    scores = {piece: score for piece, score in trained if piece not in special_tokens}
    lowest = min(scores.values())
    fallback = float(int(lowest) - 2)
    pieces = {
        piece: fallback if score < lowest + 0.01 else round(score, 6)
        for piece, score in scores.items()
    }
    for char in string.printable:
        if not char.isspace():
            pieces.setdefault(char, fallback)
    ordered = sorted(pieces.items(), key=lambda item: (-item[1], item[0]))
    return [(token, 0.0) for token in special_tokens] + ordered
