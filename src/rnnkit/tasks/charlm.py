"""The character-level language model (char-rnn): train, evaluate, sample.

The lecture's central example grown into a tool: the text is one stream of characters, cut into
``batch_size`` parallel rows; each training step reads the next ``seq_len`` characters of every
row and carries the hidden state over from the previous step (truncated BPTT, char-rnn's stateful
batching), so the model sees context far longer than one window.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import torch

from ..checks import check_token_ids
from ..config import option
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
from ..nn import LSTMState, evaluating
from ..train.trainer import StepOutput
from . import base

LONG_BUDGET = 300.0  # seconds from which the larger recipe below learns more


@dataclass
class CharLMConfig:
    text: str | None = option(None, "UTF-8 text file or folder (default: the built-in corpus, "
                                    "the Python language reference shipped with Python)")
    val: str | None = option(None, "validation text (default: the last --val-fraction of the "
                                   "training text)")
    val_fraction: float = option(0.1, "the held-out tail (char-rnn's and nanoGPT's 90/10)")
    encoding_errors: str = option("strict", "what to do with bytes that are not UTF-8: "
                                            "replace turns them into U+FFFD",
                                  choices=("strict", "replace"))
    seq_len: int = option(50, "steps of backpropagation through time per update")
    batch_size: int = option(32, "parallel rows of text per update")
    eval_seq_len: int = option(256, "evaluation needs no gradients: longer windows, fewer calls",
                               cli=False)
    eval_batch_size: int = option(64, "rows of text per evaluation batch", cli=False)
    model: LanguageModelConfig = option(factory=LanguageModelConfig)

    def __post_init__(self) -> None:
        if not 0 < self.val_fraction < 1:
            raise ValueError(f"val_fraction must be in (0, 1), got {self.val_fraction}")
        if self.encoding_errors not in ("strict", "replace"):
            raise ValueError("encoding_errors must be 'strict' or 'replace', got "
                             f"{self.encoding_errors!r}")
        for name in ("seq_len", "batch_size", "eval_seq_len", "eval_batch_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")


@dataclass
class CharLMData:
    vocab: CharVocab
    train_ids: torch.Tensor  # (N,) int64
    val_ids: torch.Tensor  # (M,) int64
    source: str  # what was read, for messages


class CharLMTask(base.Task):
    """The text is one stream of characters cut into ``batch_size`` rows; each step reads the
    next ``seq_len`` characters of every row and carries the hidden state over (truncated
    BPTT)."""

    kind = "charlm"
    Config = CharLMConfig
    Model = LanguageModel
    vocabularies = {"vocab": CharVocab}
    # a small text overfits within minutes (the built-in corpus did after 1,500 steps), so stop
    # after 4 evaluations without progress
    train_defaults = {"learning_rate": 3e-3, "patience": 4}
    default_budget = 120.0

    def __init__(self, config: CharLMConfig, data: CharLMData, device: torch.device,
                 context=None) -> None:
        super().__init__(config, data, device, context)
        self.batches = StatefulBatches(data.train_ids, config.batch_size, config.seq_len,
                                       rank=self.context.rank,
                                       world_size=self.context.world_size)
        self.hidden = None  # the state carried from one batch to the next (truncated BPTT)

    @classmethod
    def recipe(cls, time_budget: float | None) -> dict:
        """Within 75 s a 1x256 LSTM without dropout reached val loss 1.50 (a 1x512: 1.63, too
        few steps); within 10 minutes a 1x512 overfits after two minutes without dropout (best
        1.52) and keeps improving with dropout 0.25 (1.45 after 7 minutes)."""
        if time_budget is not None and time_budget >= LONG_BUDGET:
            return {"hidden_size": 512, "dropout": 0.25}
        return {}

    @classmethod
    def load_data(cls, config: CharLMConfig, *, run_dir: Path | None = None,
                  progress: bool = False) -> CharLMData:
        """Read, encode and split the text of a run (its vocabulary comes from the training
        text)."""
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

    def build_model(self) -> LanguageModel:
        return LanguageModel(replace(self.settings.model, vocab_size=len(self.data.vocab)))

    def check_data(self) -> None:
        V = self.model.config.vocab_size
        check_token_ids(self.data.train_ids, V, "the training text")
        check_token_ids(self.data.val_ids, V, "the validation text")

    def summary(self) -> str:
        model, data = self.settings.model, self.data
        return (f"training a {model.num_layers}x{model.hidden_size} {model.cell} "
                f"({self.model.num_parameters():,} parameters) on {data.source}: "
                f"{len(data.train_ids):,} training and {len(data.val_ids):,} validation "
                f"characters, {len(data.vocab)} distinct")

    def files(self) -> dict:
        return {"vocab.json": self.data.vocab.to_json()}

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
def train(out: str | Path | None = None, **options) -> TrainedModel | None:
    """Train a character model into the run folder ``out`` (see :func:`rnnkit.tasks.base.train`
    for the options). Without a budget or ``max_steps``, two minutes. Example::

        model = train("runs/shakespeare", text="input.txt", time_budget="75s")
        print("".join(model.sample("ROMEO:", 200, temperature=0.8)))
    """
    return base.train(CharLMTask, out, **options)


@dataclass
class SampleOptions:
    """How to sample: ``rnnkit charlm sample``'s options and :meth:`TrainedModel.predict`'s."""

    length: int = option(500, "characters to generate")
    temperature: float = option(1.0, "below 1: safer; above 1: more surprising")
    top_k: int | None = option(None, "sample among the k likeliest characters only")
    top_p: float | None = option(None, "sample among the likeliest characters whose "
                                       "probabilities add up to p, in (0, 1]")
    greedy: bool = option(False, "always the likeliest character")
    seed: int | None = option(None, "for reproducible samples")
    skip_unknown: bool = option(False, "drop prime characters the model never saw")

    def __post_init__(self) -> None:
        if self.length < 0:
            raise ValueError(f"--length must be >= 0, got {self.length}")
        if self.top_p is not None and not 0 < self.top_p <= 1:
            raise ValueError(f"--top-p: expected a value in (0, 1], got {self.top_p}")


@dataclass(kw_only=True)
class TrainedModel(base.Trained):
    """A character model loaded from a run folder (or one of its checkpoint files)."""

    task = CharLMTask
    vocab: CharVocab

    def predict(self, inputs: list[str], **options) -> list[dict]:
        """One sample after each prime of ``inputs`` (options: :class:`SampleOptions`)."""
        settings = SampleOptions(**options)
        return [{"prime": prime, "text": "".join(self.sample(prime, **vars(settings)))}
                for prime in inputs]

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


TASK = CharLMTask
CharLMTask.Trained = TrainedModel
