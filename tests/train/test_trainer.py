"""The trainer: schedule, stopping rules, files, and exact resume after a kill."""

from __future__ import annotations

import json
import math

import pytest
import torch

from rnnkit.data.text import CharVocab
from rnnkit.models.language_model import LanguageModelConfig
from rnnkit.tasks.charlm import CharLMConfig, CharLMData, CharLMTask
from rnnkit.train.checkpoint import load_checkpoint
from rnnkit.train.trainer import (
    BEST,
    CURVES,
    LAST,
    METRICS,
    TrainConfig,
    Trainer,
    WeightAverage,
    learning_rate,
)

TEXT = "the quick brown fox jumps over the lazy dog. " * 60


def small_task(seed: int = 0, dropout: float = 0.1) -> CharLMTask:
    """A tiny character model (with dropout, so the random generator matters for resume)."""
    torch.manual_seed(seed)
    vocab = CharVocab.from_text(TEXT)
    ids = vocab.encode(TEXT)
    split = int(len(ids) * 0.9)
    config = CharLMConfig(seq_len=8, batch_size=4, eval_seq_len=16, eval_batch_size=4,
                          model=LanguageModelConfig(hidden_size=16, embedding_size=8,
                                                    num_layers=2, dropout=dropout))
    return CharLMTask(config, CharLMData(vocab, ids[:split], ids[split:], "test"),
                      torch.device("cpu"))


def read_rows(run_dir) -> list[dict]:
    return [json.loads(line) for line in (run_dir / METRICS).read_text().splitlines()]


def test_learning_rate_warms_up_then_follows_the_cosine() -> None:
    config = TrainConfig(max_steps=100, learning_rate=1.0, min_learning_rate=0.1,
                         warmup_steps=10)
    rates = [learning_rate(step, config, horizon=100) for step in range(100)]
    assert rates[0] == pytest.approx(0.1) and rates[9] == pytest.approx(1.0)
    assert all(a >= b for a, b in zip(rates[10:], rates[11:], strict=False))
    assert rates[55] == pytest.approx(0.1 + 0.45 * (1 + math.cos(math.pi * 0.5)))
    assert learning_rate(100, config, horizon=100) == pytest.approx(0.1)


def test_training_lowers_the_loss_and_writes_the_run(tmp_path) -> None:
    task = small_task(dropout=0.0)
    config = TrainConfig(max_steps=60, eval_every=20, log_every=5, learning_rate=3e-2,
                         warmup_steps=5)
    result = Trainer(task, config, tmp_path, progress=False).fit()
    rows = read_rows(tmp_path)
    train_losses = [r["loss"] for r in rows if "loss" in r]
    assert result.steps == 60 and result.stopped_because == "max_steps"
    assert train_losses[-1] < 0.8 * train_losses[0]
    assert [r["step"] for r in rows if "val_loss" in r] == [20, 40, 60]
    assert result.best["loss"] == min(r["val_loss"] for r in rows if "val_loss" in r)
    assert (tmp_path / CURVES).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    best = load_checkpoint(tmp_path / BEST, kind="charlm")
    assert best.state["step"] == [r["step"] for r in rows if "val_loss" in r and
                                  r["val_loss"] == result.best["loss"]][0]
    assert load_checkpoint(tmp_path / LAST, kind="charlm").state["progress"]["step"] == 60


def test_updates_match_a_plain_adamw_loop(tmp_path) -> None:
    """The trainer's fused AdamW, schedule and clipping against the textbook loop: torch's
    per-tensor AdamW, the same learning rate per step, the same clipped gradients."""
    config = TrainConfig(max_steps=12, eval_every=100, learning_rate=1e-2, warmup_steps=3,
                         weight_decay=0.1, grad_clip=0.5)
    trainer = Trainer(small_task(dropout=0.0), config, tmp_path, progress=False)
    assert trainer.optimizer.defaults["fused"]
    reference = small_task(dropout=0.0)
    model = reference.model
    optimizer = torch.optim.AdamW(model.parameters(), lr=1.0, weight_decay=0.1, foreach=False)
    for step in range(12):
        for group in optimizer.param_groups:
            group["lr"] = learning_rate(step, config, horizon=12)
        optimizer.zero_grad()
        reference.training_step(model, reference.train_batch(step)).loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 0.5)
        optimizer.step()
    trainer.fit()
    moved = 0.0
    for name, value in model.state_dict().items():
        torch.testing.assert_close(trainer.model.state_dict()[name], value, rtol=1e-4, atol=1e-5)
        moved = max(moved, float((value - small_task().model.state_dict()[name]).abs().max()))
    assert moved > 1e-2  # the weights did move: the comparison is not of two untrained models


def test_parameter_groups_train_at_their_own_scale_of_the_learning_rate(tmp_path) -> None:
    """Discriminative fine-tuning: the embedding at a tenth of the schedule's rate, the rest at
    the full rate, against the textbook loop with the same two groups."""
    config = TrainConfig(max_steps=8, eval_every=100, learning_rate=1e-2, warmup_steps=2)

    def grouped(task: CharLMTask) -> CharLMTask:
        embedding = list(task.model.embedding.parameters())
        rest = [p for n, p in task.model.named_parameters() if not n.startswith("embedding.")]
        task.parameter_groups = lambda: [{"params": embedding, "lr_scale": 0.1},
                                         {"params": rest}]
        return task

    trainer = Trainer(grouped(small_task(dropout=0.0)), config, tmp_path, progress=False)
    reference = small_task(dropout=0.0)
    model = reference.model
    embedding = list(model.embedding.parameters())
    rest = [p for n, p in model.named_parameters() if not n.startswith("embedding.")]
    optimizer = torch.optim.AdamW([{"params": embedding}, {"params": rest}], lr=1.0,
                                  weight_decay=0.0, foreach=False)
    for step in range(8):
        rate = learning_rate(step, config, horizon=8)
        optimizer.param_groups[0]["lr"], optimizer.param_groups[1]["lr"] = 0.1 * rate, rate
        optimizer.zero_grad()
        reference.training_step(model, reference.train_batch(step)).loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
    trainer.fit()
    assert [g["lr"] / trainer._lr for g in trainer.optimizer.param_groups] == pytest.approx(
        [0.1, 1.0])
    for name, value in model.state_dict().items():
        torch.testing.assert_close(trainer.model.state_dict()[name], value, rtol=1e-4, atol=1e-5)


def test_parameter_groups_must_cover_every_parameter_once(tmp_path) -> None:
    config = TrainConfig(max_steps=1)
    task = small_task()
    task.parameter_groups = lambda: [{"params": task.model.embedding.parameters()}]
    with pytest.raises(ValueError, match="parameters in no group of the task's: rnn"):
        Trainer(task, config, tmp_path, progress=False)
    task.parameter_groups = lambda: [{"params": task.model.parameters()},
                                     {"params": task.model.embedding.parameters()}]
    with pytest.raises(ValueError, match="in two of the task's parameter groups"):
        Trainer(task, config, tmp_path, progress=False)


class KilledAt(Exception):
    pass


def test_resume_after_a_kill_gives_the_same_model(tmp_path) -> None:
    """A run killed between checkpoints and resumed ends with the uninterrupted run's weights
    (data order, dropout masks, optimizer, schedule and the carried hidden state all match)."""
    config = TrainConfig(max_steps=24, eval_every=8, log_every=4, learning_rate=5e-3,
                         warmup_steps=4)
    whole = Trainer(small_task(), config, tmp_path / "whole", progress=False)
    whole.fit()

    killed_task = small_task()
    original_step = killed_task.training_step

    def dies_at_step_13(model, batch):
        if killed.progress.step == 13:
            raise KilledAt
        return original_step(model, batch)

    killed_task.training_step = dies_at_step_13
    killed = Trainer(killed_task, config, tmp_path / "killed", progress=False)
    with pytest.raises(KilledAt):
        killed.fit()
    assert load_checkpoint(tmp_path / "killed" / LAST).state["progress"]["step"] == 8

    resumed = Trainer(small_task(seed=123), config, tmp_path / "killed", resume=True,
                      progress=False)
    assert resumed.progress.step == 8
    resumed.fit()
    for name, value in whole.model.state_dict().items():
        torch.testing.assert_close(resumed.model.state_dict()[name], value, rtol=0, atol=0)
    # the resumed log replays steps 9-12 and agrees with the whole run but for the clock
    assert without_clock(read_rows(tmp_path / "killed")) == without_clock(
        read_rows(tmp_path / "whole"))


def without_clock(rows: list[dict]) -> list[dict]:
    return [{k: v for k, v in r.items() if k not in ("tokens_per_s", "train_seconds")}
            for r in rows]


def test_time_budget_counts_training_time(tmp_path) -> None:
    config = TrainConfig(time_budget=1.0, eval_every=10_000, log_every=10)
    result = Trainer(small_task(), config, tmp_path, progress=False).fit()
    assert result.stopped_because == "time_budget"
    assert 0.5 <= result.train_seconds <= 1.5


def test_early_stop_on_a_plateau(tmp_path) -> None:
    """With a learning rate of ~0 the validation loss cannot improve after the first check."""
    config = TrainConfig(max_steps=100, eval_every=5, patience=2, learning_rate=1e-12,
                         min_learning_rate=1e-12, warmup_steps=1)
    result = Trainer(small_task(dropout=0.0), config, tmp_path, progress=False).fit()
    assert result.stopped_because == "early_stop"
    assert result.steps == 15  # best at 5, no better at 10 and 15


def test_a_diverging_loss_is_a_clear_error(tmp_path) -> None:
    task = small_task()
    original_step = task.training_step

    def nan_loss(model, batch):
        output = original_step(model, batch)
        return output._replace(loss=output.loss * float("nan"))

    task.training_step = nan_loss
    with pytest.raises(FloatingPointError, match="became nan at step 1"):
        Trainer(task, TrainConfig(max_steps=5), tmp_path, progress=False).fit()


def test_config_needs_an_end() -> None:
    with pytest.raises(ValueError, match="max_steps or time_budget"):
        TrainConfig()


# ---------------------------------------------------------------------- weight averaging
def test_weight_average_is_the_warmed_up_exponential_average() -> None:
    model = torch.nn.Linear(2, 1)
    average = WeightAverage(model, decay=0.9)
    expected = {n: t.clone() for n, t in model.state_dict().items()}
    for updates in range(1, 30):
        with torch.no_grad():
            for p in model.parameters():
                p.add_(torch.randn_like(p))
        average.update(updates)
        d = min(0.9, (1 + updates) / (10 + updates))
        expected = {n: d * expected[n] + (1 - d) * t for n, t in model.state_dict().items()}
    for name, tensor in zip(average.names, average.tensors, strict=True):
        torch.testing.assert_close(tensor, expected[name])


def test_weight_average_is_what_is_evaluated_and_kept_as_best(tmp_path) -> None:
    config = TrainConfig(max_steps=20, eval_every=20, learning_rate=3e-2, warmup_steps=2,
                         weight_average=0.8)
    trainer = Trainer(small_task(), config, tmp_path, progress=False)
    trainer.fit()
    own = {n: t.clone() for n, t in trainer.model.state_dict().items()}
    best = load_checkpoint(tmp_path / BEST, kind="charlm").weights
    last = load_checkpoint(tmp_path / LAST, kind="charlm").weights
    for name, tensor in zip(trainer.average.names, trainer.average.tensors, strict=True):
        torch.testing.assert_close(best[name], tensor, rtol=0, atol=0)
        torch.testing.assert_close(last[name], own[name], rtol=0, atol=0)  # live weights
        assert not torch.equal(tensor, own[name])  # so the two really differ
    with trainer._averaged():
        averaged_loss = trainer.task.validate(trainer.model)["loss"]
    assert averaged_loss == pytest.approx(trainer.history[-1]["val_loss"])


def test_resume_continues_the_weight_average(tmp_path) -> None:
    config = TrainConfig(max_steps=16, eval_every=8, learning_rate=5e-3, warmup_steps=4,
                         weight_average=0.9)
    whole = Trainer(small_task(), config, tmp_path / "whole", progress=False)
    whole.fit()
    task = small_task()
    original_step = task.training_step

    def dies_at_step_10(model, batch):
        if killed.progress.step == 10:
            raise KilledAt
        return original_step(model, batch)

    task.training_step = dies_at_step_10
    killed = Trainer(task, config, tmp_path / "killed", progress=False)
    with pytest.raises(KilledAt):
        killed.fit()
    resumed = Trainer(small_task(seed=5), config, tmp_path / "killed", resume=True,
                      progress=False)
    resumed.fit()
    for mine, theirs in zip(resumed.average.tensors, whole.average.tensors, strict=True):
        torch.testing.assert_close(mine, theirs, rtol=0, atol=0)
    without = TrainConfig(**{**config.__dict__, "weight_average": 0.0})
    Trainer(small_task(), TrainConfig(**{**without.__dict__, "max_steps": 8}), tmp_path / "plain",
            progress=False).fit()
    with pytest.raises(ValueError, match="trained without weight_average"):
        Trainer(small_task(), config, tmp_path / "plain", resume=True, progress=False)
