"""rnnkit.decoding.beam_search on hand-made Markov models whose best sequences are known."""

import itertools
import math
from typing import NamedTuple

import pytest
import torch

from rnnkit.decoding import beam_search, length_penalty_of, reorder_state

START, END, A, B = 0, 1, 2, 3  # the tokens of the hand-made models


def _table(rows: dict) -> torch.Tensor:
    """Log-probabilities ``(V, V)``: row = the previous token, column = the next."""
    V = len(next(iter(rows.values())))
    probs = torch.zeros(V, V, dtype=torch.float64)
    probs[:, END] = 1  # rows not given (<end>'s own) are never read, but defined
    for previous, row in rows.items():
        probs[previous] = torch.tensor(row, dtype=torch.float64)
    return probs.log()


# greedy takes a (0.55) then <end> (0.4): p = 0.22; b (0.45) then <end> (0.9) is p = 0.405
GREEDY_TRAP = _table({START: [0, 0, .55, .45], A: [0, .4, .3, .3], B: [0, .9, .05, .05]})


def _markov(table: torch.Tensor):
    calls = []

    def step(tokens, state):
        calls.append(tokens.clone())
        return table[tokens], state

    return step, calls


def _log_prob(table: torch.Tensor, tokens: list, ended: bool) -> float:
    sequence = [START, *tokens, *([END] if ended else [])]
    return sum(float(table[p, n]) for p, n in zip(sequence, sequence[1:], strict=False))


def _greedy(table: torch.Tensor, max_len: int) -> list:
    tokens, previous = [], START
    for _ in range(max_len):
        previous = int(table[previous].argmax())
        if previous == END:
            break
        tokens.append(previous)
    return tokens


def test_beam_finds_the_best_sequence_that_greedy_misses():
    step, _ = _markov(GREEDY_TRAP)
    assert _greedy(GREEDY_TRAP, 10) == [A]
    (greedy,), = beam_search(step, None, batch_size=1, start_index=START, end_index=END,
                             beam_size=1, length_penalty=0.0)
    assert greedy[0] == [A] and greedy[1] == pytest.approx(math.log(0.22))
    (best,), = beam_search(step, None, batch_size=1, start_index=START, end_index=END,
                           beam_size=2, length_penalty=0.0)
    assert best[0] == [B] and best[1] == pytest.approx(math.log(0.405))


def test_weak_hypotheses_that_end_first_do_not_stop_the_search():
    # the best, [a, c, d] (p = 0.9 * 0.98 * 0.98 * 0.99 = 0.856), ends at step 4; [b] ends at
    # step 2 and [b, b] at step 3: K = 2 finished hypotheses before the best one has ended
    C, D = 4, 5
    table = _table({START: [0, 0, .9, .1, 0, 0], A: [0, .01, 0, .01, .98, 0],
                    B: [0, .55, 0, .45, 0, 0], C: [0, .01, 0, .01, 0, .98],
                    D: [0, .99, 0, .01, 0, 0]})
    step, _ = _markov(table)
    (found,) = beam_search(step, None, batch_size=1, start_index=START, end_index=END,
                           beam_size=2, n_best=2, length_penalty=0.0)
    assert found[0] == ([A, C, D], pytest.approx(math.log(0.9 * 0.98 * 0.98 * 0.99)))
    assert found[1] == ([B], pytest.approx(math.log(0.1 * 0.55)))


def test_n_best_are_ranked_and_scored_by_the_definition():
    step, _ = _markov(GREEDY_TRAP)
    for alpha in (0.0, 0.6, 1.0):
        (found,) = beam_search(step, None, batch_size=1, start_index=START, end_index=END,
                               beam_size=4, n_best=3, max_len=4, length_penalty=alpha)
        assert len(found) == 3
        assert len({tuple(tokens) for tokens, _ in found}) == 3  # distinct hypotheses
        scores = [score for _, score in found]
        assert scores == sorted(scores, reverse=True)
        for tokens, score in found:  # all of these end with <end> (p(<end>) is high)
            expected = _log_prob(GREEDY_TRAP, tokens, True) / length_penalty_of(
                len(tokens) + 1, alpha)
            assert score == pytest.approx(expected)
    assert found[0][0] == [B]


def test_length_penalty_favours_longer_captions():
    # <end> at once: p = 0.5 (length 1); [a, <end>]: 0.45 * 0.9 = 0.405 (length 2)
    table = _table({START: [0, .5, .45, .05], A: [0, .9, .05, .05], B: [0, .5, .25, .25]})
    step, _ = _markov(table)
    kwargs = dict(batch_size=1, start_index=START, end_index=END, beam_size=2)
    (plain,), = beam_search(step, None, length_penalty=0.0, **kwargs)
    assert plain == ([], pytest.approx(math.log(0.5)))
    (penalised,), = beam_search(step, None, length_penalty=2.0, **kwargs)
    assert penalised == ([A], pytest.approx(math.log(0.405) / (7 / 6) ** 2))


@pytest.mark.parametrize("max_len", [1, 3, 7])
def test_max_len_cuts_hypotheses_that_never_end(max_len):
    table = _table({START: [0, 0, .7, .3], A: [0, 0, .6, .4], B: [0, 0, .2, .8]})  # no <end>
    step, calls = _markov(table)
    (found,) = beam_search(step, None, batch_size=1, start_index=START, end_index=END,
                           beam_size=3, n_best=3, max_len=max_len, length_penalty=0.5)
    assert len(calls) == max_len  # step runs at most max_len times
    # fewer than n_best when fewer sequences are possible: a and b alone for max_len=1
    assert [len(tokens) for tokens, _ in found] == [max_len] * min(3, 2 ** max_len)
    for tokens, score in found:  # a cut hypothesis scores its words only, length max_len
        assert score == pytest.approx(_log_prob(table, tokens, False)
                                      / length_penalty_of(max_len, 0.5))
    every = itertools.product((A, B), repeat=max_len)  # all 2^max_len sequences
    assert found[0][0] == list(max(every, key=lambda seq: _log_prob(table, list(seq), False)))


def _random_tables(n: int, V: int = 6) -> torch.Tensor:
    """``n`` random Markov models ``(n, V, V)`` of log-probabilities; <start> is never next."""
    logits = torch.randn(n, V, V, dtype=torch.float64) * 2
    logits[:, :, START] = float("-inf")
    return logits.log_softmax(dim=-1)


class _Pair(NamedTuple):
    which: torch.Tensor  # (N,): which model a row follows
    steps: list  # [(N, 2) tensor]: any nesting; checks that rows move with their hypotheses


def _batched_step(tables: torch.Tensor):
    def step(tokens, state):
        assert torch.equal(state.steps[0][:, 0], state.which.double())  # rows stayed together
        return tables[state.which, tokens], state

    return step


def _state(which: list) -> _Pair:
    which = torch.tensor(which)
    return _Pair(which, [torch.stack([which.double(), torch.zeros(len(which))], dim=1)])


@pytest.mark.parametrize("alpha", [0.0, 1.0])
def test_a_batch_gives_what_each_item_gives_alone(alpha):
    tables = _random_tables(3)
    step = _batched_step(tables)
    kwargs = dict(start_index=START, end_index=END, beam_size=3, n_best=2, max_len=5,
                  length_penalty=alpha)
    together = beam_search(step, _state([0, 1, 2]), batch_size=3, **kwargs)
    for b in range(3):
        (alone,) = beam_search(step, _state([b]), batch_size=1, **kwargs)
        assert [t for t, _ in alone] == [t for t, _ in together[b]]
        assert [s for _, s in alone] == pytest.approx([s for _, s in together[b]])


@pytest.mark.parametrize("alpha", [0.0, 0.7, 2.0])
def test_beam_size_one_is_greedy(alpha):
    tables = _random_tables(8)
    found = beam_search(_batched_step(tables), _state(list(range(8))), batch_size=8,
                        start_index=START, end_index=END, beam_size=1, max_len=6,
                        length_penalty=alpha)
    for b in range(8):
        assert found[b][0][0] == _greedy(tables[b], 6)


def test_reorder_state_keeps_the_structure():
    class Inner(NamedTuple):
        h: torch.Tensor
        extra: object

    state = {"a": Inner(torch.arange(3).view(3, 1), 7), "b": [torch.arange(6).view(3, 2), None],
             "c": (torch.tensor([10, 11, 12]),)}
    index = torch.tensor([2, 2, 0])
    out = reorder_state(state, index)
    assert isinstance(out["a"], Inner) and out["a"].extra == 7
    assert out["a"].h.view(-1).tolist() == [2, 2, 0]
    assert out["b"][0].tolist() == [[4, 5], [4, 5], [0, 1]] and out["b"][1] is None
    assert isinstance(out["c"], tuple) and out["c"][0].tolist() == [12, 12, 10]


def test_bad_arguments_say_what_was_expected():
    step, _ = _markov(GREEDY_TRAP)
    kwargs = dict(batch_size=1, start_index=START, end_index=END)
    with pytest.raises(ValueError, match="n_best must be at most beam_size=2"):
        beam_search(step, None, beam_size=2, n_best=3, **kwargs)
    with pytest.raises(ValueError, match="max_len must be an integer >= 1"):
        beam_search(step, None, max_len=0, **kwargs)
    with pytest.raises(ValueError, match="batch_size=1 rows in dim 0"):
        beam_search(step, torch.zeros(2, 3), **kwargs)
    with pytest.raises(ValueError, match=r"expected step to return log-probabilities of shape"):
        beam_search(lambda tokens, state: (torch.zeros(4), state), None, **kwargs)
