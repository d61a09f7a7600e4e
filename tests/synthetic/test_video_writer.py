"""Tests of rnnkit.synthetic.video_writer: bad frames are refused before anything is written.
(Writing and reading back is tested with the readers, in tests/data/test_video.py.)"""

import os

import numpy as np
import pytest

from rnnkit.synthetic.video_writer import write_video


def test_write_video_rejects_bad_frames(tmp_path):
    pytest.importorskip("av")
    with pytest.raises(ValueError, match="even H, W"):
        write_video(tmp_path / "odd.mp4", np.zeros((2, 33, 32, 3), np.uint8), fps=1)
    with pytest.raises(ValueError, match="uint8"):
        write_video(tmp_path / "float.mp4", np.zeros((2, 32, 32, 3)), fps=1)
    with pytest.raises(ValueError, match="lacks"):
        write_video(tmp_path / "x.mp4", np.zeros((2, 32, 32, 3), np.uint8), fps=1,
                    codec="no-such-codec")
    assert os.listdir(tmp_path) == []
