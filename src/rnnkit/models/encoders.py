r"""CNN encoders for images (and video frames): pixels in, a grid of feature vectors out.

Every encoder here keeps one contract, the one :class:`rnnkit.models.captioner.Captioner` reads::

    images (B, 3, S, S)  ->  grid (B, R, C)      R = h*w positions of the last feature map,
                                                 C = encoder.feature_size channels

The grid serves both kinds of conditioning of the lecture's captioning RNN: its mean over the
``R`` positions is the image vector ``v`` (the ``W_ih v`` term, an initial state, a first
input), and soft attention (Xu et al. 2015) looks at its positions one by one.

* :class:`SmallVGG`: a small VGG-style network (Simonyan & Zisserman 2015) trained from scratch
  with the captioner; needs nothing beyond torch.
* :func:`torchvision_encoder`: the convolutional part of an ImageNet-trained ``vgg16`` (the
  lecture's), ``resnet18`` or ``resnet50`` (He et al. 2016). Needs torchvision
  (``pip install rnnkit[vision]``); pretrained weights download on first use. They expect RGB
  images in ``[0, 1]`` normalised with :data:`IMAGENET_MEAN` and :data:`IMAGENET_STD`.
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor, nn

from ..errors import RnnkitError

__all__ = ["ENCODERS", "IMAGENET_MEAN", "IMAGENET_STD", "GridEncoder", "SmallVGG",
           "build_encoder", "torchvision_encoder"]

TORCHVISION_ENCODERS = ("vgg16", "resnet18", "resnet50")
ENCODERS = ("smallvgg", *TORCHVISION_ENCODERS)
IMAGENET_MEAN = (0.485, 0.456, 0.406)  # per RGB channel, of images in [0, 1]
IMAGENET_STD = (0.229, 0.224, 0.225)


def _to_grid(maps: Tensor) -> Tensor:
    """Feature maps to a grid of vectors: ``(B, C, h, w) -> (B, R = h*w, C)``, row-major."""
    return maps.flatten(2).transpose(1, 2)  # (B, C, h, w) -> (B, C, R) -> (B, R, C)


class GridEncoder(nn.Module):
    """Any CNN trunk that returns feature maps ``(B, C, h, w)``, as a grid ``(B, R, C)``.

    Args:
        trunk: the convolutional layers.
        feature_size: ``C``, the channels of the trunk's last feature map.
    """

    def __init__(self, trunk: nn.Module, feature_size: int) -> None:
        super().__init__()
        self.trunk = trunk
        self.feature_size = feature_size

    def forward(self, images: Tensor) -> Tensor:
        return _to_grid(self.trunk(images))  # (B, 3, S, S) -> (B, C, h, w) -> (B, R, C)


class SmallVGG(nn.Module):
    r"""A small VGG-style CNN (Simonyan & Zisserman 2015), trained from scratch.

    One block per entry of ``channels``: ``[3x3 conv -> BatchNorm -> ReLU] x convs_per_block``
    then a ``2x2`` max pool, which halves the height and width; the last block's maps are the
    grid. With ``n`` blocks an ``S x S`` image gives ``R = (S / 2^n)^2`` positions: the default
    four blocks turn ``64 x 64`` images into ``4 x 4 = 16`` vectors of ``C = 256`` features. Batch
    normalisation (Ioffe & Szegedy 2015) is what lets such a net train from scratch, fast.

    Args:
        channels: output channels of each block; ``feature_size = channels[-1]``.
        in_channels: channels of the images (3 for RGB).
        convs_per_block: 2 as in VGG, or 1: half the work, for small images on a CPU.

    Inputs: ``images`` ``(B, in_channels, S_h, S_w)``, at least ``2^n`` pixels each way.

    Outputs: ``grid`` ``(B, R, C)``, ``R = floor(S_h / 2^n) * floor(S_w / 2^n)``.

    Parameters: ``blocks[k]``: two ``Conv2d`` (``3x3``, no bias: the batch norm's shift is one)
    and two ``BatchNorm2d``.

    Example::

        >>> encoder = SmallVGG()
        >>> encoder(torch.randn(8, 3, 64, 64)).shape
        torch.Size([8, 16, 256])
    """

    def __init__(self, channels: Sequence[int] = (32, 64, 128, 256), in_channels: int = 3,
                 convs_per_block: int = 2) -> None:
        super().__init__()
        channels = tuple(channels)
        if not channels or any(isinstance(c, bool) or not isinstance(c, int) or c < 1
                               for c in (*channels, in_channels)):
            raise RnnkitError(f"expected positive integer channels and in_channels, got "
                              f"channels={channels!r}, in_channels={in_channels!r}")
        if isinstance(convs_per_block, bool) or convs_per_block not in (1, 2):
            raise RnnkitError(f"expected convs_per_block 1 or 2, got {convs_per_block!r}")
        self.channels = channels
        self.in_channels = in_channels
        self.feature_size = channels[-1]
        blocks, width = [], in_channels
        for out in channels:
            layers: list[nn.Module] = []
            for k in range(convs_per_block):
                layers += [nn.Conv2d(width if k == 0 else out, out, 3, padding=1, bias=False),
                           nn.BatchNorm2d(out), nn.ReLU(inplace=True)]
            blocks.append(nn.Sequential(*layers, nn.MaxPool2d(2)))
            width = out
        self.blocks = nn.Sequential(*blocks)
        for module in self.modules():
            if isinstance(module, nn.Conv2d):  # He et al. 2015, as torchvision's VGG
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, images: Tensor) -> Tensor:
        smallest = 2 ** len(self.channels)
        if not isinstance(images, Tensor) or images.dim() != 4 or (
                images.shape[1] != self.in_channels) or min(images.shape[2:]) < smallest:
            got = tuple(images.shape) if isinstance(images, Tensor) else type(images).__name__
            raise RnnkitError(f"expected images of shape (B, {self.in_channels}, S, S) with "
                              f"S >= {smallest} ({len(self.channels)} blocks halve it each), "
                              f"got {got}")
        return _to_grid(self.blocks(images))  # (B, 3, S, S) -> (B, C, S/2^n, S/2^n) -> (B, R, C)


def torchvision_encoder(name: str, *, pretrained: bool = True) -> GridEncoder:
    """The convolutional trunk of a torchvision ImageNet model, as a :class:`GridEncoder`.

    * ``"vgg16"``: the lecture's; its conv features, ``512 x 7 x 7`` at ``224 x 224``
      (``C = 512``, ``R = 49``).
    * ``"resnet18"``: ``512 x 7 x 7``; ``"resnet50"``: ``2048 x 7 x 7`` at ``224 x 224``.

    The classifier on top (VGG's fully connected layers, ResNet's pooling and ``fc``) is left
    out. Inputs: RGB in ``[0, 1]`` normalised with :data:`IMAGENET_MEAN`, :data:`IMAGENET_STD`.
    The weights are trainable; freeze them with ``encoder.requires_grad_(False)`` (and
    ``encoder.eval()`` for the batch norms) to extract features once.

    Raises ``ImportError`` without torchvision (``pip install rnnkit[vision]``) and
    ``RuntimeError`` when the pretrained weights cannot be had (offline and not yet cached).
    """
    if name not in TORCHVISION_ENCODERS:
        raise RnnkitError(f"unknown torchvision encoder {name!r}: expected one of "
                          + ", ".join(repr(n) for n in TORCHVISION_ENCODERS))
    try:
        from torchvision import models  # optional: only these encoders need it
    except ImportError as error:
        raise ImportError(f"the {name!r} encoder needs torchvision, which is not installed: "
                          "pip install rnnkit[vision] (or pip install torchvision); the "
                          "'smallvgg' encoder works without it") from error
    try:
        model = getattr(models, name)(weights="DEFAULT" if pretrained else None)
    except (OSError, RuntimeError) as error:  # URLError is an OSError
        raise RuntimeError(f"could not load the pretrained weights of {name!r}: {error}. They "
                           "download on first use into torch's cache (~/.cache/torch/hub, "
                           "$TORCH_HOME); offline, put the file there first, or pass "
                           "pretrained=False") from error
    if name == "vgg16":
        return GridEncoder(model.features, 512)  # conv layers and the last max pool
    trunk = nn.Sequential(*list(model.children())[:-2])  # without avgpool and fc
    return GridEncoder(trunk, model.fc.in_features)


def build_encoder(name: str, **kwargs: object) -> nn.Module:
    """An encoder by name: ``"smallvgg"`` (:class:`SmallVGG`'s ``channels``, ``in_channels``) or
    one of ``"vgg16"``, ``"resnet18"``, ``"resnet50"`` (:func:`torchvision_encoder`'s
    ``pretrained``). Every one has a ``feature_size`` attribute, ``C``."""
    if name == "smallvgg":
        return SmallVGG(**kwargs)
    if name in TORCHVISION_ENCODERS:
        return torchvision_encoder(name, **kwargs)
    raise RnnkitError(f"unknown encoder {name!r}: expected one of "
                      + ", ".join(repr(n) for n in ENCODERS))

