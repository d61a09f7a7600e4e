"""Translation: the lecture's many-to-many encoder-decoder, from parallel text to new sentences.

Read the whole source sentence with a (bidirectional) RNN, then write the target sentence word
by word from a decoder that starts from the encoder's final state and, with attention, looks
back at every source position (:mod:`rnnkit.models.seq2seq`). Text is cut into SentencePiece
subword units by default (lossless, so BLEU is computed by sacreBLEU on real detokenised
text, comparable with papers), or words, or characters.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import torch

from ..checks import check_token_ids
from ..data.parallel import PairBatches, filter_by_length, read_parallel
from ..data.subword import Tokenizer
from ..models.seq2seq import Seq2Seq, Seq2SeqConfig, Translation
from ..nn import evaluating
from ..train import distributed, run
from ..train.run import open_run
from ..train.runtime import resolve_device
from ..train.trainer import StepOutput, TrainResult

KIND = "translate"
TRAIN_DEFAULTS = {"learning_rate": 2e-3, "eval_every": 500, "patience": 6, "warmup_steps": 200}


@dataclass
class TranslateConfig:
    train: list[str] | None = None  # [PAIRS.tsv] or [SOURCE, TARGET] aligned files
    val: list[str] | None = None  # the same forms (None: val_fraction of train held out)
    val_fraction: float = 0.02  # pairs held out for validation when no val data is given
    reverse: bool = False  # swap the sides (Tatoeba's fra.txt is English<TAB>French: fr -> en)
    skip_bad_rows: bool = False  # count and skip malformed lines instead of stopping
    encoding_errors: str = "strict"  # "replace": bytes that are not UTF-8 become U+FFFD
    tokenization: str = "subword"  # subword (SentencePiece unigram) | word | char
    vocab_size: int = 8000  # subword pieces per language (a maximum: small corpora get fewer)
    min_freq: int = 2  # word / char: rarer tokens become <unk>
    lowercase: bool = False
    max_len: int = 50  # training pairs with a longer side (in tokens) are dropped and counted
    cell: str = "gru"
    embedding_size: int = 256
    hidden_size: int = 512
    encoder_layers: int = 1
    decoder_layers: int = 1
    bidirectional: bool = True  # the encoder reads both ways
    attention: str = "general"  # general | dot (Luong) | bahdanau | none (Sutskever)
    input_feeding: bool = False  # Luong's input feeding (a step loop: slower)
    reverse_source: bool = False  # Sutskever et al. 2014: read the source backwards
    tie_embeddings: bool = True  # the decoder's input embedding is its output layer (Press & Wolf)
    dropout: float = 0.3
    label_smoothing: float = 0.1  # Szegedy et al. 2016; validation loss is plain cross-entropy
    teacher_forcing: float = 1.0  # < 1: scheduled sampling (Bengio et al. 2015; a step loop)
    batch_size: int = 64
    eval_sentences: int = 1000  # validation sentences translated (greedy) for BLEU per evaluation

    @classmethod
    def from_dict(cls, values: dict) -> TranslateConfig:
        unknown = sorted(set(values) - {f.name for f in fields(cls)})
        if unknown:
            raise ValueError(f"unknown translate config keys: {', '.join(unknown)}")
        return cls(**values)


def _bleu_chrf(hypotheses: list[str], references: list[str]) -> dict[str, float]:
    """Corpus BLEU and chrF with sacreBLEU's defaults (13a tokenisation, exp smoothing;
    chrF n=6, beta=2), on detokenised text, as papers report them."""
    try:
        import sacrebleu
    except ImportError as error:
        raise ImportError("BLEU and chrF need sacreBLEU: pip install \"rnnkit[translate]\"") \
            from error
    return {"bleu": sacrebleu.corpus_bleu(hypotheses, [references]).score,
            "chrf": sacrebleu.corpus_chrf(hypotheses, [references]).score}


# ------------------------------------------------------------------------------------- data
@dataclass
class TranslateData:
    source: Tokenizer
    target: Tokenizer
    train: tuple[list[list[int]], list[list[int]]]  # source ids, target ids
    val_texts: tuple[list[str], list[str]]  # the validation sentences as written
    val: tuple[list[list[int]], list[list[int]]]
    empty: int  # pairs with an empty side, skipped
    too_long: int  # training pairs over max_len, dropped
    skipped: list[str] = field(default_factory=list)


def _read(paths: list[str], config: TranslateConfig):
    return read_parallel(paths, reverse=config.reverse, skip_bad=config.skip_bad_rows,
                         encoding_errors=config.encoding_errors)


def _encode(tokenizer: Tokenizer, texts: list[str]) -> list[list[int]]:
    # an encoder cannot read zero steps: a sentence of no tokens reads as one <unk>
    return [tokenizer.encode(t) or [Tokenizer.UNK] for t in texts]


def load_data(config: TranslateConfig) -> TranslateData:
    if not config.train:
        raise ValueError("give the training data: --train PAIRS.tsv or --train SOURCE TARGET")
    report = _read(config.train, config)
    pairs, empty, skipped = report.pairs, report.empty, list(report.skipped)
    if config.val:
        val_report = _read(config.val, config)
        val_pairs = val_report.pairs
        empty, skipped = empty + val_report.empty, skipped + val_report.skipped
    else:
        order = torch.randperm(len(pairs), generator=torch.Generator().manual_seed(0)).tolist()
        cut = len(pairs) - max(1, int(len(pairs) * config.val_fraction))
        val_pairs = [pairs[i] for i in order[cut:]]
        pairs = [pairs[i] for i in order[:cut]]
    options = ({"vocab_size": config.vocab_size} if config.tokenization == "subword"
               else {"min_freq": config.min_freq})
    source = Tokenizer.train(config.tokenization, (p.source for p in pairs),
                             lowercase=config.lowercase, **options)
    target = Tokenizer.train(config.tokenization, (p.target for p in pairs),
                             lowercase=config.lowercase, **options)
    encoded = list(zip(_encode(source, [p.source for p in pairs]),
                       [target.encode(p.target) for p in pairs], strict=True))
    kept, too_long = filter_by_length(encoded, config.max_len)
    val_texts = ([p.source for p in val_pairs], [p.target for p in val_pairs])
    val = (_encode(source, val_texts[0]), [target.encode(t) for t in val_texts[1]])
    return TranslateData(source, target, ([s for s, _ in kept], [t for _, t in kept]),
                         val_texts, val, empty, too_long, skipped)


def model_config(config: TranslateConfig, data: TranslateData) -> Seq2SeqConfig:
    return Seq2SeqConfig(
        source_vocab_size=len(data.source), target_vocab_size=len(data.target),
        embedding_size=config.embedding_size, hidden_size=config.hidden_size, cell=config.cell,
        encoder_layers=config.encoder_layers, decoder_layers=config.decoder_layers,
        bidirectional_encoder=config.bidirectional, attention=config.attention,
        input_feeding=config.input_feeding, reverse_source=config.reverse_source,
        dropout=config.dropout, tie_embeddings=config.tie_embeddings,
        pad_index=Tokenizer.PAD, unk_index=Tokenizer.UNK, start_index=Tokenizer.START,
        end_index=Tokenizer.END)


# ------------------------------------------------------------------------------------- task
class TranslateTask:
    """The trainer's view of translation (see :class:`rnnkit.train.trainer.Task`)."""

    kind = KIND
    monitor = "loss"  # validation cross-entropy per target token; BLEU and chrF beside it

    def __init__(self, config: TranslateConfig, data: TranslateData, device: torch.device,
                 context: distributed.DistContext | None = None) -> None:
        self.settings, self.data, self.device = config, data, device
        self.context = context or distributed.DistContext()
        self.model = Seq2Seq(model_config(config, data))
        # the ids' values, once, where the model meets its data: its forward trusts them
        for (source, target), part in ((data.train, "training"), (data.val, "validation")):
            check_token_ids(source, self.model.config.source_vocab_size, f"the {part} sources")
            check_token_ids(target, self.model.config.target_vocab_size, f"the {part} targets")
        self.batches = PairBatches(*data.train, config.batch_size, seed=0)
        self.val_batches = PairBatches(*data.val, 128, shuffle=False)

    def train_batch(self, step: int):
        index = step * self.context.world_size + self.context.rank
        epoch, index = divmod(index, len(self.batches))
        return tuple(t.to(self.device) for t in self.batches.batch(epoch, index))

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
                **_bleu_chrf(texts, self.data.val_texts[1][:count])}

    def describe(self, loss: float) -> dict[str, float]:
        return {}

    def config(self) -> dict:
        return {"translate": asdict(self.settings), "source": self.data.source.to_json(),
                "target": self.data.target.to_json(), "model": asdict(self.model.config)}

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:
        pass


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


def translate_ids(model: Seq2Seq, sources: list[list[int]], device: torch.device, *,
                  batch_size: int = 100, **options) -> list[list[Translation]]:
    """Translations of id sequences, in their order; batches of similar lengths run together."""
    order = sorted(range(len(sources)), key=lambda i: -len(sources[i]))
    out: list[list[Translation] | None] = [None] * len(sources)
    for start in range(0, len(order), batch_size):
        rows = order[start:start + batch_size]
        lengths = torch.tensor([len(sources[i]) for i in rows])
        source = torch.full((len(rows), int(lengths.max())), Tokenizer.PAD, dtype=torch.long)
        for row, i in enumerate(rows):  # (B, S), padded
            source[row, :len(sources[i])] = torch.tensor(sources[i])
        results = model.translate(source.to(device), lengths.to(device), **options)
        for i, result in zip(rows, results, strict=True):
            out[i] = result
    return out


# --------------------------------------------------------------------------------- training
def train(out: str | Path | None = None, *, resume: str | Path | None = None,
          device: str | torch.device = "auto", progress: bool = True,
          time_budget: str | float | None = None, max_steps: int | None = None,
          **options) -> TrainedTranslator | None:
    """Train a translator into the run folder ``out`` (or continue the run ``resume``).

    ``options``: fields of :class:`TranslateConfig` and of :class:`rnnkit.train.TrainConfig`.
    Without a time budget or ``max_steps``, 45 minutes (early stop may end it sooner).
    """
    run_plan = run.plan(KIND, {f.name for f in fields(TranslateConfig)}, options, out=out,
                        resume=resume, time_budget=time_budget, max_steps=max_steps,
                        train_defaults=TRAIN_DEFAULTS, default_budget=2700.0)
    config = TranslateConfig.from_dict(run_plan.task_values)
    notes: list[str] = []

    def build(device: torch.device, context: distributed.DistContext):
        data = load_data(config)
        if data.empty:
            notes.append(f"skipped {data.empty:,} pairs with an empty side")
        if data.too_long:
            notes.append(f"dropped {data.too_long:,} training pairs longer than "
                         f"{config.max_len} tokens")
        if data.skipped:
            notes.append(f"skipped {len(data.skipped):,} bad lines, the first: "
                         f"{data.skipped[0]}")
        message = (f"{len(data.train[0]):,} training and {len(data.val[0]):,} validation pairs; "
                   f"{config.tokenization} vocabularies of {len(data.source):,} and "
                   f"{len(data.target):,}" + "".join(f"; {n}" for n in notes))
        return TranslateTask(config, data, device, context), message, {}

    result, device = run.execute(run_plan, build, device=device, progress=progress)
    if result is None:  # a rank other than 0
        return None
    trained = TrainedTranslator.load(run_plan.run_dir, device)
    trained.result, trained.notes = result, notes
    return trained


# ------------------------------------------------------------------------------ prediction
@dataclass
class Output:
    source: str
    text: str  # the best translation, detokenised
    score: float
    nbest: list[tuple[str, float]]  # (translation, score), best first
    source_pieces: list[str]  # what the encoder read
    target_pieces: list[str]  # what the decoder wrote
    attention: torch.Tensor | None  # (target pieces, source pieces)


@dataclass
class TrainedTranslator:
    model: Seq2Seq
    source: Tokenizer
    target: Tokenizer
    config: TranslateConfig
    path: Path
    metrics: dict = field(default_factory=dict)
    result: TrainResult | None = None
    notes: list[str] = field(default_factory=list)

    @classmethod
    def load(cls, run: str | Path, device: str | torch.device = "cpu") -> TrainedTranslator:
        device = resolve_device(device)
        saved_run = open_run(run, KIND, device)
        saved = saved_run.task
        model = Seq2Seq(Seq2SeqConfig(**saved["model"]))
        saved_run.restore(model, device)
        return cls(model, Tokenizer.from_json(saved["source"]),
                   Tokenizer.from_json(saved["target"]),
                   TranslateConfig.from_dict(saved["translate"]), saved_run.path, saved_run.metrics)

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def translate(self, texts: list[str], *, method: str = "beam", beam_size: int = 5,
                  n_best: int = 1, length_penalty: float = 1.0, replace_unknown: bool = True,
                  temperature: float = 1.0, seed: int | None = None) -> list[Output]:
        """Translations of ``texts``. Any length is read (an RNN has no length limit); the
        output stops at ``<END>`` or ``2 n + 10`` tokens (at most 200). With
        ``replace_unknown``, a written ``<unk>`` becomes the source token it attended to most
        (Luong et al. 2015), for word-level models with attention."""
        options: dict = {"method": method, "n_best": n_best}
        if method == "beam":
            options.update(beam_size=beam_size, length_penalty=length_penalty)
        if method == "sample":
            options.update(temperature=temperature, generator=torch.Generator(
                self.device).manual_seed(seed if seed is not None else 0))
        ids = _encode(self.source, texts)
        outputs = []
        for text, source_ids, results in zip(texts, ids,
                                             translate_ids(self.model, ids, self.device,
                                                           **options), strict=True):
            source_pieces = [self.source.piece(i) for i in source_ids]
            nbest = [(self._text(r, source_pieces, replace_unknown), r.score) for r in results]
            best = results[0]
            outputs.append(Output(text, nbest[0][0], best.score, nbest, source_pieces,
                                  [self.target.piece(i) for i in best.tokens], best.attention))
        return outputs

    def _text(self, result: Translation, source_pieces: list[str], replace: bool) -> str:
        tokens = list(result.tokens)
        if not (replace and result.attention is not None and Tokenizer.UNK in tokens
                and self.target.kind == "word"):
            return self.target.decode(tokens)
        pieces = [self.target.piece(t) for t in tokens]
        for position, token in enumerate(tokens):
            if token == Tokenizer.UNK:
                pieces[position] = source_pieces[int(result.attention[position].argmax())]
        from ..data.subword import detokenize

        return detokenize(pieces)

    def evaluate(self, sources: list[str], references: list[str], **options) -> dict[str, float]:
        """Corpus BLEU and chrF (sacreBLEU) of the translations of ``sources``."""
        if len(sources) != len(references):
            raise ValueError(f"expected one reference per source sentence, got {len(sources)} "
                             f"sources and {len(references)} references")
        hypotheses = [o.text for o in self.translate(sources, **options)]
        return _bleu_chrf(hypotheses, references)


def plot_attention(output: Output, path: str | Path) -> Path | None:
    """The attention matrix of one translation as a PNG (rows: target pieces, columns: source
    pieces); ``None`` without matplotlib, without attention or for an empty translation."""
    if output.attention is None or not output.target_pieces:
        return None
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    weights = output.attention.detach().float().cpu().numpy()  # (T, S)
    figure, axes = plt.subplots(figsize=(0.45 * weights.shape[1] + 2,
                                         0.45 * weights.shape[0] + 1.5))
    axes.imshow(weights, cmap="Greys", vmin=0.0, vmax=1.0, aspect="auto")
    axes.set_xticks(range(len(output.source_pieces)), output.source_pieces, rotation=90)
    axes.set_yticks(range(len(output.target_pieces)), output.target_pieces)
    axes.set_xlabel("source")
    axes.set_ylabel("translation")
    figure.tight_layout()
    path = Path(path)
    figure.savefig(path, dpi=120)
    plt.close(figure)
    return path
