"""``rnnkit charlm train | sample | eval`` as a user runs them, on a text the test writes."""

from __future__ import annotations

import json

import pytest
import torch

from rnnkit.cli import main
from rnnkit.tasks.charlm import TrainedModel
from rnnkit.train.checkpoint import save_checkpoint

TEXT = "to be, or not to be, that is the question.\n" * 80
SMALL = ["--hidden-size", "24", "--embedding-size", "8", "--seq-len", "16", "--batch-size", "8",
         "--eval-every", "20", "--no-progress", "--sample-length", "40"]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("charlm")
    (folder / "train.txt").write_text(TEXT, encoding="utf-8")
    assert main(["charlm", "train", "--text", str(folder / "train.txt"), "--out",
                 str(folder / "run"), "--max-steps", "40", "--learning-rate", "1e-2", *SMALL]) == 0
    return folder / "run"


def test_train_writes_a_complete_run(run_dir, capsys) -> None:
    names = {p.name for p in run_dir.iterdir()}
    assert {"best.safetensors", "last.safetensors", "metrics.jsonl", "curves.png",
            "config.json", "vocab.json"} <= names
    assert not [n for n in names if n.startswith(".") or n.endswith(".tmp")]


def test_eval_json_has_the_readme_keys(run_dir, tmp_path, capsys) -> None:
    (tmp_path / "test.txt").write_text("that is the question.\n" * 10, encoding="utf-8")
    assert main(["charlm", "eval", str(run_dir), str(tmp_path / "test.txt"), "--json"]) == 0
    metrics = json.loads(capsys.readouterr().out)
    assert set(metrics) == {"loss", "bpc", "perplexity"}
    assert metrics["bpc"] == pytest.approx(metrics["loss"] / torch.log(torch.tensor(2.0)).item())
    assert metrics["perplexity"] == pytest.approx(torch.exp(torch.tensor(metrics["loss"])).item())


def test_sample_streams_the_requested_length(run_dir, capsys) -> None:
    assert main(["charlm", "sample", str(run_dir), "--prime", "to be", "--length", "50",
                 "--seed", "1"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("to be") and len(out) == len("to be") + 50 + 1  # and a newline


def test_sample_is_reproducible_with_a_seed_and_greedy_is_deterministic(run_dir) -> None:
    trained = TrainedModel.load(run_dir)
    first = "".join(trained.sample("to", 30, seed=3))
    assert first == "".join(trained.sample("to", 30, seed=3))
    assert "".join(trained.sample("to", 30, greedy=True)) == "".join(
        trained.sample("to", 30, greedy=True, seed=9))


def test_many_samples_as_one_batch(run_dir, capsys) -> None:
    assert main(["charlm", "sample", str(run_dir), "--prime", "to", "--length", "20",
                 "--num-samples", "3", "--seed", "0"]) == 0
    blocks = [b for b in capsys.readouterr().out.split("\n\n") if b.strip()]
    assert len(blocks) == 3 and all(b.startswith("to") for b in blocks)


def test_unknown_prime_character_is_named(run_dir, capsys) -> None:
    assert main(["charlm", "sample", str(run_dir), "--prime", "to Z"]) == 2
    assert "'Z' (U+005A)" in capsys.readouterr().err
    assert main(["charlm", "sample", str(run_dir), "--prime", "to Z", "--length", "5",
                 "--skip-unknown"]) == 0
    captured = capsys.readouterr()
    assert "warning" in captured.err and "'Z'" in captured.err


def test_top_p_outside_the_unit_interval_is_refused(run_dir, capsys) -> None:
    assert main(["charlm", "sample", str(run_dir), "--top-p", "1.5"]) == 2
    assert "(0, 1]" in capsys.readouterr().err


def test_resume_continues_the_run(run_dir, tmp_path, capsys) -> None:
    import shutil

    copy = tmp_path / "run"
    shutil.copytree(run_dir, copy)
    assert main(["charlm", "train", "--resume", str(copy), "--max-steps", "60", "--no-progress",
                 "--sample-length", "0"]) == 0
    rows = [json.loads(line) for line in (copy / "metrics.jsonl").read_text().splitlines()]
    assert rows[-1]["step"] == 60
    assert main(["charlm", "train", "--resume", str(copy), "--hidden-size", "99",
                 "--max-steps", "70"]) == 2
    assert "hidden_size" in capsys.readouterr().err


@pytest.mark.parametrize(("content", "message"), [
    (b"", "got an empty file"),
    (b"abc\xffdef", "byte 0xff at offset 3"),
    (b"ab\x00cd", "binary"),
    (b"short", "too short"),
])
def test_bad_training_text_is_a_clear_error_and_writes_nothing(tmp_path, capsys, content,
                                                                message) -> None:
    (tmp_path / "bad.txt").write_bytes(content)
    code = main(["charlm", "train", "--text", str(tmp_path / "bad.txt"), "--out",
                 str(tmp_path / "run"), "--max-steps", "2", *SMALL])
    assert code == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


def test_a_checkpoint_of_another_task_is_refused(tmp_path, capsys) -> None:
    save_checkpoint(tmp_path / "best.safetensors", kind="sentiment",
                    weights={"w": torch.zeros(2)}, config={})
    (tmp_path / "x.txt").write_text("hello", encoding="utf-8")
    assert main(["charlm", "eval", str(tmp_path), str(tmp_path / "x.txt")]) == 2
    assert "'sentiment' checkpoint, expected 'charlm'" in capsys.readouterr().err


def test_an_existing_run_is_not_overwritten(run_dir, capsys) -> None:
    assert main(["charlm", "train", "--out", str(run_dir), "--max-steps", "2", *SMALL]) == 2
    assert "--resume" in capsys.readouterr().err


def test_python_api_mirrors_the_command_line(tmp_path) -> None:
    from rnnkit import charlm

    (tmp_path / "t.txt").write_text(TEXT, encoding="utf-8")
    model = charlm.train(tmp_path / "run", text=str(tmp_path / "t.txt"), max_steps=20,
                         hidden_size=16, embedding_size=8, seq_len=16, batch_size=8,
                         eval_every=10, progress=False)
    assert model.result.steps == 20 and set(model.metrics) == {"loss", "bpc", "perplexity"}
    again = charlm.load(tmp_path / "run")
    assert "".join(again.sample("to", 25, greedy=True)) == "".join(
        model.sample("to", 25, greedy=True))
    assert again.evaluate(tmp_path / "t.txt")["loss"] > 0
    with pytest.raises(TypeError, match="unknown options: hiden_size"):
        charlm.train(tmp_path / "other", hiden_size=3)


def test_long_budgets_get_the_larger_recipe_unless_told_otherwise(tmp_path) -> None:
    from rnnkit import charlm

    (tmp_path / "t.txt").write_text(TEXT, encoding="utf-8")
    common = dict(text=str(tmp_path / "t.txt"), time_budget="10m", max_steps=2, seq_len=8,
                  batch_size=4, progress=False)
    model = charlm.train(tmp_path / "a", **common)
    assert (model.config.model.hidden_size, model.config.model.dropout) == (512, 0.25)
    model = charlm.train(tmp_path / "b", hidden_size=32, **common)
    assert (model.config.model.hidden_size, model.config.model.dropout) == (32, 0.25)
