"""Data: reading text, character vocabularies and the stateful batches of truncated BPTT."""

from .text import (
    DEFAULT_CORPUS_NAME,
    CharVocab,
    StatefulBatches,
    TextDataError,
    default_corpus,
    read_text,
    split_tail,
    windows,
)

__all__ = ["DEFAULT_CORPUS_NAME", "CharVocab", "StatefulBatches", "TextDataError",
           "default_corpus", "read_text", "split_tail", "windows"]
