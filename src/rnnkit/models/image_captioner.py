"""The whole captioning model: a CNN (when it trains) and the RNN that speaks (:mod:`.captioner`).

::

    grid = CNN(image)          (B, R, C), or read from the feature cache for a frozen CNN
    v    = flatten(grid)       (B, R*C)   image_vector="flatten": which feature is where survives
         | grid               (B, R, C)  image_vector="mean" (the decoder averages) or attention
    caption = Captioner(v)     one word per step until <END>

The small VGG-style CNN trains with the decoder; a pretrained torchvision CNN (VGG-16 as in the
lecture, ResNet) either trains too (``finetune``) or stays out of the model: its features are
computed once, and the model reads them instead of pixels.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import torch
from torch import Tensor, nn

from ..config import option
from ..nn import evaluating
from .captioner import DECODE_METHODS, Caption, Captioner, CaptionerConfig
from .encoders import ENCODERS, SmallVGG, build_encoder

__all__ = ["IMAGE_VECTORS", "CaptionOptions", "ImageCaptioner", "ImageCaptionerConfig"]

IMAGE_VECTORS = ("flatten", "mean")


@dataclass
class ImageCaptionerConfig(CaptionerConfig):
    """The decoder's config (:class:`CaptionerConfig`) and the image encoder before it.

    ``feature_size`` is what the decoder reads per image: ``C``, or ``R*C`` for a flattened
    grid (:meth:`decoder_features`)."""

    encoder: str = option("smallvgg", "the CNN: smallvgg trains here; the others are pretrained "
                                      "(pip install \"rnnkit[vision]\")", choices=ENCODERS)
    finetune: bool = option(False, "train the pretrained CNN too (slow on a CPU; smallvgg "
                                   "always trains)")
    cnn_width: int = option(16, "smallvgg: channels of the first block, doubled per block "
                                "(4 blocks)")
    convs_per_block: int = option(1, "smallvgg: 3x3 convolutions per block (2 as VGG: slower "
                                     "here)")
    image_vector: str = option("flatten", "the image vector v: the CNN's grid flattened, or "
                                          "averaged (attention reads the grid)",
                               choices=IMAGE_VECTORS)

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.encoder not in ENCODERS:
            raise ValueError(f"unknown encoder {self.encoder!r}: expected one of "
                             + ", ".join(repr(n) for n in ENCODERS))
        if self.image_vector not in IMAGE_VECTORS:
            raise ValueError(f"image_vector must be 'flatten' or 'mean', got {self.image_vector!r}")

    @property
    def pretrained(self) -> bool:
        return self.encoder != "smallvgg"

    @property
    def trains_encoder(self) -> bool:
        """Whether the CNN is part of the model (else it reads cached features)."""
        return not self.pretrained or self.finetune

    @property
    def flattens(self) -> bool:
        """Whether the decoder reads the grid flattened, ``(B, R*C)``, not ``(B, R, C)``."""
        return self.image_vector == "flatten" and self.conditioning != "attention"

    def decoder_features(self, grid: tuple[int, int]) -> int:
        """The decoder's ``feature_size`` for the encoder's grid of ``R`` positions x ``C``."""
        R, C = grid
        return int(R * C) if self.flattens else int(C)


def _encoder(config: ImageCaptionerConfig, pretrained: bool) -> nn.Module:
    if config.encoder == "smallvgg":
        w = config.cnn_width
        return SmallVGG(channels=(w, 2 * w, 4 * w, 8 * w), convs_per_block=config.convs_per_block)
    return build_encoder(config.encoder, pretrained=pretrained)


class ImageCaptioner(nn.Module):
    """The CNN (when it trains) and the RNN that speaks: ``forward(inputs, captions)``.

    ``inputs`` are pixels ``(B, 3, S, S)`` when the model holds an encoder, else features
    ``(B, R, C)``. With ``image_vector="flatten"`` the decoder's image vector is the grid, ``v =
    flatten(grid)`` ``(B, R*C)``, as VGG's fully connected layers read its last feature map:
    which feature is where survives, so "a blue circle and a yellow square" is not confused
    with "a blue square and a yellow circle", as it is after averaging the grid (measured on
    the built-in scenes: most naming errors of a mean-pooled model were such swaps).
    """

    def __init__(self, config: ImageCaptionerConfig) -> None:
        super().__init__()
        self.config = config
        self.encoder = _encoder(config, pretrained=True) if config.trains_encoder else None
        decoder = {f.name: getattr(config, f.name) for f in fields(CaptionerConfig)}
        self.decoder = Captioner(CaptionerConfig(**decoder))

    @staticmethod
    def encoder_grid(config: ImageCaptionerConfig, image_size: int) -> tuple[int, int]:
        """``(R, C)``: the grid the CNN of ``config`` makes of an ``image_size`` x
        ``image_size`` image (found by running an untrained copy once)."""
        encoder = _encoder(config, pretrained=False).eval()
        with torch.no_grad():
            R, C = encoder(torch.zeros(1, 3, image_size, image_size)).shape[1:]  # (1, R, C)
        return int(R), int(C)

    @staticmethod
    def frozen_encoder(name: str) -> nn.Module:
        """The pretrained CNN whose cached features a model without its own encoder reads, in
        evaluation mode and without gradients."""
        return build_encoder(name, pretrained=True).eval().requires_grad_(False)

    def features(self, inputs: Tensor) -> Tensor:
        grid = inputs if self.encoder is None else self.encoder(inputs)  # -> (B, R, C)
        return grid.flatten(1) if self.config.flattens else grid  # (B, R, C) -> (B, R*C)

    def forward(self, inputs: Tensor, captions: Tensor,
                owners: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """``owners`` ``(N,)``: the image (row of ``inputs``) of each of the ``N`` captions;
        ``None``: caption ``i`` belongs to image ``i``. Each image goes through the CNN once,
        however many captions it has."""
        features = self.features(inputs)  # (B, R, C) or (B, R*C)
        if owners is not None:
            features = features[owners]  # (B, ...) -> (N, ...)
        return self.decoder(features, captions)

    @torch.no_grad()
    def generate(self, inputs: Tensor, **options) -> list[list[Caption]]:
        with evaluating(self):
            return self.decoder.generate(self.features(inputs), **options)


@dataclass
class CaptionOptions:
    """How to caption: :meth:`ImageCaptioner.generate`'s options as a person gives them (a
    seed rather than a generator); ``rnnkit caption predict``'s and ``eval``'s flags."""

    method: str = option("greedy", "greedy, beam search or sampling", choices=DECODE_METHODS)
    beam_size: int = option(5, "beam: hypotheses kept per step")
    length_penalty: float = option(1.0, "beam: GNMT's alpha; higher favours longer captions")
    temperature: float = option(1.0, "sample: below 1 safer, above 1 more surprising")
    seed: int | None = option(None, "sampling seed (reproducible samples)")
    n_best: int = option(1, "captions per image", flag="--nbest")
    attention: bool = option(False, "with each caption the weights over the image's grid with "
                                    "which each word was written (attention models)")

    def generate_options(self, device: torch.device, seed: int | None = None) -> dict:
        """:meth:`ImageCaptioner.generate`'s keywords; sampling draws from ``self.seed``, else
        from ``seed`` (``None`` for both: unseeded)."""
        options = {"method": self.method, "n_best": self.n_best, "temperature": self.temperature}
        if self.method == "beam":
            options.update(beam_size=self.beam_size, length_penalty=self.length_penalty)
        seed = self.seed if self.seed is not None else seed
        if self.method == "sample" and seed is not None:
            options["generator"] = torch.Generator(device).manual_seed(seed)
        return options
