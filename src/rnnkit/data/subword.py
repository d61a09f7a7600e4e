"""Tokenizers for translation, one per language side: subword units (SentencePiece), words or
characters, all with the ids of rnnkit's other sequence vocabularies: PAD=0, UNK=1, START=2,
END=3.

The flow::

    src = Tokenizer.train("subword", source_texts, vocab_size=8000)
    ids = src.encode("Two dogs play.")    # no <start>/<end>: PairBatches adds them
    src.decode(ids)                       # "Two dogs play." again: subword and char are lossless
    json.dumps(src.to_json())             # into the run folder; Tokenizer.from_json rebuilds it

Why SentencePiece (Kudo & Richardson 2018) with the unigram model (Kudo 2018): it reads raw
text and writes a space as the piece ``"▁"``, so decoding is the exact inverse of encoding; a
translation then comes out as real, detokenised text, and BLEU and chrF are computed on it by
sacreBLEU with its own standard tokenizer (Post 2018) rather than on our tokens. Unigram is
SentencePiece's default and what its authors recommend; SentencePiece's BPE would be lossless
too, and the two give close BLEU. The word and character levels are baselines: words follow
:func:`rnnkit.data.labelled.tokenize` and come back through the simple :func:`detokenize`.
"""

from __future__ import annotations

import base64
import binascii
import io
import re
from collections.abc import Iterable, Sequence
from typing import ClassVar

from .captions import CaptionVocab
from .labelled import tokenize

TOKENIZATIONS = ("subword", "word", "char")
DEFAULT_VOCAB_SIZE = 8000  # subword pieces incl. the 4 special ones: the usual size for ~30k pairs
DEFAULT_MIN_FREQ = 2  # word/char: rarer tokens become <unk>, so the model learns that id too

# Options of SentencePieceTrainer.train for every subword tokenizer.
_SENTENCEPIECE_OPTIONS = {
    "model_type": "unigram",  # SentencePiece's default (Kudo 2018); see the module docstring
    "pad_id": 0, "unk_id": 1, "bos_id": 2, "eos_id": 3,  # the ids of every rnnkit vocabulary
    "pad_piece": "<pad>", "unk_piece": "<unk>",  # ... and their names (CaptionVocab.SPECIALS)
    "bos_piece": "<start>", "eos_piece": "<end>",
    "unk_surface": "<unk>",  # decode writes an unknown character as <unk>, as word level does
    "normalization_rule_name": "identity",  # no NFKC: it would turn French U+202F into " "
    "remove_extra_whitespaces": False,  # keep runs of spaces: decode must give back the input
    "character_coverage": 1.0,  # every character of the training text is a piece
    "hard_vocab_limit": False,  # vocab_size is a maximum: unigram cannot fill 8000 on Multi30k
    "num_threads": 1,  # the model changes with the thread count; 1 gives the same one anywhere
    "minloglevel": 2,  # quiet: SentencePiece logs every training step to stderr otherwise
}
_TOO_SMALL = re.compile(r"smaller than required_chars\. (\d+) vs (\d+)")

# word-level detokenisation: no space before these tokens, or after these
_NO_SPACE_BEFORE = frozenset([*".,!?;:%)]}…»›”", "...", "''", "n't", "'s", "'re", "'ve",
                              "'ll", "'d", "'m"])
# “ is in neither: it opens a quote in English and closes one in German
_NO_SPACE_AFTER = frozenset([*"([{¿¡$„«‹", "``"])


def detokenize(tokens: Sequence[str]) -> str:
    """Words joined by spaces, except before closing punctuation (``. , ! ? ; : ) ] } % » ”``)
    and English clitics (``n't``, ``'s``, ...), after opening brackets and quotes (``( [ { „
    «``), inside ``"..."`` quotes, and on both sides of a lone ``'`` (French elision:
    ``l ' homme`` -> ``l'homme``; the price: ``ladies ' room`` -> ``ladies'room``).
    ``["it", "'s", "a", "dog", "."]`` -> ``"it's a dog."``.

    A simple inverse of :func:`rnnkit.data.labelled.tokenize`, not a language-aware one like
    sacremoses' (not worth a dependency for the word-level baseline): French spacing before
    ``!`` is lost, which sacreBLEU's tokenizer does not see anyway."""
    out: list[str] = []
    glue_next, quote_open = True, False  # glue_next: no space before the next token
    for token in tokens:
        if token == '"':
            glue_left, quote_open = quote_open, not quote_open
            glue_right = quote_open
        elif token == "'":
            glue_left = glue_right = True
        else:
            glue_left, glue_right = token.lower() in _NO_SPACE_BEFORE, token in _NO_SPACE_AFTER
        if out and not (glue_next or glue_left):
            out.append(" ")
        out.append(token)
        glue_next = glue_right
    return "".join(out)


class Tokenizer:
    """Text to ids and back for one language side; build one with :meth:`train` or
    :meth:`from_json`.

    Kinds (:data:`TOKENIZATIONS`):

    * ``"subword"``: a unigram SentencePiece model; ``decode(encode(text)) == text`` for every
      text whose characters were in the training text (others become ``<unk>``).
    * ``"word"``: :func:`rnnkit.data.labelled.tokenize`'s words; decoded by :func:`detokenize`.
    * ``"char"``: one id per character; lossless like subword.

    ``lowercase=True`` lowercases every text first (then the round trip gives ``text.lower()``).
    Ids 0..3 are ``<pad>``, ``<unk>``, ``<start>``, ``<end>`` in every kind; :meth:`encode`
    adds neither ``<start>`` nor ``<end>``.
    """

    PAD: ClassVar[int] = CaptionVocab.PAD  # 0
    UNK: ClassVar[int] = CaptionVocab.UNK  # 1
    START: ClassVar[int] = CaptionVocab.START  # 2
    END: ClassVar[int] = CaptionVocab.END  # 3
    SPECIALS: ClassVar[tuple[str, ...]] = CaptionVocab.SPECIALS

    def __init__(self, kind: str, *, lowercase: bool = False,
                 words: Sequence[str] | None = None, model: bytes | None = None) -> None:
        """A tokenizer of ``kind`` with its vocabulary: ``words`` (``"<pad>"``, ``"<unk>"``,
        ``"<start>"``, ``"<end>"``, then the words or characters) for word and char, ``model``
        (a serialized SentencePiece model) for subword."""
        _check_kind(kind)
        if not isinstance(lowercase, bool):
            raise TypeError(f"expected lowercase to be a bool, got {lowercase!r}")
        if (model is None) != (kind != "subword") or (words is None) != (kind == "subword"):
            needs = "model=" if kind == "subword" else "words="
            raise ValueError(f"expected only {needs} for a {kind} tokenizer")
        self.kind, self.lowercase = kind, lowercase
        self._sp = _load_sentencepiece(model) if model is not None else None
        self._vocab = _word_vocab(words) if words is not None else None

    # ----------------------------------------------------------------------------- training
    @classmethod
    def train(cls, kind: str, texts: Iterable[str], *, vocab_size: int | None = None,
              min_freq: int | None = None, lowercase: bool = False) -> Tokenizer:
        """A tokenizer learnt from ``texts`` (the training sentences of one side).

        Args:
            kind: ``"subword"``, ``"word"`` or ``"char"``.
            vocab_size: the most ids, the 4 special ones included. Subword: default
                :data:`DEFAULT_VOCAB_SIZE` (a maximum: a small corpus gives fewer pieces, see
                ``len()``); word and char: no cap by default, else the most frequent are kept.
            min_freq: word and char only (default :data:`DEFAULT_MIN_FREQ`): tokens seen fewer
                times become ``<unk>``.
            lowercase: lowercase every text first.

        Subword training runs in memory, in one thread (deterministic), without logging, in
        0.5-2 s for one side of Multi30k (29k sentences), 3-4 s for Tatoeba's 159k.
        """
        _check_kind(kind)
        if isinstance(texts, str):
            raise TypeError("expected an iterable of texts, got a str")
        if vocab_size is not None and (isinstance(vocab_size, bool)
                                       or not isinstance(vocab_size, int) or vocab_size < 5):
            raise ValueError(f"expected vocab_size to be an int >= 5 (4 special ids and a "
                             f"token) or None, got {vocab_size!r}")
        texts = [_text(text).lower() if lowercase else _text(text) for text in texts]
        texts = [text for text in texts if text.strip()]
        if not texts:
            raise ValueError("expected at least one non-blank text to train on, got none")
        if kind == "subword":
            if min_freq is not None:
                raise ValueError("min_freq applies to word and char tokenizers, not subword: "
                                 "pass vocab_size")
            size = DEFAULT_VOCAB_SIZE if vocab_size is None else vocab_size
            return cls(kind, lowercase=lowercase, model=_train_sentencepiece(texts, size))
        if kind == "word":  # the texts are lowercased already if asked
            token_lists = (tokenize(text, lowercase=False) for text in texts)
        else:
            token_lists = (list(text) for text in texts)
        min_count = DEFAULT_MIN_FREQ if min_freq is None else min_freq
        vocab = CaptionVocab.build(token_lists, min_count, vocab_size)
        return cls(kind, lowercase=lowercase, words=vocab.words)

    # ----------------------------------------------------------------------------- use
    def pieces(self, text: str) -> list[str]:
        """The tokens of ``text`` as strings, one per id of :meth:`encode` (an unknown token
        shows its own text, for ``<unk>`` replacement and attention maps)."""
        text = _text(text).lower() if self.lowercase else _text(text)
        if self._sp is not None:
            return self._sp.encode(text, out_type=str)
        return tokenize(text, lowercase=False) if self.kind == "word" else list(text)

    def encode(self, text: str) -> list[int]:
        """The ids of ``text`` (:attr:`UNK` for unknown tokens), without ``<start>``/``<end>``."""
        if self._sp is not None:
            return self._sp.encode(_text(text).lower() if self.lowercase else _text(text))
        return self._vocab.encode(self.pieces(text), max_len=None)[1:-1]  # drop START, END

    def decode(self, ids: Iterable[int]) -> str:
        """The text of ``ids`` (ints or a 1-D tensor) up to the first :attr:`END`, without
        ``<pad>`` and ``<start>``; an unknown token is written ``<unk>``."""
        kept = []
        for value in ids:
            index = int(value)
            if index == self.END:
                break
            if not 0 <= index < len(self):
                raise IndexError(f"expected token ids in [0, {len(self)}), got {index}")
            if index not in (self.PAD, self.START):
                kept.append(index)
        if self._sp is not None:
            return self._sp.decode(kept)
        words = [self._vocab.words[index] for index in kept]
        return detokenize(words) if self.kind == "word" else "".join(words)

    def piece(self, id: int) -> str:
        """The token string of ``id`` (``"▁dog"`` for subword, where ``"▁"`` is a space)."""
        if not 0 <= int(id) < len(self):
            raise IndexError(f"expected a token id in [0, {len(self)}), got {id}")
        if self._sp is not None:
            return self._sp.id_to_piece(int(id))
        return self._vocab.words[int(id)]

    def id(self, piece: str) -> int:
        """The id of the token string ``piece``, :attr:`UNK` if it is not in the vocabulary."""
        if self._sp is not None:
            return self._sp.piece_to_id(piece)
        return self._vocab.encode([piece], max_len=None)[1]

    def __len__(self) -> int:
        """The number of ids, the 4 special ones included."""
        return self._sp.get_piece_size() if self._sp is not None else len(self._vocab)

    def __repr__(self) -> str:
        return f"Tokenizer(kind={self.kind!r}, size={len(self)}, lowercase={self.lowercase})"

    # ----------------------------------------------------------------------------- json
    def to_json(self) -> dict:
        """Everything needed to rebuild the tokenizer, as JSON-safe data: ``{"kind",
        "lowercase", "words"}`` for word and char, ``{"kind", "lowercase", "model"}`` for
        subword, ``model`` being the serialized SentencePiece model in base64 (no paths, no
        pickle)."""
        obj: dict = {"kind": self.kind, "lowercase": self.lowercase}
        if self._sp is not None:
            obj["model"] = base64.b64encode(self._sp.serialized_model_proto()).decode("ascii")
        else:
            obj["words"] = list(self._vocab.words)
        return obj

    @classmethod
    def from_json(cls, obj: object) -> Tokenizer:
        """The tokenizer of a :meth:`to_json` object."""
        if not isinstance(obj, dict) or obj.get("kind") not in TOKENIZATIONS:
            got = f"kind {obj.get('kind')!r}" if isinstance(obj, dict) else type(obj).__name__
            raise ValueError(f"expected a tokenizer object with a kind in {TOKENIZATIONS}, "
                             f"got {got}")
        data = "model" if obj["kind"] == "subword" else "words"
        if set(obj) != {"kind", "lowercase", data}:
            raise ValueError(f'expected a {obj["kind"]} tokenizer object with keys "kind", '
                             f'"lowercase", "{data}", got keys {sorted(obj)}')
        if data == "words":
            if not isinstance(obj["words"], list):
                raise ValueError(f'expected "words" to be a list, got '
                                 f"{type(obj['words']).__name__}")
            return cls(obj["kind"], lowercase=obj["lowercase"], words=obj["words"])
        try:
            model = base64.b64decode(obj["model"], validate=True)
        except (binascii.Error, TypeError, ValueError):
            raise ValueError('expected "model" to be a base64 string of a SentencePiece '
                             "model") from None
        return cls("subword", lowercase=obj["lowercase"], model=model)


# ------------------------------------------------------------------------------- helpers
def _check_kind(kind: str) -> None:
    if kind not in TOKENIZATIONS:
        raise ValueError(f"expected a tokenization in {TOKENIZATIONS}, got {kind!r}")


def _text(text: object) -> str:
    if not isinstance(text, str):
        raise TypeError(f"expected a text (str), got {type(text).__name__}")
    return text


def _word_vocab(words: Sequence[str]) -> CaptionVocab:
    """The vocabulary of ``words``, checked to start with the 4 special tokens."""
    words = tuple(words)
    if words[:len(Tokenizer.SPECIALS)] != Tokenizer.SPECIALS:
        raise ValueError(f"expected a vocabulary starting with {Tokenizer.SPECIALS}, got "
                         f"{words[:len(Tokenizer.SPECIALS)]}")
    return CaptionVocab(words)  # checks that the words are distinct, non-empty strings


def _sentencepiece():
    """The sentencepiece module, imported only when subword units are used."""
    try:
        import sentencepiece
    except ImportError as e:
        raise ImportError("subword tokenization needs the sentencepiece package: pip install "
                          "\"rnnkit[translate]\" (or use word or char tokenization)") from e
    return sentencepiece


def _train_sentencepiece(texts: list[str], vocab_size: int) -> bytes:
    """A serialized unigram SentencePiece model of ``texts``, trained in memory."""
    spm = _sentencepiece()
    model = io.BytesIO()
    try:
        spm.SentencePieceTrainer.train(sentence_iterator=iter(texts), model_writer=model,
                                       vocab_size=vocab_size, **_SENTENCEPIECE_OPTIONS)
    except RuntimeError as e:
        small = _TOO_SMALL.search(str(e))
        if small:
            raise ValueError(f"expected vocab_size >= {small[2]} for these texts (4 special "
                             f"pieces and one per character), got {vocab_size}") from None
        raise ValueError(f"SentencePiece could not train on these texts: {e}") from e
    return model.getvalue()


def _load_sentencepiece(model: bytes):
    """A SentencePieceProcessor of a serialized model, checked to have rnnkit's special ids."""
    spm = _sentencepiece()
    if not isinstance(model, bytes):
        raise TypeError(f"expected a serialized SentencePiece model (bytes), got "
                        f"{type(model).__name__}")
    try:
        processor = spm.SentencePieceProcessor(model_proto=model)
    except RuntimeError as e:
        raise ValueError(f"expected a serialized SentencePiece model, got {len(model)} bytes "
                         f"that do not load: {e}") from None
    ids = (processor.pad_id(), processor.unk_id(), processor.bos_id(), processor.eos_id())
    if ids != (0, 1, 2, 3):
        raise ValueError(f"expected a SentencePiece model with pad, unk, bos, eos ids 0, 1, 2, "
                         f"3, got {ids}")
    return processor
