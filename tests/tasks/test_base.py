"""The task base: one loader for any run (old layouts too), the DDP epoch arithmetic, the
held-out split."""

from __future__ import annotations

import pytest
import torch

import rnnkit
from rnnkit.tasks import base
from rnnkit.tasks.charlm import CharLMConfig, CharLMTask, TrainedModel
from rnnkit.train.checkpoint import load_checkpoint, save_checkpoint
from rnnkit.train.distributed import DistContext

TEXT = "to be, or not to be, that is the question.\n" * 40


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("base")
    (folder / "t.txt").write_text(TEXT, encoding="utf-8")
    trained = base.train(CharLMTask, folder / "run", text=str(folder / "t.txt"), max_steps=6,
                         hidden_size=12, embedding_size=4, seq_len=8, batch_size=4,
                         eval_every=3, progress=False)
    assert isinstance(trained, TrainedModel) and trained.result.steps == 6
    return folder / "run"


def test_rnnkit_load_opens_any_run_as_its_tasks_model(run_dir) -> None:
    trained = rnnkit.load(run_dir)
    assert isinstance(trained, TrainedModel)
    assert trained.config.model.hidden_size == 12 and trained.path.name == "best.safetensors"
    assert rnnkit.load(run_dir / "last.safetensors").path.name == "last.safetensors"
    rows = trained.predict(["to be"], length=10, seed=1)
    assert [set(r) for r in rows] == [{"prime", "text"}] and len(rows[0]["text"]) == 10
    with pytest.raises(ValueError, match="top-p"):
        trained.predict(["to"], top_p=2.0)


def test_runs_saved_before_the_model_config_was_nested_still_load(run_dir, tmp_path) -> None:
    checkpoint = load_checkpoint(run_dir / "best.safetensors")
    saved = checkpoint.config
    nested = saved["task"]["charlm"]
    flat = {k: v for k, v in nested.items() if k != "model"}
    flat.update({k: v for k, v in nested["model"].items() if k != "vocab_size"})
    saved["task"]["charlm"] = flat  # the layout of every run made before the base
    save_checkpoint(tmp_path / "old.safetensors", kind="charlm", weights=checkpoint.weights,
                    config=saved, state=checkpoint.state)
    old = rnnkit.load(tmp_path / "old.safetensors")
    assert old.config == rnnkit.load(run_dir).config
    assert old.predict(["to"], length=20, greedy=True) == rnnkit.load(run_dir).predict(
        ["to"], length=20, greedy=True)


def test_a_file_that_is_no_checkpoint_is_a_clear_error(tmp_path) -> None:
    (tmp_path / "x.safetensors").write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="is not an rnnkit checkpoint"):
        rnnkit.load(tmp_path / "x.safetensors")
    with pytest.raises(ValueError, match="unknown task 'poetry'"):
        base.task_class("poetry")


def test_every_task_is_registered_with_its_trained_model() -> None:
    for kind in base.TASKS:
        task = base.task_class(kind)
        assert task.kind == kind and task.Trained.task is task


class _Task(base.Task):
    kind = "test"

    def build_model(self):
        return torch.nn.Linear(1, 1)


@pytest.mark.parametrize("world_size", [1, 2, 3])
def test_the_ranks_read_each_batch_once_per_epoch(world_size) -> None:
    per_epoch, steps = 7, 10
    seen = []
    for rank in range(world_size):
        task = _Task(CharLMConfig(), None, torch.device("cpu"),
                     DistContext(rank=rank, world_size=world_size))
        seen += [task.position(step, per_epoch) for step in range(steps)]
    # world_size ranks x steps updates read the first world_size * steps batches, once each
    expected = [divmod(i, per_epoch) for i in range(world_size * steps)]
    assert sorted(seen) == expected
    order = [task.shuffled(step, 20, 4) for step in range(5)]  # one epoch of one rank
    if world_size == 1:
        assert sorted(torch.cat(order).tolist()) == list(range(20))


def test_held_out_is_a_fixed_shuffled_part_of_at_least_one() -> None:
    items = list(range(50))
    train, val = base.held_out(items, 0.1)
    assert len(val) == 5 and sorted(train + val) == items
    assert base.held_out(items, 0.1) == (train, val)  # fixed
    assert len(base.held_out(items[:3], 0.1)[1]) == 1
    with pytest.raises(ValueError, match="val_fraction"):
        base.held_out(items, 1.5)
