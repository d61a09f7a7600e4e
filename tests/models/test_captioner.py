"""Captioner: every conditioning's shapes and loss, decoding against forward, and overfitting."""

import itertools
import math

import pytest
import torch
import torch.nn.functional as F

from rnnkit.decoding import length_penalty_of
from rnnkit.models.captioner import CONDITIONINGS, Captioner, CaptionerConfig

V, C, R = 12, 6, 4  # vocabulary (4 special tokens + 8 words), features, grid positions
PAD, UNK, START, END = 0, 1, 2, 3


def _model(conditioning="every_step", cell="lstm", num_layers=1, dropout=0.0, **kwargs):
    config = CaptionerConfig(V, C, embedding_size=5, hidden_size=7, cell=cell,
                             num_layers=num_layers, conditioning=conditioning,
                             attention_size=4, dropout=dropout, **kwargs)
    return Captioner(config)


def _captions():
    """``(4, 7)``: captions of 5, 1, 3 and 0 words, <end>, then padding."""
    rows = [[START, 4, 5, 6, 7, 8, END], [START, 9, END, PAD, PAD, PAD, PAD],
            [START, 10, 11, 4, END, PAD, PAD], [START, END, PAD, PAD, PAD, PAD, PAD]]
    return torch.tensor(rows), torch.tensor([7, 3, 5, 2])


def _grid(B=4):
    return torch.randn(B, R, C)


# ------------------------------------------------------------------------------- forward
@pytest.mark.parametrize(("conditioning", "cell"), list(itertools.product(
    CONDITIONINGS, ("lstm", "gru", "rnn_tanh", "layernorm_lstm"))))
def test_shapes_loss_and_every_parameter_learns(conditioning, cell):
    model = _model(conditioning, cell, num_layers=2, dropout=0.2)
    captions, _ = _captions()
    logits, loss = model(_grid(), captions)
    assert logits.shape == (4, 6, V) and torch.isfinite(logits).all()
    assert loss.shape == () and torch.isfinite(loss)
    loss.backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
        assert p.grad.abs().sum() > 0, name


@pytest.mark.parametrize("conditioning", CONDITIONINGS)
def test_loss_is_the_mean_over_real_targets_and_ignores_padding(conditioning):
    model = _model(conditioning).eval()
    captions, lengths = _captions()
    grid = _grid()
    logits, loss = model(grid, captions)
    real = torch.arange(1, 7) < lengths.unsqueeze(1)  # (B, T-1): targets up to <end>
    expected = F.cross_entropy(logits[real], captions[:, 1:][real])
    torch.testing.assert_close(loss, expected)
    # anything after <end> (pad or not) changes neither the loss nor the real steps' logits
    for _ in range(3):
        after = torch.arange(7) >= lengths.unsqueeze(1)  # (B, T)
        noisy = torch.where(after, torch.randint(V, captions.shape), captions)
        noisy_logits, noisy_loss = model(grid, noisy, lengths)
        torch.testing.assert_close(noisy_loss, loss)
        torch.testing.assert_close(noisy_logits[real], logits[real])


@pytest.mark.parametrize("conditioning", ["every_step", "init_state", "first_input"])
def test_a_pooled_vector_is_the_mean_of_the_grid(conditioning):
    model = _model(conditioning).eval()
    captions, _ = _captions()
    grid = _grid()
    from_grid, _ = model(grid, captions)
    from_vector, _ = model(grid.mean(dim=1), captions)
    torch.testing.assert_close(from_grid, from_vector)


def test_attention_weights_are_distributions_over_the_grid():
    model = _model("attention", num_layers=2)
    captions, _ = _captions()
    weights = model.attention_weights(_grid(), captions)
    assert weights.shape == (4, 6, R) and (weights >= 0).all()
    torch.testing.assert_close(weights.sum(dim=-1), torch.ones(4, 6))
    assert model.training  # the mode comes back


def test_gradcheck_attention_step_in_float64():
    from rnnkit.models.captioner import _DecoderState

    model = _model("attention", cell="lstm", num_layers=2).double()
    grid = torch.randn(2, R, C, dtype=torch.float64, requires_grad=True)
    x = torch.randn(2, 5, dtype=torch.float64, requires_grad=True)  # the word vector (B, E)
    h, c = (torch.randn(2, 2, 7, dtype=torch.float64, requires_grad=True) for _ in range(2))

    def step(x, grid, h, c):  # one step: attention over the grid, then two LSTM levels
        state = _DecoderState(h, c, None, grid, model.attention.keys(grid))
        top, new, alpha = model._attend_step(x, state)
        return top, new.h, new.c, alpha

    torch.autograd.gradcheck(step, (x, grid, h, c))
    # and the whole teacher-forced pass, through the initial state from the grid's mean
    captions, _ = _captions()
    torch.autograd.gradcheck(lambda g: model(g, captions[:2, :4])[0], (grid,))


def test_config_checks_every_field():
    with pytest.raises(ValueError, match="unknown conditioning 'film'"):
        CaptionerConfig(V, C, conditioning="film")
    with pytest.raises(ValueError, match="end_index and start_index must differ"):
        CaptionerConfig(V, C, end_index=2)
    with pytest.raises(ValueError, match=r"start_index must be an id in \[0, 12\)"):
        CaptionerConfig(V, C, start_index=12)
    with pytest.raises(ValueError, match="dropout must be in"):
        CaptionerConfig(V, C, dropout=1.0)
    with pytest.raises(ValueError, match="unknown cell"):
        CaptionerConfig(V, C, cell="transformer")


def test_bad_inputs_say_what_was_expected():
    """Types and shapes; the captions' and lengths' values are checked where they are encoded
    (tests/test_checks.py)."""
    model = _model("attention")
    captions, _ = _captions()
    with pytest.raises(ValueError, match=r"expected features as a float tensor \(B, R, 6\) "
                                         r"\(attention needs the grid\), got .* \(4, 6\)"):
        model(torch.randn(4, C), captions)
    with pytest.raises(ValueError, match=r"expected captions of shape \(B=4, T >= 2\)"):
        model(_grid(), captions[:, :1])
    with pytest.raises(ValueError, match=r"expected lengths as 4 integers \(B,\)"):
        model(_grid(), captions, torch.tensor([7, 2, 2]))
    with pytest.raises(ValueError, match="unknown method 'topp'"):
        model.generate(_grid(), method="topp")


# ------------------------------------------------------------------------------ decoding
@torch.no_grad()
def _teacher_forced_greedy(model, grid, max_len):
    """Greedy decoding by forward alone: the argmax at the last step, appended, forward again."""
    results = []
    for b in range(grid.shape[0]):
        tokens, score = [START], 0.0
        for _ in range(max_len):
            # forward scores captions[:, 1:]: a dummy last token gives the logits after the prefix
            logits, _ = model(grid[b:b + 1], torch.tensor([tokens + [PAD]]))
            log_probs = logits[0, -1].log_softmax(dim=-1)
            token = int(log_probs.argmax())
            score += float(log_probs[token])
            if token == END:
                break
            tokens.append(token)
        results.append((tokens[1:], score))
    return results


@pytest.mark.parametrize(("conditioning", "cell"), [
    ("every_step", "lstm"), ("every_step", "gru"), ("init_state", "lstm"),
    ("init_state", "rnn_tanh"), ("first_input", "lstm"), ("first_input", "gru"),
    ("attention", "lstm"), ("attention", "gru")])
def test_greedy_generate_is_forward_fed_its_own_output(conditioning, cell):
    model = _model(conditioning, cell, num_layers=2, dropout=0.3)  # generate() must drop nothing
    with torch.no_grad():  # a large <end> bias, so that some captions end before max_len
        model.head.bias[END] = 2.0
    grid = _grid(6)
    found = model.generate(grid, method="greedy", max_len=6)
    assert model.training
    model.eval()
    expected = _teacher_forced_greedy(model, grid, 6)
    assert {len(c[0].tokens) for c in found} != {6}  # both ended and cut captions
    for captions, (tokens, score) in zip(found, expected, strict=True):
        (caption,) = captions
        assert caption.tokens == tokens
        assert caption.score == pytest.approx(score, abs=1e-5)
        if conditioning == "attention":
            assert caption.attention.shape == (len(tokens), R)
        else:
            assert caption.attention is None


@pytest.mark.parametrize("conditioning", CONDITIONINGS)
def test_beam_size_one_is_greedy(conditioning):
    model = _model(conditioning, num_layers=2)
    with torch.no_grad():
        model.head.bias[END] = 2.0
    grid = _grid(6)
    greedy = model.generate(grid, method="greedy", max_len=5)
    assert {len(c[0].tokens) for c in greedy} != {5}  # both ended and cut captions
    for alpha in (0.0, 1.0):  # the same words whatever the length penalty
        beam = model.generate(grid, method="beam", beam_size=1, length_penalty=alpha,
                              max_len=5)
        for (g,), (b,) in zip(greedy, beam, strict=True):
            assert g.tokens == b.tokens
            if alpha == 0:  # and the same score without it
                assert g.score == pytest.approx(b.score, abs=1e-5)
            if conditioning == "attention":
                torch.testing.assert_close(g.attention, b.attention)


@pytest.mark.parametrize("conditioning", CONDITIONINGS)
@torch.no_grad()
def test_beam_scores_are_forward_log_probabilities(conditioning):
    model = _model(conditioning, cell="gru", num_layers=2).eval()
    with torch.no_grad():
        model.head.bias[END] = 1.0
    grid = _grid(3)
    alpha, max_len = 0.7, 4
    found = model.generate(grid, method="beam", beam_size=4, n_best=3, max_len=max_len,
                           length_penalty=alpha)
    for b, captions in enumerate(found):
        assert len(captions) == 3
        assert len({tuple(c.tokens) for c in captions}) == 3
        assert [c.score for c in captions] == sorted((c.score for c in captions), reverse=True)
        for caption in captions:
            assert len(caption.tokens) <= max_len
            ended = len(caption.tokens) < max_len  # a caption of max_len words was cut
            sequence = torch.tensor([[START, *caption.tokens, END if ended else PAD]])
            logits, _ = model(grid[b:b + 1], sequence)
            log_probs = logits[0].log_softmax(dim=-1)  # (T-1, V)
            targets = sequence[0, 1:] if ended else sequence[0, 1:-1]
            total = float(log_probs[torch.arange(len(targets)), targets].sum())
            length = len(caption.tokens) + ended
            assert caption.score == pytest.approx(total / length_penalty_of(length, alpha),
                                                  abs=1e-5)


def test_sampling_is_reproducible_with_a_generator():
    model = _model("attention")
    grid = _grid(3)

    def sample(seed):
        generator = torch.Generator().manual_seed(seed)
        return model.generate(grid, method="sample", temperature=1.5, top_k=6, n_best=4,
                              max_len=8, generator=generator)

    first, again = sample(0), sample(0)
    assert [[c.tokens for c in cs] for cs in first] == [[c.tokens for c in cs] for cs in again]
    for captions in first:
        assert len(captions) == 4 and all(len(c.tokens) <= 8 for c in captions)
        assert [c.score for c in captions] == sorted((c.score for c in captions), reverse=True)
    assert [[c.tokens for c in cs] for cs in sample(1)] != [[c.tokens for c in cs]
                                                            for cs in first]


@pytest.mark.parametrize("method", ["greedy", "sample", "beam"])
def test_max_len_is_respected(method):
    model = _model("every_step")
    with torch.no_grad():
        model.head.bias[END] = -50.0  # never ends by itself
    found = model.generate(_grid(2), method=method, max_len=3, beam_size=2)
    assert all(len(c.tokens) == 3 for captions in found for c in captions)
    assert all(math.isfinite(c.score) for captions in found for c in captions)


# ----------------------------------------------------------------------------- overfit
@pytest.mark.parametrize("conditioning", CONDITIONINGS)
def test_overfits_eight_images_and_reads_their_captions_back(conditioning):
    torch.manual_seed(0)
    config = CaptionerConfig(20, 16, embedding_size=16, hidden_size=32, conditioning=conditioning,
                             attention_size=16, dropout=0.0)
    model = Captioner(config)
    features = torch.randn(8, 3, 16)  # 8 images, 3 grid positions each
    words = torch.stack([torch.randperm(16)[:5] + 4 for _ in range(8)])  # (8, 5) distinct
    captions = torch.cat([torch.full((8, 1), START), words, torch.full((8, 1), END)], dim=1)
    optimizer = torch.optim.Adam(model.parameters(), lr=0.02)
    for _ in range(150):
        _, loss = model(features, captions)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert loss.item() < 0.05
    found = model.generate(features, method="greedy")
    assert [c[0].tokens for c in found] == words.tolist()
    found = model.generate(features, method="beam", beam_size=3)
    assert [c[0].tokens for c in found] == words.tolist()
