"""Vocabularies: tokens and their ids, written once for the characters of the language model
(:class:`rnnkit.data.text.CharVocab`), the words of the classifier and its labels
(:class:`rnnkit.data.labelled.WordVocab`, :class:`~rnnkit.data.labelled.LabelSet`) and the words
of captions and translations (:class:`rnnkit.data.captions.CaptionVocab`).

A vocabulary is a tuple of distinct tokens, its special tokens first; a token's id is its
index. It is saved in run folders as a one-key JSON object (``{"words": [...]}``) and loads
back with the same ids. A kind of vocabulary says in class attributes what its tokens are
called, which key its JSON uses and which error it raises, so that a caption vocabulary's
problem is a ``CaptionDataError`` naming "words".
"""

from __future__ import annotations

import itertools
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import ClassVar, TypeVar

from ..errors import RnnkitError

V = TypeVar("V", bound="Vocabulary")


@dataclass(frozen=True)
class Vocabulary:
    """Distinct tokens and their ids: ``tokens[id]`` is the token of ``id``, the
    :attr:`SPECIALS` first."""

    tokens: tuple[str, ...]
    _ids: dict[str, int] = field(init=False, repr=False, compare=False)  # token -> id

    SPECIALS: ClassVar[tuple[str, ...]] = ()  # the tokens every vocabulary of the kind starts with
    NOUN: ClassVar[str] = "token"  # what one token is, for messages: "word", "character"
    WHAT: ClassVar[str] = "vocabulary"  # what the whole is, for messages: "caption vocabulary"
    KEY: ClassVar[str] = "tokens"  # the one key of its JSON object
    ERROR: ClassVar[type[RnnkitError]] = RnnkitError  # raised for a bad vocabulary

    def __post_init__(self) -> None:
        tokens = tuple(self.tokens)
        specials = len(self.SPECIALS)
        if tokens[:specials] != self.SPECIALS:
            raise self.ERROR(f"expected a {self.WHAT} starting with {self.SPECIALS}, got "
                             f"{tokens[:specials]}")
        if not tokens:
            raise self.ERROR(f"expected at least one {self.NOUN}, got none")
        ids: dict[str, int] = {}
        for index, token in enumerate(tokens):
            self._check_token(token, index)
            if token in ids:
                raise self.ERROR(f"expected distinct {self.NOUN}s, got {token!r} at index "
                                 f"{ids[token]} and again at index {index}")
            ids[token] = index
        object.__setattr__(self, "tokens", tokens)
        object.__setattr__(self, "_ids", ids)

    def _check_token(self, token: object, index: int) -> None:
        """Raise unless ``token`` (at ``index``) can be one of the vocabulary."""
        if not isinstance(token, str) or not token:
            raise self.ERROR(f"expected {self.NOUN}s to be non-empty strings, got {token!r} at "
                             f"index {index}")

    @classmethod
    def counted(cls: type[V], token_lists: Iterable[Iterable[str]], min_count: int,
                max_size: int | None, count_name: str = "min_count") -> V:
        """The tokens seen at least ``min_count`` times, most frequent first (ties
        alphabetical), after the :attr:`SPECIALS`; ``max_size`` caps the size *including*
        them, so it is the number of rows of an embedding or of output classes. A special token
        in the data is the special token (a literal ``"<unk>"`` is the unknown word), not
        counted. ``count_name`` names ``min_count`` in messages as the caller's argument."""
        if isinstance(min_count, bool) or not isinstance(min_count, int) or min_count < 1:
            raise ValueError(f"expected {count_name} to be a positive int, got {min_count!r}")
        specials = len(cls.SPECIALS)
        if max_size is not None and (isinstance(max_size, bool) or not isinstance(max_size, int)
                                     or max_size < specials):
            raise ValueError(f"expected max_size >= {specials} (the special tokens) or None, "
                             f"got {max_size!r}")
        counts = Counter(token for tokens in token_lists for token in tokens)
        for special in cls.SPECIALS:
            counts.pop(special, None)
        frequent = sorted((t for t, n in counts.items() if n >= min_count),
                          key=lambda t: (-counts[t], t))
        if max_size is not None:
            frequent = frequent[:max_size - specials]
        return cls(cls.SPECIALS + tuple(frequent))

    def __len__(self) -> int:
        return len(self.tokens)

    def _lookup(self, tokens: Iterable[str], max_len: int | None, unknown: int) -> list[int]:
        """The ids of the first ``max_len`` of ``tokens`` (all of them with ``None``),
        ``unknown`` for a token not in the vocabulary."""
        if max_len is not None and (isinstance(max_len, bool) or not isinstance(max_len, int)
                                    or max_len < 1):
            raise ValueError(f"expected max_len to be a positive int or None, got {max_len!r}")
        return [self._ids.get(token, unknown) for token in itertools.islice(tokens, max_len)]

    def to_json(self) -> dict:
        """``{KEY: [...]}`` (``{"words": [...]}``), for ``json.dump``; :meth:`from_json` gives
        the vocabulary back."""
        return {self.KEY: list(self.tokens)}

    @classmethod
    def from_json(cls: type[V], obj: object) -> V:
        """The vocabulary of a :meth:`to_json` object; :attr:`ERROR` if it is not one."""
        if not isinstance(obj, dict) or set(obj) != {cls.KEY}:
            got = f"keys {sorted(obj)}" if isinstance(obj, dict) else type(obj).__name__
            raise cls.ERROR(f'expected a {cls.WHAT} object {{"{cls.KEY}": [...]}}, got {got}')
        if not isinstance(obj[cls.KEY], list):
            raise cls.ERROR(f'expected "{cls.KEY}" to be a list of {cls.NOUN}s, got '
                            f"{type(obj[cls.KEY]).__name__}")
        return cls(tuple(obj[cls.KEY]))
