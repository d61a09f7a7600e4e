"""DistributedDataParallel under torchrun: 2 CPU processes (gloo) learn like one process with
the same global batch."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

TEXT = "all the world's a stage, and all the men and women merely players.\n" * 60
OPTIONS = ["--hidden-size", "16", "--embedding-size", "8", "--seq-len", "12",
           "--max-steps", "12", "--log-every", "1", "--eval-every", "6", "--warmup-steps", "2",
           "--learning-rate", "1e-2", "--no-progress", "--sample-length", "0", "--device", "cpu"]


def train(command: list[str], tmp_path, name: str, batch_size: int) -> list[dict]:
    run_dir = tmp_path / name
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run([*command, "charlm", "train", "--text", str(tmp_path / "text.txt"),
                           "--out", str(run_dir), "--batch-size", str(batch_size), *OPTIONS],
                          env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def test_two_processes_follow_the_single_process_curve(tmp_path) -> None:
    (tmp_path / "text.txt").write_text(TEXT, encoding="utf-8")
    single = train([sys.executable, "-m", "rnnkit"], tmp_path, "single", batch_size=8)
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone",
                "--nproc_per_node", "2", "-m", "rnnkit"]
    double = train(torchrun, tmp_path, "double", batch_size=4)  # 2 x 4 = the same 8 rows
    losses = [(r["step"], r["loss"]) for r in single if "loss" in r]
    assert [(r["step"]) for r in double if "loss" in r] == [s for s, _ in losses]
    for (_, expected), row in zip(losses, [r for r in double if "loss" in r], strict=True):
        assert row["loss"] == pytest.approx(expected, rel=1e-4)
    val = [r["val_loss"] for r in single if "val_loss" in r]
    assert [r["val_loss"] for r in double if "val_loss" in r] == pytest.approx(val, rel=1e-4)
    assert losses[-1][1] < losses[0][1]  # it learned
