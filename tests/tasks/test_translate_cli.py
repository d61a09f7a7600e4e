"""``rnnkit translate train | eval | predict`` as a user runs them, on tiny data the test writes.

The model is far too small and briefly trained to translate well (Multi30k quality is measured
by ``benchmarks/bench_translate.py``; that the model can learn a mapping exactly is checked in
``tests/models/test_seq2seq.py``): these tests check every path end to end, and bad input.
"""

from __future__ import annotations

import json
import random

import pytest
import torch

from rnnkit.cli import main
from rnnkit.data.subword import Tokenizer
from rnnkit.models.seq2seq import Translation
from rnnkit.tasks.translate import Output, TrainedTranslator, plot_attention

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
    output = Output("the red house", "das rote haus", -1.0, [], ["the", "red", "house"],
                    ["das", "rote", "haus"], torch.eye(3))
    assert plot_attention(output, tmp_path / "map.png") == tmp_path / "map.png"
    assert (tmp_path / "map.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    empty = Output("x", "", -1.0, [], ["x"], [], torch.zeros(0, 1))
    assert plot_attention(empty, tmp_path / "none.png") is None


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
    assert trained._text(result, ["zebra", "red", "house"], replace=True) == "rot zebra"
    assert trained._text(result, ["zebra", "red", "house"], replace=False) == "rot <unk>"


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
