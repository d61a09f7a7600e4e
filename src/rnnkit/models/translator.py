"""Sentences in, sentences out: a :class:`~rnnkit.models.seq2seq.Seq2Seq` between its two
tokenizers (:class:`Translator`), and corpus BLEU and chrF of its translations (sacreBLEU, on
detokenised text, as papers report them)."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..data.subword import Tokenizer
from ..data.translation import encode_sources, translation_text
from .seq2seq import Seq2Seq, Translation

__all__ = ["Output", "Translator", "bleu_chrf", "translate_ids"]


def bleu_chrf(hypotheses: list[str], references: list[str]) -> dict[str, float]:
    """Corpus BLEU and chrF with sacreBLEU's defaults (13a tokenisation, exp smoothing;
    chrF n=6, beta=2), on detokenised text, as papers report them."""
    try:
        import sacrebleu
    except ImportError as error:
        raise ImportError("BLEU and chrF need sacreBLEU: pip install \"rnnkit[translate]\"") \
            from error
    return {"bleu": sacrebleu.corpus_bleu(hypotheses, [references]).score,
            "chrf": sacrebleu.corpus_chrf(hypotheses, [references]).score}


def translate_ids(model: Seq2Seq, sources: list[list[int]], device: torch.device, *,
                  batch_size: int = 100, **options) -> list[list[Translation]]:
    """Translations of id sequences, in their order; batches of similar lengths run together
    (``options``: :meth:`Seq2Seq.translate`'s)."""
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


@dataclass
class Output:
    """One sentence's translation, with what the model read and wrote."""

    source: str
    text: str  # the best translation, detokenised
    score: float
    nbest: list[tuple[str, float]]  # (translation, score), best first
    source_pieces: list[str]  # what the encoder read
    target_pieces: list[str]  # what the decoder wrote
    attention: torch.Tensor | None  # (target pieces, source pieces)

    def to_json(self, nbest: bool = False) -> dict:
        """The sentence, its translation and score (and the n-best list): the JSON row of
        ``rnnkit translate predict --json``."""
        row = {"source": self.source, "translation": self.text, "score": self.score}
        if nbest:
            row["nbest"] = [{"translation": t, "score": s} for t, s in self.nbest]
        return row


@dataclass
class Translator:
    """``model`` between the ``source`` and ``target`` tokenizers it was trained with."""

    model: Seq2Seq
    source: Tokenizer
    target: Tokenizer

    def translate(self, texts: list[str], *, method: str = "beam", beam_size: int = 5,
                  n_best: int = 1, length_penalty: float = 1.0, replace_unknown: bool = True,
                  temperature: float = 1.0, seed: int | None = None) -> list[Output]:
        """Translations of ``texts``. Any length is read (an RNN has no length limit); the
        output stops at ``<END>`` or ``2 n + 10`` tokens (at most 200). With
        ``replace_unknown``, a written ``<unk>`` becomes the source token it attended to most
        (Luong et al. 2015), for word-level models with attention."""
        device = next(self.model.parameters()).device
        options: dict = {"method": method, "n_best": n_best}
        if method == "beam":
            options.update(beam_size=beam_size, length_penalty=length_penalty)
        if method == "sample":
            options.update(temperature=temperature, generator=torch.Generator(
                device).manual_seed(seed if seed is not None else 0))
        ids = encode_sources(self.source, texts)
        outputs = []
        for text, source_ids, results in zip(texts, ids, translate_ids(self.model, ids, device,
                                                                       **options), strict=True):
            source_pieces = [self.source.piece(i) for i in source_ids]
            nbest = [(translation_text(r.tokens, r.attention if replace_unknown else None,
                                       source_pieces, self.target), r.score) for r in results]
            best = results[0]
            outputs.append(Output(text, nbest[0][0], best.score, nbest, source_pieces,
                                  [self.target.piece(i) for i in best.tokens], best.attention))
        return outputs

    def evaluate(self, sources: list[str], references: list[str], **options) -> dict[str, float]:
        """Corpus BLEU and chrF (sacreBLEU) of the translations of ``sources`` (``options``:
        :meth:`translate`'s)."""
        if len(sources) != len(references):
            raise ValueError(f"expected one reference per source sentence, got {len(sources)} "
                             f"sources and {len(references)} references")
        return bleu_chrf([o.text for o in self.translate(sources, **options)], references)
