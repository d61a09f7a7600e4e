"""``rnnkit video train | eval | predict`` on folders of frame images, without PyAV.

A frame folder has no clock: its frames are taken as sampled already at ``--fps`` (every frame
read, in natural name order), so the same options work for folders and video files. The data
lists accept frame folders, and the clips are read the same way in training, evaluation and
prediction.
"""

from __future__ import annotations

import json
import sys

import numpy as np
from PIL import Image

from rnnkit.cli import main

TINY = ["--image-size", "16", "--cnn-width", "4", "--projection-size", "8", "--hidden-size",
        "8", "--batch-size", "4", "--no-progress"]


def write_frames(folder, direction: str, count: int) -> None:
    """``frame1.png`` .. ``frame<count>.png``: a white square moving left or right on black."""
    folder.mkdir(parents=True)
    for k in range(count):
        pixels = np.zeros((16, 16, 3), dtype=np.uint8)
        x = 2 + k if direction == "right" else 12 - k
        pixels[6:10, x:x + 3] = 255
        Image.fromarray(pixels).save(folder / f"frame{k + 1}.png")


def test_train_eval_and_predict_on_a_list_of_frame_folders(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "av", None)  # import av fails: frame folders need no PyAV
    rows = ["path,label"]
    for direction in ("left", "right"):
        for i in range(4):
            write_frames(tmp_path / "clips" / f"{direction}{i}", direction, count=5 + i)
            rows.append(f"clips/{direction}{i},{direction}")  # relative to the list's folder
    table = tmp_path / "clips.csv"
    table.write_text("\n".join(rows) + "\n", encoding="utf-8")
    run_dir = tmp_path / "run"
    assert main(["video", "train", "--csv", str(table), "--fps", "2", "--max-steps", "2",
                 "--eval-every", "2", "--out", str(run_dir), *TINY]) == 0
    assert (run_dir / "best.safetensors").is_file()
    capsys.readouterr()
    assert main(["video", "eval", str(run_dir), "--csv", str(table), "--json"]) == 0
    scores = json.loads(capsys.readouterr().out)
    assert set(scores) == {"accuracy", "macro_f1"} and 0 <= scores["accuracy"] <= 1
    folder = str(tmp_path / "clips" / "right3")
    assert main(["video", "predict", str(run_dir), folder, "--json"]) == 0
    row = json.loads(capsys.readouterr().out)
    assert row["video"] == folder and set(row["probabilities"]) == {"left", "right"}
