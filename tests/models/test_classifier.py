"""SequenceClassifier: shapes, padding, pretrained embeddings, training, and explanations."""

import itertools

import pytest
import torch
import torch.nn.functional as F

from rnnkit.models.classifier import POOLINGS, ClassifierConfig, SequenceClassifier
from rnnkit.nn import CELL_KINDS

V, C = 13, 3  # vocabulary and classes of the small models


def _model(cell="lstm", pooling="max", bidirectional=True, num_layers=1, **kwargs):
    config = ClassifierConfig(V, C, embedding_size=6, cell=cell, hidden_size=5,
                              num_layers=num_layers, bidirectional=bidirectional,
                              pooling=pooling, attention_size=4, **kwargs)
    return SequenceClassifier(config)


def _padded_batch(B=4, T=7):
    """Ids ``(B, T)`` with random (non-pad) ids everywhere, and lengths from 1 to T."""
    ids = torch.randint(2, V, (B, T))
    lengths = torch.tensor([T, 1, 3, 5][:B])
    return ids, lengths


# ------------------------------------------------------------------------------- forward
@pytest.mark.parametrize(("cell", "pooling", "bidirectional"),
                         list(itertools.product(CELL_KINDS, POOLINGS, (False, True))))
def test_shapes_and_loss(cell, pooling, bidirectional):
    model = _model(cell, pooling, bidirectional, num_layers=2)
    ids, lengths = _padded_batch()
    targets = torch.tensor([0, 2, 1, 1])
    logits, loss = model(ids, lengths)
    assert logits.shape == (4, C) and loss is None
    assert torch.isfinite(logits).all()
    logits, loss = model(ids, lengths, targets)
    assert loss.shape == () and torch.isfinite(loss)
    torch.testing.assert_close(loss, F.cross_entropy(logits, targets))
    loss.backward()
    for name, p in model.named_parameters():
        if name != "embedding.weight":  # pad rows aside, every weight takes part
            assert p.grad is not None and torch.isfinite(p.grad).all(), name
    features, weights = model.encode(ids, lengths)
    assert features.shape == (4, (2 if bidirectional else 1) * 5)
    assert (weights is None) == (pooling != "attention")


@pytest.mark.parametrize(("cell", "pooling", "bidirectional"), list(
    itertools.product(("lstm", "gru", "rnn_tanh"), POOLINGS, (False, True))))
def test_padded_batch_equals_each_sequence_alone(cell, pooling, bidirectional):
    model = _model(cell, pooling, bidirectional, num_layers=2, dropout=0.3).eval()
    ids, lengths = _padded_batch()
    batch_logits, _ = model(ids, lengths)
    for b in range(ids.shape[0]):
        alone, _ = model(ids[b:b + 1, :lengths[b]], lengths[b:b + 1])
        torch.testing.assert_close(batch_logits[b:b + 1], alone, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("pooling", POOLINGS)
def test_padding_tokens_never_change_the_output(pooling):
    model = _model(pooling=pooling).eval()
    ids, lengths = _padded_batch()
    reference, _ = model(ids, lengths)
    pad = torch.arange(ids.shape[1]) >= lengths.unsqueeze(1)  # (B, T) padded positions
    for _ in range(3):
        noisy = torch.where(pad, torch.randint(V, ids.shape), ids)
        logits, _ = model(noisy, lengths)
        torch.testing.assert_close(logits, reference, atol=1e-6, rtol=1e-6)


@pytest.mark.parametrize(("cell", "num_layers"), [("lstm", 1), ("gru", 2), ("lstm", 3)])
def test_last_pooling_is_the_final_states_of_both_directions(cell, num_layers):
    model = _model(cell, pooling="last", num_layers=num_layers).eval()
    ids, lengths = _padded_batch()
    out, _ = model.rnn(model.embedding(ids), lengths=lengths)  # (B, T, 2H)
    H = model.config.hidden_size
    features, _ = model.encode(ids, lengths)
    for b, n in enumerate(lengths.tolist()):
        # forward: after the sequence's own last step; backward: after reading step 0
        expected = torch.cat([out[b, n - 1, :H], out[b, 0, H:]])
        torch.testing.assert_close(features[b], expected)


def test_mean_and_max_pooling_follow_their_definitions():
    ids, lengths = _padded_batch()
    for pooling in ("mean", "max"):
        model = _model(pooling=pooling).eval()
        out, _ = model.rnn(model.embedding(ids), lengths=lengths)
        features, _ = model.encode(ids, lengths)
        for b, n in enumerate(lengths.tolist()):
            real = out[b, :n]  # (n, 2H)
            expected = real.mean(0) if pooling == "mean" else real.max(0).values
            torch.testing.assert_close(features[b], expected)


def test_attention_weights_are_a_distribution_over_the_real_steps():
    model = _model(pooling="attention")
    ids, lengths = _padded_batch()
    model.train()
    weights = model.attention_weights(ids, lengths)
    assert model.training  # mode restored
    assert weights.shape == ids.shape
    pad = torch.arange(ids.shape[1]) >= lengths.unsqueeze(1)
    assert (weights[pad] == 0).all()
    torch.testing.assert_close(weights.sum(1), torch.ones(4))
    with pytest.raises(ValueError, match="pooling='attention'"):
        _model(pooling="max").attention_weights(ids, lengths)


def test_predict_proba_is_the_softmax_in_eval_mode_and_restores_the_mode():
    model = _model(dropout=0.5).train()
    ids, lengths = _padded_batch()
    probs = model.predict_proba(ids, lengths)
    assert model.training
    assert not probs.requires_grad
    model.eval()
    torch.testing.assert_close(probs, model(ids, lengths)[0].softmax(-1))
    torch.testing.assert_close(probs.sum(-1), torch.ones(4))
    assert torch.equal(model.predict(ids, lengths), probs.argmax(-1))


def test_lengths_default_to_full_sequences():
    model = _model().eval()
    ids = torch.randint(V, (3, 6))
    torch.testing.assert_close(model(ids)[0], model(ids, torch.full((3,), 6))[0])


def test_word_dropout_reads_tokens_as_unk_in_training_only():
    model = _model(dropout=0.0, word_dropout=0.5, unk_index=1)
    ids = torch.randint(2, V, (64, 20))  # no <unk> among them
    seen = []
    model.embedding.register_forward_hook(lambda module, args, out: seen.append(args[0]))
    model.train()(ids)
    dropped = seen[-1] != ids
    assert torch.equal(seen[-1][dropped], torch.ones(int(dropped.sum()), dtype=torch.long))
    assert 0.4 < dropped.float().mean() < 0.6  # 1280 tokens at p = 0.5
    model.eval()(ids)
    assert torch.equal(seen[-1], ids)  # evaluation reads every word


def test_without_word_dropout_training_reads_the_ids_unchanged():
    model = _model(dropout=0.0, word_dropout=0.0).train()
    ids, lengths = _padded_batch()
    torch.testing.assert_close(model(ids, lengths)[0], model.eval()(ids, lengths)[0])


# ---------------------------------------------------------------------------- embeddings
def test_pretrained_embedding_is_copied_and_frozen():
    matrix = torch.randn(V, 6)
    config = ClassifierConfig(V, C, embedding_size=6, hidden_size=5, freeze_embedding=True)
    model = SequenceClassifier(config, embedding=matrix)
    torch.testing.assert_close(model.embedding.weight, matrix)
    assert model.embedding.weight.data_ptr() != matrix.data_ptr()  # a copy
    assert not model.embedding.weight.requires_grad
    ids, lengths = _padded_batch()
    before = model.embedding.weight.clone()
    optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.5)
    head_before = model.head.weight.clone()
    _, loss = model(ids, lengths, torch.tensor([0, 1, 2, 0]))
    loss.backward()
    assert model.embedding.weight.grad is None
    assert all(p.grad is not None for n, p in model.named_parameters() if n != "embedding.weight")
    optimizer.step()
    assert torch.equal(model.embedding.weight, before)
    assert not torch.equal(model.head.weight, head_before)


def test_unfrozen_pretrained_embedding_trains():
    config = ClassifierConfig(V, C, embedding_size=6, hidden_size=5)
    model = SequenceClassifier(config, embedding=torch.randn(V, 6))
    ids, lengths = _padded_batch()
    model(ids, lengths, torch.tensor([0, 1, 2, 0]))[1].backward()
    assert model.embedding.weight.grad is not None


def test_pretrained_embedding_of_the_wrong_shape_is_an_error():
    config = ClassifierConfig(V, C, embedding_size=6, hidden_size=5)
    with pytest.raises(ValueError, match=r"\(V, E\) = \(13, 6\).*got \(13, 7\)"):
        SequenceClassifier(config, embedding=torch.randn(V, 7))
    with pytest.raises(ValueError, match="float tensor"):
        SequenceClassifier(config, embedding=torch.zeros(V, 6, dtype=torch.long))


# ------------------------------------------------------------------------------ training
def _toy_task(n=48, T=6):
    """Label 1 iff token 5 occurs among a sequence's real steps; ids 2..12, lengths 2..T."""
    generator = torch.Generator().manual_seed(1)
    ids = torch.randint(6, V, (n, T), generator=generator)  # no 5 yet
    lengths = torch.randint(2, T + 1, (n,), generator=generator)
    labels = torch.arange(n) % 2
    for i in range(n):
        if labels[i]:
            ids[i, torch.randint(int(lengths[i]), (1,), generator=generator)] = 5
        ids[i, lengths[i]:] = 0  # padding
    return ids, lengths, labels


def _train_toy(pooling="max", steps=150):
    config = ClassifierConfig(V, 2, embedding_size=8, hidden_size=16, pooling=pooling,
                              dropout=0.0, word_dropout=0.0, attention_size=8)
    model = SequenceClassifier(config)
    ids, lengths, labels = _toy_task()
    optimizer = torch.optim.Adam(model.parameters(), lr=0.03)
    for _ in range(steps):
        _, loss = model(ids, lengths, labels)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if loss.item() < 0.01:
            break
    return model, (ids, lengths, labels)


@pytest.mark.parametrize("pooling", POOLINGS)
def test_overfits_a_toy_task(pooling):
    model, (ids, lengths, labels) = _train_toy(pooling)
    assert torch.equal(model.predict(ids, lengths), labels)


# -------------------------------------------------------------------------- explanations
def test_grad_x_input_equals_a_manual_autograd_computation():
    model = _model(pooling="attention").eval()
    ids = torch.randint(2, V, (7,))
    x = model.embedding(ids.unsqueeze(0)).detach().requires_grad_(True)  # (1, T, E)
    out, _ = model.rnn(x)
    pooled, _ = model.attention(out, torch.ones(1, 7, dtype=torch.bool))
    logits = model.head(pooled)
    target = int(logits.argmax())
    logits[0, target].backward()
    expected = (x.grad * x).sum(-1)[0]
    torch.testing.assert_close(model.explain(ids), expected)
    torch.testing.assert_close(model.explain(ids.unsqueeze(0), target=target), expected)
    other = (target + 1) % C
    assert not torch.allclose(model.explain(ids, target=other), expected)


def test_occlusion_is_the_drop_in_log_probability():
    model = _model().eval()
    ids = torch.randint(2, V, (5,))
    scores = model.explain(ids, method="occlusion", target=2)
    full = model(ids.unsqueeze(0))[0].log_softmax(-1)[0, 2]
    for t in range(5):
        replaced = ids.clone()
        replaced[t] = 1
        removed = torch.cat([ids[:t], ids[t + 1:]])
        for occluded, unk in ((replaced, 1), (removed, None)):
            score = model.explain(ids, method="occlusion", target=2, unk_index=unk)[t]
            expected = full - model(occluded.unsqueeze(0))[0].log_softmax(-1)[0, 2]
            torch.testing.assert_close(score, expected, atol=1e-6, rtol=1e-5)
        torch.testing.assert_close(scores[t], full - model(replaced.unsqueeze(0))[0]
                                   .log_softmax(-1)[0, 2], atol=1e-6, rtol=1e-5)


@pytest.mark.parametrize("unk_index", [1, None])
def test_occlusion_finds_the_decisive_token(unk_index):
    model, (ids, lengths, labels) = _train_toy()
    checked = 0
    for i in range(len(ids)):
        if labels[i] == 1:
            sentence = ids[i, :lengths[i]]
            scores = model.explain(sentence, method="occlusion", unk_index=unk_index)
            assert scores.shape == sentence.shape
            assert sentence[scores.argmax()] == 5
            checked += 1
    assert checked > 10


@pytest.mark.parametrize("method", ["grad_x_input", "occlusion"])
@pytest.mark.parametrize("frozen", [False, True])
def test_explain_leaves_mode_flags_and_grads_as_they_were(method, frozen):
    config = ClassifierConfig(V, C, embedding_size=6, hidden_size=5, freeze_embedding=frozen)
    model = SequenceClassifier(config).train()
    model.rnn.eval()  # a mixed state, to be kept as it is
    flags = {n: p.requires_grad for n, p in model.named_parameters()}
    ids = torch.randint(2, V, (6,))
    scores = model.explain(ids, method=method)
    assert scores.shape == (6,) and torch.isfinite(scores).all() and scores.abs().sum() > 0
    assert not scores.requires_grad
    assert model.training and model.drop.training and not model.rnn.training
    assert {n: p.requires_grad for n, p in model.named_parameters()} == flags
    assert all(p.grad is None for p in model.parameters())
    with torch.no_grad():  # works under no_grad too
        torch.testing.assert_close(model.explain(ids, method=method), scores)


def test_explain_rejects_bad_arguments():
    model = _model()
    ids = torch.randint(2, V, (6,))
    with pytest.raises(ValueError, match="unknown method"):
        model.explain(ids, method="lime")
    with pytest.raises(ValueError, match="one sequence"):
        model.explain(ids.view(2, 3))
    with pytest.raises(ValueError, match=r"target must be a class id in \[0, 3\)"):
        model.explain(ids, target=3)
    with pytest.raises(ValueError, match="unk_index"):
        model.explain(ids, method="occlusion", unk_index=V)
    with pytest.raises(ValueError, match="at least two tokens"):
        model.explain(ids[:1], method="occlusion", unk_index=None)


# -------------------------------------------------------------------------------- errors
@pytest.mark.parametrize(("kwargs", "match"), [
    ({"vocab_size": 0}, "vocab_size must be a positive integer"),
    ({"num_classes": 1}, "num_classes must be at least 2"),
    ({"cell": "transformer"}, "unknown cell 'transformer'"),
    ({"pooling": "sum"}, "unknown pooling 'sum'"),
    ({"dropout": 1.0}, r"dropout must be in \[0, 1\)"),
    ({"bidirectional": 1}, "bidirectional must be True or False"),
    ({"padding_index": 13}, r"padding_index must be an id in \[0, 13\)"),
    ({"unk_index": -1}, r"unk_index must be an id in \[0, 13\)"),
    ({"word_dropout": 1.0}, r"word_dropout must be in \[0, 1\)"),
    ({"hidden_size": 2.0}, "hidden_size must be a positive integer"),
])
def test_config_is_checked(kwargs, match):
    fields = {"vocab_size": V, "num_classes": C, **kwargs}
    with pytest.raises(ValueError, match=match):
        ClassifierConfig(**fields)


def test_sizes_from_the_data_are_checked_when_the_model_is_built():
    config = ClassifierConfig(embedding_size=6, hidden_size=5)  # a task's, before the data
    with pytest.raises(ValueError, match="vocab_size is not set"):
        SequenceClassifier(config)
    with pytest.raises(ValueError, match="num_classes is not set"):
        SequenceClassifier(ClassifierConfig(vocab_size=V, embedding_size=6, hidden_size=5))


def test_bad_inputs_say_what_was_expected():
    """Types and shapes here; the lengths' values by the Recurrent layer; the ids' and targets'
    values where they are encoded (tests/test_checks.py) and by explain()."""
    model = _model()
    ids, lengths = _padded_batch()
    with pytest.raises(ValueError, match=r"ids in \[0, 13\)"):
        model.explain(ids[:1] + V)
    with pytest.raises(ValueError, match=r"shape \(B, T\)"):
        model(ids[0], lengths)
    with pytest.raises(ValueError, match=r"every length in \[1, T=7\]"):
        model(ids, lengths + 1)
    with pytest.raises(ValueError, match="lengths as 4 integers"):
        model(ids, lengths[:3])
    with pytest.raises(ValueError, match="4 integer class ids"):
        model(ids, lengths, torch.zeros(4))
