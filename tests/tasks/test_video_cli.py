"""``rnnkit video train | eval | predict`` as a user runs them, on tiny clips.

The models are too small and short-trained to classify well (the built-in motions' quality,
against the order-free baseline, is measured by ``benchmarks/bench_video.py``): these tests
check every path end to end, per-clip and per-frame, and bad input.
"""

from __future__ import annotations

import argparse
import json
import shutil
from dataclasses import fields

import pytest
import torch

import rnnkit
from rnnkit.arguments import config_values, given
from rnnkit.cli import main
from rnnkit.config import from_dict
from rnnkit.data.files import save_json
from rnnkit.models.frames import FrameModelConfig, FrameSequenceModel
from rnnkit.synthetic.motions import MotionConfig, write_motion_dataset
from rnnkit.tasks import video_cli
from rnnkit.tasks.video import EvalOptions, TrainedVideoModel, VideoConfig
from rnnkit.train.checkpoint import load_checkpoint, save_checkpoint
from rnnkit.train.trainer import TrainConfig

pytest.importorskip("av", reason="video files need PyAV (the dev extra installs it)")

TINY = ["--image-size", "16", "--cnn-width", "4", "--projection-size", "8", "--hidden-size",
        "8", "--batch-size", "4", "--no-progress"]
SMALL_CLIPS = MotionConfig(size=32, seconds=4.0)


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    folder = tmp_path_factory.mktemp("clips")
    write_motion_dataset(folder, per_class=3, seed=5, config=SMALL_CLIPS, progress=False)
    return folder


@pytest.fixture(scope="module")
def folder_run(clips, tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("video") / "run"
    assert main(["video", "train", "--root", str(clips), "--max-steps", "4", "--eval-every",
                 "2", "--out", str(run_dir), *TINY]) == 0
    return run_dir


def test_train_on_class_folders_writes_the_run(folder_run) -> None:
    rows = [json.loads(line) for line in (folder_run / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows if "val_accuracy" in r] == [2, 4]
    assert (folder_run / "best.safetensors").is_file()


def test_eval_json_and_confusion_png(folder_run, clips, capsys) -> None:
    assert main(["video", "eval", str(folder_run), "--root", str(clips), "--json"]) == 0
    scores = json.loads(capsys.readouterr().out)
    assert set(scores) == {"accuracy", "macro_f1"} and 0 <= scores["accuracy"] <= 1
    assert (folder_run / "confusion.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert main(["video", "eval", str(folder_run), "--root", str(clips)]) == 0
    assert "confusion matrix" in capsys.readouterr().out


def test_predict_prints_probabilities(folder_run, clips, capsys) -> None:
    video = str(clips / "left" / "0000.mp4")
    assert main(["video", "predict", str(folder_run), video, "--json"]) == 0
    row = json.loads(capsys.readouterr().out)
    assert row["video"] == video and row["label"] in row["probabilities"]
    assert sum(row["probabilities"].values()) == pytest.approx(1.0, abs=1e-5)
    assert len(row["probabilities"]) == 8 and "timeline" not in row


def test_per_frame_labels_from_segments_give_a_timeline(clips, tmp_path, capsys) -> None:
    table = tmp_path / "segments.csv"
    rows = ["path,start_s,end_s,label"]
    for motion in ("left", "right"):
        for index in range(3):
            rows.append(f"{clips / motion / f'{index:04d}.mp4'},1.0,3.0,{motion}")
    table.write_text("\n".join(rows) + "\n", encoding="utf-8")
    run_dir = tmp_path / "frames"
    assert main(["video", "train", "--root", str(clips), "--segments", str(table), "--max-steps",
                 "2", "--eval-every", "2", "--out", str(run_dir), *TINY]) == 0
    capsys.readouterr()
    assert main(["video", "predict", str(run_dir), str(clips / "right" / "0001.mp4"),
                 "--json"]) == 0
    row = json.loads(capsys.readouterr().out)
    assert [t["second"] for t in row["timeline"]] == pytest.approx([0.5, 1.5, 2.5, 3.5], abs=0.2)
    assert {t["label"] for t in row["timeline"]} <= {"background", "left", "right"}


def test_order_free_baseline_cannot_tell_a_clip_from_its_reverse() -> None:
    config = FrameModelConfig(num_classes=2, feature_size=6, encoder=None, order_free=True,
                              projection_size=5, dropout=0.0)
    model = FrameSequenceModel(config).eval()
    features = torch.randn(1, 7, 6)
    forward, _ = model(features)
    backward, _ = model(features.flip(1))
    torch.testing.assert_close(forward, backward)
    rnn = FrameSequenceModel(FrameModelConfig(num_classes=2, feature_size=6, encoder=None,
                                              projection_size=5, dropout=0.0)).eval()
    assert not torch.allclose(rnn(features)[0], rnn(features.flip(1))[0])


def test_padding_frames_never_change_a_clip(clips) -> None:
    model = FrameSequenceModel(FrameModelConfig(num_classes=3, feature_size=6, encoder=None,
                                                pooling="max", dropout=0.0)).eval()
    features = torch.randn(2, 5, 6)
    lengths = torch.tensor([5, 3])
    padded, _ = model(features, lengths)
    alone, _ = model(features[1:, :3], torch.tensor([3]))
    torch.testing.assert_close(padded[1:], alone)


def test_bad_inputs_are_clear_errors(clips, tmp_path, capsys) -> None:
    fake = tmp_path / "fake.mp4"
    fake.write_text("not a video", encoding="utf-8")
    assert main(["video", "train", "--csv", str(tmp_path / "missing.csv"), "--out",
                 str(tmp_path / "r"), "--max-steps", "1", *TINY]) == 2
    assert "missing.csv" in capsys.readouterr().err
    table = tmp_path / "clips.csv"
    table.write_text(f"path,label\n{fake},left\n", encoding="utf-8")
    assert main(["video", "train", "--csv", str(table), "--out", str(tmp_path / "r2"),
                 "--max-steps", "1", *TINY]) == 2
    assert "fake.mp4" in capsys.readouterr().err


def test_a_run_loads_back_with_its_nested_config(folder_run) -> None:
    trained = rnnkit.load(folder_run)
    assert isinstance(trained, TrainedVideoModel)
    assert trained.config.root is not None and trained.config.batch_size == 4
    model = trained.config.model
    assert (model.hidden_size, model.projection_size, model.cnn_width) == (8, 8, 4)
    assert (model.cell, model.dropout, model.encoder) == ("gru", 0.3, "smallvgg")
    assert (trained.model.config.num_classes, model.num_classes) == (8, None)  # from the data
    assert trained.model.config.feature_size == 32  # (16 // 16)^2 positions * 8 * cnn_width


def test_predict_returns_the_json_rows(folder_run, clips, capsys) -> None:
    videos = [str(clips / "left" / "0000.mp4"), str(clips / "up" / "0001.mp4")]
    assert main(["video", "predict", str(folder_run), *videos, "--json"]) == 0
    printed = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert TrainedVideoModel.load(folder_run).predict(videos) == printed
    with pytest.raises(ValueError, match="no options"):
        TrainedVideoModel.load(folder_run).predict(videos, top_k=2)


# the model options that runs written before the model's config was nested kept flat
OLD_FLAT = ("encoder", "cnn_width", "convs_per_block", "cell", "projection_size", "hidden_size",
            "num_layers", "bidirectional", "pooling", "order_free", "dropout")


def test_old_run_folders_with_a_flat_config_still_load_and_resume(folder_run, clips,
                                                                   tmp_path) -> None:
    old = tmp_path / "old"
    shutil.copytree(folder_run, old)
    for name in ("best.safetensors", "last.safetensors"):
        saved = load_checkpoint(old / name)
        task = saved.config["task"]
        nested = task["video"].pop("model")
        task["video"].update({key: nested[key] for key in OLD_FLAT})
        save_checkpoint(old / name, kind="video", weights=saved.weights, config=saved.config,
                        state=saved.state)
    save_json(old / "config.json", {"video": task["video"], "train": saved.config["train"]})
    assert "hidden_size" in load_checkpoint(old / "best.safetensors").config["task"]["video"]
    video = str(clips / "right" / "0002.mp4")
    trained = rnnkit.load(old)
    assert isinstance(trained, TrainedVideoModel)
    assert trained.config.model.hidden_size == 8 and trained.config.model.cnn_width == 4
    assert trained.predict([video]) == TrainedVideoModel.load(folder_run).predict([video])
    assert main(["video", "train", "--resume", str(old), "--max-steps", "5",
                 "--no-progress"]) == 0


def test_old_flat_settings_land_where_they_mean_the_same() -> None:
    old = {"root": "clips", "segments": "when.csv", "encoder": "resnet18",
           "frame_vector": "mean", "hidden_size": 64, "batch_size": 8}
    config = from_dict(VideoConfig, old)
    assert config.pretrained and config.size == 224 and config.model.encoder == "resnet18"
    assert not config.model.flatten and config.model.per_frame  # from frame_vector, segments
    assert (config.model.hidden_size, config.batch_size) == (64, 8)
    with pytest.raises(ValueError, match="frame_vector"):
        VideoConfig(frame_vector="grid")


def _parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    video_cli.add_parser(parser.add_subparsers(dest="task"))
    return parser.parse_args(["video", *argv])


def test_every_flag_of_before_still_parses_with_its_meaning() -> None:
    args = _parse(
        "train", "--root", "R", "--split", "S.txt", "--csv", "C.csv", "--segments", "G.csv",
        "--val-root", "VR", "--val-split", "VS.txt", "--val-csv", "VC.csv", "--motions", "7",
        "--motions-dir", "M", "--fps", "2", "--max-frames", "9", "--encoder", "resnet18",
        "--feature-cache", "F", "--frame-vector", "mean", "--cell", "lstm", "--pooling", "max",
        "--order-free", "--bidirectional", "--image-size", "32", "--cnn-width", "4",
        "--convs-per-block", "2", "--projection-size", "6", "--hidden-size", "5",
        "--num-layers", "2", "--batch-size", "3", "--dropout", "0.1", "--out", "O",
        "--resume", "O", "--time-budget", "10m", "--max-steps", "3", "--learning-rate", "0.01",
        "--weight-decay", "0.1", "--eval-every", "5", "--patience", "2", "--seed", "3",
        "--warmup-steps", "1", "--weight-average", "0.9", "--device", "cpu", "--no-progress")
    config = config_values(args, VideoConfig)
    assert (config.root, config.split, config.csv, config.segments) == ("R", "S.txt", "C.csv",
                                                                        "G.csv")
    assert (config.val_root, config.val_split, config.val_csv) == ("VR", "VS.txt", "VC.csv")
    assert (config.motions, config.motions_dir, config.fps, config.max_frames) == (7, "M", 2, 9)
    assert (config.feature_cache, config.frame_vector, config.image_size) == ("F", "mean", 32)
    assert config.batch_size == 3
    model = config.model
    assert (model.encoder, model.cell, model.pooling, model.order_free) == ("resnet18", "lstm",
                                                                           "max", True)
    assert (model.bidirectional, model.cnn_width, model.convs_per_block) == (True, 4, 2)
    assert (model.projection_size, model.hidden_size, model.num_layers) == (6, 5, 2)
    assert model.dropout == 0.1
    assert given(args, TrainConfig) == {"learning_rate": 0.01, "weight_decay": 0.1,
                                        "eval_every": 5, "patience": 2, "seed": 3,
                                        "warmup_steps": 1, "weight_average": 0.9}
    assert (args.out, args.resume, args.time_budget, args.max_steps) == ("O", "O", 600.0, 3)
    assert (args.device, args.no_progress) == ("cpu", True)
    args = _parse("eval", "RUN", "--root", "R", "--split", "S.txt", "--csv", "C.csv",
                  "--segments", "G.csv", "--motions", "5", "--json", "--plot", "P.png",
                  "--device", "cpu")
    assert config_values(args, EvalOptions) == EvalOptions("R", "S.txt", "C.csv", "G.csv", 5)
    assert (args.run, args.json, args.plot, args.device) == ("RUN", True, "P.png", "cpu")
    assert config_values(_parse("eval", "RUN"), EvalOptions).motions == 20
    args = _parse("predict", "RUN", "a.mp4", "b.mp4", "--json", "--device", "cpu")
    assert (args.run, args.videos, args.json, args.device) == ("RUN", ["a.mp4", "b.mp4"], True,
                                                               "cpu")


def test_every_option_has_its_help() -> None:
    for config in (VideoConfig, FrameModelConfig, EvalOptions):
        assert [f.name for f in fields(config)
                if f.name != "model" and not f.metadata.get("help")] == []


def test_the_sizes_the_data_decides_are_checked_when_the_model_is_built() -> None:
    with pytest.raises(ValueError, match="num_classes is not set"):
        FrameSequenceModel(FrameModelConfig(feature_size=6))
    with pytest.raises(ValueError, match="feature_size is not set"):
        FrameSequenceModel(FrameModelConfig(num_classes=2))
