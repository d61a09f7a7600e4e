"""Choosing the next token from a model's logits: greedy, temperature, top-k and top-p sampling.

Generic over logits: any model that scores a vocabulary ``(B, V)`` at a step uses these. The
order of operations, as in most samplers (Hugging Face's warpers, nanoGPT's ``generate``)::

    scaled   = logits / temperature            # T < 1 sharpens, T > 1 flattens
    filtered = filter_logits(scaled, top_k, top_p)   # the rest -> -inf
    next     ~ softmax(filtered)                # torch.multinomial, with your generator

so top-p acts on the distribution that is actually sampled. Greedy decoding is the limit
``T -> 0``: the argmax, which every filter keeps; it is deterministic and ignores the rest.

:func:`next_token` chooses once; a :class:`Sampler` chooses step after step, with the same
distribution and less work per step (generation loops use it).
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["Sampler", "check_sampling", "filter_logits", "next_token"]


def check_sampling(temperature: float = 1.0, top_k: int | None = None,
                   top_p: float | None = None) -> None:
    """Raise ``ValueError`` unless ``temperature > 0``, ``top_k >= 1`` and ``0 < top_p <= 1``.

    Models call it before they start generating, so that a bad option fails at the call, not
    at the first step.
    """
    if isinstance(temperature, bool) or not isinstance(temperature, (int, float)) or not (
            temperature > 0 and temperature != float("inf")):
        raise ValueError(f"temperature must be a finite number > 0, got {temperature!r} "
                         "(for the likeliest token at every step, use greedy decoding)")
    if top_k is not None and (isinstance(top_k, bool) or not isinstance(top_k, int)
                              or top_k < 1):
        raise ValueError(f"top_k must be an integer >= 1 (or None), got {top_k!r}")
    if top_p is not None and (isinstance(top_p, bool) or not isinstance(top_p, (int, float))
                              or not 0 < top_p <= 1):
        raise ValueError(f"top_p must be in (0, 1], got {top_p!r}")


def filter_logits(logits: Tensor, *, top_k: int | None = None,
                  top_p: float | None = None) -> Tensor:
    """Keep the likeliest tokens of every row of ``logits`` ``(..., V)``; the rest become -inf.

    * ``top_k``: the ``k`` largest logits. Ties with the k-th largest are all kept (so a row
      may keep more than ``k`` when values repeat): which of two equal logits to drop would
      otherwise depend on the sort. ``k >= V`` keeps everything.
    * ``top_p``: nucleus sampling (Holtzman et al. 2020): the smallest set of the likeliest
      tokens whose softmax mass is ``>= top_p``; at least one token always stays. Ties with the
      last token kept are kept too. A mass within a few float roundings of ``top_p`` counts as
      reaching it: probabilities ``[0.5, 0.3, 0.15, 0.05]`` with ``top_p=0.8`` keep two, though
      ``0.5 + 0.3`` may come out as ``0.80000007`` or ``0.79999999``. ``top_p=1`` keeps all.

    With both, top-k applies first, then top-p to what remains (renormalised). Returns a new
    tensor; ``logits`` is not changed.
    """
    check_sampling(1.0, top_k, top_p)
    if logits.dim() == 0:
        raise ValueError("expected logits of shape (..., V), got a scalar")
    vocab = logits.shape[-1]
    if top_k is not None and top_k < vocab:
        kth = logits.topk(top_k, dim=-1).values[..., -1:]  # (..., V) -> (..., 1)
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if top_p is not None and top_p < 1:
        ordered = logits.sort(dim=-1, descending=True).values  # (..., V), likeliest first
        # the sums in at least float32: bfloat16's rounding (0.4%) would move the boundary
        work = ordered if ordered.dtype in (torch.float32, torch.float64) else ordered.float()
        probs = work.softmax(dim=-1)
        mass_before = probs.cumsum(dim=-1) - probs  # mass of the tokens strictly likelier
        slack = 16 * torch.finfo(probs.dtype).eps  # rounding of the running sum
        kept = (mass_before < top_p - slack).sum(dim=-1, keepdim=True)  # (..., 1), >= 1
        smallest = ordered.gather(-1, kept.clamp_min(1) - 1)  # (..., 1): the last logit kept
        logits = logits.masked_fill(logits < smallest, float("-inf"))
    return logits


def next_token(logits: Tensor, *, temperature: float = 1.0, top_k: int | None = None,
               top_p: float | None = None, greedy: bool = False,
               generator: torch.Generator | None = None) -> Tensor:
    """The next token of every row: ``logits`` ``(B, V)`` -> ``(B,)`` int64.

    Args:
        temperature: ``T > 0``; the logits are divided by it before the softmax.
        top_k, top_p: see :func:`filter_logits`; applied after the temperature.
        greedy: the argmax of each row (deterministic; ``temperature``, ``top_k`` and
            ``top_p`` are checked but cannot change it). Ties go to the first index.
        generator: the ``torch.Generator`` that ``torch.multinomial`` draws from, for
            reproducible samples (on the logits' device); ``None`` uses torch's global one.

    Example::

        >>> logits = torch.tensor([[2.0, 1.0, 0.1]])
        >>> next_token(logits, greedy=True)
        tensor([0])
        >>> g = torch.Generator().manual_seed(0)
        >>> next_token(logits, temperature=0.7, top_k=2, generator=g).shape
        torch.Size([1])
    """
    check_sampling(temperature, top_k, top_p)
    if logits.dim() != 2:
        raise ValueError(f"expected logits of shape (B, V), got {tuple(logits.shape)}")
    if greedy:
        return logits.argmax(dim=-1)
    if temperature != 1:
        logits = logits / temperature
    if top_k is not None or top_p is not None:
        logits = filter_logits(logits, top_k=top_k, top_p=top_p)
    probs = logits.softmax(dim=-1)
    return torch.multinomial(probs, 1, generator=generator).squeeze(1)  # (B, 1) -> (B,)


class Sampler:
    """:func:`next_token`'s choice, step after step: ``ids = sampler(logits)``, ``(B, V) -> (B,)``.

    The same distribution as :func:`next_token` with the same options, for less work per step:
    the options are checked once, and instead of ``torch.multinomial`` (about 10 us a call on a
    CPU, whatever the size) it takes the Gumbel-max trick (Gumbel 1954; Maddison et al. 2014):
    ``argmax_i (l_i + g_i)`` with ``g_i = -log(-log u_i)``, ``u_i ~ U(0, 1)`` independent, is
    ``i`` with probability ``softmax(l)_i``, exactly. The uniforms are drawn from ``generator``
    in blocks of steps, in float64, so that the noise's tails stay true far beyond the logits'
    precision. Reproducible for a given generator and sequence of shapes, but not the same
    draws as :func:`next_token`'s.

    Args: ``temperature``, ``top_k``, ``top_p``, ``greedy``, ``generator``: as in
    :func:`next_token`.
    """

    BLOCK_ENTRIES = 2**16  # uniforms drawn at a time (512 KiB in float64), up to 256 steps

    def __init__(self, *, temperature: float = 1.0, top_k: int | None = None,
                 top_p: float | None = None, greedy: bool = False,
                 generator: torch.Generator | None = None) -> None:
        check_sampling(temperature, top_k, top_p)
        self.temperature, self.top_k, self.top_p = temperature, top_k, top_p
        self.greedy = greedy
        self.generator = generator
        self._noise: list[Tensor] = []  # the next steps' Gumbel noise, (B, V) each, last first

    def __call__(self, logits: Tensor) -> Tensor:
        if logits.dim() != 2:
            raise ValueError(f"expected logits of shape (B, V), got {tuple(logits.shape)}")
        if self.greedy:
            return logits.argmax(dim=-1)
        if self.temperature != 1:
            logits = logits / self.temperature
        if self.top_k is not None or self.top_p is not None:
            logits = filter_logits(logits, top_k=self.top_k, top_p=self.top_p)
        if not self._noise or (self._noise[-1].shape, self._noise[-1].dtype,
                               self._noise[-1].device) != (logits.shape, logits.dtype,
                                                           logits.device):
            self._noise = self._draw(logits)
        return (logits + self._noise.pop()).argmax(dim=-1)  # -inf + g stays -inf

    def _draw(self, logits: Tensor) -> list[Tensor]:
        steps = max(1, min(256, self.BLOCK_ENTRIES // logits.numel()))
        u = torch.rand(steps, *logits.shape, generator=self.generator, dtype=torch.float64,
                       device=logits.device)  # (steps, B, V)
        # u >= the smallest positive float64: u = 0 (chance 2**-53) would give g = -inf
        gumbel = u.clamp_min_(torch.finfo(torch.float64).tiny).log_().neg_().log_().neg_()
        return list(gumbel.to(logits.dtype).unbind(0))[::-1]  # popped from the end: step order
