"""``rnnkit caption train | eval | predict | scenes`` as a user runs them, on tiny data.

The models here are far too small and short-trained to caption well (the built-in scenes'
quality is measured by ``benchmarks/bench_caption.py``); these tests check that every path runs
end to end and says what went wrong when the input is bad. That the decoder learns is checked
in ``tests/models/test_captioner.py`` (it overfits a small set of captions exactly).
"""

from __future__ import annotations

import csv
import json

import pytest
from PIL import Image

from rnnkit.cli import main
from rnnkit.tasks.caption import TrainedCaptioner

TINY = ["--image-size", "16", "--cnn-width", "4", "--convs-per-block", "1", "--hidden-size", "16",
        "--embedding-size", "8", "--batch-size", "8", "--eval-images", "8", "--min-count", "1",
        "--no-progress", "--learning-rate", "1e-2"]


@pytest.fixture(scope="module")
def scenes_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("scenes")
    assert main(["caption", "scenes", "--out", str(folder), "--count", "12",
                 "--scene-objects", "1"]) == 0
    return folder


@pytest.fixture(scope="module")
def scene_run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("caption") / "run"
    assert main(["caption", "train", "--scenes", "40", "--scene-objects", "1", "--max-steps", "6",
                 "--eval-every", "3", "--out", str(folder), *TINY]) == 0
    return folder


def test_scenes_writes_images_and_a_captions_csv(scenes_dir) -> None:
    with open(scenes_dir / "captions.csv", encoding="utf-8") as table:
        rows = list(csv.DictReader(table))
    assert len(rows) == 12 * 5 and set(rows[0]) == {"image", "caption"}
    assert {r["image"] for r in rows} == {f"scene{i:04d}.png" for i in range(12)}
    with Image.open(scenes_dir / "scene0000.png") as image:
        assert image.size == (64, 64) and image.mode == "RGB"


def test_train_on_the_built_in_scenes_writes_the_run(scene_run) -> None:
    for name in ("best.safetensors", "last.safetensors", "metrics.jsonl", "config.json"):
        assert (scene_run / name).is_file()
    rows = [json.loads(line) for line in (scene_run / "metrics.jsonl").read_text().splitlines()]
    evaluations = [r for r in rows if "val_loss" in r]
    assert [r["step"] for r in evaluations] == [3, 6]
    assert {"val_bleu4", "val_cider", "val_objects_correct"} <= set(evaluations[0])


def test_eval_on_fresh_scenes_reports_bleu_cider_and_objects(scene_run, capsys) -> None:
    assert main(["caption", "eval", str(scene_run), "--scenes", "10", "--json"]) == 0
    scores = json.loads(capsys.readouterr().out)
    assert set(scores) == {"bleu1", "bleu2", "bleu3", "bleu4", "cider", "objects_correct"}
    assert all(0 <= scores[f"bleu{n}"] <= 1 for n in range(1, 5))
    assert 0 <= scores["cider"] <= 10 and 0 <= scores["objects_correct"] <= 1


def test_eval_with_beam_search_prints_a_table(scene_run, capsys) -> None:
    assert main(["caption", "eval", str(scene_run), "--scenes", "4", "--method", "beam",
                 "--beam-size", "3"]) == 0
    out = capsys.readouterr().out
    assert "4 images, beam decoding" in out and "bleu4" in out and "cider" in out


def test_predict_files_json_nbest_and_html(scene_run, scenes_dir, tmp_path, capsys) -> None:
    images = [str(scenes_dir / f"scene{i:04d}.png") for i in range(3)]
    page = tmp_path / "captions.html"
    assert main(["caption", "predict", str(scene_run), *images, "--method", "beam",
                 "--nbest", "2", "--json", "--html", str(page)]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["image"] for r in rows] == images
    for row in rows:
        assert len(row["nbest"]) == 2 and row["nbest"][0]["caption"] == row["caption"]
        assert row["nbest"][0]["score"] >= row["nbest"][1]["score"]
        assert len(row["caption"].split()) <= 30
    text = page.read_text(encoding="utf-8")
    assert text.count("data:image/png;base64,") == 3 and rows[0]["caption"] in text


def test_sampling_is_reproducible_with_a_seed(scene_run, scenes_dir, capsys) -> None:
    image = str(scenes_dir / "scene0001.png")
    outputs = []
    for _ in range(2):
        assert main(["caption", "predict", str(scene_run), image, "--method", "sample",
                     "--seed", "7", "--temperature", "1.5"]) == 0
        outputs.append(capsys.readouterr().out)
    assert outputs[0] == outputs[1]


def test_attention_decoder_draws_its_maps(scenes_dir, tmp_path, capsys) -> None:
    run_dir = tmp_path / "attention"
    assert main(["caption", "train", "--scenes", "16", "--scene-objects", "1", "--max-steps",
                 "2", "--eval-every", "2", "--conditioning", "attention", "--out", str(run_dir),
                 *TINY]) == 0
    page = tmp_path / "attention.html"
    assert main(["caption", "predict", str(run_dir), str(scenes_dir / "scene0000.png"),
                 "--html", str(page)]) == 0
    caption = capsys.readouterr().out.split("\t")[1].strip()
    # one map per word of the caption (an untrained model may write none at all)
    assert page.read_text(encoding="utf-8").count("<figure>") == len(caption.split())


def test_csv_data_with_a_broken_image_reports_and_skips_it(scenes_dir, tmp_path, capsys) -> None:
    broken = scenes_dir / "broken.png"
    broken.write_text("not an image", encoding="utf-8")
    table = tmp_path / "captions.csv"
    rows = (scenes_dir / "captions.csv").read_text(encoding="utf-8").splitlines()
    table.write_text("\n".join([*rows, "broken.png,a red circle"]) + "\n", encoding="utf-8")
    run_dir = tmp_path / "files"
    assert main(["caption", "train", "--csv", str(table), "--images", str(scenes_dir),
                 "--max-steps", "2", "--eval-every", "2", "--out", str(run_dir), *TINY]) == 0
    err = capsys.readouterr().err
    assert "skipped 1 bad records or images" in err and "broken.png" in err
    assert main(["caption", "eval", str(run_dir), "--csv", str(scenes_dir / "captions.csv"),
                 "--images", str(scenes_dir), "--json"]) == 0
    assert "objects_correct" not in json.loads(capsys.readouterr().out)  # files: no scenes
    assert main(["caption", "eval", str(run_dir)]) == 2  # trained on files: data is needed
    assert "give the evaluation data" in capsys.readouterr().err
    trained = TrainedCaptioner.load(run_dir)
    assert trained.config.csv == str(table) and trained.model.encoder is not None


def test_bad_inputs_are_clear_errors(scene_run, tmp_path, capsys) -> None:
    fake = tmp_path / "fake.png"
    fake.write_text("hello", encoding="utf-8")
    assert main(["caption", "predict", str(scene_run), str(fake)]) == 2
    assert str(fake) in capsys.readouterr().err
    assert main(["caption", "predict", str(scene_run), str(tmp_path / "missing.jpg")]) == 2
    assert "missing.jpg" in capsys.readouterr().err
    assert main(["caption", "train", "--csv", str(tmp_path / "none.csv"), "--out",
                 str(tmp_path / "r"), "--max-steps", "1", *TINY]) == 2
    assert "--images" in capsys.readouterr().err


@pytest.mark.parametrize(("settings", "features_shape", "decoder_size"), [
    ({}, (2, 128), 128),  # a 2 x 2 grid of 32 channels, flattened
    ({"image_vector": "mean"}, (2, 4, 32), 32),  # the grid, which the decoder averages
    ({"conditioning": "attention"}, (2, 4, 32), 32),  # attention reads the grid
])
def test_the_image_vector_is_the_flattened_grid_by_default(settings, features_shape,
                                                            decoder_size) -> None:
    import torch

    from rnnkit.data.captions import CaptionVocab
    from rnnkit.tasks.caption import CaptionConfig, ImageCaptioner, _feature_size, model_config

    vocab = CaptionVocab.build([["a", "red", "circle"]], min_count=1)
    config = CaptionConfig(image_size=32, cnn_width=4, **settings)
    model = ImageCaptioner(model_config(config, vocab, _feature_size(config, None)))
    assert model.features(torch.randn(2, 3, 32, 32)).shape == features_shape
    assert model.decoder.config.feature_size == decoder_size
    with pytest.raises(ValueError, match="image_vector must be 'flatten' or 'mean'"):
        model_config(CaptionConfig(image_vector="sum"), vocab, 8)
