"""``rnnkit video train | eval | predict`` as a user runs them, on tiny clips.

The models are too small and short-trained to classify well (the built-in motions' quality,
against the order-free baseline, is measured by ``benchmarks/bench_video.py``): these tests
check every path end to end, per-clip and per-frame, and bad input.
"""

from __future__ import annotations

import json

import pytest
import torch

from rnnkit.cli import main
from rnnkit.models.frames import FrameModelConfig, FrameSequenceModel
from rnnkit.synthetic.motions import MotionConfig, write_motion_dataset

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
