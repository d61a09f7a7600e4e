"""rnnkit.decoding: the filters against their definitions, the samplers against the softmax."""

from fractions import Fraction

import pytest
import torch

from rnnkit.decoding import Sampler, check_sampling, filter_logits, next_token

# a hand-checkable distribution, exact as fractions, shuffled so that order does not help
PROBS = {2: Fraction("0.5"), 0: Fraction("0.3"), 3: Fraction("0.15"), 1: Fraction("0.05")}


def _logits_of(probs: dict) -> torch.Tensor:
    p = torch.tensor([float(probs[i]) for i in range(len(probs))], dtype=torch.float64)
    return p.log().float().unsqueeze(0) + 3.0  # any shift: softmax does not see it


def _nucleus(probs: dict, top_p: Fraction) -> set:
    """The definition: the smallest set of the likeliest tokens with mass >= top_p, exactly."""
    kept, mass = set(), Fraction(0)
    for token in sorted(probs, key=probs.get, reverse=True):
        if mass >= top_p:
            break
        kept.add(token)
        mass += probs[token]
    return kept


def _kept(filtered: torch.Tensor) -> set:
    return set(torch.isfinite(filtered[0]).nonzero().flatten().tolist())


def _frequencies(ids: torch.Tensor, vocab: int) -> torch.Tensor:
    return torch.bincount(ids.flatten(), minlength=vocab).double() / ids.numel()


# ---------------------------------------------------------------------------- filter_logits
@pytest.mark.parametrize("k", [1, 3, 7, 10, 25])
def test_top_k_keeps_exactly_the_k_largest(k):
    logits = torch.randn(4, 10)
    filtered = filter_logits(logits, top_k=k)
    kept = torch.isfinite(filtered)
    expected = torch.zeros_like(kept).scatter_(1, logits.topk(min(k, 10), dim=1).indices, True)
    assert torch.equal(kept, expected)
    assert torch.equal(filtered[kept], logits[kept])  # the kept values are untouched
    assert (filtered[~kept] == float("-inf")).all()


def test_top_k_keeps_every_tie_with_the_kth():
    logits = torch.tensor([[1.0, 3.0, 3.0, 0.0, 2.0]])
    assert _kept(filter_logits(logits, top_k=1)) == {1, 2}
    assert _kept(filter_logits(logits, top_k=2)) == {1, 2}
    assert _kept(filter_logits(logits, top_k=3)) == {1, 2, 4}


@pytest.mark.parametrize("top_p", ["0.2", "0.5", "0.6", "0.79", "0.8", "0.81", "0.95", "0.96",
                                   "1"])
def test_top_p_is_the_smallest_set_reaching_the_mass(top_p):
    # boundaries included: 0.5 + 0.3 = 0.8 exactly, which float sums may put either side
    expected = _nucleus(PROBS, Fraction(top_p))
    for dtype in (torch.float32, torch.float64):
        logits = _logits_of(PROBS).to(dtype)
        assert _kept(filter_logits(logits, top_p=float(top_p))) == expected, dtype


def test_top_p_example_of_the_docs():
    probs = torch.tensor([[0.5, 0.3, 0.15, 0.05]])
    assert _kept(filter_logits(probs.log(), top_p=0.8)) == {0, 1}


def test_top_p_rows_are_independent_and_values_untouched():
    logits = torch.randn(6, 20) * 3
    filtered = filter_logits(logits, top_p=0.7)
    for row, out in zip(logits, filtered, strict=True):
        probs = {i: Fraction(p) for i, p in enumerate(row.double().softmax(0).tolist())}
        assert _kept(out.unsqueeze(0)) == _nucleus(probs, Fraction(0.7))
        kept = torch.isfinite(out)
        assert torch.equal(out[kept], row[kept])


def test_top_p_always_keeps_at_least_one():
    logits = torch.randn(5, 50)
    for top_p in (1e-12, 0.01):
        filtered = filter_logits(logits, top_p=top_p)
        assert torch.equal(torch.isfinite(filtered), logits == logits.amax(1, keepdim=True))
    flat = torch.zeros(1, 8)  # every token tied: all are the likeliest
    assert _kept(filter_logits(flat, top_p=1e-9)) == set(range(8))


def test_top_k_then_top_p_on_what_remains():
    logits = _logits_of(PROBS)
    # top 3 renormalised: 0.5/0.95, 0.3/0.95, 0.15/0.95; the first two hold 0.842 of it
    assert _kept(filter_logits(logits, top_k=3, top_p=0.84)) == {2, 0}
    assert _kept(filter_logits(logits, top_k=3, top_p=0.85)) == {2, 0, 3}
    assert _kept(filter_logits(logits, top_p=0.84)) == {2, 0, 3}  # without top-k: 0.8 < 0.84
    assert _kept(filter_logits(logits, top_k=2, top_p=1.0)) == {2, 0}


def test_filters_do_not_change_their_input():
    logits = torch.randn(2, 9)
    before = logits.clone()
    filter_logits(logits, top_k=2, top_p=0.5)
    assert torch.equal(logits, before)


def test_no_filter_is_the_identity():
    logits = torch.randn(3, 7)
    assert torch.equal(filter_logits(logits), logits)
    assert torch.equal(filter_logits(logits, top_k=7, top_p=1.0), logits)


@pytest.mark.parametrize(("kwargs", "message"), [
    (dict(top_k=0), "top_k must be an integer >= 1"),
    (dict(top_k=-2), "top_k must be an integer >= 1"),
    (dict(top_k=2.0), "top_k must be an integer >= 1"),
    (dict(top_p=1.5), r"top_p must be in \(0, 1\], got 1.5"),
    (dict(top_p=0), r"top_p must be in \(0, 1\], got 0"),
    (dict(top_p=-0.1), r"top_p must be in \(0, 1\]"),
])
def test_filter_validation(kwargs, message):
    with pytest.raises(ValueError, match=message):
        filter_logits(torch.randn(1, 5), **kwargs)
    with pytest.raises(ValueError, match=message):
        next_token(torch.randn(1, 5), **kwargs)
    with pytest.raises(ValueError, match=message):
        Sampler(**kwargs)


@pytest.mark.parametrize("temperature", [0, -1.0, float("inf"), float("nan")])
def test_temperature_validation(temperature):
    with pytest.raises(ValueError, match="temperature must be a finite number > 0"):
        next_token(torch.randn(1, 5), temperature=temperature)
    with pytest.raises(ValueError, match="temperature must be a finite number > 0"):
        check_sampling(temperature)


def test_logits_must_be_a_batch_of_rows():
    with pytest.raises(ValueError, match=r"expected logits of shape \(B, V\), got \(5,\)"):
        next_token(torch.randn(5))
    with pytest.raises(ValueError, match=r"expected logits of shape \(B, V\)"):
        Sampler()(torch.randn(2, 3, 5))


# ------------------------------------------------------------------------------ next_token
def test_greedy_is_the_argmax():
    logits = torch.randn(8, 30)
    ids = next_token(logits, greedy=True)
    assert ids.dtype == torch.int64 and ids.shape == (8,)
    assert torch.equal(ids, logits.argmax(1))
    assert torch.equal(next_token(logits, greedy=True, temperature=5.0, top_k=3, top_p=0.2), ids)


def test_sampling_is_reproducible_with_a_generator():
    logits = torch.randn(50, 12)
    draws = [next_token(logits, generator=torch.Generator().manual_seed(7)) for _ in range(2)]
    assert torch.equal(*draws)
    assert draws[0].dtype == torch.int64 and draws[0].shape == (50,)


@pytest.mark.parametrize("temperature", [1.0, 0.5, 2.0])
def test_sampling_follows_the_softmax(temperature):
    logits = torch.tensor([[1.0, 0.2, -0.5, 2.0, 0.0]])
    generator = torch.Generator().manual_seed(0)
    ids = next_token(logits.expand(20_000, -1), temperature=temperature, generator=generator)
    expected = (logits[0].double() / temperature).softmax(0)
    torch.testing.assert_close(_frequencies(ids, 5), expected, atol=0.02, rtol=0)


def test_sampling_with_filters_draws_from_the_renormalised_rest():
    logits = _logits_of(PROBS)
    generator = torch.Generator().manual_seed(0)
    ids = next_token(logits.expand(20_000, -1), top_k=2, generator=generator)
    expected = torch.tensor([0.3, 0, 0.5, 0], dtype=torch.float64) / 0.8
    torch.testing.assert_close(_frequencies(ids, 4), expected, atol=0.02, rtol=0)
    ids = next_token(logits.expand(20_000, -1), top_p=0.9, generator=generator)
    assert set(ids.tolist()) == {0, 2, 3}


def test_low_temperature_approaches_greedy():
    logits = torch.randn(200, 10)
    generator = torch.Generator().manual_seed(0)
    assert torch.equal(next_token(logits, temperature=1e-4, generator=generator),
                       logits.argmax(1))


# -------------------------------------------------------------------------------- Sampler
def test_sampler_greedy_is_the_argmax():
    logits = torch.randn(4, 9)
    assert torch.equal(Sampler(greedy=True)(logits), logits.argmax(1))


@pytest.mark.parametrize(("options", "expected"), [
    (dict(), [0.3, 0.05, 0.5, 0.15]),
    (dict(temperature=0.5), None),
    (dict(top_k=3), [0.3 / 0.95, 0, 0.5 / 0.95, 0.15 / 0.95]),
    (dict(top_p=0.8), [0.3 / 0.8, 0, 0.5 / 0.8, 0]),
])
def test_sampler_follows_the_distribution_step_after_step(options, expected):
    logits = _logits_of(PROBS)
    if expected is None:
        expected = (logits[0].double() / options["temperature"]).softmax(0).tolist()
    sampler = Sampler(generator=torch.Generator().manual_seed(0), **options)
    ids = torch.cat([sampler(logits) for _ in range(20_000)])  # one stream, many blocks
    assert ids.dtype == torch.int64
    torch.testing.assert_close(_frequencies(ids, 4), torch.tensor(expected, dtype=torch.float64),
                               atol=0.02, rtol=0)


def test_sampler_many_streams_and_reproducible():
    logits = torch.tensor([[0.0, 1.0, -1.0]]).expand(20_000, -1)
    draws = [Sampler(generator=torch.Generator().manual_seed(3))(logits) for _ in range(2)]
    assert torch.equal(*draws)
    torch.testing.assert_close(_frequencies(draws[0], 3),
                               logits[0].double().softmax(0), atol=0.02, rtol=0)


def test_sampler_follows_changing_shapes():
    sampler = Sampler(generator=torch.Generator().manual_seed(0))
    assert sampler(torch.randn(1, 5)).shape == (1,)
    assert sampler(torch.randn(3, 7)).shape == (3,)
    assert int(sampler(torch.tensor([[0.0, float("-inf"), 5.0]]).double())[0]) != 1
