"""rnnkit: recurrent neural networks as the lecture teaches them, exact and fast."""

__version__ = "0.1.0"


def load(run, device="cpu"):
    """The trained model of any run folder (or checkpoint file), whatever its task::

        model = rnnkit.load("runs/sst2")
        model.predict(["a gripping, funny film"])  # one JSON-ready dict per input
    """
    from .tasks.base import load as load_run  # tasks import torch: only when asked for

    return load_run(run, device)
