"""Choosing the next token from a model's logits: greedy, temperature, top-k and top-p sampling.

Generic over logits: any model that scores a vocabulary ``(B, V)`` at a step uses these. The
order of operations, as in most samplers (Hugging Face's warpers, nanoGPT's ``generate``)::

    scaled   = logits / temperature            # T < 1 sharpens, T > 1 flattens
    filtered = filter_logits(scaled, top_k, top_p)   # the rest -> -inf
    next     ~ softmax(filtered)                # torch.multinomial, with your generator

so top-p acts on the distribution that is actually sampled. Greedy decoding is the limit
``T -> 0``: the argmax, which every filter keeps; it is deterministic and ignores the rest.

:func:`next_token` chooses once; a :class:`Sampler` chooses step after step, with the same
distribution and less work per step (generation loops use it). :func:`beam_search` looks for
the likeliest whole sequences of any step-by-step model instead (captioning, translation).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from typing import Any

import torch
from torch import Tensor

__all__ = ["Sampler", "beam_search", "check_sampling", "filter_logits", "length_penalty_of",
           "next_token", "reorder_state"]


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


# ------------------------------------------------------------------------------ beam search
def reorder_state(state: Any, index: Tensor) -> Any:
    """Pick rows of every tensor of a (nested) state: ``t -> t.index_select(0, index)``.

    ``state`` is a tensor, ``None``, or a tuple, ``NamedTuple``, list or dict of those, nested
    to any depth; dim 0 of every tensor is the row (batch) dimension. The structure comes back
    the same, with each tensor's rows ``index`` ``(N',)`` (repeats allowed: one row may become
    several). Other leaves (numbers, strings) are shared by all rows and come back as they are.

    Example::

        >>> state = LSTMState(torch.randn(2, 1, 8), torch.randn(2, 1, 8))  # (B, L, H) each
        >>> reorder_state(state, torch.tensor([0, 0, 1])).h.shape
        torch.Size([3, 1, 8])
    """
    if isinstance(state, Tensor):
        return state.index_select(0, index.to(state.device))
    if isinstance(state, tuple) and hasattr(state, "_fields"):  # a NamedTuple
        return type(state)(*(reorder_state(part, index) for part in state))
    if isinstance(state, (tuple, list)):
        return type(state)(reorder_state(part, index) for part in state)
    if isinstance(state, dict):
        return {key: reorder_state(part, index) for key, part in state.items()}
    return state


def _tensors(state: Any) -> Iterator[Tensor]:
    """Every tensor of a nested state, in order."""
    if isinstance(state, Tensor):
        yield state
    elif isinstance(state, (tuple, list)):
        for part in state:
            yield from _tensors(part)
    elif isinstance(state, dict):
        for part in state.values():
            yield from _tensors(part)


def length_penalty_of(length: int, alpha: float) -> float:
    """GNMT's length penalty (Wu et al. 2016, eq. 14): ``lp(n) = ((5 + n) / 6) ** alpha``.

    A hypothesis's score is its summed log-probability divided by ``lp`` of its length. With
    ``alpha = 0`` it is the plain log-probability, which favours short hypotheses (every word
    costs); larger ``alpha`` favours longer ones.
    """
    return ((5 + length) / 6) ** alpha


def beam_search(step: Callable[[Tensor, Any], tuple[Tensor, Any]], state: Any, *,
                batch_size: int, start_index: int, end_index: int, beam_size: int = 5,
                max_len: int = 30, length_penalty: float = 1.0,
                n_best: int = 1) -> list[list[tuple[list[int], float]]]:
    r"""The likeliest sequences of a step-by-step model, by beam search, for a batch of inputs.

    Keeps the ``K = beam_size`` best partial sequences (hypotheses) of every batch item; at each
    step every one of them is extended by every token, and the ``K`` best extensions that do
    not end survive. A hypothesis finishes when it takes ``end_index`` (if that extension is
    among the ``K`` best of its item), or when it has ``max_len`` tokens; each item keeps its
    ``K`` best finished hypotheses, ranked by

    .. math::
        \mathrm{score}(y) = \frac{\sum_t \log p(y_t \mid y_{<t})}{lp(|y|)}, \qquad
        lp(n) = \left(\frac{5 + n}{6}\right)^{\alpha}

    (Wu et al. 2016), where ``|y|`` counts the scored tokens: the words, and ``end_index``
    when it was taken. An item is done when it holds ``K`` finished hypotheses and its best
    live one, scored as it stands, is no better than the worst of them (Hugging Face's default
    rule; stopping at ``K`` finished, fairseq's, misses the best hypothesis whenever weak
    ones end first), or at ``max_len``, where the live hypotheses finish as they are. With
    ``beam_size=1`` it is greedy decoding, whatever ``alpha``.

    Args:
        step: ``step(tokens, state) -> (log_probs, new_state)``: feeds ``tokens`` ``(N,)``
            int64 (``N = batch_size * beam_size`` rows) and returns each row's
            log-probabilities of the next token ``(N, V)`` (a ``log_softmax``) and its state.
            Rows ``b*K .. b*K + K-1`` are the hypotheses of batch item ``b``.
        state: the initial state of the ``batch_size`` items: a tensor, ``None`` or a nested
            tuple / ``NamedTuple`` / list / dict of tensors, each with the ``batch_size`` rows
            in dim 0 (transpose a ``(L, B, H)`` recurrent state first). It is expanded to
            ``N`` rows, and reordered after every step (:func:`reorder_state`) to follow the
            hypotheses that survive. Tokens live on the device of its first tensor (the CPU
            if it has none).
        batch_size: ``B``.  start_index: the first token fed.  end_index: the token that ends.
        beam_size: ``K``, hypotheses kept per item.
        max_len: the most tokens of a hypothesis, ``end_index`` not counted; ``step`` runs at
            most ``max_len`` times.
        length_penalty: ``alpha`` (0: plain log-probability).
        n_best: how many finished hypotheses to return per item, ``<= beam_size``.

    Returns: per batch item, a list of at most ``n_best`` ``(tokens, score)``, best first:
    ``tokens`` without ``start_index`` and ``end_index``; ``score`` as above. Fewer than
    ``n_best`` only when fewer hypotheses have a finite log-probability.

    Example::

        >>> table = torch.tensor([[0, 0, .55, .45],  # a bigram model: p(next | previous),
        ...                       [0, 1, 0, 0],      # 0 = <start>, 1 = <end>, words 2 and 3
        ...                       [0, .4, .3, .3],
        ...                       [0, .9, .05, .05]]).log()
        >>> def step(tokens, state):
        ...     return table[tokens], state
        >>> beam_search(step, None, batch_size=1, start_index=0, end_index=1, beam_size=2,
        ...             length_penalty=0.0)  # greedy would say [2]: p = 0.55 * 0.4 = 0.22
        [[([3], -0.9038...)]]
    """
    for name, value, low in (("batch_size", batch_size, 1), ("beam_size", beam_size, 1),
                             ("max_len", max_len, 1), ("n_best", n_best, 1),
                             ("start_index", start_index, 0), ("end_index", end_index, 0)):
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
    if n_best > beam_size:
        raise ValueError(f"n_best must be at most beam_size={beam_size}, got {n_best}")
    if isinstance(length_penalty, bool) or not isinstance(length_penalty, (int, float)) or (
            not math.isfinite(length_penalty)):
        raise ValueError(f"length_penalty must be a finite number, got {length_penalty!r}")
    B, K = batch_size, beam_size
    tensors = list(_tensors(state))
    for t in tensors:
        if t.dim() == 0 or t.shape[0] != B:
            raise ValueError(f"expected every tensor of the state with batch_size={B} rows in "
                             f"dim 0, got one of shape {tuple(t.shape)}")
    device = tensors[0].device if tensors else torch.device("cpu")
    # B rows -> B*K: the K hypotheses of an item adjacent, all copies of its initial state
    state = reorder_state(state, torch.arange(B, device=device).repeat_interleave(K))
    tokens = torch.full((B * K,), start_index, dtype=torch.long, device=device)  # (N,)
    words = tokens.new_empty(B * K, 0)  # (N, t): each hypothesis's tokens so far
    # summed log-probabilities (B, K), in float64 so that long sums round alike everywhere.
    # At first only beam 0 is live: K live copies would give each hypothesis K times.
    scores = torch.full((B, K), float("-inf"), dtype=torch.float64, device=device)
    scores[:, 0] = 0.0
    offsets = torch.arange(B, device=device).unsqueeze(1) * K  # (B, 1): item b's first row
    finished: list[list[tuple[float, list[int]]]] = [[] for _ in range(B)]  # K best per item
    done = [False] * B
    for t in range(max_len):  # the live hypotheses have t tokens
        log_probs, state = step(tokens, state)
        if not isinstance(log_probs, Tensor) or log_probs.dim() != 2 or (
                log_probs.shape[0] != B * K) or log_probs.shape[1] < 2:
            got = tuple(log_probs.shape) if isinstance(log_probs, Tensor) else type(log_probs)
            raise ValueError(f"expected step to return log-probabilities of shape (N={B * K}, "
                             f"V >= 2), got {got}")
        V = log_probs.shape[1]
        # every extension of every hypothesis: (B, K, 1) + (B, K, V) -> (B, K*V)
        extended = (scores.unsqueeze(2) + log_probs.to(scores).view(B, K, V)).view(B, K * V)
        # the 2K best hold at least K that do not end: each hypothesis has one end_index
        top, flat = extended.topk(min(2 * K, K * V), dim=1)  # (B, 2K), best first
        beam, token = flat // V, flat % V  # (B, 2K): which hypothesis, extended by which token
        ends = token == end_index
        # finish the hypotheses whose end_index is among their item's K best extensions
        finishing = ends[:, :K] & top[:, :K].isfinite()  # (B, K)
        penalty = length_penalty_of(t + 1, length_penalty)
        for b, rank in finishing.nonzero().tolist():  # row-major: by item, then best first
            if not done[b]:
                row = int(offsets[b, 0]) + int(beam[b, rank])
                _keep_best(finished[b], K, float(top[b, rank]) / penalty, words[row])
        # go on with the K best extensions that do not end (a stable sort keeps their order)
        keep = ends.to(torch.int8).sort(dim=1, stable=True).indices[:, :K]  # (B, K)
        scores = top.gather(1, keep)  # (B, K), best first
        best_live = (scores[:, 0] / penalty).tolist()  # as if each stopped here, t+1 tokens
        for b in range(B):
            if not done[b] and len(finished[b]) == K:
                done[b] = min(score for score, _ in finished[b]) >= best_live[b]
        if all(done):
            break
        rows = (beam.gather(1, keep) + offsets).view(-1)  # (B, K) -> (N,): each one's parent
        tokens = token.gather(1, keep).view(-1)  # (B, K) -> (N,)
        words = torch.cat([words.index_select(0, rows), tokens.unsqueeze(1)], dim=1)  # (N, t+1)
        state = reorder_state(state, rows)
    else:  # max_len tokens: what is still live finishes as it is, unless its item is done
        penalty = length_penalty_of(max_len, length_penalty)
        for b in range(B):
            for k in range(K):
                if not done[b] and math.isfinite(float(scores[b, k])):
                    _keep_best(finished[b], K, float(scores[b, k]) / penalty, words[b * K + k])
    results = []
    for hypotheses in finished:
        ranked = sorted(hypotheses, key=lambda h: -h[0])[:n_best]  # stable: ties keep order
        results.append([(tokens_, score) for score, tokens_ in ranked])
    return results


def _keep_best(pool: list[tuple[float, list[int]]], size: int, score: float,
               tokens: Tensor) -> None:
    """Add a finished hypothesis to ``pool`` if it is among the ``size`` best (ties: the first)."""
    if len(pool) < size:
        pool.append((score, tokens.tolist()))
        return
    worst = min(range(size), key=lambda i: pool[i][0])
    if score > pool[worst][0]:
        del pool[worst]
        pool.append((score, tokens.tolist()))
