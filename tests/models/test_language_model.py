"""LanguageModel: shapes, loss, training, carried state, and generation against forward()."""

import itertools

import pytest
import torch
import torch.nn.functional as F

from rnnkit.models import LanguageModel, LanguageModelConfig, StepDecoder, detach_state
from rnnkit.nn import CELL_KINDS, LSTMState

V = 11  # vocabulary of the small models


def _model(cell="lstm", num_layers=2, hidden_size=16, embedding_size=8, dtype=torch.float32,
           **kwargs) -> LanguageModel:
    config = LanguageModelConfig(V, cell, num_layers, hidden_size, embedding_size, **kwargs)
    return LanguageModel(config).to(dtype)


def _parts(state) -> tuple:
    return tuple(state) if isinstance(state, LSTMState) else (state,)


# ------------------------------------------------------------------------------- forward
@pytest.mark.parametrize("cell", CELL_KINDS)
def test_shapes(cell):
    model = _model(cell, num_layers=3, hidden_size=12)
    idx = torch.randint(V, (4, 9))
    logits, loss, state = model(idx)
    assert logits.shape == (4, 9, V)
    assert loss is None
    lstm = cell in ("lstm", "layernorm_lstm")
    assert isinstance(state, LSTMState) == lstm
    for part in _parts(state):
        assert part.shape == (3, 4, 12)
    _, loss, _ = model(idx, targets=idx)
    assert loss.shape == () and torch.isfinite(loss)


def test_loss_is_the_mean_cross_entropy_over_every_target():
    model = _model()
    idx, targets = torch.randint(V, (3, 7)), torch.randint(V, (3, 7))
    logits, loss, _ = model(idx, targets=targets)
    # -log softmax(logits)[target], averaged over all B*T positions, written out
    log_probs = logits - logits.logsumexp(dim=-1, keepdim=True)
    expected = -log_probs.gather(-1, targets.unsqueeze(-1)).mean()
    torch.testing.assert_close(loss, expected)
    torch.testing.assert_close(loss, F.cross_entropy(logits.reshape(-1, V), targets.reshape(-1)))


@pytest.mark.parametrize("cell", CELL_KINDS)
@pytest.mark.parametrize("embedding_size", [0, 8])
def test_every_cell_overfits_hello(cell, embedding_size):
    text = "hello hello hello"
    chars = sorted(set(text))
    ids = torch.tensor([[chars.index(ch) for ch in text]])  # (1, 17)
    config = LanguageModelConfig(len(chars), cell, num_layers=1, hidden_size=32,
                                 embedding_size=embedding_size)
    model = LanguageModel(config)
    optimizer = torch.optim.Adam(model.parameters(), lr=0.02)
    # Below 0.04 nats/char the 16 losses sum to less than ln 2: every next character has
    # p > 1/2, so greedy decoding must give the text back. Took 10-29 steps over 10 seeds.
    for step in range(100):
        _, loss, _ = model(ids[:, :-1], targets=ids[:, 1:])
        if loss.item() < 0.04:
            break
        optimizer.zero_grad()
        loss.backward()
        if step == 0:  # every weight takes part
            for name, p in model.named_parameters():
                assert p.grad is not None and p.grad.abs().sum() > 0, name
        # clipping (Pascanu et al. 2013): the ReLU RNN's loss otherwise spikes now and then
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
    assert loss.item() < 0.04, f"{cell}: loss {loss.item():.3f} after {step} steps"
    greedy = torch.cat(list(model.sample(ids[0, :1], len(text) - 1, greedy=True)))
    assert "".join(chars[i] for i in greedy) == text[1:]


@pytest.mark.parametrize("cell", CELL_KINDS)
def test_state_carried_across_halves_equals_the_whole(cell):
    model = _model(cell, dtype=torch.float64)
    idx = torch.randint(V, (3, 14))
    whole, _, final = model(idx)
    first, _, state = model(idx[:, :6])
    second, _, state = model(idx[:, 6:], detach_state(state))
    torch.testing.assert_close(torch.cat([first, second], dim=1), whole)
    for a, b in zip(_parts(state), _parts(final), strict=True):
        torch.testing.assert_close(a, b)


def test_truncated_bptt_with_detached_state():
    model = _model(dropout=0.2)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    data = torch.randint(V, (2, 31))
    state = None
    for start in range(0, 30, 10):  # the state flows on, the gradient stops at each chunk
        chunk = data[:, start:start + 11]
        _, loss, state = model(chunk[:, :-1], state, targets=chunk[:, 1:])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        state = model.detach_state(state)
        assert not any(part.requires_grad for part in _parts(state))


def test_detach_state():
    h = torch.randn(2, 3, 4, requires_grad=True)
    lstm = detach_state(LSTMState(h * 2, h * 3))
    assert isinstance(lstm, LSTMState) and not lstm.h.requires_grad
    torch.testing.assert_close(lstm.c, h.detach() * 3)
    plain = detach_state(h * 2)
    assert isinstance(plain, torch.Tensor) and not plain.requires_grad
    assert detach_state(None) is None
    assert LanguageModel.detach_state is detach_state


def test_one_hot_input_is_the_identity_embedding():
    model = _model(embedding_size=0)
    assert model.embedding is None
    assert model.rnn.input_size == V
    idx = torch.randint(V, (2, 5))
    torch.testing.assert_close(model.embed(idx), torch.eye(V)[idx])


# ---------------------------------------------------------------------- the fast decoder
DECODER_CASES = list(itertools.product(
    ["lstm", "gru", "rnn_tanh", "rnn_relu", "layernorm_lstm"], [1, 2], [0, 8],
    [torch.float32, torch.float64]))


@pytest.mark.parametrize(("cell", "num_layers", "embedding_size", "dtype"), DECODER_CASES)
def test_decoder_steps_equal_forward(cell, num_layers, embedding_size, dtype):
    model = _model(cell, num_layers, embedding_size=embedding_size, dtype=dtype).eval()
    for batch in (1, 2):  # one stream and several take different products
        idx = torch.randint(V, (batch, 16))
        logits, _, final = model(idx)
        _, _, state = model(idx[:, :4])
        for table in (True, False):
            decoder = StepDecoder(model, state, table=table)
            steps = torch.stack([decoder.step(idx[:, t]) for t in range(4, 16)], dim=1)
            torch.testing.assert_close(steps, logits[:, 4:])  # (B, 12, V)
            for a, b in zip(_parts(decoder.state), _parts(final), strict=True):
                torch.testing.assert_close(a, b)


def test_decoder_from_zeros_equals_forward_from_none():
    model = _model("gru").eval()
    idx = torch.randint(V, (3, 5))
    logits, _, _ = model(idx)
    decoder = StepDecoder(model, batch_size=3)
    torch.testing.assert_close(torch.stack([decoder.step(i) for i in idx.unbind(1)], 1), logits)


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn_tanh", "layernorm_lstm"])
def test_greedy_sample_is_the_argmax_of_forward(cell):
    model = _model(cell, dtype=torch.float64)
    prime = torch.randint(V, (2, 5))
    ids = torch.stack(list(model.sample(prime, 12, greedy=True)), dim=1)  # 12 x (2,) -> (2, 12)
    assert ids.shape == (2, 12) and ids.dtype == torch.int64
    text = torch.cat([prime, ids], dim=1)  # (2, 17)
    logits, _, _ = model(text[:, :-1])
    assert torch.equal(logits[:, 4:].argmax(-1), ids)  # position t predicts t + 1


def test_batched_streams_are_independent():
    model = _model(dtype=torch.float64)
    prime = torch.randint(V, (3, 6))
    batched = torch.stack(list(model.sample(prime, 20, greedy=True)), dim=1)  # (3, 20)
    for b in range(3):
        alone = torch.cat(list(model.sample(prime[b], 20, greedy=True)))  # 20 x (1,) -> (20,)
        assert torch.equal(batched[b], alone)


def test_samples_follow_the_model_distribution():
    model = _model("gru", num_layers=1, hidden_size=8, dtype=torch.float64)
    prime = torch.randint(V, (3,))
    n = 20_000
    generator = torch.Generator().manual_seed(0)
    first, second = model.sample(prime.expand(n, -1), 2, generator=generator)  # n streams
    logits, _, state = model(prime.unsqueeze(0))
    p_first = logits[0, -1].softmax(-1)  # (V,)
    # P(second = j) = sum_i P(first = i) P(j | prime, i): every continuation through forward
    nexts, _, _ = model(torch.arange(V).unsqueeze(1), state.expand(-1, V, -1).contiguous())
    p_second = p_first @ nexts[:, 0].softmax(-1)  # (V,) x (V, V) -> (V,)
    for ids, expected in ((first, p_first), (second, p_second)):
        frequencies = torch.bincount(ids, minlength=V).double() / n
        torch.testing.assert_close(frequencies, expected, atol=0.02, rtol=0)


def test_sample_shapes_and_reproducibility():
    model = _model()
    prime = torch.randint(V, (4,))
    steps = list(model.sample(prime, 7, temperature=0.8, top_k=5,
                              generator=torch.Generator().manual_seed(1)))
    assert len(steps) == 7 and all(s.shape == (1,) and s.dtype == torch.int64 for s in steps)
    again = list(model.sample(prime, 7, temperature=0.8, top_k=5,
                              generator=torch.Generator().manual_seed(1)))
    assert torch.equal(torch.cat(steps), torch.cat(again))
    assert list(model.sample(prime, 0)) == []
    assert all(0 <= int(s) < V for s in model.sample(prime, 30, top_p=0.5))


def test_sample_runs_in_eval_mode_and_restores_the_mode():
    model = _model(dropout=0.5)
    prime = torch.randint(V, (2, 5))
    model.eval()
    reference = torch.stack(list(model.sample(prime, 10, greedy=True)))
    model.train()
    generated = torch.stack(list(model.sample(prime, 10, greedy=True)))
    assert model.training
    assert torch.equal(generated, reference)  # no dropout in the prime nor in the steps
    model.eval()
    list(model.sample(prime, 3))
    assert not model.training


def test_sample_needs_no_grad():
    model = _model()
    steps = list(model.sample(torch.randint(V, (3,)), 3))
    assert not any(s.requires_grad for s in steps)


@pytest.mark.parametrize(("args", "kwargs", "error", "message"), [
    ((torch.tensor([1, V]), 3), {}, ValueError, r"expected prime in \[0, 11\)"),
    ((torch.tensor([[-1, 2]]), 3), {}, ValueError, r"got ids from -1 to 2"),
    ((torch.tensor([1.0, 2.0]), 3), {}, ValueError, "expected prime as integer token ids"),
    ((torch.ones(1, 2, 3, dtype=torch.long), 3), {}, ValueError,
     r"expected prime of shape \(P,\) or \(B, P\)"),
    ((torch.zeros(0, dtype=torch.long), 3), {}, ValueError, "non-empty"),
    (([1, 2], 3), {}, TypeError, "expected prime as a tensor"),
    ((torch.tensor([1]), -1), {}, ValueError, "length must be an integer >= 0"),
    ((torch.tensor([1]), 3), dict(temperature=0.0), ValueError, "temperature"),
    ((torch.tensor([1]), 3), dict(top_p=1.5), ValueError, r"top_p must be in \(0, 1\]"),
    ((torch.tensor([1]), 3), dict(top_k=0), ValueError, "top_k"),
])
def test_sample_checks_its_arguments_at_the_call(args, kwargs, error, message):
    model = _model()
    with pytest.raises(error, match=message):
        model.sample(*args, **kwargs)  # no iteration needed


def test_forward_checks_the_shapes_of_ids_and_targets():
    """Types and shapes only: the ids' values are checked where they are encoded (tests/
    test_checks.py), so that a training step reads no value back from the device."""
    model = _model()
    with pytest.raises(ValueError, match=r"expected idx of shape \(B, T\)"):
        model(torch.tensor([1, 2]))
    with pytest.raises(ValueError, match="integer token ids"):
        model(torch.zeros(2, 3))
    with pytest.raises(ValueError, match=r"expected targets as integer ids of the shape of idx "
                                         r"\(2, 3\), got torch.int64 of shape \(2, 2\)"):
        model(torch.zeros(2, 3, dtype=torch.long), targets=torch.zeros(2, 2, dtype=torch.long))


# ------------------------------------------------------------------------- config, sizes
def test_tie_weights_shares_the_tensor():
    tied = _model(hidden_size=8, embedding_size=8, tie_weights=True)
    assert tied.head.weight is tied.embedding.weight
    untied = _model(hidden_size=8, embedding_size=8)
    assert tied.num_parameters() == untied.num_parameters() - V * 8
    _, loss, _ = tied(torch.randint(V, (2, 5)), targets=torch.randint(V, (2, 5)))
    loss.backward()
    assert tied.embedding.weight.grad is not None
    assert "embedding.weight" in tied.state_dict() and "head.weight" in tied.state_dict()


def test_num_parameters_by_hand():
    model = LanguageModel(LanguageModelConfig(5, "lstm", num_layers=1, hidden_size=4,
                                              embedding_size=3))
    # E: 5x3; LSTM: W_ih 16x3, W_hh 16x4, two 16 biases; W_hy 5x4 + b_y 5
    assert model.num_parameters() == 15 + 48 + 64 + 32 + 25


def test_dropout_with_one_level_does_not_warn():
    model = _model(num_layers=1, dropout=0.3)  # warnings are errors here
    assert model.rnn.dropout == 0.0 and model.drop.p == 0.3


@pytest.mark.parametrize(("kwargs", "message"), [
    (dict(vocab_size=0), "vocab_size must be a positive integer, got 0"),
    (dict(vocab_size=5.0), "vocab_size must be a positive integer"),
    (dict(num_layers=0), "num_layers must be a positive integer"),
    (dict(hidden_size=-3), "hidden_size must be a positive integer"),
    (dict(embedding_size=-1), r"embedding_size must be an integer >= 0 \(0 = one-hot input\)"),
    (dict(cell="transformer"), "unknown cell 'transformer': expected one of 'rnn_tanh'"),
    (dict(dropout=1.0), r"dropout must be in \[0, 1\), got 1.0"),
    (dict(dropout=-0.1), r"dropout must be in \[0, 1\)"),
    (dict(tie_weights=1), "tie_weights must be True or False"),
    (dict(tie_weights=True, embedding_size=0), "tie_weights needs a learned embedding"),
    (dict(tie_weights=True, embedding_size=8, hidden_size=16),
     "tie_weights needs embedding_size == hidden_size .* got embedding_size=8, hidden_size=16"),
])
def test_config_validation(kwargs, message):
    base = dict(vocab_size=V, hidden_size=16, embedding_size=16)
    with pytest.raises(ValueError, match=message):
        LanguageModelConfig(**{**base, **kwargs})
