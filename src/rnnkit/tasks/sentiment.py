"""Sentiment (and any text) classification: the lecture's many-to-one, from a file to a prediction.

A sentence is read word by word by a (bidirectional) LSTM/GRU; its states are pooled into one
vector and classified. Batches hold sentences of similar length so padding stays small, and the
recurrence runs over each sentence's real length only.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import torch

from ..checks import check_class_ids, check_token_ids
from ..data.labelled import (
    BucketBatches,
    Example,
    LabelledDataError,
    LabelSet,
    WordVocab,
    read_labelled,
    tokenize,
)
from ..data.vectors import embedding_matrix, load_vectors, resolve_vectors
from ..metrics import ClassificationReport, classification_report
from ..models.classifier import ClassifierConfig, SequenceClassifier
from ..nn import evaluating
from ..train import distributed, run
from ..train.run import open_run
from ..train.runtime import resolve_device
from ..train.trainer import StepOutput, TrainResult

KIND = "sentiment"
TRAIN_DEFAULTS = {"learning_rate": 2e-3, "eval_every": 200, "patience": 5, "warmup_steps": 50,
                  "weight_decay": 0.0}


@dataclass
class SentimentConfig:
    train: str | None = None  # labelled training data: a file (csv/tsv/jsonl/sst) or imdb folder
    val: str | None = None  # labelled validation data (None: the last val_fraction of train)
    val_fraction: float = 0.1
    format: str = "auto"  # auto | csv | tsv | jsonl | sst | imdb
    text_column: str | None = None  # name or 0-based index (as text) of the text column
    label_column: str | None = None  # name or 0-based index of the label column
    header: bool | None = None  # None: detect
    skip_bad_rows: bool = False  # count and skip malformed rows instead of stopping
    encoding_errors: str = "strict"  # "replace": bytes that are not UTF-8 become U+FFFD
    lowercase: bool = True
    min_freq: int = 1  # words seen fewer times become <unk>
    max_vocab: int | None = None  # keep the most frequent words (pad and unk included)
    max_len: int = 400  # tokens kept per text
    truncation: str = "head+tail"  # which tokens: "head", "tail" or "head+tail" (half each)
    vectors: str | None = None  # GloVe / word2vec text file, or "glove-6b-50d" (packaged)
    freeze_vectors: bool = False
    vectors_vocab: int = 50000  # with vectors: their most frequent words join the vocabulary
    cell: str = "lstm"
    embedding_size: int = 300  # ignored with vectors (their dimension wins)
    hidden_size: int = 256
    num_layers: int = 1
    bidirectional: bool = True
    pooling: str = "max"
    dropout: float = 0.5
    word_dropout: float = 0.3  # training tokens read as <unk>: +1 point on SST-2 (README)
    batch_size: int = 32

    @classmethod
    def from_dict(cls, values: dict) -> SentimentConfig:
        unknown = sorted(set(values) - {f.name for f in fields(cls)})
        if unknown:
            raise ValueError(f"unknown sentiment config keys: {', '.join(unknown)}")
        return cls(**values)


def _column(value: str | None) -> str | int | None:
    return int(value) if value is not None and value.isdigit() else value


def read_examples(path: str, config: SentimentConfig) -> tuple[list[Example], list[str]]:
    report = read_labelled(path, format=config.format, text_column=_column(config.text_column),
                           label_column=_column(config.label_column), header=config.header,
                           skip_bad_rows=config.skip_bad_rows,
                           encoding_errors=config.encoding_errors)
    return report.examples, report.skipped


@dataclass
class SentimentData:
    vocab: WordVocab
    labels: LabelSet
    train: tuple[list[list[int]], list[int]]  # token ids and label ids
    val: tuple[list[list[int]], list[int]]
    skipped: list[str]  # bad rows skipped (with skip_bad_rows)
    embedding: torch.Tensor | None = None  # pretrained (V, E), when vectors were given
    coverage: str = ""


TRUNCATIONS = ("head", "tail", "head+tail")


def truncate(tokens: list[str], config: SentimentConfig) -> list[str]:
    """At most ``max_len`` tokens of a text: its beginning, its end, or half of each (Sun et al.
    2019 found head+tail best for long reviews: the verdict is often in the last lines)."""
    if config.truncation not in TRUNCATIONS:
        raise ValueError(f"truncation must be one of {', '.join(TRUNCATIONS)}, got "
                         f"{config.truncation!r}")
    n = config.max_len
    if len(tokens) <= n:
        return tokens
    if config.truncation == "head":
        return tokens[:n]
    if config.truncation == "tail":
        return tokens[-n:]
    return tokens[:n // 2] + tokens[len(tokens) - (n - n // 2):]


def encode(examples: list[Example], vocab: WordVocab, labels: LabelSet,
           config: SentimentConfig) -> tuple[list[list[int]], list[int]]:
    ids = [vocab.encode(truncate(tokenize(e.text, lowercase=config.lowercase), config)) or
           [WordVocab.UNK] for e in examples]  # a text of no tokens reads as one <unk>
    return ids, [labels.encode(e.label, e.source) for e in examples]


def load_data(config: SentimentConfig) -> SentimentData:
    if config.train is None:
        raise ValueError("give the training data: --train FILE")
    train, skipped = read_examples(config.train, config)
    if config.val is None:
        cut = len(train) - max(1, int(len(train) * config.val_fraction))
        generator = torch.Generator().manual_seed(0)  # a fixed, shuffled held-out part
        order = torch.randperm(len(train), generator=generator).tolist()
        val = [train[i] for i in order[cut:]]
        train = [train[i] for i in order[:cut]]
    else:
        val, more = read_examples(config.val, config)
        skipped += more
    labels = LabelSet.from_examples(train)
    vocab = WordVocab.build((tokenize(e.text, lowercase=config.lowercase) for e in train),
                            min_freq=config.min_freq, max_size=config.max_vocab)
    vectors = None
    if config.vectors_vocab < 0:
        raise ValueError(f"vectors_vocab must be >= 0, got {config.vectors_vocab}")
    if config.vectors:
        vectors = load_vectors(resolve_vectors(config.vectors),
                               encoding_errors=config.encoding_errors)
        # words never seen in training but known to the vectors are read too, with their
        # pretrained vectors (what pretrained vectors are most for: 5.7% of SST-2 dev's tokens
        # are not in its training set); best with freeze_vectors, since the training words'
        # vectors move when fine-tuned and these do not
        added = [w.lower() if config.lowercase else w
                 for w in vectors.words[:config.vectors_vocab]]
        vocab = vocab.extended(added)
    data = SentimentData(vocab, labels, encode(train, vocab, labels, config),
                         encode(val, vocab, labels, config), skipped)
    if vectors is not None:
        data.embedding, coverage = embedding_matrix(vectors, vocab.words,
                                                    pad_index=WordVocab.PAD)
        data.coverage = str(coverage)
    return data


def model_config(config: SentimentConfig, data: SentimentData) -> ClassifierConfig:
    embedding_size = (config.embedding_size if data.embedding is None
                      else data.embedding.shape[1])
    return ClassifierConfig(vocab_size=len(data.vocab), num_classes=len(data.labels),
                            embedding_size=embedding_size, cell=config.cell,
                            hidden_size=config.hidden_size, num_layers=config.num_layers,
                            bidirectional=config.bidirectional, pooling=config.pooling,
                            dropout=config.dropout, word_dropout=config.word_dropout,
                            freeze_embedding=config.freeze_vectors,
                            padding_index=WordVocab.PAD, unk_index=WordVocab.UNK)


class SentimentTask:
    """The trainer's view of the classifier (see :class:`rnnkit.train.trainer.Task`)."""

    kind = KIND
    monitor = "error"  # 1 - accuracy: the best checkpoint is the most accurate one

    def __init__(self, config: SentimentConfig, data: SentimentData, device: torch.device,
                 context: distributed.DistContext | None = None) -> None:
        self.context = context or distributed.DistContext()
        self.settings, self.data, self.device = config, data, device
        self.model = SequenceClassifier(model_config(config, data), data.embedding)
        # the ids' values, once, where the model meets its data: its forward trusts them
        for (ids, labels), part in ((data.train, "training"), (data.val, "validation")):
            check_token_ids(ids, self.model.config.vocab_size, f"the {part} texts")
            check_class_ids(labels, self.model.config.num_classes, f"the {part} labels")
        self.batches = BucketBatches(*data.train, config.batch_size, seed=0)
        self.val_batches = BucketBatches(*data.val, 128, shuffle=False)

    def train_batch(self, step: int):
        # each rank takes every world_size-th batch: together they read each batch once
        index = step * self.context.world_size + self.context.rank
        epoch, index = divmod(index, len(self.batches))
        return tuple(t.to(self.device) for t in self.batches.batch(epoch, index))

    def training_step(self, model, batch) -> StepOutput:
        ids, lengths, labels = batch
        _, loss = model(ids, lengths, targets=labels)
        return StepOutput(loss, int(lengths.sum()))

    def validate(self, model: SequenceClassifier) -> dict[str, float]:
        report, loss = evaluate_batches(model, self.val_batches, self.data.labels, self.device)
        return {"loss": loss, "accuracy": report.accuracy, "macro_f1": report.macro_f1,
                "error": 1.0 - report.accuracy}

    def describe(self, loss: float) -> dict[str, float]:
        return {}

    def config(self) -> dict:
        return {"sentiment": asdict(self.settings), "vocab": self.data.vocab.to_json(),
                "labels": self.data.labels.to_json(), "model": asdict(self.model.config)}

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:
        pass


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


# --------------------------------------------------------------------------------- training
def train(out: str | Path | None = None, *, resume: str | Path | None = None,
          device: str | torch.device = "auto", progress: bool = True,
          time_budget: str | float | None = None, max_steps: int | None = None,
          **options) -> TrainedClassifier | None:
    """Train a classifier into the run folder ``out`` (or continue the run ``resume``).

    ``options``: fields of :class:`SentimentConfig` and of :class:`rnnkit.train.TrainConfig`.
    Without a time budget or ``max_steps``, ten minutes (early stop usually ends it sooner).
    """
    run_plan = run.plan(KIND, {f.name for f in fields(SentimentConfig)}, options, out=out,
                        resume=resume, time_budget=time_budget, max_steps=max_steps,
                        train_defaults=TRAIN_DEFAULTS, default_budget=600.0)
    config = SentimentConfig.from_dict(run_plan.task_values)
    skipped: list[str] = []

    def build(device: torch.device, context: distributed.DistContext):
        data = load_data(config)
        skipped.extend(data.skipped)
        vectors = f"; vectors cover {data.coverage}" if data.coverage else ""
        message = (f"{len(data.train[0]):,} training and {len(data.val[0]):,} validation texts, "
                   f"{len(data.labels)} classes ({', '.join(data.labels.names)}), "
                   f"{len(data.vocab):,} words{vectors}")
        return SentimentTask(config, data, device, context), message, {}

    result, device = run.execute(run_plan, build, device=device, progress=progress)
    if result is None:  # a rank other than 0
        return None
    trained = TrainedClassifier.load(run_plan.run_dir, device)
    trained.result, trained.skipped = result, skipped
    return trained


@dataclass
class Prediction:
    text: str
    label: str
    probabilities: dict[str, float]


@dataclass
class TrainedClassifier:
    """A classifier loaded from a run folder (or one of its checkpoint files)."""

    model: SequenceClassifier
    vocab: WordVocab
    labels: LabelSet
    config: SentimentConfig
    path: Path
    metrics: dict = field(default_factory=dict)
    result: TrainResult | None = None
    skipped: list[str] = field(default_factory=list)

    @classmethod
    def load(cls, run: str | Path, device: str | torch.device = "cpu") -> TrainedClassifier:
        device = resolve_device(device)
        saved_run = open_run(run, KIND, device)
        saved = saved_run.task
        model = SequenceClassifier(ClassifierConfig(**saved["model"]))
        saved_run.restore(model, device)
        return cls(model, WordVocab.from_json(saved["vocab"]), LabelSet.from_json(saved["labels"]),
                   SentimentConfig.from_dict(saved["sentiment"]), saved_run.path, saved_run.metrics)

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def tokens(self, text: str) -> list[str]:
        return truncate(tokenize(text, lowercase=self.config.lowercase), self.config)

    def _ids(self, texts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        encoded = [self.vocab.encode(self.tokens(t)) or [WordVocab.UNK] for t in texts]
        lengths = torch.tensor([len(e) for e in encoded])
        ids = torch.full((len(encoded), int(lengths.max())), WordVocab.PAD)  # (B, T_max)
        for row, e in enumerate(encoded):
            ids[row, :len(e)] = torch.tensor(e)
        return ids.to(self.device), lengths.to(self.device)

    def predict(self, texts: list[str], batch_size: int = 64) -> list[Prediction]:
        predictions = []
        for start in range(0, len(texts), batch_size):
            chunk = texts[start:start + batch_size]
            probabilities = self.model.predict_proba(*self._ids(chunk)).cpu()  # (B, C)
            for text, row in zip(chunk, probabilities, strict=True):
                named = {name: float(p) for name, p in zip(self.labels.names, row, strict=True)}
                predictions.append(Prediction(text, max(named, key=named.get), named))
        return predictions

    def explain(self, text: str, method: str = "grad_x_input") -> list[tuple[str, float]]:
        """Each token and how much it moved the predicted class's score."""
        tokens = self.tokens(text) or ["<unk>"]
        ids = torch.tensor(self.vocab.encode(tokens), device=self.device)
        scores = self.model.explain(ids, method=method).cpu().tolist()
        return list(zip(tokens, scores, strict=True))

    def evaluate(self, path: str) -> ClassificationReport:
        examples, _ = read_examples(path, self.config)
        known = set(self.labels.names)
        for example in examples:
            if example.label not in known:
                raise LabelledDataError(f"{example.source}: label {example.label!r} is not one "
                                        f"the model knows ({', '.join(self.labels.names)})")
        ids, labels = encode(examples, self.vocab, self.labels, self.config)
        batches = BucketBatches(ids, labels, 128, shuffle=False)
        report, _ = evaluate_batches(self.model, batches, self.labels, self.device)
        return report


def colour_explanation(pairs: list[tuple[str, float]]) -> str:
    """Tokens coloured for a terminal: green pushed towards the prediction, red against."""
    peak = max((abs(s) for _, s in pairs), default=0.0) or 1.0
    out = []
    for token, score in pairs:
        strength = min(5, math.ceil(abs(score) / peak * 5))
        colour = (22 + 6 * strength) if score > 0 else (52 + 36 * min(strength, 4))
        out.append(f"\033[48;5;{colour}m{token}\033[0m" if strength else token)
    return " ".join(out)


def html_explanation(items: list[tuple[Prediction, list[tuple[str, float]]]]) -> str:
    """A self-contained HTML page: each text with its words shaded by their contribution."""
    import html

    rows = []
    for prediction, pairs in items:
        peak = max((abs(s) for _, s in pairs), default=0.0) or 1.0
        words = " ".join(
            f'<span title="{score:+.4f}" style="background: rgba('
            f'{"40,160,60" if score > 0 else "210,50,50"},{abs(score) / peak:.2f})">'
            f"{html.escape(token)}</span>" for token, score in pairs)
        probabilities = ", ".join(f"{html.escape(k)} {v:.2f}"
                                  for k, v in prediction.probabilities.items())
        rows.append(f"<tr><td><b>{html.escape(prediction.label)}</b><br><small>"
                    f"{probabilities}</small></td><td>{words}</td></tr>")
    return ("<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>rnnkit sentiment: "
            "why</title><style>body{font-family:sans-serif} td{padding:6px;vertical-align:top;"
            "border-bottom:1px solid #ddd} span{padding:1px 2px;border-radius:3px}</style>"
            "</head><body><p>Green words pushed the score of the predicted label up, red ones "
            "down (gradient x input).</p><table>" + "".join(rows) + "</table></body></html>\n")
