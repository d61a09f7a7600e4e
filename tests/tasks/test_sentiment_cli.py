"""``rnnkit sentiment train | eval | predict`` as a user runs them, on data the test writes."""

from __future__ import annotations

import argparse
import json
import random
import shutil
from pathlib import Path

import pytest

import rnnkit
from rnnkit.arguments import config_values, given
from rnnkit.cli import main
from rnnkit.data.labelled_format import LabelledFormat
from rnnkit.models.classifier import ClassifierConfig
from rnnkit.tasks import sentiment_cli
from rnnkit.tasks.sentiment import PredictOptions, SentimentConfig, TrainedClassifier
from rnnkit.train.checkpoint import load_checkpoint, save_checkpoint
from rnnkit.train.trainer import TrainConfig

GOOD = ["great", "wonderful", "moving", "brilliant", "funny", "lovely"]
BAD = ["dull", "boring", "awful", "tedious", "flat", "clumsy"]
FILLER = ["the", "film", "plot", "was", "a", "and", "story", "acting", "really", "quite"]
SMALL = ["--hidden-size", "16", "--embedding-size", "16", "--batch-size", "16",
         "--eval-every", "25", "--no-progress", "--learning-rate", "1e-2", "--dropout", "0.1"]


def sentence(rng: random.Random, positive: bool) -> str:
    words = rng.sample(FILLER, 4) + [rng.choice(GOOD if positive else BAD)]
    rng.shuffle(words)
    return " ".join(words)


def write_sst(path, n: int, seed: int) -> None:
    rng = random.Random(seed)
    rows = [(label, sentence(rng, label == 1)) for label in (rng.randint(0, 1) for _ in range(n))]
    path.write_text("".join(f"{label} {text}\n" for label, text in rows), encoding="utf-8")


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("sentiment")
    write_sst(folder / "train.txt", 400, seed=0)
    write_sst(folder / "dev.txt", 100, seed=1)
    assert main(["sentiment", "train", "--train", str(folder / "train.txt"), "--val",
                 str(folder / "dev.txt"), "--out", str(folder / "run"), "--max-steps", "100",
                 *SMALL]) == 0
    return folder / "run"


def test_the_classifier_learns_the_toy_task(run_dir, capsys) -> None:
    data = run_dir.parent / "dev.txt"
    assert main(["sentiment", "eval", str(run_dir), str(data), "--json"]) == 0
    metrics = json.loads(capsys.readouterr().out)
    assert set(metrics) == {"accuracy", "macro_f1"}
    assert metrics["accuracy"] >= 0.95
    assert (run_dir / "confusion.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_eval_prints_the_per_class_table(run_dir, capsys) -> None:
    assert main(["sentiment", "eval", str(run_dir), str(run_dir.parent / "dev.txt")]) == 0
    out = capsys.readouterr().out
    assert "precision" in out and "confusion matrix" in out and "macro avg" in out


def test_predict_arguments_json_and_explanations(run_dir, capsys, tmp_path) -> None:
    assert main(["sentiment", "predict", str(run_dir), "the film was wonderful",
                 "the plot was tedious", "--json", "--html", str(tmp_path / "why.html")]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["label"] for r in rows] == ["1", "0"]
    assert all(abs(sum(r["probabilities"].values()) - 1) < 1e-5 for r in rows)
    # the sentiment word moved the score most
    for row, word in zip(rows, ["wonderful", "tedious"], strict=True):
        scores = dict(row["explanation"])
        assert max(scores, key=lambda w: abs(scores[w])) == word
    page = (tmp_path / "why.html").read_text(encoding="utf-8")
    assert page.startswith("<!DOCTYPE html>") and "wonderful" in page and "</html>" in page


def test_predict_reads_stdin(run_dir, capsys, monkeypatch) -> None:
    import io

    monkeypatch.setattr("sys.stdin", io.StringIO("a lovely story\n\nthe acting was flat\n"))
    assert main(["sentiment", "predict", str(run_dir)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split("\t")[0] for line in lines] == ["1", "0"]


def test_predictions_match_the_python_api(run_dir, capsys) -> None:
    trained = TrainedClassifier.load(run_dir)
    texts = ["quite brilliant", "the plot was clumsy and flat"]
    assert [p["label"] for p in trained.predict(texts)] == ["1", "0"]
    # predict() returns exactly the rows `predict --json` prints, explanations included
    for options, flags in (({}, []), ({"explain": True}, ["--explain"])):
        assert main(["sentiment", "predict", str(run_dir), *texts, "--json", *flags]) == 0
        printed = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
        assert printed == json.loads(json.dumps(trained.predict(texts, **options)))
        assert set(printed[0]) == {"text", "label", "probabilities", *(
            ["explanation"] if options else [])}
    for one, batched in zip(trained.predict(texts, batch_size=1), trained.predict(texts),
                            strict=True):  # padding changes nothing but the rounding
        assert one["label"] == batched["label"]
        assert one["probabilities"] == pytest.approx(batched["probabilities"], abs=1e-6)
    with pytest.raises(TypeError, match="top_k"):
        trained.predict(texts, top_k=3)


def test_any_run_loads_with_rnnkit_load(run_dir) -> None:
    trained = rnnkit.load(run_dir)
    assert type(trained) is TrainedClassifier
    assert trained.config.model.hidden_size == 16 and trained.config.model.dropout == 0.1
    assert trained.model.config.vocab_size == len(trained.vocab)
    assert trained.model.config.num_classes == 2 and trained.labels.names == ("0", "1")
    assert trained.predict(["quite brilliant"])[0]["label"] == "1"


def _old_layout(run: Path, folder: Path) -> Path:
    """A copy of ``run`` whose checkpoints keep the task's config flat, the model's options
    beside the data's, as runs were saved before the model's config was nested."""
    shutil.copytree(run, folder)
    for name in ("best.safetensors", "last.safetensors"):
        checkpoint = load_checkpoint(folder / name)
        settings = checkpoint.config["task"]["sentiment"]
        model = settings.pop("model")
        settings.update(settings.pop("reading"))
        settings.update({k: model[k] for k in OLD_MODEL_KEYS})
        assert "word_dropout" in settings and "header" in settings
        assert not [v for v in settings.values() if isinstance(v, dict)]
        save_checkpoint(folder / name, kind="sentiment", weights=checkpoint.weights,
                        config=checkpoint.config, state=checkpoint.state)
    return folder


OLD_MODEL_KEYS = ("cell", "embedding_size", "hidden_size", "num_layers", "bidirectional",
                  "pooling", "dropout", "word_dropout")


def test_runs_saved_before_the_model_config_was_nested_still_load(run_dir, tmp_path,
                                                                 capsys) -> None:
    old = _old_layout(run_dir, tmp_path / "old")
    trained, new = TrainedClassifier.load(old), TrainedClassifier.load(run_dir)
    assert trained.config == new.config and trained.config.model.hidden_size == 16
    texts = ["quite brilliant", "the plot was clumsy and flat"]
    assert trained.predict(texts, explain=True) == new.predict(texts, explain=True)
    assert type(rnnkit.load(old)) is TrainedClassifier
    # and such a run resumes, keeping its settings
    assert main(["sentiment", "train", "--resume", str(old), "--max-steps", "110",
                 "--no-progress"]) == 0
    assert "stopped after 110 steps" in capsys.readouterr().err
    assert TrainedClassifier.load(old / "last.safetensors").config.model.hidden_size == 16


def test_csv_with_columns_and_bad_rows(tmp_path, capsys) -> None:
    rng = random.Random(3)
    lines = ["id,review,sentiment"]
    for i in range(120):
        positive = i % 2 == 0
        lines.append(f"{i},{sentence(rng, positive)},{'pos' if positive else 'neg'}")
    lines.insert(5, "999,,pos")  # a row without text
    (tmp_path / "data.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    common = ["sentiment", "train", "--train", str(tmp_path / "data.csv"), "--max-steps", "5",
              *SMALL]
    assert main([*common, "--out", str(tmp_path / "a")]) == 2
    assert "data.csv" in capsys.readouterr().err
    assert main([*common, "--out", str(tmp_path / "b"), "--skip-bad-rows"]) == 0
    assert "skipped 1 bad rows" in capsys.readouterr().err
    assert main([*common, "--out", str(tmp_path / "c"), "--text-column", "txt"]) == 2
    assert "txt" in capsys.readouterr().err


def test_unknown_label_in_eval_data_is_named(run_dir, tmp_path, capsys) -> None:
    (tmp_path / "odd.txt").write_text("1 a lovely film\n7 a strange film\n", encoding="utf-8")
    assert main(["sentiment", "eval", str(run_dir), str(tmp_path / "odd.txt")]) == 2
    assert "'7'" in capsys.readouterr().err


def test_vectors_file_with_a_wrong_dimension_is_named(tmp_path, capsys) -> None:
    write_sst(tmp_path / "train.txt", 60, seed=4)
    (tmp_path / "vec.txt").write_text("the 0.1 0.2 0.3\nfilm 0.1 0.2\n", encoding="utf-8")
    assert main(["sentiment", "train", "--train", str(tmp_path / "train.txt"), "--vectors",
                 str(tmp_path / "vec.txt"), "--out", str(tmp_path / "run"), "--max-steps", "2",
                 *SMALL]) == 2
    assert "vec.txt:2:" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


def test_pretrained_vectors_are_used(tmp_path) -> None:
    from rnnkit.tasks import sentiment

    write_sst(tmp_path / "train.txt", 200, seed=5)
    words = GOOD + BAD + FILLER
    (tmp_path / "vec.txt").write_text(
        "".join(f"{w} " + " ".join(f"{random.Random(i).uniform(-1, 1):.3f}" for _ in range(8))
                + "\n" for i, w in enumerate(words)), encoding="utf-8")
    model = sentiment.train(tmp_path / "run", train=str(tmp_path / "train.txt"),
                            vectors=str(tmp_path / "vec.txt"), freeze_vectors=True, max_steps=3,
                            hidden_size=8, batch_size=16, progress=False)
    assert model.model.config.embedding_size == 8 and model.model.config.freeze_embedding
    assert model.config.freeze_vectors and model.config.model.embedding_size == 300
    from rnnkit.data.vectors import load_vectors

    vectors = load_vectors(tmp_path / "vec.txt")
    row = model.vocab.words.index("great")
    # frozen: after training the embedding still holds the file's vector
    assert model.model.embedding.weight[row].tolist() == vectors["great"].tolist()


def test_words_known_only_to_the_vectors_join_the_vocabulary(tmp_path) -> None:
    from rnnkit.tasks import sentiment

    write_sst(tmp_path / "train.txt", 200, seed=5)
    unseen = ["superb", "dreadful", "film"]  # "film" is a training word already
    (tmp_path / "vec.txt").write_text("".join(
        f"{w} " + " ".join(f"{0.1 * (i + 1) + 0.01 * k:.3f}" for k in range(4)) + "\n"
        for i, w in enumerate(unseen)), encoding="utf-8")
    options = {"train": str(tmp_path / "train.txt"), "vectors": str(tmp_path / "vec.txt"),
               "freeze_vectors": True, "max_steps": 2, "hidden_size": 8, "batch_size": 16,
               "progress": False}
    model = sentiment.train(tmp_path / "all", **options)
    words = model.vocab.words
    assert words.count("film") == 1 and {"superb", "dreadful"} <= set(words)
    row = words.index("superb")
    assert model.model.embedding.weight[row].tolist() == pytest.approx([0.1, 0.11, 0.12, 0.13])
    # predicting reads the unseen word as itself, not as <unk>
    assert model.vocab.encode(model.tokens("superb")) == [row]
    alone = sentiment.train(tmp_path / "none", vectors_vocab=0, **options)
    assert "superb" not in alone.vocab.words and len(alone.vocab) == len(words) - 2


def test_download_fetches_checks_and_prints_the_train_command(tmp_path, monkeypatch, capsys):
    import hashlib

    from rnnkit.data import download

    files = {}
    for name, text in (("sst2-train", "1 good\n0 bad\n"), ("sst2-dev", "1 fine\n")):
        source = tmp_path / f"{name}.txt"
        source.write_text(text, encoding="utf-8")
        files[name] = download.Resource(name, source.as_uri(),
                                        hashlib.sha256(text.encode()).hexdigest(), f"{name}.sst")
    monkeypatch.setattr(download, "RESOURCES", files)
    cache = tmp_path / "cache"
    assert main(["sentiment", "download", "sst2", "--cache", str(cache)]) == 0
    command = capsys.readouterr().out
    assert f"--train {cache / 'sst2-train.sst'} --val {cache / 'sst2-dev.sst'}" in command
    assert (cache / "sst2-dev.sst").read_text(encoding="utf-8") == "1 fine\n"
    files["sst2-dev"] = download.Resource("sst2-dev", files["sst2-dev"].url, "0" * 64, "other")
    assert main(["sentiment", "download", "sst2", "--cache", str(cache)]) == 2
    assert "sha256 mismatch for sst2-dev" in capsys.readouterr().err


def test_download_sst2_phrases_extracts_glue_tsv_that_trains(tmp_path, monkeypatch, capsys):
    import hashlib
    import zipfile

    from rnnkit.data import download
    from rnnkit.data.labelled import read_labelled

    archive = tmp_path / "SST-2.zip"
    with zipfile.ZipFile(archive, "w") as bundle:  # GLUE's layout: a header, text TAB label
        bundle.writestr("SST-2/train.tsv", "sentence\tlabel\nhide new secretions \t0\n"
                                           "a fine film \t1\n")
        bundle.writestr("SST-2/dev.tsv", "sentence\tlabel\nit 's a charming journey . \t1\n")
    digest = hashlib.sha256(archive.read_bytes()).hexdigest()
    monkeypatch.setattr(download, "RESOURCES", {"sst2-phrases": download.Resource(
        "sst2-phrases", archive.as_uri(), digest, "SST-2.zip")})
    cache = tmp_path / "cache"
    assert main(["sentiment", "download", "sst2-phrases", "--cache", str(cache)]) == 0
    root = cache / "sst2-phrases" / "SST-2"
    assert (f"--train {root / 'train.tsv'} --val {root / 'dev.tsv'}"
            in capsys.readouterr().out)
    examples = read_labelled(root / "train.tsv").examples  # the printed files read as they are
    assert [(e.text, e.label) for e in examples] == [("hide new secretions", "0"),
                                                    ("a fine film", "1")]


def test_download_imdb_prints_the_train_and_eval_commands(tmp_path, monkeypatch, capsys):
    import hashlib
    import io
    import tarfile

    from rnnkit.data import download

    archive = tmp_path / "aclImdb_v1.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        for name in ("train/pos/0_9.txt", "train/neg/1_2.txt", "test/pos/2_8.txt"):
            info = tarfile.TarInfo(f"aclImdb/{name}")
            info.size = 4
            tar.addfile(info, io.BytesIO(b"good"))
    digest = hashlib.sha256(archive.read_bytes()).hexdigest()
    monkeypatch.setattr(download, "RESOURCES", {"imdb": download.Resource(
        "imdb", archive.as_uri(), digest, archive.name)})
    cache = tmp_path / "cache"
    assert main(["sentiment", "download", "imdb", "--cache", str(cache)]) == 0
    root = cache / "imdb" / "aclImdb"
    assert capsys.readouterr().out == (
        f"rnnkit sentiment train --train {root / 'train'} --format imdb --out runs/imdb\n"
        f"rnnkit sentiment eval runs/imdb {root / 'test'}\n")


@pytest.mark.parametrize(("truncation", "kept"), [
    ("head", ["w0", "w1", "w2", "w3", "w4"]),
    ("tail", ["w5", "w6", "w7", "w8", "w9"]),
    ("head+tail", ["w0", "w1", "w7", "w8", "w9"]),
])
def test_truncation_keeps_the_head_the_tail_or_both(truncation, kept):
    from rnnkit.data.labelled import WordVocab
    from rnnkit.data.text_encoder import truncate
    from rnnkit.tasks.sentiment import text_encoder

    tokens = [f"w{i}" for i in range(10)]
    assert truncate(tokens, 5, truncation) == kept
    assert truncate(tokens[:4], 5, truncation) == tokens[:4]  # short texts stay whole
    with pytest.raises(ValueError, match="truncation must be one of"):
        truncate(tokens, 5, "middle")
    # the run's config decides how its texts are cut
    vocab = WordVocab.build([tokens])
    encoder = text_encoder(SentimentConfig(max_len=5, truncation=truncation), vocab)
    assert encoder.tokens(" ".join(tokens)) == kept
    assert vocab.decode(encoder.encode([" ".join(tokens)])[0]) == kept
    with pytest.raises(ValueError, match="truncation must be one of"):
        text_encoder(SentimentConfig(truncation="middle"), vocab).tokens("w0 w1")


def _parse(*argv: str):
    parser = argparse.ArgumentParser()
    sentiment_cli.add_parser(parser.add_subparsers(dest="task"))
    return parser.parse_args(["sentiment", *argv])


def test_every_flag_of_before_still_parses_with_its_meaning() -> None:
    args = _parse(
        "train", "--train", "t.csv", "--val", "v.csv", "--format", "csv", "--text-column",
        "review", "--label-column", "1", "--header", "--skip-bad-rows", "--encoding-errors",
        "replace", "--vectors", "vec.txt", "--freeze-vectors", "--vectors-vocab", "0",
        "--min-freq", "2", "--max-vocab", "900", "--max-len", "60", "--truncation", "tail",
        "--cell", "gru", "--pooling", "attention", "--embedding-size", "50", "--hidden-size",
        "64", "--num-layers", "2", "--batch-size", "8", "--dropout", "0.2", "--word-dropout",
        "0.1", "--unidirectional", "--learning-rate", "1e-3", "--weight-decay", "0.01",
        "--eval-every", "50", "--patience", "2", "--seed", "3", "--warmup-steps", "10",
        "--weight-average", "0.99", "--out", "runs/a", "--resume", "runs/b", "--time-budget",
        "10m", "--max-steps", "5", "--device", "cpu", "--no-progress")
    assert config_values(args, SentimentConfig) == SentimentConfig(
        train="t.csv", val="v.csv", vectors="vec.txt", freeze_vectors=True, vectors_vocab=0,
        min_freq=2, max_vocab=900, max_len=60, truncation="tail", batch_size=8,
        reading=LabelledFormat(format="csv", text_column="review", label_column="1",
                               header=True, skip_bad_rows=True, encoding_errors="replace"),
        model=ClassifierConfig(
            cell="gru", pooling="attention", embedding_size=50, hidden_size=64, num_layers=2,
            dropout=0.2, word_dropout=0.1, bidirectional=False))
    assert given(args, TrainConfig) == {
        "learning_rate": 1e-3, "weight_decay": 0.01, "eval_every": 50, "patience": 2,
        "seed": 3, "warmup_steps": 10, "weight_average": 0.99}
    assert (args.out, args.resume, args.time_budget, args.max_steps, args.device,
            args.no_progress) == ("runs/a", "runs/b", 600.0, 5, "cpu", True)
    # a flag not given is the config's default (the header: detected)
    assert config_values(_parse("train", "--no-header"), SentimentConfig).reading.header is False
    assert config_values(_parse("train"), SentimentConfig) == SentimentConfig()
    assert SentimentConfig().model.word_dropout == 0.3  # the task's measured default
    with pytest.raises(SystemExit):
        _parse("train", "--pooling", "sum")
    args = _parse("predict", "run", "a text", "--file", "f.txt", "--json", "--explain",
                  "--html", "why.html", "--device", "cpu")
    assert config_values(args, PredictOptions) == PredictOptions(explain=True)
    assert (args.texts, args.file, args.json, args.html) == (["a text"], "f.txt", True,
                                                             "why.html")
    args = _parse("eval", "run", "test.csv", "--json", "--plot", "c.png", "--device", "cpu")
    assert (args.run, args.file, args.json, args.plot) == ("run", "test.csv", True, "c.png")


def test_train_without_data_is_a_usage_error(tmp_path, capsys) -> None:
    assert main(["sentiment", "train", "--out", str(tmp_path / "run"), "--no-progress"]) == 2
    assert "--train FILE" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()
