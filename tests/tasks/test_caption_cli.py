"""``rnnkit caption train | eval | predict | scenes`` as a user runs them, on tiny data.

The models here are far too small and short-trained to caption well (the built-in scenes'
quality is measured by ``benchmarks/bench_caption.py``); these tests check that every path runs
end to end and says what went wrong when the input is bad. That the decoder learns is checked
in ``tests/models/test_captioner.py`` (it overfits a small set of captions exactly).
"""

from __future__ import annotations

import argparse
import csv
import json
import shutil
from dataclasses import fields

import pytest
from PIL import Image

import rnnkit
from rnnkit.arguments import config_values, given
from rnnkit.cli import main
from rnnkit.data.files import save_json
from rnnkit.models.captioner import CaptionerConfig
from rnnkit.models.image_captioner import CaptionOptions, ImageCaptionerConfig
from rnnkit.tasks import caption_cli
from rnnkit.tasks.caption import CaptionConfig, EvalOptions, TrainedCaptioner
from rnnkit.train.checkpoint import load_checkpoint, save_checkpoint
from rnnkit.train.trainer import TrainConfig

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
    row, = TrainedCaptioner.load(run_dir).predict([str(scenes_dir / "scene0000.png")],
                                                  attention=True)
    assert row["caption"] == caption and len(row["attention"]) == len(caption.split())
    assert all(sum(weights) == pytest.approx(1, abs=1e-5) for weights in row["attention"])


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


def test_a_run_loads_back_with_its_nested_config(scene_run) -> None:
    trained = rnnkit.load(scene_run)
    assert isinstance(trained, TrainedCaptioner)
    assert (trained.config.scenes, trained.config.image_size, trained.config.batch_size) == (
        40, 16, 8)
    model = trained.config.model
    assert (model.hidden_size, model.embedding_size, model.cnn_width) == (16, 8, 4)
    assert (model.encoder, model.cell, model.dropout, model.max_len) == ("smallvgg", "lstm",
                                                                         0.3, 30)
    assert (model.vocab_size, model.feature_size) == (None, None)  # the data decides them
    built = trained.model.config
    assert built.vocab_size == len(trained.vocab) and built.feature_size == 32  # 1 x 1 x 32
    assert trained.model.decoder.config.feature_size == 32


def test_predict_returns_the_json_rows(scene_run, scenes_dir, capsys) -> None:
    images = [str(scenes_dir / f"scene{i:04d}.png") for i in range(2)]
    assert main(["caption", "predict", str(scene_run), *images, "--method", "beam",
                 "--nbest", "2", "--json"]) == 0
    printed = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    trained = TrainedCaptioner.load(scene_run)
    assert trained.predict(images, method="beam", n_best=2) == printed
    with Image.open(images[0]) as image:  # a PIL image is captioned as its file is
        row = trained.predict([image.copy()])[0]
    assert row == {**trained.predict(images[:1])[0], "image": "image 0"}
    with pytest.raises(TypeError):
        trained.predict(images, top_k=2)


# the model options that runs written before the model's config was nested kept flat
OLD_FLAT = ("max_len", "encoder", "cnn_width", "convs_per_block", "finetune", "conditioning",
            "image_vector", "cell", "embedding_size", "hidden_size", "num_layers", "dropout")


def _old_layout(task: dict) -> dict:
    """A saved config as runs before the move wrote it: the task's config flat, and the model's
    the decoder's config under "decoder" beside the encoder's (None: cached features)."""
    nested = task["caption"].pop("model")
    task["caption"].update({key: nested[key] for key in OLD_FLAT})
    built = task["model"]
    decoder = {f.name: built[f.name] for f in fields(CaptionerConfig)}
    encoder = built["encoder"] if built["encoder"] == "smallvgg" or built["finetune"] else None
    flatten = built["image_vector"] == "flatten" and built["conditioning"] != "attention"
    task["model"] = {"decoder": decoder, "encoder": encoder, "cnn_width": built["cnn_width"],
                     "convs_per_block": built["convs_per_block"], "flatten": flatten}
    return task


def test_old_run_folders_still_load_and_resume(scene_run, scenes_dir, tmp_path) -> None:
    old = tmp_path / "old"
    shutil.copytree(scene_run, old)
    for name in ("best.safetensors", "last.safetensors"):
        saved = load_checkpoint(old / name)
        task = _old_layout(saved.config["task"])
        save_checkpoint(old / name, kind="caption", weights=saved.weights, config=saved.config,
                        state=saved.state)
    save_json(old / "config.json", {"caption": task["caption"], "train": saved.config["train"]})
    task = load_checkpoint(old / "best.safetensors").config["task"]
    assert "hidden_size" in task["caption"] and "decoder" in task["model"]
    trained = rnnkit.load(old)
    assert isinstance(trained, TrainedCaptioner)
    assert trained.config == TrainedCaptioner.load(scene_run).config
    assert trained.model.config == TrainedCaptioner.load(scene_run).model.config
    images = [str(scenes_dir / "scene0003.png")]
    assert trained.predict(images, method="beam") == TrainedCaptioner.load(scene_run).predict(
        images, method="beam")
    assert main(["caption", "train", "--resume", str(old), "--max-steps", "7",
                 "--no-progress"]) == 0


def _parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    caption_cli.add_parser(parser.add_subparsers(dest="task"))
    return parser.parse_args(["caption", *argv])


def test_every_flag_of_before_still_parses_with_its_meaning() -> None:
    args = _parse(
        "train", "--coco", "A.json", "--flickr", "T.txt", "--csv", "C.csv", "--images", "I",
        "--split", "S.txt", "--val-coco", "VA.json", "--val-flickr", "VT.txt", "--val-csv",
        "VC.csv", "--val-images", "VI", "--val-split", "VS.txt", "--skip-bad-records",
        "--scenes", "7", "--scene-objects", "3", "--min-count", "2", "--max-len", "9",
        "--encoder", "resnet18", "--finetune", "--feature-cache", "F", "--conditioning",
        "attention", "--image-vector", "mean", "--cell", "gru", "--image-size", "32",
        "--cnn-width", "4", "--convs-per-block", "2", "--embedding-size", "6", "--hidden-size",
        "5", "--num-layers", "2", "--batch-size", "3", "--eval-images", "11", "--dropout", "0.1",
        "--out", "O", "--resume", "O", "--time-budget", "10m", "--max-steps", "3",
        "--learning-rate", "0.01", "--weight-decay", "0.1", "--eval-every", "5", "--patience",
        "2", "--seed", "3", "--warmup-steps", "1", "--weight-average", "0.9", "--device", "cpu",
        "--no-progress")
    config = config_values(args, CaptionConfig)
    assert (config.coco, config.flickr, config.csv, config.images, config.split) == (
        "A.json", "T.txt", "C.csv", "I", "S.txt")
    assert (config.val_coco, config.val_flickr, config.val_csv, config.val_images,
            config.val_split) == ("VA.json", "VT.txt", "VC.csv", "VI", "VS.txt")
    assert (config.skip_bad_records, config.scenes, config.scene_objects, config.min_count) == (
        True, 7, 3, 2)
    assert (config.feature_cache, config.image_size, config.batch_size, config.eval_images) == (
        "F", 32, 3, 11)
    model = config.model
    assert (model.max_len, model.encoder, model.finetune, model.conditioning) == (
        9, "resnet18", True, "attention")
    assert (model.image_vector, model.cell, model.cnn_width, model.convs_per_block) == (
        "mean", "gru", 4, 2)
    assert (model.embedding_size, model.hidden_size, model.num_layers, model.dropout) == (
        6, 5, 2, 0.1)
    assert given(args, TrainConfig) == {"learning_rate": 0.01, "weight_decay": 0.1,
                                        "eval_every": 5, "patience": 2, "seed": 3,
                                        "warmup_steps": 1, "weight_average": 0.9}
    assert (args.out, args.resume, args.time_budget, args.max_steps) == ("O", "O", 600.0, 3)
    assert (args.device, args.no_progress) == ("cpu", True)
    decoding = ("--method", "sample", "--beam-size", "4", "--length-penalty", "0.5",
                "--temperature", "1.5", "--seed", "7", "--device", "cpu")
    args = _parse("eval", "RUN", "--coco", "A.json", "--flickr", "T.txt", "--csv", "C.csv",
                  "--images", "I", "--split", "S.txt", "--scenes", "9", "--json", *decoding)
    assert config_values(args, EvalOptions) == EvalOptions("A.json", "T.txt", "C.csv", "I",
                                                           "S.txt", 9)
    assert config_values(args, CaptionOptions) == CaptionOptions("sample", 4, 0.5, 1.5, 7, 1)
    assert (args.run, args.json, args.device) == ("RUN", True, "cpu")
    assert config_values(_parse("eval", "RUN"), EvalOptions).scenes == 500
    args = _parse("predict", "RUN", "a.png", "b.png", "--nbest", "3", "--json", "--html",
                  "P.html", *decoding)
    assert config_values(args, CaptionOptions) == CaptionOptions("sample", 4, 0.5, 1.5, 7, 3)
    assert (args.run, args.images, args.json, args.html) == ("RUN", ["a.png", "b.png"], True,
                                                             "P.html")
    assert config_values(_parse("predict", "RUN", "a.png"), CaptionOptions) == CaptionOptions()
    assert config_values(_parse("predict", "RUN", "a.png", "--attention"),
                         CaptionOptions).attention  # new: the rows carry the attention
    args = _parse("scenes", "--out", "D", "--count", "4", "--seed", "5", "--scene-objects", "1")
    assert (args.out, args.count, args.seed, args.scene_objects) == ("D", 4, 5, 1)


def test_every_option_has_its_help() -> None:
    for config in (CaptionConfig, ImageCaptionerConfig, CaptionOptions, EvalOptions):
        assert [f.name for f in fields(config)
                if f.name != "model" and not f.metadata.get("help")] == []
