"""Shared test set-up: one thread, and every test starts from the same random state."""

import pytest
import torch

# The tests use tiny tensors, where intra-op threads only cost: on a 2-core machine torch's CPU
# layer-norm backward took ~15 ms per call with 2 threads against ~5 us with one.
torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def _seed() -> None:
    """Seed torch's global generator before each test (tests draw their data from it)."""
    torch.manual_seed(0)
