"""The matrix products' backend choice leaves the random stream alone."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import torch

from rnnkit.nn import gemm


def test_the_onednn_probe_does_not_draw_from_the_global_generator() -> None:
    gemm._onednn_linear.cache_clear()  # the probe runs again, as in a fresh process
    torch.manual_seed(0)
    before = torch.get_rng_state()
    gemm._onednn_linear()
    assert torch.equal(torch.get_rng_state(), before)


def test_the_first_training_step_of_a_process_draws_like_the_later_ones() -> None:
    """Same seed, same weights: the first forward of a fresh process (which picks the matrix
    product backend) gives the same dropout masks, so the same output, as the second. Else a run
    resumed in a new process would not repeat the killed run's steps."""
    script = textwrap.dedent("""
        import torch
        from rnnkit.models.classifier import ClassifierConfig, SequenceClassifier
        torch.manual_seed(0)
        model = SequenceClassifier(ClassifierConfig(vocab_size=50, num_classes=2,
                                                    embedding_size=8, hidden_size=16))
        ids, lengths = torch.randint(2, 50, (4, 6)), torch.tensor([6, 5, 3, 2])
        outputs = []
        for _ in range(2):
            torch.manual_seed(1)  # dropout before the recurrence and after it
            outputs.append(model(ids, lengths)[0])
        print(torch.equal(outputs[0], outputs[1]), float(outputs[0].abs().sum()) > 0)
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          check=True)
    assert done.stdout.split() == ["True", "True"]
