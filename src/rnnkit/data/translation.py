"""Parallel text as an encoder-decoder reads and writes it: both languages' tokenizers learned
from the training pairs, the sentences as ids (:func:`encode_pairs`, :func:`encode_sources`),
and a translation's ids as text again, ``<unk>`` replaced by the source piece it attended to
most (:func:`translation_text`).

:mod:`rnnkit.data.parallel` reads the pairs and batches the ids; :mod:`rnnkit.data.subword`
holds the tokenizers.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from torch import Tensor

from .parallel import SentencePair, filter_by_length
from .subword import DEFAULT_MIN_FREQ, DEFAULT_VOCAB_SIZE, Tokenizer, detokenize

__all__ = ["TranslationData", "encode_pairs", "encode_sources", "translation_text"]


@dataclass
class TranslationData:
    """A corpus ready for training: the tokenizers, the training pairs as ids (the over-long
    ones dropped) and the validation pairs as written and as ids."""

    source: Tokenizer
    target: Tokenizer
    train: tuple[list[list[int]], list[list[int]]]  # source ids, target ids
    val_texts: tuple[list[str], list[str]]  # the validation sentences as written
    val: tuple[list[list[int]], list[list[int]]]
    too_long: int  # training pairs over max_len, dropped
    empty: int = 0  # pairs with an empty side, skipped by the reader
    skipped: list[str] = field(default_factory=list)  # bad lines skipped by the reader


def encode_sources(tokenizer: Tokenizer, texts: Sequence[str]) -> list[list[int]]:
    """The ids of source sentences. An encoder cannot read zero steps: a sentence of no tokens
    reads as one ``<unk>``."""
    return [tokenizer.encode(t) or [Tokenizer.UNK] for t in texts]


def encode_pairs(train: Sequence[SentencePair], val: Sequence[SentencePair], *,
                 tokenization: str = "subword", vocab_size: int = DEFAULT_VOCAB_SIZE,
                 min_freq: int = DEFAULT_MIN_FREQ, lowercase: bool = False,
                 max_len: int = 50) -> TranslationData:
    """Learn a tokenizer per language from the ``train`` pairs (``vocab_size`` for subword
    units, ``min_freq`` for words and characters), encode both sets, and drop the training
    pairs with a side over ``max_len`` tokens (counted in ``too_long``)."""
    options = ({"vocab_size": vocab_size} if tokenization == "subword"
               else {"min_freq": min_freq})
    source = Tokenizer.train(tokenization, (p.source for p in train), lowercase=lowercase,
                             **options)
    target = Tokenizer.train(tokenization, (p.target for p in train), lowercase=lowercase,
                             **options)
    encoded = list(zip(encode_sources(source, [p.source for p in train]),
                       [target.encode(p.target) for p in train], strict=True))
    kept, too_long = filter_by_length(encoded, max_len)
    val_texts = ([p.source for p in val], [p.target for p in val])
    val_ids = (encode_sources(source, val_texts[0]), [target.encode(t) for t in val_texts[1]])
    return TranslationData(source, target, ([s for s, _ in kept], [t for _, t in kept]),
                           val_texts, val_ids, too_long)


def translation_text(tokens: Sequence[int], attention: Tensor | None,
                     source_pieces: Sequence[str], target: Tokenizer) -> str:
    """The text of the target ids ``tokens``; given the ``attention`` ``(len(tokens), S)``
    with which they were written, each ``<unk>`` becomes the source piece its row weighs most
    (Luong et al. 2015). Only word-level targets are changed: a subword or character model's
    ``<unk>`` is a piece, not a word."""
    tokens = list(tokens)
    if attention is None or Tokenizer.UNK not in tokens or target.kind != "word":
        return target.decode(tokens)
    pieces = [target.piece(t) for t in tokens]
    for position, token in enumerate(tokens):
        if token == Tokenizer.UNK:
            pieces[position] = source_pieces[int(attention[position].argmax())]
    return detokenize(pieces)
