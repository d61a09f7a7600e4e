"""Evaluation mode for a block of code, the caller's modes restored after."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from torch import nn

__all__ = ["evaluating"]


@contextlib.contextmanager
def evaluating(model: nn.Module) -> Iterator[nn.Module]:
    """``with evaluating(model):`` dropout off and batch norm on its running statistics inside;
    after (also after an exception) every submodule's own ``training`` flag is what it was, so
    a caller that froze part of a model (a CNN trunk in ``eval``) keeps it that way."""
    modes = [(module, module.training) for module in model.modules()]
    model.eval()
    try:
        yield model
    finally:
        for module, training in modes:
            module.training = training
