"""The character-level language model (char-rnn): train, evaluate, sample.

The lecture's central example grown into a tool: the text is one stream of characters, cut into
``batch_size`` parallel rows; each training step reads the next ``seq_len`` characters of every
row and carries the hidden state over from the previous step (truncated BPTT, char-rnn's stateful
batching), so the model sees context far longer than one window.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import torch

from ..checks import check_token_ids
from ..data.text import (
    CharVocab,
    StatefulBatches,
    TextDataError,
    default_corpus,
    read_text,
    split_tail,
    windows,
)
from ..models.language_model import LanguageModel, LanguageModelConfig, detach_state
from ..nn import LSTMState, check_cell, evaluating
from ..train import distributed, run
from ..train.run import open_run
from ..train.runtime import resolve_device
from ..train.trainer import StepOutput, TrainResult

KIND = "charlm"
# the trainer's settings this task is best with: a small text overfits within minutes (the
# built-in corpus did after 1,500 steps), so stop after 4 evaluations without progress
TRAIN_DEFAULTS = {"learning_rate": 3e-3, "patience": 4}
LONG_BUDGET = 300.0  # seconds from which the larger recipe below learns more


def recipe(time_budget: float | None) -> dict:
    """The model settings that did best here (2 CPU cores, tiny Shakespeare) for the budget.

    Within 75 s a 1x256 LSTM without dropout reached val loss 1.50 (a 1x512: 1.63, too few
    steps); within 10 minutes a 1x512 overfits after two minutes without dropout (best 1.52)
    and keeps improving with dropout 0.25 (1.45 after 7 minutes).
    """
    if time_budget is not None and time_budget >= LONG_BUDGET:
        return {"hidden_size": 512, "dropout": 0.25}
    return {}


@dataclass
class CharLMConfig:
    text: str | None = None  # training text: a UTF-8 file or a folder; None = the built-in corpus
    val: str | None = None  # validation text; None = the last val_fraction of the training text
    val_fraction: float = 0.1  # the held-out tail (char-rnn's and nanoGPT's 90/10 split)
    encoding_errors: str = "strict"  # "replace" turns bytes that are not UTF-8 into U+FFFD
    cell: str = "lstm"  # rnn_tanh | rnn_relu | lstm | gru | layernorm_lstm
    num_layers: int = 1  # on 2 CPU cores one level learns fastest per second
    hidden_size: int = 256  # val loss 1.50 on tiny Shakespeare in 75 s here (512: 1.63)
    embedding_size: int = 64
    dropout: float = 0.0  # within a short budget the model underfits: no dropout
    tie_weights: bool = False
    seq_len: int = 50  # steps of backpropagation through time per update
    batch_size: int = 32  # parallel rows of text per update
    eval_seq_len: int = 256  # evaluation needs no gradients: longer windows, fewer calls
    eval_batch_size: int = 64

    def __post_init__(self) -> None:
        check_cell(self.cell)
        if not 0 < self.val_fraction < 1:
            raise ValueError(f"val_fraction must be in (0, 1), got {self.val_fraction}")
        if self.encoding_errors not in ("strict", "replace"):
            raise ValueError("encoding_errors must be 'strict' or 'replace', got "
                             f"{self.encoding_errors!r}")
        for name in ("num_layers", "hidden_size", "seq_len", "batch_size", "eval_seq_len",
                     "eval_batch_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")

    @classmethod
    def from_dict(cls, values: dict) -> CharLMConfig:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"unknown charlm config keys: {', '.join(unknown)}")
        return cls(**values)


@dataclass
class CharLMData:
    vocab: CharVocab
    train_ids: torch.Tensor  # (N,) int64
    val_ids: torch.Tensor  # (M,) int64
    source: str  # what was read, for messages


def load_data(config: CharLMConfig) -> CharLMData:
    """Read, encode and split the text of a run (its vocabulary comes from the training text)."""
    if config.text is None:
        text, source = default_corpus(), "the built-in corpus (Python language reference)"
    else:
        text, source = read_text(config.text, errors=config.encoding_errors), config.text
    if config.val is None:
        vocab = CharVocab.from_text(text)
        train_ids, val_ids = split_tail(vocab.encode(text), config.val_fraction)
        return CharLMData(vocab, train_ids, val_ids, source)
    val_text = read_text(config.val, errors=config.encoding_errors)
    vocab = CharVocab.from_text(text + val_text)  # a character seen only in validation still
    return CharLMData(vocab, vocab.encode(text), vocab.encode(val_text), source)  # has an id


def model_config(config: CharLMConfig, vocab_size: int) -> LanguageModelConfig:
    return LanguageModelConfig(vocab_size=vocab_size, cell=config.cell,
                               num_layers=config.num_layers, hidden_size=config.hidden_size,
                               embedding_size=config.embedding_size, dropout=config.dropout,
                               tie_weights=config.tie_weights)


class CharLMTask:
    """The trainer's view of the character model (see :class:`rnnkit.train.trainer.Task`)."""

    kind = KIND
    monitor = "loss"

    def __init__(self, config: CharLMConfig, data: CharLMData, device: torch.device,
                 context: distributed.DistContext | None = None) -> None:
        context = context or distributed.DistContext()
        self.settings, self.data, self.device = config, data, device
        self.model = LanguageModel(model_config(config, len(data.vocab)))
        # the ids' values, once, where the model meets its data: its forward trusts them
        check_token_ids(data.train_ids, self.model.config.vocab_size, "the training text")
        check_token_ids(data.val_ids, self.model.config.vocab_size, "the validation text")
        self.batches = StatefulBatches(data.train_ids, config.batch_size, config.seq_len,
                                       rank=context.rank, world_size=context.world_size)
        self.hidden = None  # the state carried from one batch to the next (truncated BPTT)

    def train_batch(self, step: int) -> tuple[torch.Tensor, torch.Tensor]:
        if self.batches.starts_epoch(step):
            self.hidden = None  # each epoch starts every row again from the beginning
        x, y = self.batches.batch(step % len(self.batches))  # (B, T) each
        return x.to(self.device), y.to(self.device)

    def training_step(self, model, batch) -> StepOutput:
        x, y = batch
        _, loss, hidden = model(x, self.hidden, targets=y)
        self.hidden = detach_state(hidden)  # carry the state, not the graph
        return StepOutput(loss, x.numel())

    def validate(self, model: LanguageModel) -> dict[str, float]:
        return evaluate_ids(model, self.data.val_ids, self.settings, self.device)

    def describe(self, loss: float) -> dict[str, float]:
        return {"bpc": loss / math.log(2)}

    def config(self) -> dict:
        return {"charlm": asdict(self.settings), "vocab": self.data.vocab.to_json(),
                "model": asdict(self.model.config)}

    def state_dict(self) -> dict:
        if self.hidden is None:
            return {"hidden": None}
        return {"hidden": list(self.hidden) if isinstance(self.hidden, tuple) else [self.hidden]}

    def load_state_dict(self, state: dict) -> None:
        hidden = state["hidden"]
        if hidden is None:
            self.hidden = None
        else:
            hidden = [h.to(self.device) for h in hidden]
            self.hidden = LSTMState(*hidden) if len(hidden) == 2 else hidden[0]


def evaluate_ids(model: LanguageModel, ids: torch.Tensor, config: CharLMConfig,
                 device: torch.device) -> dict[str, float]:
    """Loss (nats/char), bits per char and perplexity over a whole stream, state carried."""
    total, count, hidden = 0.0, 0, None
    with evaluating(model), torch.no_grad():
        # the windows keep the same rows throughout, so the state carries from one to the next
        for x, y, n_targets in windows(ids, config.eval_seq_len, config.eval_batch_size):
            _, loss, hidden = model(x.to(device), hidden, targets=y.to(device))
            total += loss.item() * n_targets
            count += n_targets
    loss = total / count
    return {"loss": loss, "bpc": loss / math.log(2), "perplexity": math.exp(loss)}


# --------------------------------------------------------------------------- trained runs
def train(out: str | Path | None = None, *, resume: str | Path | None = None,
          device: str | torch.device = "auto", progress: bool = True,
          time_budget: str | float | None = None, max_steps: int | None = None,
          **options) -> TrainedModel | None:
    """Train a character model into the run folder ``out`` (or continue the run ``resume``).

    ``options`` are the fields of :class:`CharLMConfig` (data and model: ``text``, ``cell``,
    ``hidden_size``...) and of :class:`rnnkit.train.TrainConfig` (``learning_rate``,
    ``eval_every``...); ``time_budget`` takes ``"75s"``, ``"10m"`` or seconds. Without a budget or
    ``max_steps``, two minutes. Returns the best model (``None`` on ranks other than 0 under
    ``torchrun``). Example::

        model = train("runs/shakespeare", text="input.txt", time_budget="75s")
        print("".join(model.sample("ROMEO:", 200, temperature=0.8)))
    """
    run_plan = run.plan(KIND, {f.name for f in fields(CharLMConfig)}, options, out=out,
                        resume=resume, time_budget=time_budget, max_steps=max_steps,
                        train_defaults=TRAIN_DEFAULTS, default_budget=120.0, recipe=recipe)
    config = CharLMConfig.from_dict(run_plan.task_values)

    def build(device: torch.device, context: distributed.DistContext):
        data = load_data(config)
        task = CharLMTask(config, data, device, context)
        message = (f"training a {config.num_layers}x{config.hidden_size} {config.cell} "
                   f"({task.model.num_parameters():,} parameters) on {data.source}: "
                   f"{len(data.train_ids):,} training and {len(data.val_ids):,} validation "
                   f"characters, {len(data.vocab)} distinct")
        return task, message, {"vocab.json": data.vocab.to_json()}

    result, device = run.execute(run_plan, build, device=device, progress=progress)
    if result is None:  # a rank other than 0
        return None
    trained = TrainedModel.load(run_plan.run_dir, device)
    trained.result = result
    return trained


@dataclass
class TrainedModel:
    """A model loaded from a run folder (or one of its checkpoint files), ready to use."""

    model: LanguageModel
    vocab: CharVocab
    config: CharLMConfig
    path: Path
    metrics: dict = field(default_factory=dict)  # the best checkpoint's validation metrics
    result: TrainResult | None = None  # how training went, when this came from train()

    @classmethod
    def load(cls, run: str | Path, device: str | torch.device = "cpu") -> TrainedModel:
        device = resolve_device(device)
        saved_run = open_run(run, KIND, device)
        task_config = saved_run.task
        config = CharLMConfig.from_dict(task_config["charlm"])
        vocab = CharVocab.from_json(task_config["vocab"])
        model = LanguageModel(LanguageModelConfig(**task_config["model"]))
        saved_run.restore(model, device)
        return cls(model, vocab, config, saved_run.path, saved_run.metrics)

    def _generator(self, seed: int | None) -> torch.Generator | None:
        if seed is None:
            return None
        return torch.Generator(device=self.model.head.weight.device).manual_seed(seed)

    def encode_prime(self, prime: str, skip_unknown: bool = False) -> torch.Tensor:
        unknown = self.vocab.unknown_chars(prime)
        if unknown and not skip_unknown:
            shown = ", ".join(f"{c!r} (U+{ord(c):04X})" for c in unknown)
            raise TextDataError(f"the prime has characters the model never saw: {shown}; use "
                                "--skip-unknown to drop them")
        return self.vocab.encode(prime, unknown="skip" if skip_unknown else "error")

    def sample(self, prime: str = "", length: int = 500, *, temperature: float = 1.0,
               top_k: int | None = None, top_p: float | None = None, greedy: bool = False,
               seed: int | None = None, skip_unknown: bool = False) -> Iterator[str]:
        """Characters one at a time, as they are produced (after the prime)."""
        ids = self.encode_prime(prime, skip_unknown)
        if ids.numel() == 0:  # no prime: start from a newline, the most neutral character
            ids = self.vocab.encode("\n") if "\n" in self.vocab.chars else torch.tensor([0])
        device = self.model.head.weight.device
        for next_ids in self.model.sample(ids.to(device), length, temperature=temperature,
                                          top_k=top_k, top_p=top_p, greedy=greedy,
                                          generator=self._generator(seed)):
            yield self.vocab.chars[int(next_ids[0])]

    def sample_many(self, prime: str, length: int, count: int, *, temperature: float = 1.0,
                    top_k: int | None = None, top_p: float | None = None, greedy: bool = False,
                    seed: int | None = None, skip_unknown: bool = False) -> list[str]:
        """``count`` independent samples after the same prime, generated as one batch."""
        ids = self.encode_prime(prime or "\n", skip_unknown)
        device = self.model.head.weight.device
        primes = ids.to(device).unsqueeze(0).expand(count, -1)  # (P,) -> (count, P)
        steps = list(self.model.sample(primes, length, temperature=temperature, top_k=top_k,
                                       top_p=top_p, greedy=greedy,
                                       generator=self._generator(seed)))
        if not steps:
            return [""] * count
        ids_by_stream = torch.stack(steps, dim=1)  # length x (count,) -> (count, length)
        return [self.vocab.decode(row) for row in ids_by_stream]

    def evaluate(self, path: str | Path, encoding_errors: str = "strict") -> dict[str, float]:
        text = read_text(path, errors=encoding_errors)
        unknown = self.vocab.unknown_chars(text)
        if unknown:
            shown = ", ".join(repr(c) for c in unknown[:10])
            raise TextDataError(f"{path} has characters the model never saw: {shown}")
        ids = self.vocab.encode(text)
        device = self.model.head.weight.device
        return evaluate_ids(self.model, ids, self.config, device)
