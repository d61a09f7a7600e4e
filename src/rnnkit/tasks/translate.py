"""Translation: the lecture's many-to-many encoder-decoder, from parallel text to new sentences.

Read the whole source sentence with a (bidirectional) RNN, then write the target sentence word
by word from a decoder that starts from the encoder's final state and, with attention, looks
back at every source position (:mod:`rnnkit.models.seq2seq`). Text is cut into SentencePiece
subword units by default (lossless, so BLEU is computed by sacreBLEU on real detokenised
text, comparable with papers), or words, or characters.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from pathlib import Path

import torch

from ..checks import check_token_ids
from ..config import option
from ..data.parallel import PairBatches, read_parallel
from ..data.subword import Tokenizer
from ..data.translation import TranslationData, encode_pairs
from ..models.seq2seq import DECODE_METHODS, Seq2Seq, Seq2SeqConfig
from ..models.translator import Output, Translator, bleu_chrf, translate_ids
from ..nn import evaluating
from ..train.trainer import StepOutput
from . import base


@dataclass
class TranslateConfig:
    train: list[str] | None = option(
        None, "PAIRS.tsv (source<TAB>target) or SOURCE TARGET aligned files", metavar="FILE")
    val: list[str] | None = option(
        None, "the same forms (default: --val-fraction of --train held out)", metavar="FILE")
    val_fraction: float = option(0.02, "pairs held out for validation when no --val is given")
    reverse: bool = option(False, "swap the sides (Tatoeba's fra.txt is English<TAB>French: "
                                  "fr -> en)")
    skip_bad_rows: bool = option(False, "count and skip malformed lines instead of stopping")
    encoding_errors: str = option("strict", "what to do with bytes that are not UTF-8: "
                                            "replace turns them into U+FFFD",
                                  choices=("strict", "replace"))
    tokenization: str = option("subword", "subword (SentencePiece unigram) | word | char",
                               choices=("subword", "word", "char"))
    vocab_size: int = option(8000, "subword pieces per language (a maximum: small corpora get "
                                   "fewer)")
    min_freq: int = option(2, "word / char: rarer tokens become <unk>")
    lowercase: bool = option(False, "lowercase both languages before cutting them into tokens")
    max_len: int = option(50, "training pairs with a side of more tokens are dropped, counted")
    label_smoothing: float = option(
        0.1, "Szegedy et al. 2016; the validation loss is plain cross-entropy")
    teacher_forcing: float = option(1.0, "below 1: scheduled sampling (Bengio et al. 2015; a "
                                         "step loop)")
    batch_size: int = option(64, "sentence pairs per update")
    eval_sentences: int = option(1000, "validation sentences translated (greedy) for BLEU at "
                                       "each evaluation")
    model: Seq2SeqConfig = option(factory=Seq2SeqConfig)

    def __post_init__(self) -> None:
        for name in ("train", "val"):
            paths = getattr(self, name)
            paths = [paths] if isinstance(paths, (str, Path)) else paths
            if paths is not None and not 1 <= len(paths) <= 2:
                raise ValueError("--train and --val take PAIRS.tsv or SOURCE TARGET (1 or 2 "
                                 "files)")
            setattr(self, name, None if paths is None else [str(p) for p in paths])


# ------------------------------------------------------------------------------------- data
def _read(paths: list[str], config: TranslateConfig):
    return read_parallel(paths, reverse=config.reverse, skip_bad=config.skip_bad_rows,
                         encoding_errors=config.encoding_errors)


# ------------------------------------------------------------------------------------- task
class TranslateTask(base.BucketedTask):
    """Batches of sentence pairs of similar source lengths, reshuffled each epoch; the loss is
    the (label-smoothed) cross-entropy per target token under teacher forcing."""

    kind = "translate"
    Config = TranslateConfig
    Model = Seq2Seq
    Batches = PairBatches
    vocabularies = {"source": Tokenizer, "target": Tokenizer}
    skipped_what = "bad lines"
    monitor = "loss"  # validation cross-entropy per target token; BLEU and chrF beside it
    train_defaults = {"learning_rate": 2e-3, "eval_every": 500, "patience": 6,
                      "warmup_steps": 200}
    default_budget = 2700.0  # 45 minutes (early stopping may end it sooner)

    @classmethod
    def load_data(cls, config: TranslateConfig, *, run_dir: Path | None = None,
                  progress: bool = False) -> TranslationData:
        """Read the pairs (validation: ``val``, else a held-out part of ``train``), learn both
        languages' tokenizers from the training pairs, encode, and drop over-long training
        pairs."""
        if not config.train:
            raise ValueError("give the training data: --train PAIRS.tsv or --train SOURCE TARGET")
        report = _read(config.train, config)
        pairs, empty, skipped = report.pairs, report.empty, list(report.skipped)
        if config.val:
            val_report = _read(config.val, config)
            val_pairs = val_report.pairs
            empty, skipped = empty + val_report.empty, skipped + val_report.skipped
        else:
            pairs, val_pairs = base.held_out(pairs, config.val_fraction)
        data = encode_pairs(pairs, val_pairs, tokenization=config.tokenization,
                            vocab_size=config.vocab_size, min_freq=config.min_freq,
                            lowercase=config.lowercase, max_len=config.max_len)
        return replace(data, empty=empty, skipped=skipped)

    def build_model(self) -> Seq2Seq:
        return Seq2Seq(replace(
            self.settings.model, source_vocab_size=len(self.data.source),
            target_vocab_size=len(self.data.target), pad_index=Tokenizer.PAD,
            unk_index=Tokenizer.UNK, start_index=Tokenizer.START, end_index=Tokenizer.END))

    def check_data(self) -> None:
        config, data = self.model.config, self.data
        for (source, target), part in ((data.train, "training"), (data.val, "validation")):
            check_token_ids(source, config.source_vocab_size, f"the {part} sources")
            check_token_ids(target, config.target_vocab_size, f"the {part} targets")

    def summary(self) -> str:
        data, config = self.data, self.settings
        notes = []
        if data.empty:
            notes.append(f"skipped {data.empty:,} pairs with an empty side")
        if data.too_long:
            notes.append(f"dropped {data.too_long:,} training pairs longer than "
                         f"{config.max_len} tokens")
        if data.skipped:
            notes.append(f"skipped {len(data.skipped):,} bad lines, the first: "
                         f"{data.skipped[0]}")
        return (f"{len(data.train[0]):,} training and {len(data.val[0]):,} validation pairs; "
                f"{config.tokenization} vocabularies of {len(data.source):,} and "
                f"{len(data.target):,}" + "".join(f"; {n}" for n in notes))

    def training_step(self, model, batch) -> StepOutput:
        source, source_lengths, target, _ = batch
        _, loss = model(source, source_lengths, target,
                        teacher_forcing=self.settings.teacher_forcing,
                        label_smoothing=self.settings.label_smoothing)
        return StepOutput(loss, int((target[:, 1:] != Tokenizer.PAD).sum()))

    def validate(self, model: Seq2Seq) -> dict[str, float]:
        loss = validation_loss(model, self.val_batches, self.device)
        count = min(self.settings.eval_sentences, len(self.data.val_texts[0]))
        hypotheses = translate_ids(model, self.data.val[0][:count], self.device)
        texts = [self.data.target.decode(h[0].tokens) for h in hypotheses]
        return {"loss": loss, "ppl": math.exp(min(loss, 50.0)),
                **bleu_chrf(texts, self.data.val_texts[1][:count])}


@torch.no_grad()
def validation_loss(model: Seq2Seq, batches: PairBatches, device: torch.device) -> float:
    """Mean cross-entropy per target token (teacher forcing, no smoothing, no dropout)."""
    total, tokens = 0.0, 0
    with evaluating(model):
        for index in range(len(batches)):
            source, source_lengths, target, _ = (t.to(device) for t in batches.batch(0, index))
            _, loss = model(source, source_lengths, target)
            count = int((target[:, 1:] != Tokenizer.PAD).sum())
            total, tokens = total + loss.item() * count, tokens + count
    return total / max(tokens, 1)


# --------------------------------------------------------------------------------- training
def train(out: str | Path | None = None, **options) -> TrainedTranslator | None:
    """Train a translator into the run folder ``out`` (see :func:`rnnkit.tasks.base.train` for
    the options). Without a time budget or ``max_steps``, 45 minutes (early stopping may end it
    sooner). Example::

        model = train("runs/en-de", train=["train.en", "train.de"], time_budget="10m")
        print(model.predict(["A man rides a bicycle."]))
    """
    return base.train(TranslateTask, out, **options)


# ------------------------------------------------------------------------------ prediction
@dataclass
class DecodeOptions:
    """How to translate: ``rnnkit translate predict``'s and ``eval``'s options and
    :meth:`TrainedTranslator.predict`'s."""

    method: str = option("beam", "greedy | beam (search) | sample", choices=DECODE_METHODS)
    beam_size: int = option(5, "hypotheses beam search keeps")
    n_best: int = option(1, "translations per sentence, best first (beam or sample)",
                         flag="--nbest")
    length_penalty: float = option(1.0, "beam search: GNMT's alpha (0: plain log-probability)")
    temperature: float = option(1.0, "sampling: below 1 safer, above 1 more surprising")
    seed: int | None = option(None, "sampling seed (default 0)")
    replace_unknown: bool = option(True, "a written <unk> becomes the source word it attended "
                                         "to most (word level)", negative="--no-unk-replace")


@dataclass(kw_only=True)
class TrainedTranslator(base.Trained):
    """A translation model loaded from a run folder (or one of its checkpoint files)."""

    task = TranslateTask
    source: Tokenizer
    target: Tokenizer

    def predict(self, inputs: list[str], **options) -> list[dict]:
        """One row per sentence of ``inputs``: its translation and score, and the ``nbest``
        list when more than one is asked for (options: :class:`DecodeOptions`)."""
        settings = DecodeOptions(**options)
        return [output.to_json(settings.n_best > 1)
                for output in self.translate(inputs, **vars(settings))]

    def translate(self, texts: list[str], **options) -> list[Output]:
        """:meth:`rnnkit.models.translator.Translator.translate` with this run's model."""
        return Translator(self.model, self.source, self.target).translate(texts, **options)

    def evaluate(self, sources: list[str], references: list[str], **options) -> dict[str, float]:
        """Corpus BLEU and chrF (sacreBLEU) of the translations of ``sources``."""
        return Translator(self.model, self.source, self.target).evaluate(sources, references,
                                                                         **options)


TASK = TranslateTask
TranslateTask.Trained = TrainedTranslator
