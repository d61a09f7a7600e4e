"""rnnkit.nn.evaluating: evaluation mode inside a block, every submodule's own mode after."""

import pytest
import torch
from torch import nn

from rnnkit.nn import evaluating


def _model() -> nn.Sequential:
    return nn.Sequential(nn.Linear(4, 4), nn.Dropout(0.5), nn.BatchNorm1d(4))


def test_inside_every_submodule_evaluates_and_dropout_is_off():
    model = _model().train()
    x = torch.randn(8, 4)
    with evaluating(model) as inside:
        assert inside is model
        assert not any(m.training for m in model.modules())
        first, second = model(x), model(x)
    torch.testing.assert_close(first, second)  # no dropout, running statistics
    assert all(m.training for m in model.modules())


def test_mixed_modes_come_back_as_they_were():
    model = _model().train()
    model[2].eval()  # a frozen part, as a cached CNN trunk
    with evaluating(model):
        pass
    assert [m.training for m in model] == [True, True, False]
    assert model.training


def test_modes_come_back_after_an_exception():
    model = _model().train()
    with pytest.raises(RuntimeError, match="boom"), evaluating(model):
        raise RuntimeError("boom")
    assert all(m.training for m in model.modules())


def test_an_evaluating_model_stays_evaluating():
    model = _model().eval()
    with evaluating(model):
        pass
    assert not any(m.training for m in model.modules())
