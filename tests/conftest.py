"""Shared test set-up: every test starts from the same random state, so failures reproduce."""

import pytest
import torch


@pytest.fixture(autouse=True)
def _seed() -> None:
    """Seed torch's global generator before each test (tests draw their data from it)."""
    torch.manual_seed(0)
