"""``rnnkit translate train | eval | predict`` as a user runs them, on tiny data the test writes.

The model is far too small and briefly trained to translate well (Multi30k quality is measured
by ``benchmarks/bench_translate.py``; that the model can learn a mapping exactly is checked in
``tests/models/test_seq2seq.py``): these tests check every path end to end, and bad input.
"""

from __future__ import annotations

import json
import random
import shutil

import pytest
import torch

import rnnkit
from rnnkit.arguments import config_values, given
from rnnkit.cli import _build_parser, main
from rnnkit.config import from_dict
from rnnkit.data.subword import Tokenizer
from rnnkit.data.translation import translation_text
from rnnkit.inspect.attention import plot_attention
from rnnkit.models.seq2seq import Translation
from rnnkit.tasks import translate
from rnnkit.tasks.translate import DecodeOptions, TrainedTranslator, TranslateConfig
from rnnkit.train.checkpoint import load_checkpoint, save_checkpoint
from rnnkit.train.trainer import TrainConfig

WORDS = {"red": "rot", "house": "haus", "small": "klein", "dog": "hund", "big": "gross",
         "cat": "katze", "the": "das", "green": "grün", "tree": "baum", "runs": "läuft"}
TINY = ["--hidden-size", "16", "--embedding-size", "8", "--batch-size", "16",
        "--eval-every", "10", "--no-progress", "--learning-rate", "1e-2",
        "--tokenization", "word", "--min-freq", "1"]


def write_pairs(folder, n: int, seed: int) -> tuple:
    rng = random.Random(seed)
    sources = [" ".join(rng.choices(list(WORDS), k=rng.randint(2, 6))) for _ in range(n)]
    targets = [" ".join(WORDS[w] for w in s.split()) for s in sources]
    src, tgt = folder / f"{seed}.en", folder / f"{seed}.de"
    src.write_text("\n".join(sources) + "\n", encoding="utf-8")
    tgt.write_text("\n".join(targets) + "\n", encoding="utf-8")
    return src, tgt


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("translate")
    train = write_pairs(folder, 200, seed=0)
    val = write_pairs(folder, 30, seed=1)
    assert main(["translate", "train", "--train", *map(str, train), "--val", *map(str, val),
                 "--out", str(folder / "run"), "--max-steps", "60", *TINY]) == 0
    return folder / "run"


def test_eval_reports_sacrebleu_bleu_and_chrf(run_dir, capsys) -> None:
    src, ref = run_dir.parent / "1.en", run_dir.parent / "1.de"
    assert main(["translate", "eval", str(run_dir), "--src", str(src), "--ref", str(ref),
                 "--json", "--method", "greedy"]) == 0
    scores = json.loads(capsys.readouterr().out)
    assert set(scores) == {"bleu", "chrf"}
    assert 0 <= scores["bleu"] <= 100 and 0 <= scores["chrf"] <= 100
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows if "val_bleu" in r] == [10, 20, 30, 40, 50, 60]


def test_predict_nbest_json_and_attention_map(run_dir, tmp_path, capsys) -> None:
    png = tmp_path / "attention.png"
    assert main(["translate", "predict", str(run_dir), "the red house", "a dog runs",
                 "--nbest", "3", "--json", "--attention-map", str(png)]) == 0
    captured = capsys.readouterr()
    rows = [json.loads(line) for line in captured.out.splitlines()]
    assert [r["source"] for r in rows] == ["the red house", "a dog runs"]
    for row in rows:
        scores = [n["score"] for n in row["nbest"]]
        assert len(scores) == 3 and scores == sorted(scores, reverse=True)
        assert row["nbest"][0]["translation"] == row["translation"]
    if rows[0]["translation"]:  # an empty translation has no map to draw
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    else:
        assert not png.exists() and "no attention map" in captured.err


def test_attention_map_draws_target_rows_and_source_columns(tmp_path) -> None:
    assert plot_attention(torch.eye(3), ["the", "red", "house"], ["das", "rote", "haus"],
                          tmp_path / "map.png") == tmp_path / "map.png"
    assert (tmp_path / "map.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert plot_attention(torch.zeros(0, 1), ["x"], [], tmp_path / "none.png") is None
    assert plot_attention(None, ["x"], ["y"], tmp_path / "none.png") is None  # no attention
    assert not (tmp_path / "none.png").exists()


def test_predict_reads_stdin_and_handles_a_very_long_sentence(run_dir, capsys,
                                                              monkeypatch) -> None:
    import io

    long = " ".join(["the big green tree"] * 60)  # 240 words, far over the training lengths
    monkeypatch.setattr("sys.stdin", io.StringIO(f"small cat\n\n{long}\n"))
    assert main(["translate", "predict", str(run_dir), "--method", "greedy"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2  # the blank line is not a sentence
    assert len(lines[1].split()) <= 200  # 2 n + 10, at most 200


def test_unknown_words_are_replaced_by_the_attended_source_word(run_dir) -> None:
    trained = TrainedTranslator.load(run_dir)
    known = trained.target.id("rot")
    attention = torch.tensor([[0.1, 0.8, 0.1], [0.7, 0.2, 0.1]])  # word 1 looked at source 0
    result = Translation([known, Tokenizer.UNK], -1.0, attention)
    pieces = ["zebra", "red", "house"]
    assert translation_text(result.tokens, result.attention, pieces, trained.target) == \
        "rot zebra"
    assert translation_text(result.tokens, None, pieces, trained.target) == "rot <unk>"


def test_tab_separated_pairs_with_reverse(tmp_path, capsys) -> None:
    rows = [f"{' '.join(WORDS[w] for w in s.split())}\t{s}\tCC-BY note"
            for s in ["the red house", "the small dog", "the cat runs"] * 20]
    (tmp_path / "pairs.tsv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    assert main(["translate", "train", "--train", str(tmp_path / "pairs.tsv"), "--reverse",
                 "--out", str(tmp_path / "run"), "--max-steps", "2", *TINY]) == 0
    trained = TrainedTranslator.load(tmp_path / "run")
    assert "house" in trained.source.pieces("the red house")  # English is the source


def test_bad_inputs_are_clear_errors(tmp_path, capsys) -> None:
    (tmp_path / "a.en").write_text("one\ntwo\nthree\n", encoding="utf-8")
    (tmp_path / "a.de").write_text("eins\nzwei\n", encoding="utf-8")
    assert main(["translate", "train", "--train", str(tmp_path / "a.en"), str(tmp_path / "a.de"),
                 "--out", str(tmp_path / "r1"), "--max-steps", "1", *TINY]) == 2
    err = capsys.readouterr().err
    assert "3" in err and "2" in err and "a.en" in err and "a.de" in err
    (tmp_path / "p.tsv").write_text("hello\thallo\nno tab here\n", encoding="utf-8")
    assert main(["translate", "train", "--train", str(tmp_path / "p.tsv"), "--out",
                 str(tmp_path / "r2"), "--max-steps", "1", *TINY]) == 2
    assert "p.tsv:2" in capsys.readouterr().err
    assert main(["translate", "train", "--train", "a", "b", "c", "--out",
                 str(tmp_path / "r3"), *TINY]) == 2
    assert "1 or 2 files" in capsys.readouterr().err
    assert not (tmp_path / "r3").exists()


def test_any_run_loads_and_predict_returns_the_json_rows(run_dir, capsys) -> None:
    trained = rnnkit.load(run_dir)
    assert type(trained) is TrainedTranslator
    assert (trained.config.model.hidden_size, trained.config.model.embedding_size) == (16, 8)
    assert trained.model.config.source_vocab_size == len(trained.source)
    sentences = ["the red house", "a dog runs"]
    assert main(["translate", "predict", str(run_dir), *sentences, "--nbest", "3",
                 "--json"]) == 0
    printed = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert trained.predict(sentences, n_best=3) == printed
    assert set(trained.predict(sentences[:1], method="greedy")[0]) == {
        "source", "translation", "score"}  # no n-best list for one translation
    with pytest.raises(TypeError):
        trained.predict(sentences, beam=3)  # an option DecodeOptions does not have


def _old_layout(config: dict) -> dict:
    """A run's saved config as rnnkit wrote it before the model's config was nested in the
    task's: the model's options flat among the data options, ``bidirectional`` for the
    model's ``bidirectional_encoder``."""
    values = dict(config["task"]["translate"])
    model = values.pop("model")
    values.update({k: model[k] for k in ("cell", "embedding_size", "hidden_size",
                                         "encoder_layers", "decoder_layers", "attention",
                                         "input_feeding", "reverse_source", "tie_embeddings",
                                         "dropout")})
    values["bidirectional"] = model["bidirectional_encoder"]
    return {**config, "task": {**config["task"], "translate": values}}


def test_a_run_saved_in_the_old_flat_layout_loads_and_resumes(run_dir, tmp_path) -> None:
    old = tmp_path / "old"
    shutil.copytree(run_dir, old)
    for name in ("best.safetensors", "last.safetensors"):
        saved = load_checkpoint(old / name)
        assert "model" in saved.config["task"]["translate"]  # today's layout, nested
        save_checkpoint(old / name, kind="translate", weights=saved.weights,
                        config=_old_layout(saved.config), state=saved.state)
        flat = load_checkpoint(old / name).config["task"]["translate"]
        assert "model" not in flat and flat["bidirectional"] is True
    now, then = TrainedTranslator.load(run_dir), rnnkit.load(old)
    assert type(then) is TrainedTranslator and then.config == now.config
    assert then.predict(["the red house"]) == now.predict(["the red house"])
    resumed = translate.train(resume=old, max_steps=62, progress=False)
    assert resumed.result.steps == 62 and resumed.config == now.config


def test_every_old_flag_still_parses() -> None:
    parser = _build_parser()
    args = parser.parse_args([
        "translate", "train", "--train", "a.en", "a.de", "--val", "v.tsv", "--reverse",
        "--skip-bad-rows", "--encoding-errors", "replace", "--tokenization", "word",
        "--vocab-size", "900", "--min-freq", "3", "--lowercase", "--max-len", "40",
        "--cell", "lstm", "--attention", "dot", "--embedding-size", "32", "--hidden-size", "64",
        "--encoder-layers", "2", "--decoder-layers", "3", "--batch-size", "8",
        "--eval-sentences", "20", "--dropout", "0.1", "--label-smoothing", "0.2",
        "--teacher-forcing", "0.5", "--unidirectional", "--input-feeding", "--reverse-source",
        "--untied", "--out", "r", "--resume", "r", "--time-budget", "45m", "--max-steps", "9",
        "--learning-rate", "1e-3", "--weight-decay", "0.1", "--eval-every", "7",
        "--patience", "2", "--seed", "5", "--warmup-steps", "3", "--weight-average", "0.9",
        "--device", "cpu", "--no-progress"])
    assert (args.train, args.val, args.time_budget, args.max_steps) == (
        ["a.en", "a.de"], ["v.tsv"], 2700.0, 9)
    config = config_values(args, TranslateConfig)
    assert (config.reverse, config.skip_bad_rows, config.encoding_errors, config.tokenization,
            config.vocab_size, config.min_freq, config.lowercase, config.max_len,
            config.batch_size, config.eval_sentences, config.label_smoothing,
            config.teacher_forcing) == (True, True, "replace", "word", 900, 3, True, 40, 8, 20,
                                        0.2, 0.5)
    model = config.model
    assert (model.cell, model.attention, model.embedding_size, model.hidden_size,
            model.encoder_layers, model.decoder_layers, model.dropout) == (
        "lstm", "dot", 32, 64, 2, 3, 0.1)
    assert not model.bidirectional_encoder and not model.tie_embeddings
    assert model.input_feeding and model.reverse_source
    assert given(args, TrainConfig) == {"learning_rate": 1e-3, "weight_decay": 0.1,
                                        "eval_every": 7, "patience": 2, "seed": 5,
                                        "warmup_steps": 3, "weight_average": 0.9}
    defaults = config_values(parser.parse_args(["translate", "train", "--train", "p.tsv"]),
                             TranslateConfig)
    assert defaults.model.bidirectional_encoder and defaults.model.tie_embeddings
    for action in ("eval", "predict"):
        extra = ["--src", "s", "--ref", "r"] if action == "eval" else ["--nbest", "4"]
        args = parser.parse_args([
            "translate", action, "run", *extra, "--method", "sample", "--beam-size", "3",
            "--length-penalty", "0.6", "--temperature", "0.7", "--seed", "1",
            "--no-unk-replace", "--device", "cpu", "--json"])
        options = config_values(args, DecodeOptions)
        assert (options.method, options.beam_size, options.length_penalty,
                options.temperature, options.seed, options.replace_unknown) == (
            "sample", 3, 0.6, 0.7, 1, False)
        assert options.n_best == (4 if action == "predict" else 1)
    # train()'s old keyword for the encoder's directions still means the same
    assert not from_dict(TranslateConfig, {"bidirectional": False}).model.bidirectional_encoder
    assert TranslateConfig(train="p.tsv").train == ["p.tsv"]
