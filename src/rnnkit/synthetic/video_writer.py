"""Writing frames as a video file: how the built-in datasets (:mod:`rnnkit.synthetic.motions`)
and the tests make real mp4 files. Reading them back is :mod:`rnnkit.data.video`'s.

PyAV is imported only when a file is written; see :mod:`rnnkit.data.video` for why PyAV.
"""

from __future__ import annotations

import os
from fractions import Fraction
from pathlib import Path

import numpy as np
from torch import Tensor

from ..data.files import atomic_path
from ..data.video import check_rate, import_av

_CODEC_OPTIONS = {  # per encoder's defaults: near-lossless for small synthetic clips
    # MPEG-4 part 2, FFmpeg's own encoder: a budget that small clips never reach, so every
    # frame gets the finest quantiser
    "mpeg4": {"b": "2M"},
    # H.264 at constant quality; macroblock-tree rate control off, as with it this build's
    # x264 now and then gave different bytes for the same frames
    "libx264": {"crf": "18", "mbtree": "0"},
}


def write_video(path: str | os.PathLike[str], frames: np.ndarray | Tensor, *, fps: float,
                codec: str = "mpeg4", options: dict[str, str] | None = None) -> None:
    """Encode ``frames`` ``(N, H, W, 3)`` uint8 RGB as a video file at ``fps`` frames per
    second, in the container the extension names (``.mp4``, ``.mkv``, ``.avi``, ...).

    ``codec``: ``"mpeg4"`` (MPEG-4 part 2, FFmpeg's own LGPL encoder, in every FFmpeg build;
    the finest quantiser) or ``"libx264"`` (H.264, GPL, which PyAV's wheels happen to bundle;
    crf 18), or any other encoder of the FFmpeg build with your ``options`` (which replace the
    defaults). Frames are stored as YUV 4:2:0, so ``H`` and ``W`` must be even, and compression
    moves pixels by a few levels (more at sharp colour edges): compare read-back frames
    tolerantly. The file is written atomically (a temporary file, then ``os.replace``); one
    encoder thread, so the same frames give the same bytes with the same FFmpeg.
    """
    av = import_av()
    pixels = np.asarray(frames.numpy() if isinstance(frames, Tensor) else frames)
    if pixels.dtype != np.uint8 or pixels.ndim != 4 or pixels.shape[-1] != 3 \
            or pixels.shape[0] == 0 or pixels.shape[1] % 2 or pixels.shape[2] % 2:
        raise ValueError(f"expected frames (N, H, W, 3) uint8 with N >= 1 and even H, W, "
                         f"got {pixels.dtype} of shape {pixels.shape}")
    check_rate("fps", fps)
    if codec not in av.codecs_available:
        raise ValueError(f"expected an encoder of this FFmpeg build (e.g. 'mpeg4'), got "
                         f"{codec!r}, which it lacks")
    with atomic_path(path, suffix=f".tmp{Path(path).suffix}") as temp:
        _encode(av, temp, pixels, fps, codec, options)


def _encode(av, path: Path, pixels: np.ndarray, fps: float, codec: str,
            options: dict[str, str] | None) -> None:
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=Fraction(fps).limit_denominator(1001))
        stream.width, stream.height = pixels.shape[2], pixels.shape[1]
        stream.pix_fmt = "yuv420p"
        stream.codec_context.thread_count = 1  # one thread: the same frames give the same bytes
        stream.options = dict(options if options is not None else _CODEC_OPTIONS.get(codec, {}))
        for frame in pixels:  # encode() converts RGB to the stream's YUV 4:2:0 (BT.601)
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():  # flush the encoder's delayed frames
            container.mux(packet)
