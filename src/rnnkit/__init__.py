"""rnnkit: recurrent neural networks as the lecture teaches them, exact and fast."""

__version__ = "0.1.0"
