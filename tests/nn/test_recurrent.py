"""``Recurrent``: every engine against torch.nn, against the reference loop and against itself."""

from __future__ import annotations

import copy
import itertools

import pytest
import torch
from torch import Tensor, nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from rnnkit.nn import CELL_KINDS, ENGINES, LSTMState, Recurrent

B, T, I, H, K = 4, 5, 3, 4, 2  # batch, steps, input, hidden, context: tiny on purpose
LENGTHS = (3, 5, 1, 5)  # unsorted, with a tie, the shortest (1) and the longest (T)
DTYPE = torch.float64

TORCH_CELLS = ("rnn_tanh", "rnn_relu", "lstm", "gru")  # the kinds torch.nn has
FUSED = ("scan", "torch", "auto")  # the fast paths, compared against the loop


# ----------------------------------------------------------------------------------- helpers
def torch_rnn(cell: str, num_layers: int = 1, bidirectional: bool = False, *,
              batch_first: bool = True, bias: bool = True, input_size: int = I,
              dtype: torch.dtype = DTYPE) -> nn.RNNBase:
    """torch.nn's layer for ``cell`` (random weights, float64 by default)."""
    kwargs = dict(num_layers=num_layers, bias=bias, batch_first=batch_first,
                  bidirectional=bidirectional, dtype=dtype)
    if cell.startswith("rnn_"):
        return nn.RNN(input_size, H, nonlinearity=cell[4:], **kwargs)
    return {"lstm": nn.LSTM, "gru": nn.GRU}[cell](input_size, H, **kwargs)


def recurrent(cell: str, num_layers: int = 1, bidirectional: bool = False, **kwargs
              ) -> Recurrent:
    """A float64 ``Recurrent`` with random weights; norm gains and shifts randomised too."""
    layer = Recurrent(cell, kwargs.pop("input_size", I), H, num_layers,
                      bidirectional=bidirectional, **kwargs).to(DTYPE)
    if cell == "layernorm_lstm":
        with torch.no_grad():
            for name, p in layer.named_parameters():
                if name.endswith("_weight"):  # the norms' gains
                    p.uniform_(0.5, 1.5)
                elif "ln_" in name or "gate_bias" in name:  # their shifts, the gate bias
                    p.normal_(0.0, 0.3)
    return layer


def supports(cell: str, engine: str, *, recurrent_dropout: bool = False) -> bool:
    """Whether ``engine`` can run this configuration: only "torch" cannot run them all (it has
    torch.nn's cells, conditioned or not, without recurrent dropout in training)."""
    return engine != "torch" or (cell in TORCH_CELLS and not recurrent_dropout)


def random_state(layer: Recurrent):
    """A random ``(L*D, B, H)`` state (an LSTMState of two for the LSTMs), leaves with grad."""
    def part() -> Tensor:
        return torch.randn(len(layer.cells), B, H, dtype=DTYPE, requires_grad=True)
    return LSTMState(part(), part()) if layer.cells[0].has_cell_state else part()


def parts(state) -> tuple[Tensor, ...]:
    """A state as a tuple of tensors: ``(h,)`` or ``(h, c)``."""
    if state is None:
        return ()
    return tuple(state) if isinstance(state, tuple) else (state,)


def with_parts(state, transform):
    """The same kind of state with ``transform`` applied to each tensor."""
    if isinstance(state, tuple):
        return LSTMState(*(transform(s) for s in state))
    return transform(state)


def torch_names(layer: Recurrent) -> dict[str, nn.Parameter]:
    """Our parameters under torch.nn's names (``weight_ih_l0``, ``bias_hh_l1_reverse``...)."""
    named = {}
    for k, cell in enumerate(layer.cells):
        level, direction = divmod(k, layer.num_directions)
        suffix = f"_l{level}" + ("_reverse" if direction else "")
        for name, p in cell.named_parameters():
            named[name + suffix] = p
    return named


def run_torch(module: nn.RNNBase, x: Tensor, state, lengths) -> tuple[Tensor, tuple]:
    """torch.nn's batch-first layer, packed when there are lengths: ``(out, state parts)``."""
    hx = None if state is None else (tuple(state) if isinstance(state, tuple) else state)
    if lengths is None:
        out, final = module(x, hx)
    else:
        packed = pack_padded_sequence(x, torch.tensor(lengths), batch_first=True,
                                      enforce_sorted=False)
        out, final = module(packed, hx)
        out, _ = pad_packed_sequence(out, batch_first=True, total_length=x.shape[1])
    return out, parts(final)


def run_ours(layer: Recurrent, x: Tensor, state=None, lengths=None, context=None,
             seed: int | None = None) -> tuple[Tensor, tuple]:
    """``layer`` over ``x``: ``(out, state parts)``; ``seed`` reseeds first (same masks)."""
    if seed is not None:
        torch.manual_seed(seed)
    out, final = layer(x, state, lengths=None if lengths is None else torch.tensor(lengths),
                       context=context)
    return out, parts(final)


def named_grads(outputs: tuple[Tensor, ...], cotangents: list[Tensor],
                inputs: dict[str, Tensor]) -> dict[str, Tensor]:
    """``d <cotangents, outputs> / d input`` for each named input (each must be reached)."""
    found = torch.autograd.grad(outputs, list(inputs.values()), cotangents)
    return dict(zip(inputs, found, strict=True))


def leaves(x: Tensor, state, context: Tensor | None = None) -> dict[str, Tensor]:
    """The non-parameter inputs a gradient is taken for, by name."""
    named = {"x": x, **{f"state[{i}]": s for i, s in enumerate(parts(state))}}
    if context is not None:
        named["context"] = context
    return named


def random_like(tensors) -> list[Tensor]:
    """Random cotangents, one per output: every output element weighs in the loss."""
    return [torch.randn_like(t) for t in tensors]


def inputs_for(layer: Recurrent, *, with_state: bool = True, conditioned: bool = False):
    """``x`` (B, T, I), a state (or None) and a context (B, K) (or None), leaves with grad."""
    x = torch.randn(B, T, layer.input_size, dtype=DTYPE, requires_grad=True)
    state = random_state(layer) if with_state else None
    context = None
    if conditioned:
        context = torch.randn(B, layer.context_size, dtype=DTYPE, requires_grad=True)
    return x, state, context


# ------------------------------------------------------------------- against torch.nn
@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("with_state", [False, True], ids=["zero_state", "state"])
@pytest.mark.parametrize("with_lengths", [False, True], ids=["full", "lengths"])
@pytest.mark.parametrize("bidirectional", [False, True], ids=["uni", "bi"])
@pytest.mark.parametrize("num_layers", [1, 2, 3])
@pytest.mark.parametrize("cell", TORCH_CELLS)
def test_matches_torch_nn(cell, num_layers, bidirectional, with_lengths, with_state, engine):
    """Every engine gives torch.nn's outputs, final states and gradients (input, initial state,
    every parameter); with lengths, torch's reference is the packed sequence, whose final state
    is each sequence's state at its own last step."""
    reference = torch_rnn(cell, num_layers, bidirectional)
    layer = Recurrent.from_torch(reference)
    layer.engine = engine
    x, state, _ = inputs_for(layer, with_state=with_state)
    lengths = LENGTHS if with_lengths else None

    out, final = run_ours(layer, x, state, lengths)
    expected_out, expected_final = run_torch(reference, x, state, lengths)
    torch.testing.assert_close(out, expected_out)
    torch.testing.assert_close(final, expected_final)

    cotangents = random_like((out, *final))
    got = named_grads((out, *final), cotangents, {**leaves(x, state), **torch_names(layer)})
    want = named_grads((expected_out, *expected_final), cotangents,
                       {**leaves(x, state), **dict(reference.named_parameters())})
    torch.testing.assert_close(got, want)


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("cell", TORCH_CELLS)
def test_matches_torch_nn_without_bias(cell, engine):
    """``bias=False`` (no ``bias_ih``/``bias_hh``) in every engine equals torch.nn's."""
    reference = torch_rnn(cell, 2, True, bias=False)
    layer = Recurrent.from_torch(reference)
    layer.engine = engine
    assert not any("bias" in name for name, _ in layer.named_parameters())
    x, state, _ = inputs_for(layer)

    out, final = run_ours(layer, x, state, LENGTHS)
    expected_out, expected_final = run_torch(reference, x, state, LENGTHS)
    torch.testing.assert_close((out, *final), (expected_out, *expected_final))
    cotangents = random_like((out, *final))
    torch.testing.assert_close(
        named_grads((out, *final), cotangents, {**leaves(x, state), **torch_names(layer)}),
        named_grads((expected_out, *expected_final), cotangents,
                    {**leaves(x, state), **dict(reference.named_parameters())}))


@pytest.mark.parametrize(("cell", "recurrent_dropout", "expected"), [
    ("lstm", 0.0, "torch"), ("gru", 0.0, "scan"), ("rnn_tanh", 0.0, "scan"),
    ("rnn_relu", 0.0, "scan"), ("layernorm_lstm", 0.0, "scan"), ("lstm", 0.3, "scan"),
])
def test_auto_engine_on_cpu(cell, recurrent_dropout, expected):
    """``engine="auto"`` on the CPU picks torch's fused kernel for the LSTM (the one oneDNN fuses)
    and the scan for the rest and for whatever torch cannot run (recurrent dropout in
    training; in eval it does not apply); an explicit engine is used as given."""
    cpu = torch.device("cpu")
    layer = Recurrent(cell, I, H, recurrent_dropout=recurrent_dropout).train()
    assert layer.engine_for(cpu) == expected
    assert layer.eval().engine_for(cpu) == ("torch" if cell == "lstm" else "scan")
    for engine in [engine for engine in ENGINES if engine != "auto" and supports(cell, engine)]:
        layer.engine = engine
        assert layer.engine_for(cpu) == engine


# ---------------------------------------------------------------------------- context
def widened(layer: Recurrent) -> Recurrent:
    """A 1-level layer without context whose input is ``[x, v]``: ``weight_ih`` of each
    direction is ``[weight_ih, weight_ch]``, every other weight copied; run by the loop."""
    wide = recurrent(layer.cell, 1, layer.bidirectional, input_size=I + layer.context_size,
                     bias=layer.bias, engine="loop")
    with torch.no_grad():
        for cell, wide_cell in zip(layer.cells, wide.cells, strict=True):
            for name, p in wide_cell.named_parameters():
                p.copy_(torch.cat([cell.weight_ih, cell.weight_ch], 1) if name == "weight_ih"
                        else getattr(cell, name))
    return wide


# (cell, engine, K): every engine with a context narrower than the batch; the torch engine also
# with a wider one, which it passes as per-sequence one-hot columns instead of v itself
CONTEXT_CASES = [(cell, engine, K) for cell, engine in itertools.product(CELL_KINDS, ENGINES)
                 if supports(cell, engine)]
CONTEXT_CASES += [(cell, "torch", B + 2) for cell in TORCH_CELLS]
CONTEXT_IDS = [f"{cell}-{engine}-K{k}" for cell, engine, k in CONTEXT_CASES]


@pytest.mark.parametrize("with_lengths", [False, True], ids=["full", "lengths"])
@pytest.mark.parametrize("bidirectional", [False, True], ids=["uni", "bi"])
@pytest.mark.parametrize(("cell", "engine", "context_size"), CONTEXT_CASES, ids=CONTEXT_IDS)
def test_context_equals_widened_input(cell, engine, context_size, bidirectional, with_lengths):
    """One level conditioned on ``v`` equals the unconditioned level fed ``[x_t, v]`` at every
    step, with ``weight_ih`` widened by ``weight_ch``: outputs, states and the gradients of
    x, v, the state and every weight (``weight_ch``'s is the widened columns')."""
    layer = recurrent(cell, 1, bidirectional, context_size=context_size, engine=engine)
    wide = widened(layer)
    x, state, v = inputs_for(layer, conditioned=True)
    lengths = LENGTHS if with_lengths else None

    out, final = run_ours(layer, x, state, lengths, context=v)
    xv = torch.cat([x, v.unsqueeze(1).expand(B, T, context_size)], dim=2)
    expected_out, expected_final = run_ours(wide, xv, state, lengths)
    torch.testing.assert_close((out, *final), (expected_out, *expected_final))

    cotangents = random_like((out, *final))
    got = named_grads((out, *final), cotangents,
                      {**leaves(x, state, v), **dict(layer.named_parameters())})
    want = named_grads((expected_out, *expected_final), cotangents,
                       {**leaves(x, state, v), **dict(wide.named_parameters())})
    for k in range(len(layer.cells)):
        weight_ih = want.pop(f"cells.{k}.weight_ih")
        want[f"cells.{k}.weight_ih"], want[f"cells.{k}.weight_ch"] = weight_ih.split(
            [I, context_size], 1)
    torch.testing.assert_close(got, want)


@pytest.mark.parametrize("bias", [True, False], ids=["bias", "no_bias"])
@pytest.mark.parametrize(("num_layers", "bidirectional"), [(2, True), (3, False)],
                         ids=["2bi", "3uni"])
@pytest.mark.parametrize(("cell", "engine", "context_size"),
                         [case for case in CONTEXT_CASES if case[1] != "loop"],
                         ids=[i for i, case in zip(CONTEXT_IDS, CONTEXT_CASES, strict=True)
                              if case[1] != "loop"])
def test_context_deep_matches_loop(cell, engine, context_size, num_layers, bidirectional, bias):
    """Deep conditioned layers (the context feeds every level): the fast engines equal the
    reference loop in outputs, states and every gradient, with lengths and a given state."""
    layer = recurrent(cell, num_layers, bidirectional, context_size=context_size, bias=bias,
                      engine=engine)
    loop = copy.deepcopy(layer)
    loop.engine = "loop"
    x, state, v = inputs_for(layer, conditioned=True)
    assert_same_as_loop(layer, loop, x, state, v, LENGTHS)


def assert_same_as_loop(layer, loop, x, state, context, lengths, seed=None):
    """``layer`` and ``loop`` (its copy with engine="loop") agree on outputs, final states and
    the gradients of x, the state, the context and every parameter; returns the output."""
    out, final = run_ours(layer, x, state, lengths, context, seed)
    expected_out, expected_final = run_ours(loop, x, state, lengths, context, seed)
    torch.testing.assert_close((out, *final), (expected_out, *expected_final))
    cotangents = random_like((out, *final))
    torch.testing.assert_close(
        named_grads((out, *final), cotangents,
                    {**leaves(x, state, context), **dict(layer.named_parameters())}),
        named_grads((expected_out, *expected_final), cotangents,
                    {**leaves(x, state, context), **dict(loop.named_parameters())}))
    return out


# ------------------------------------------------------------------------------ dropout
NOISE = {"dropout": dict(dropout=0.4), "recurrent": dict(recurrent_dropout=0.5),
         "both": dict(dropout=0.4, recurrent_dropout=0.5)}
DROPOUT_CASES = [
    (cell, noise, engine) for cell, noise, engine in itertools.product(CELL_KINDS, NOISE, FUSED)
    if supports(cell, engine, recurrent_dropout="recurrent_dropout" in NOISE[noise])]


@pytest.mark.parametrize(("num_layers", "bidirectional"), [(2, True), (3, False)],
                         ids=["2bi", "3uni"])
@pytest.mark.parametrize(("cell", "noise", "engine"), DROPOUT_CASES)
def test_dropout_same_masks_in_every_engine(cell, noise, engine, num_layers, bidirectional):
    """In training, with the same seed before each call, every engine draws the same inter-level
    and recurrent dropout masks as the loop and gives the same outputs, states and gradients;
    the masks do change the result (the comparison is not of noise-free runs)."""
    layer = recurrent(cell, num_layers, bidirectional, engine=engine, **NOISE[noise]).train()
    loop = copy.deepcopy(layer)
    loop.engine = "loop"
    x, state, _ = inputs_for(layer)
    out = assert_same_as_loop(layer, loop, x, state, None, LENGTHS, seed=7)

    with torch.no_grad():
        clean, _ = run_ours(layer.eval(), x, state, LENGTHS)
        other_seed, _ = run_ours(layer.train(), x, state, LENGTHS, seed=8)
    assert not torch.allclose(out, clean), "dropout had no effect"
    assert not torch.allclose(out, other_seed), "the masks did not depend on the seed"


# ------------------------------------------------------------------------------ padding
PADDING_CASES = [
    (cell, engine, conditioned)
    for cell, engine, conditioned in itertools.product(CELL_KINDS, ENGINES, [False, True])
    if supports(cell, engine)]


@pytest.mark.parametrize(("cell", "engine", "conditioned"), PADDING_CASES)
def test_padded_batch_equals_sequences_alone(cell, engine, conditioned):
    """A padded batch with lengths is the same as running each sequence alone (batch of one,
    its true length, no padding): outputs over its real steps, final state (both directions),
    zeros at padded steps, and gradients (per-sequence ones, and parameter ones summed). The
    padding values never matter: garbage there changes nothing and gets zero gradient."""
    layer = recurrent(cell, 2, True, context_size=K if conditioned else 0, engine=engine)
    x, state, v = inputs_for(layer, conditioned=conditioned)
    pad = torch.zeros(B, T, 1, dtype=torch.bool)
    for b, length in enumerate(LENGTHS):
        pad[b, length:] = True
    with torch.no_grad():
        x_clean = x.masked_fill(pad, 0.0)
        garbage = torch.where(pad, 1e3 * torch.randn_like(x), x)
    x_clean.requires_grad_()
    garbage.requires_grad_()
    params = dict(layer.named_parameters())

    out, final = run_ours(layer, garbage, state, LENGTHS, v)
    cotangents = random_like((out, *final))
    grads = named_grads((out, *final), cotangents, {**leaves(garbage, state, v), **params})
    assert torch.all(out.masked_select(pad) == 0), "outputs past a sequence's end must be 0"
    assert torch.all(grads["x"].masked_select(pad) == 0), "padding must get no gradient"

    clean_out, clean_final = run_ours(layer, x_clean, state, LENGTHS, v)
    torch.testing.assert_close((clean_out, *clean_final), (out, *final))
    torch.testing.assert_close(
        named_grads((clean_out, *clean_final), cotangents,
                    {**leaves(x_clean, state, v), **params}), grads)

    summed = dict.fromkeys(params, 0.0)
    for b, length in enumerate(LENGTHS):
        x_b = x_clean.detach()[b:b + 1, :length].requires_grad_()
        state_b = with_parts(state, lambda s, b=b: s.detach()[:, b:b + 1].requires_grad_())
        v_b = None if v is None else v.detach()[b:b + 1].requires_grad_()
        out_b, final_b = run_ours(layer, x_b, state_b, context=v_b)
        torch.testing.assert_close(out_b[0], out[b, :length])
        torch.testing.assert_close(final_b, tuple(f[:, b:b + 1] for f in final))

        cotangents_b = [cotangents[0][b:b + 1, :length],
                        *(c[:, b:b + 1] for c in cotangents[1:])]
        grads_b = named_grads((out_b, *final_b), cotangents_b,
                              {**leaves(x_b, state_b, v_b), **params})
        torch.testing.assert_close(grads_b["x"][0], grads["x"][b, :length])
        for i in range(len(final)):
            torch.testing.assert_close(grads_b[f"state[{i}]"][:, 0],
                                       grads[f"state[{i}]"][:, b])
        if v is not None:
            torch.testing.assert_close(grads_b["context"][0], grads["context"][b])
        for name in params:
            summed[name] = summed[name] + grads_b[name]
    torch.testing.assert_close(summed, {name: grads[name] for name in params})


# ---------------------------------------------------------------------- torch.nn interop
@pytest.mark.parametrize("bias", [True, False], ids=["bias", "no_bias"])
@pytest.mark.parametrize(("num_layers", "bidirectional"), [(1, False), (2, True), (3, True)],
                         ids=["1uni", "2bi", "3bi"])
@pytest.mark.parametrize("batch_first", [True, False], ids=["batch_first", "time_first"])
@pytest.mark.parametrize("cell", TORCH_CELLS)
def test_from_torch_to_torch_round_trip(cell, batch_first, num_layers, bidirectional, bias):
    """``from_torch`` copies a torch.nn layer (batch-first or not) into a batch-first
    ``Recurrent`` with the same numbers on the transposed input; ``to_torch`` gives back an
    equivalent module with identical weights, for either layout."""
    module = torch_rnn(cell, num_layers, bidirectional, batch_first=batch_first, bias=bias)
    module.eval()
    layer = Recurrent.from_torch(module)
    assert (layer.cell, layer.num_layers, layer.bidirectional, layer.bias) == (
        cell, num_layers, bidirectional, bias)
    assert not layer.training, "from_torch keeps the module's train/eval mode"

    x, state, _ = inputs_for(layer)
    x_module = x if batch_first else x.transpose(0, 1)
    hx = tuple(state) if isinstance(state, tuple) else state
    expected_out, expected_final = module(x_module, hx)
    out, final = layer(x, state)
    torch.testing.assert_close(out if batch_first else out.transpose(0, 1), expected_out)
    torch.testing.assert_close(parts(final), parts(expected_final))

    with torch.no_grad():  # a copy, not shared storage
        for p in module.parameters():
            p.add_(1.0)
    torch.testing.assert_close(layer(x, state)[0], out)

    for layout in (True, False):
        exported = layer.to_torch(batch_first=layout)
        assert type(exported) is type(module) and exported.batch_first == layout
        assert not exported.training
        assert (exported.num_layers, exported.bidirectional, exported.bias) == (
            num_layers, bidirectional, bias)
        if cell.startswith("rnn_"):
            assert exported.nonlinearity == cell[4:]
        assert list(exported.state_dict()) == list(torch_names(layer))
        for name, p in torch_names(layer).items():
            assert torch.equal(getattr(exported, name), p), name
        exported_out, exported_final = exported(x if layout else x.transpose(0, 1), hx)
        torch.testing.assert_close(exported_out if layout else exported_out.transpose(0, 1),
                                   out)
        torch.testing.assert_close(parts(exported_final), parts(final))


# -------------------------------------------------------------------------------- step()
@pytest.mark.parametrize("conditioned", [False, True], ids=["plain", "context"])
@pytest.mark.parametrize("num_layers", [1, 3])
@pytest.mark.parametrize("cell", CELL_KINDS)
def test_step_equals_forward(cell, num_layers, conditioned):
    """In eval mode, ``step()`` called T times (carrying its state) gives ``forward()``'s
    outputs at every step and its final state, from a given initial state."""
    noise = dict(dropout=0.3, recurrent_dropout=0.3) if num_layers > 1 else {}
    layer = recurrent(cell, num_layers, context_size=K if conditioned else 0, **noise).eval()
    x, state, v = inputs_for(layer, conditioned=conditioned)
    with torch.no_grad():
        out, final = layer(x, state, context=v)
        carried = state
        for t in range(T):
            h, carried = layer.step(x[:, t], carried, context=v)
            torch.testing.assert_close(h, out[:, t], msg=lambda m, t=t: f"step {t}: {m}")
    torch.testing.assert_close(parts(carried), parts(final))


def test_step_from_zero_state() -> None:
    """``step(x_t)`` without a state starts from zeros, as ``forward`` does."""
    layer = recurrent("lstm", 2).eval()
    x = torch.randn(B, 1, I, dtype=DTYPE)
    out, final = layer(x)
    h, state = layer.step(x[:, 0])
    torch.testing.assert_close((h, *state), (out[:, 0], *final))


# ---------------------------------------------------------------------------- inference
NO_GRAD_CASES = [(cell, engine) for cell, engine in itertools.product(CELL_KINDS, FUSED)
                 if supports(cell, engine)]


@pytest.mark.parametrize("with_lengths", [False, True], ids=["full", "lengths"])
@pytest.mark.parametrize(("cell", "engine"), NO_GRAD_CASES)
def test_no_grad_gives_the_same_numbers(cell, engine, with_lengths):
    """Under ``torch.no_grad()`` (the engines' inference paths) the outputs and final states are
    those of a run with autograd, and nothing requires grad."""
    layer = recurrent(cell, 2, True, engine=engine)
    x, state, _ = inputs_for(layer)
    lengths = LENGTHS if with_lengths else None
    expected = run_ours(layer, x, state, lengths)
    with torch.no_grad():
        out, final = run_ours(layer, x, state, lengths)
    assert not any(t.requires_grad for t in (out, *final))
    torch.testing.assert_close((out, *final), (expected[0], *expected[1]))


def test_inference_mode_matches() -> None:
    """``torch.inference_mode()`` works too, with the same numbers."""
    layer = recurrent("gru", 2, True, engine="scan")
    x, state, _ = inputs_for(layer)
    expected, _ = run_ours(layer, x, state, LENGTHS)
    with torch.inference_mode():
        out, _ = run_ours(layer, x, state, LENGTHS)
    torch.testing.assert_close(out, expected)


# ------------------------------------------------------------------------ partial freeze
FREEZE_CASES = [(cell, engine) for cell, engine in itertools.product(CELL_KINDS, FUSED)
                if supports(cell, engine)]


@pytest.mark.parametrize(("cell", "engine"), FREEZE_CASES)
def test_training_one_parameter_alone(cell, engine):
    """With every other weight frozen and inputs that need no gradient (fine-tuning one
    tensor, e.g. only the biases or only the norms), each parameter of a conditioned
    bidirectional layer still gets the loop's gradient: the engines must notice that any of
    their inputs requires grad."""
    layer = recurrent(cell, 1, True, context_size=K, engine=engine)
    loop = copy.deepcopy(layer)
    loop.engine = "loop"
    x, _, _ = inputs_for(layer, with_state=False)
    x, v = x.detach(), torch.randn(B, K, dtype=DTYPE)
    failures = []
    for name in dict(layer.named_parameters()):
        for model in (layer, loop):
            for other, p in model.named_parameters():
                p.requires_grad_(other == name)
        expected, _ = run_ours(loop, x, lengths=LENGTHS, context=v)
        (want,) = torch.autograd.grad(expected.sum(), [dict(loop.named_parameters())[name]])
        try:
            out, _ = run_ours(layer, x, lengths=LENGTHS, context=v)
            (got,) = torch.autograd.grad(out.sum(), [dict(layer.named_parameters())[name]])
            torch.testing.assert_close(got, want)
        except (RuntimeError, AssertionError) as error:
            failures.append(f"{name}: {type(error).__name__}: {str(error).splitlines()[0]}")
    assert not failures, "\n".join(failures)


# ------------------------------------------------------------------------------- float32
@pytest.mark.parametrize(("cell", "engine"), [(cell, engine) for cell in CELL_KINDS
                                            for engine in ("scan", "torch")
                                            if supports(cell, engine)])
def test_float32(cell, engine):
    """float32 layers work in the fast engines and agree with the float64 loop (loosely)."""
    layer = recurrent(cell, 2, True, engine=engine)
    reference = copy.deepcopy(layer)
    reference.engine = "loop"
    layer = layer.float()
    x, state, _ = inputs_for(reference)
    x32 = x.detach().float().requires_grad_()
    state32 = with_parts(state, lambda s: s.detach().float().requires_grad_())

    out, final = run_ours(layer, x32, state32, LENGTHS)
    assert out.dtype == torch.float32 and all(f.dtype == torch.float32 for f in final)
    expected_out, expected_final = run_ours(reference, x, state, LENGTHS)
    tolerance = dict(rtol=1e-3, atol=1e-4)  # float32 through a few layer norms and 5 steps
    torch.testing.assert_close((out, *final), (expected_out.float(),
                                               *(f.float() for f in expected_final)),
                               **tolerance)
    cotangents = random_like((expected_out, *expected_final))
    got = named_grads((out, *final), [c.float() for c in cotangents],
                      {**leaves(x32, state32), **dict(layer.named_parameters())})
    want = named_grads((expected_out, *expected_final), cotangents,
                       {**leaves(x, state), **dict(reference.named_parameters())})
    torch.testing.assert_close(got, {k: w.float() for k, w in want.items()}, **tolerance)


# --------------------------------------------------------------------------------- smoke
@pytest.mark.parametrize(("cell", "engine"), [
    (cell, engine) for cell, engine in itertools.product(CELL_KINDS, ENGINES)
    if supports(cell, engine, recurrent_dropout=True)])
def test_every_cell_kind_trains(cell, engine):
    """A deep, bidirectional, conditioned layer with both dropouts and lengths: the documented
    output and state shapes, finite numbers, and a non-zero gradient for every parameter."""
    hidden = 8  # a few more units than elsewhere, so that no relu level is dead by chance
    layer = Recurrent(cell, I, hidden, 2, bidirectional=True, context_size=K, dropout=0.2,
                      recurrent_dropout=0.2, engine=engine).train()
    x = torch.randn(B, T, I)
    out, final = layer(x, lengths=torch.tensor(LENGTHS), context=torch.randn(B, K))
    assert out.shape == (B, T, 2 * hidden)
    assert isinstance(final, LSTMState) == cell.endswith("lstm")
    for f in parts(final):
        assert f.shape == (4, B, hidden)
    assert all(torch.isfinite(t).all() for t in (out, *parts(final)))
    (out.square().sum() + sum(f.sum() for f in parts(final))).backward()
    for name, p in layer.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
        assert p.grad.abs().sum() > 0, f"{name} got a zero gradient"


# ------------------------------------------------------------------------------ autocast
@pytest.mark.parametrize(("cell", "engine"), [(cell, engine) for cell in CELL_KINDS
                                            for engine in ENGINES if supports(cell, engine)])
def test_autocast_bfloat16_runs_and_stays_close(cell, engine):
    """Under CPU autocast (bfloat16) every engine runs forward and backward, and its outputs
    stay within bfloat16 rounding of the float32 run (looser for layer norm, which amplifies
    the rounding of small recurrent projections at the first steps)."""
    layer = Recurrent(cell, I, H, 2, bidirectional=True, engine=engine)
    x = torch.randn(B, T, I, requires_grad=True)
    lengths = torch.tensor(LENGTHS)
    expected, _ = layer(x, lengths=lengths)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out, _ = layer(x, lengths=lengths)
    out.float().square().sum().backward()
    tolerance = 0.15 if cell == "layernorm_lstm" else 5e-2
    torch.testing.assert_close(out.float(), expected, atol=tolerance, rtol=tolerance)
    assert x.grad is not None and torch.isfinite(x.grad).all()
    assert all(p.grad is not None for p in layer.parameters())
