"""Seq2Seq: every attention's shapes and loss, the fast path against the step loop, padding,
decoding against forward, and overfitting."""

import itertools
import math

import pytest
import torch
import torch.nn.functional as F

from rnnkit.decoding import length_penalty_of
from rnnkit.models.seq2seq import ATTENTIONS, Seq2Seq, Seq2SeqConfig, _reverse_within

V_SRC, V_TGT = 11, 12  # vocabularies: 4 special tokens + words
PAD, UNK, START, END = 0, 1, 2, 3

COMBINATIONS = [(attention, cell, bi, feeding)
                for attention, cell, bi, feeding in itertools.product(
                    ATTENTIONS, ("gru", "lstm"), (False, True), (False, True))
                if not feeding or attention in ("dot", "general")]


def _model(attention="general", cell="gru", bidirectional=True, dropout=0.0, layers=1,
           tie_embeddings=False, **kwargs):
    config = Seq2SeqConfig(V_SRC, V_TGT, embedding_size=5, hidden_size=6, cell=cell,
                           encoder_layers=layers, decoder_layers=layers,
                           bidirectional_encoder=bidirectional, attention=attention,
                           dropout=dropout, tie_embeddings=tie_embeddings, **kwargs)
    return Seq2Seq(config)


def _sources(B=8, S=7):
    """``B`` sources of 1 to ``S`` real tokens (garbage ids after them) and their lengths."""
    return torch.randint(4, V_SRC, (B, S)), torch.randint(1, S + 1, (B,))


def _batch():
    """Sources ``(4, 6)`` of 5, 2, 6 and 1 real tokens (garbage ids after them), their lengths,
    and targets ``(4, 6)`` of 4, 1, 3 and 0 words with ``<end>`` and padding."""
    source = torch.randint(4, V_SRC, (4, 6))
    lengths = torch.tensor([5, 2, 6, 1])
    target = torch.tensor([[START, 4, 5, 6, 7, END], [START, 8, END, PAD, PAD, PAD],
                           [START, 9, 10, 11, END, PAD], [START, END, PAD, PAD, PAD, PAD]])
    return source, lengths, target


# ------------------------------------------------------------------------------- forward
@pytest.mark.parametrize(("attention", "cell", "bidirectional", "feeding"), COMBINATIONS)
def test_shapes_loss_and_every_parameter_learns(attention, cell, bidirectional, feeding):
    model = _model(attention, cell, bidirectional, dropout=0.2, layers=2, input_feeding=feeding)
    source, lengths, target = _batch()
    logits, loss = model(source, lengths, target)
    assert logits.shape == (4, 5, V_TGT) and torch.isfinite(logits).all()
    assert loss.shape == () and torch.isfinite(loss)
    loss.backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
        assert p.grad.abs().sum() > 0, name
    memory, mask, initial = model.encode(source, lengths)
    assert memory.shape == (4, 6, 6) and mask.sum(1).tolist() == lengths.tolist()
    h = initial.h if cell == "lstm" else initial
    assert h.shape == (2, 4, 6)


@pytest.mark.parametrize(("encoder_layers", "decoder_layers"), [(2, 1), (1, 3), (3, 2)])
@pytest.mark.parametrize("cell", ["gru", "lstm"])
def test_the_bridge_aligns_the_levels_at_the_top(encoder_layers, decoder_layers, cell):
    config = Seq2SeqConfig(V_SRC, V_TGT, embedding_size=5, hidden_size=6, cell=cell,
                           encoder_layers=encoder_layers, decoder_layers=decoder_layers,
                           dropout=0.0, tie_embeddings=False)
    model = Seq2Seq(config)
    source, lengths, target = _batch()
    _, _, initial = model.encode(source, lengths)
    _, final = model.encoder(model.source_embedding(source), lengths=lengths)
    for name in ("h", "c") if cell == "lstm" else ("h",):
        states = getattr(final, name) if cell == "lstm" else final  # (L_enc*2, B, 3)
        got = getattr(initial, name) if cell == "lstm" else initial  # (L_dec, B, 6)
        assert got.shape == (decoder_layers, 4, 6)
        for level in range(decoder_layers):
            k = max(0, level + encoder_layers - decoder_layers)  # the encoder level it reads
            bridge = getattr(model, f"bridge_{name}")[level]
            expected = torch.tanh(bridge(torch.cat([states[2 * k], states[2 * k + 1]], -1)))
            torch.testing.assert_close(got[level], expected)
    _, loss = model(source, lengths, target)
    loss.backward()
    assert all(p.grad is not None for p in model.parameters())


@pytest.mark.parametrize(("attention", "cell", "bidirectional"), list(itertools.product(
    ("dot", "general", "none"), ("gru", "lstm"), (False, True))))
def test_the_fast_path_is_the_step_loop(attention, cell, bidirectional, monkeypatch):
    model = _model(attention, cell, bidirectional, layers=2).double()
    assert model.has_fast_path
    source, lengths, target = _batch()
    model._use_fast_path = False
    loop_logits, loop_loss = model(source, lengths, target)
    loop_loss.backward()
    loop_grads = {n: p.grad.clone() for n, p in model.named_parameters()}
    model.zero_grad()
    model._use_fast_path = True
    with monkeypatch.context() as patch:  # the fast path runs no step at all
        patch.setattr(model, "_step_output", None)
        fast_logits, fast_loss = model(source, lengths, target)
    fast_loss.backward()
    torch.testing.assert_close(fast_logits, loop_logits)
    for name, p in model.named_parameters():
        torch.testing.assert_close(p.grad, loop_grads[name], msg=name)
    # and the attention of both paths
    memory, mask, initial = model.encode(source, lengths)
    _, fast_alpha = model._teacher_forced(memory, mask, initial, target[:, :-1])
    _, loop_alpha = model._step_loop(memory, mask, initial, target[:, :-1], 1.0, None)
    if attention == "none":
        assert fast_alpha is None and loop_alpha is None
    else:
        torch.testing.assert_close(fast_alpha, loop_alpha)


@pytest.mark.parametrize(("attention", "cell", "reverse"), [
    ("general", "gru", False), ("dot", "lstm", True), ("bahdanau", "gru", True),
    ("bahdanau", "lstm", False), ("none", "gru", True), ("none", "lstm", False)])
def test_padding_changes_nothing(attention, cell, reverse):
    model = _model(attention, cell, layers=2, reverse_source=reverse,
                   input_feeding=attention == "dot").eval()
    source, lengths, target = _batch()
    logits, _ = model(source, lengths, target)
    found = model.translate(source, lengths, max_len=4)
    for b, n in enumerate(lengths.tolist()):
        alone_logits, _ = model(source[b:b + 1, :n], lengths[b:b + 1], target[b:b + 1])
        torch.testing.assert_close(logits[b:b + 1], alone_logits)
        (alone,) = model.translate(source[b:b + 1, :n], lengths[b:b + 1], max_len=4)
        assert found[b][0].tokens == alone[0].tokens
        assert found[b][0].score == pytest.approx(alone[0].score, abs=1e-5)
        if attention != "none":
            assert found[b][0].attention.shape == (len(alone[0].tokens), n)
            torch.testing.assert_close(found[b][0].attention, alone[0].attention)
    # attention never reaches the padding
    memory, mask, initial = model.encode(source, lengths)
    if attention != "none":
        _, alpha = model._decode(memory, mask, initial, target[:, :-1])  # (B, T, S)
        assert (alpha.masked_select(~mask.unsqueeze(1)) == 0).all()
        torch.testing.assert_close(alpha.sum(-1), torch.ones(4, 5))


@pytest.mark.parametrize("attention", ATTENTIONS)
def test_loss_is_the_mean_over_real_targets_and_ignores_padding(attention):
    model = _model(attention).eval()
    source, lengths, target = _batch()
    logits, loss = model(source, lengths, target)
    real = target[:, 1:] != PAD  # (B, T-1)
    torch.testing.assert_close(loss, F.cross_entropy(logits[real], target[:, 1:][real]))
    # what follows <end> changes neither the loss nor the real steps' logits (the decoder
    # never looks ahead), padding or not
    after = torch.arange(6) > torch.tensor([5, 2, 4, 1]).unsqueeze(1)  # (B, T): past <end>
    noisy = torch.where(after, torch.randint(4, V_TGT, target.shape), target)
    noisy_logits, _ = model(source, lengths, noisy)
    torch.testing.assert_close(noisy_logits[real], logits[real])


def test_label_smoothing_is_cross_entropys():
    model = _model("bahdanau").eval()
    source, lengths, target = _batch()
    logits, loss = model(source, lengths, target, label_smoothing=0.1)
    real = target[:, 1:] != PAD
    expected = F.cross_entropy(logits[real], target[:, 1:][real], label_smoothing=0.1)
    torch.testing.assert_close(loss, expected)
    # Szegedy et al. 2016: (1 - eps) * cross-entropy + eps * the mean of -log p over V
    log_probs = logits[real].log_softmax(dim=-1)  # (n, V)
    nll = -log_probs.gather(1, target[:, 1:][real].unsqueeze(1)).mean()
    torch.testing.assert_close(loss, 0.9 * nll + 0.1 * -log_probs.mean())


def test_reverse_source_reads_the_real_tokens_backwards():
    source, lengths, target = _batch()
    reversed_ = _reverse_within(source, lengths)
    assert reversed_[0].tolist() == [*source[0, :5].flip(0).tolist(), source[0, 5].item()]
    assert reversed_[1, :2].tolist() == source[1, :2].flip(0).tolist()
    assert reversed_[1, 2:].tolist() == source[1, 2:].tolist()  # padding stays padding
    # a model with reverse_source is the plain one fed the reversed sentences, its memory put
    # back in the given order (so that attention lines up with the source as given)
    backwards = _model("general", reverse_source=True).eval()
    plain = _model("general").eval()
    plain.load_state_dict(backwards.state_dict())
    memory, mask, initial = backwards.encode(source, lengths)
    plain_memory, plain_mask, plain_initial = plain.encode(reversed_, lengths)
    torch.testing.assert_close(memory, _reverse_within(plain_memory, lengths))
    torch.testing.assert_close(initial, plain_initial)
    torch.testing.assert_close(backwards(source, lengths, target)[0],
                               plain(reversed_, lengths, target)[0])
    found, plain_found = (m.translate(s, lengths, max_len=3) for m, s in
                          ((backwards, source), (plain, reversed_)))
    for (t,), (p,), n in zip(found, plain_found, lengths.tolist(), strict=True):
        assert t.tokens == p.tokens
        torch.testing.assert_close(t.attention, p.attention.flip(1)[:, :n])


@pytest.mark.parametrize(("embedding", "hidden", "attention"), [
    (6, 6, "general"), (5, 6, "general"), (5, 6, "none")])
def test_tied_embeddings_share_storage(embedding, hidden, attention):
    config = Seq2SeqConfig(V_SRC, V_TGT, embedding_size=embedding, hidden_size=hidden,
                           attention=attention, tie_embeddings=True, dropout=0.0)
    model = Seq2Seq(config)
    assert model.head.weight is model.target_embedding.weight
    assert model.head.weight.data_ptr() == model.target_embedding.weight.data_ptr()
    assert (model.projection is None) == (embedding == hidden)
    untied = Seq2Seq(Seq2SeqConfig(V_SRC, V_TGT, embedding_size=embedding, hidden_size=hidden,
                                   attention=attention, dropout=0.0, tie_embeddings=False))
    projection = 0 if embedding == hidden else embedding * hidden
    # one matrix fewer (W_out (V, H)), the projection (E, H) more when H != E
    assert model.num_parameters() == untied.num_parameters() - V_TGT * hidden + projection
    source, lengths, target = _batch()
    _, loss = model(source, lengths, target)
    loss.backward()
    assert model.target_embedding.weight.grad is not None
    # and they stay tied through a state_dict round trip
    again = Seq2Seq(config)
    again.load_state_dict(model.state_dict())
    assert again.head.weight is again.target_embedding.weight
    torch.testing.assert_close(again.head.weight, model.target_embedding.weight)


@pytest.mark.parametrize(("attention", "feeding"), [("bahdanau", False), ("general", False),
                                                    ("general", True)])
def test_gradcheck_in_float64(attention, feeding):
    model = _model(attention, "lstm", input_feeding=feeding).double()
    source, lengths, target = _batch()
    source, lengths, target = source[:2, :5], lengths[:2], target[:2, :4]
    names = [n for n, _ in model.named_parameters()]
    params = [p.detach().clone().requires_grad_() for p in model.parameters()]

    def logits(*values):
        out, _ = torch.func.functional_call(model, dict(zip(names, values, strict=True)),
                                            (source, lengths, target))
        return out

    torch.autograd.gradcheck(logits, tuple(params), fast_mode=True)


def test_scheduled_sampling_reads_the_decoders_own_predictions():
    model = _model("general", "lstm").eval()
    with torch.no_grad():
        model.head.bias[END] = -50.0  # never ends: every step has a prediction to feed
    source, lengths, target = _batch()
    own, _ = model(source, lengths, target, teacher_forcing=0.0)
    # teacher forcing on its own argmax gives the same numbers
    fed = torch.cat([target[:, :1], own.argmax(-1)[:, :-1], target[:, -1:]], dim=1)  # (B, T)
    forced, _ = model(source, lengths, fed)
    torch.testing.assert_close(own, forced)

    def mixed(seed):
        generator = torch.Generator().manual_seed(seed)
        return model(source, lengths, target, teacher_forcing=0.5, generator=generator)[0]

    torch.testing.assert_close(mixed(0), mixed(0))
    gold, _ = model(source, lengths, target)
    assert not torch.allclose(mixed(0), gold) and not torch.allclose(mixed(0), own)
    torch.testing.assert_close(model(source, lengths, target, teacher_forcing=1.0)[0], gold)


def test_config_checks_every_field():
    with pytest.raises(ValueError, match="unknown attention 'concat'"):
        Seq2SeqConfig(V_SRC, V_TGT, attention="concat")
    with pytest.raises(ValueError, match="input_feeding .* got 'bahdanau'"):
        Seq2SeqConfig(V_SRC, V_TGT, attention="bahdanau", input_feeding=True)
    with pytest.raises(ValueError, match="expected an even hidden_size, got 7"):
        Seq2SeqConfig(V_SRC, V_TGT, hidden_size=7)
    Seq2SeqConfig(V_SRC, V_TGT, hidden_size=7, bidirectional_encoder=False)
    with pytest.raises(ValueError, match="end_index and start_index must differ"):
        Seq2SeqConfig(V_SRC, V_TGT, end_index=2)
    with pytest.raises(ValueError, match=r"start_index must be an id in \[0, 11\)"):
        Seq2SeqConfig(V_SRC, V_TGT, start_index=11)
    with pytest.raises(ValueError, match="dropout must be in"):
        Seq2SeqConfig(V_SRC, V_TGT, dropout=1.0)
    with pytest.raises(ValueError, match="unknown cell"):
        Seq2SeqConfig(V_SRC, V_TGT, cell="transformer")
    with pytest.raises(ValueError, match="reverse_source must be True or False"):
        Seq2SeqConfig(V_SRC, V_TGT, reverse_source=1)
    with pytest.raises(ValueError, match="decoder_layers must be a positive integer"):
        Seq2SeqConfig(V_SRC, V_TGT, decoder_layers=0)


def test_vocabulary_sizes_come_from_the_data_and_the_model_needs_them():
    config = Seq2SeqConfig()  # what a task's config holds before the data is read
    assert config.source_vocab_size is None and config.tie_embeddings
    with pytest.raises(ValueError, match="end_index and start_index must differ"):
        Seq2SeqConfig(end_index=2)
    with pytest.raises(ValueError, match=r"pad_index must be an id in \[0, V\)"):
        Seq2SeqConfig(pad_index=-1)
    with pytest.raises(ValueError, match="source_vocab_size and target_vocab_size are not set"):
        Seq2Seq(config)
    with pytest.raises(ValueError, match="at least 5 each"):
        Seq2SeqConfig(V_SRC, 4)


def test_bad_inputs_say_what_was_expected():
    """Types and shapes; the lengths' values by the encoder; the ids' values where they are
    encoded (tests/test_checks.py) and by translate()."""
    model = _model()
    source, lengths, target = _batch()
    with pytest.raises(ValueError, match=r"expected source as integer token ids"):
        model(source.float(), lengths, target)
    for reverse in (False, True):  # reversing the source comes before the encoder's check
        reversing = _model(reverse_source=reverse)
        with pytest.raises(ValueError, match=r"expected every length in \[1, T=6\], got "
                                             r"lengths from 1 to 7"):
            reversing(source, torch.tensor([7, 1, 1, 1]), target)
    with pytest.raises(ValueError, match=r"expected source_lengths as 4 integers"):
        model(source, lengths[:3], target)
    with pytest.raises(ValueError, match=r"expected source ids in \[0, 11\)"):
        model.translate(source + 20, lengths)
    with pytest.raises(ValueError, match=r"expected every length in \[1, T=6\], got "
                                         r"source_lengths from 1 to 7"):
        model.translate(source, torch.tensor([7, 1, 1, 1]))
    model(torch.where(torch.arange(6) >= lengths.unsqueeze(1), 99, source), lengths, target)
    model.translate(torch.where(torch.arange(6) >= lengths.unsqueeze(1), 99, source), lengths,
                    max_len=2)  # padding is never read, whatever its ids
    with pytest.raises(ValueError, match=r"expected target of shape \(B=4, T >= 2\)"):
        model(source, lengths, target[:, :1])
    with pytest.raises(ValueError, match=r"teacher_forcing must be in \[0, 1\]"):
        model(source, lengths, target, teacher_forcing=1.5)
    with pytest.raises(ValueError, match=r"label_smoothing must be in \[0, 1\)"):
        model(source, lengths, target, label_smoothing=1.0)
    with pytest.raises(ValueError, match="unknown method 'topp'"):
        model.translate(source, lengths, method="topp")
    with pytest.raises(ValueError, match="n_best must be 1"):
        model.translate(source, lengths, n_best=2)


# ------------------------------------------------------------------------------ decoding
@torch.no_grad()
def _lively(model, source, lengths, max_len):
    """Weights N(0, 1), so that the words depend on the source, and an ``<end>`` bias with
    which greedy decoding both ends some translations (not all at once) and cuts others."""
    for p in model.parameters():
        p.normal_(0, 1)
    for bias in torch.arange(-2.0, 6.0, 0.1).tolist():
        model.head.bias[END] = bias
        sizes = {len(t[0].tokens) for t in model.translate(source, lengths, max_len=max_len)}
        if max_len in sizes and len(sizes) > 1:
            return model
    raise AssertionError("no <end> bias gives both ended and cut translations")


@torch.no_grad()
def _forward_fed_its_own_output(model, source, lengths, max_len):
    """Greedy decoding by forward alone: the argmax at the last step, appended, forward again."""
    results = []
    for b, n in enumerate(lengths.tolist()):
        tokens, score = [START], 0.0
        for _ in range(max_len):
            # forward scores target[:, 1:]: a dummy last token gives the logits after the prefix
            logits, _ = model(source[b:b + 1, :n], lengths[b:b + 1], torch.tensor([tokens + [4]]))
            log_probs = logits[0, -1].log_softmax(dim=-1)
            token = int(log_probs.argmax())
            score += float(log_probs[token])
            if token == END:
                break
            tokens.append(token)
        results.append((tokens[1:], score))
    return results


@pytest.mark.parametrize(("attention", "cell", "feeding"), [
    ("general", "gru", False), ("dot", "lstm", True), ("bahdanau", "lstm", False),
    ("bahdanau", "gru", False), ("none", "lstm", False)])
def test_greedy_translate_is_forward_fed_its_own_output(attention, cell, feeding):
    source, lengths = _sources()
    model = _lively(_model(attention, cell, layers=2, dropout=0.3, input_feeding=feeding),
                    source, lengths, 6)
    found = model.translate(source, lengths, max_len=6)
    assert model.training  # the mode comes back
    model.eval()
    expected = _forward_fed_its_own_output(model, source, lengths, 6)
    for translations, (tokens, score), n in zip(found, expected, lengths.tolist(), strict=True):
        (translation,) = translations
        assert translation.tokens == tokens
        assert translation.score == pytest.approx(score, abs=1e-5)
        if attention == "none":
            assert translation.attention is None
        else:
            assert translation.attention.shape == (len(tokens), n)
            torch.testing.assert_close(translation.attention.sum(-1),
                                       torch.ones(len(tokens)))


@pytest.mark.parametrize("attention", ATTENTIONS)
def test_beam_size_one_is_greedy(attention):
    source, lengths = _sources()
    model = _lively(_model(attention, layers=2), source, lengths, 5)
    greedy = model.translate(source, lengths, max_len=5)
    for alpha in (0.0, 1.0):  # the same words whatever the length penalty
        beam = model.translate(source, lengths, method="beam", beam_size=1,
                               length_penalty=alpha, max_len=5)
        for (g,), (b,) in zip(greedy, beam, strict=True):
            assert g.tokens == b.tokens
            if alpha == 0:  # and the same score without it
                assert g.score == pytest.approx(b.score, abs=1e-5)
            if attention != "none":  # the beam's attention, recomputed, is the greedy one's
                torch.testing.assert_close(g.attention, b.attention)


@pytest.mark.parametrize(("attention", "feeding"), [("general", False), ("general", True),
                                                    ("bahdanau", False), ("none", False)])
@torch.no_grad()
def test_beam_scores_are_forward_log_probabilities(attention, feeding):
    source, lengths = _sources()
    model = _lively(_model(attention, "lstm", layers=2, input_feeding=feeding).eval(), source,
                    lengths, 4)
    alpha, max_len = 0.7, 4
    found = model.translate(source, lengths, method="beam", beam_size=4, n_best=3,
                            max_len=max_len, length_penalty=alpha)
    for b, translations in enumerate(found):
        assert len(translations) == 3
        assert len({tuple(t.tokens) for t in translations}) == 3
        assert [t.score for t in translations] == sorted((t.score for t in translations),
                                                         reverse=True)
        n = int(lengths[b])
        for translation in translations:
            assert len(translation.tokens) <= max_len
            ended = len(translation.tokens) < max_len  # one of max_len words was cut
            sequence = torch.tensor([[START, *translation.tokens, END if ended else PAD]])
            logits, _ = model(source[b:b + 1, :n], lengths[b:b + 1], sequence)
            log_probs = logits[0].log_softmax(dim=-1)  # (T-1, V)
            targets = sequence[0, 1:] if ended else sequence[0, 1:-1]
            total = float(log_probs[torch.arange(len(targets)), targets].sum())
            length = len(translation.tokens) + ended
            assert translation.score == pytest.approx(
                total / length_penalty_of(length, alpha), abs=1e-5)
            if attention != "none":
                assert translation.attention.shape == (len(translation.tokens), n)


@pytest.mark.parametrize("method", ["greedy", "sample", "beam"])
def test_max_len_is_respected(method):
    model = _model("general")
    with torch.no_grad():
        model.head.bias[END] = -50.0  # never ends by itself
    source, lengths, _ = _batch()
    found = model.translate(source, lengths, method=method, max_len=3, beam_size=2)
    assert all(len(t.tokens) == 3 for translations in found for t in translations)
    assert all(math.isfinite(t.score) for translations in found for t in translations)
    # by default each sentence gets 2 * its length + 10
    found = model.translate(source, lengths, method=method, beam_size=2)
    assert [len(t[0].tokens) for t in found] == [2 * n + 10 for n in lengths.tolist()]


def test_the_default_max_len_stops_at_200():
    model = _model("none", bidirectional=False)
    with torch.no_grad():
        model.head.bias[END] = -50.0
    source = torch.randint(4, V_SRC, (1, 100))
    (found,) = model.translate(source, torch.tensor([100]))
    assert len(found[0].tokens) == 200


def test_sampling_is_reproducible_with_a_generator():
    model = _model("bahdanau")
    source, lengths, _ = _batch()

    def sample(seed):
        generator = torch.Generator().manual_seed(seed)
        return model.translate(source, lengths, method="sample", temperature=1.5, n_best=4,
                               max_len=8, generator=generator)

    first, again = sample(0), sample(0)
    assert [[t.tokens for t in ts] for ts in first] == [[t.tokens for t in ts] for ts in again]
    for translations, n in zip(first, lengths.tolist(), strict=True):
        assert len(translations) == 4 and all(len(t.tokens) <= 8 for t in translations)
        assert [t.score for t in translations] == sorted((t.score for t in translations),
                                                         reverse=True)
        assert all(t.attention.shape == (len(t.tokens), n) for t in translations)
    assert [[t.tokens for t in ts] for ts in sample(1)] != [[t.tokens for t in ts]
                                                            for ts in first]


# ----------------------------------------------------------------------------- overfit
@pytest.mark.parametrize("attention", ["general", "bahdanau", "none"])
def test_overfits_sixteen_sentences_and_translates_them_back(attention):
    """16 random sentences of 3-7 words, mapped to their reversal."""
    torch.manual_seed(0)
    config = Seq2SeqConfig(14, 14, embedding_size=32, hidden_size=64, attention=attention,
                           dropout=0.0, tie_embeddings=False)
    model = Seq2Seq(config)
    lengths = torch.randint(3, 8, (16,))
    source = torch.full((16, 7), PAD)
    target = torch.full((16, 9), PAD)
    for b, n in enumerate(lengths.tolist()):
        words = torch.randint(4, 14, (n,))
        source[b, :n] = words
        target[b, :n + 2] = torch.tensor([START, *words.flip(0).tolist(), END])
    optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
    for _ in range(150):
        _, loss = model(source, lengths, target)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert loss.item() < 0.05
    expected = [source[b, :n].flip(0).tolist() for b, n in enumerate(lengths.tolist())]
    for method in ("greedy", "beam"):
        found = model.translate(source, lengths, method=method, beam_size=3)
        assert [t[0].tokens for t in found] == expected, method
