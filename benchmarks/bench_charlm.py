"""The character model on a real text: quality within a time budget, sampling and training speed.

    python benchmarks/bench_charlm.py ../shared/data/tinyshakespeare/input.txt
    python benchmarks/bench_charlm.py input.txt --budgets 75s 10m --out runs/bench

Splits the text 90/10 (the usual tiny-Shakespeare split), trains ``rnnkit charlm`` with its
default recipe for each time budget (training time only), and reports the best validation loss
(nats/char); then the sampling speed of the trained model (one stream, and a batch of 32), and
the training throughput against the bare fused layer's own speed on the same shapes (the data
pipeline and trainer overhead). Run it on a quiet machine: one benchmark at a time.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

from rnnkit import charlm
from rnnkit.data.text import read_text
from rnnkit.models.language_model import LanguageModel
from rnnkit.train.runtime import parse_duration


def split(path: str, folder: Path) -> tuple[Path, Path]:
    text = read_text(path)
    cut = int(len(text) * 0.9)
    train, val = folder / "train.txt", folder / "val.txt"
    train.write_text(text[:cut], encoding="utf-8")
    val.write_text(text[cut:], encoding="utf-8")
    return train, val


def sampling_speed(model: charlm.TrainedModel, streams: int, length: int = 2000) -> float:
    """Characters per second, all streams together (median of 3)."""
    prime = model.vocab.encode("\n")
    rates = []
    for seed in range(3):
        generator = torch.Generator().manual_seed(seed)
        primes = prime.unsqueeze(0).expand(streams, -1)  # (P,) -> (streams, P)
        start = time.perf_counter()
        for _ in model.model.sample(primes, length, generator=generator):
            pass
        rates.append(streams * length / (time.perf_counter() - start))
    return statistics.median(rates)


def layer_speed(model: LanguageModel, batch_size: int, seq_len: int) -> float:
    """Tokens per second of forward + backward through the model alone, no data, no trainer."""
    x = torch.randint(0, model.config.vocab_size, (batch_size, seq_len))
    optimizer = torch.optim.AdamW(model.parameters(), fused=True)  # as the trainer's
    model.train()
    times = []
    for _ in range(25):
        start = time.perf_counter()
        _, loss, _ = model(x, targets=x)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        times.append(time.perf_counter() - start)
    return batch_size * seq_len / statistics.median(times[5:])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("text", help="the text to train on (e.g. tiny Shakespeare's input.txt)")
    parser.add_argument("--budgets", nargs="+", default=["75s"], help="time budgets to train")
    parser.add_argument("--out", help="keep the runs here (default: a temporary folder)")
    parser.add_argument("--json", help="also write the results to this file")
    args = parser.parse_args()
    folder = Path(args.out or tempfile.mkdtemp(prefix="bench_charlm_"))
    folder.mkdir(parents=True, exist_ok=True)
    train, val = split(args.text, folder)
    results = []
    for budget in args.budgets:
        run_dir = folder / f"run_{budget}"
        shutil.rmtree(run_dir, ignore_errors=True)
        model = charlm.train(run_dir, text=str(train), val=str(val), time_budget=budget,
                             progress=False)
        rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
        speeds = [r["tokens_per_s"] for r in rows if "tokens_per_s" in r][1:]
        config = model.config
        fused = layer_speed(LanguageModel(model.model.config), config.batch_size, config.seq_len)
        result = {
            "budget_s": parse_duration(budget), "val_loss": model.metrics["loss"],
            "val_bpc": model.metrics["bpc"], "steps": model.result.steps,
            "model": f"{config.model.num_layers}x{config.model.hidden_size} {config.model.cell}",
            "train_tokens_per_s": statistics.median(speeds), "layer_tokens_per_s": fused,
            "sample_chars_per_s_1": sampling_speed(model, 1),
            "sample_chars_per_s_32": sampling_speed(model, 32),
        }
        results.append(result)
        print(f"{budget:>5}: val loss {result['val_loss']:.4f} nats/char "
              f"({result['val_bpc']:.3f} bpc) after {result['steps']} steps of a "
              f"{result['model']}; training {result['train_tokens_per_s']:,.0f} tokens/s "
              f"(the model alone: {fused:,.0f}, x{result['train_tokens_per_s'] / fused:.2f}); "
              f"sampling {result['sample_chars_per_s_1']:,.0f} chars/s (1 stream), "
              f"{result['sample_chars_per_s_32']:,.0f} chars/s (32 streams)", flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1), encoding="utf-8")
    print(f"runs in {folder}", file=sys.stderr)


if __name__ == "__main__":
    main()
