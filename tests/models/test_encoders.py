"""Image encoders: SmallVGG's grid and gradients; torchvision stays optional (faked here)."""

import sys
import types
import urllib.error

import pytest
import torch
from torch import nn

from rnnkit.models.encoders import ENCODERS, SmallVGG, build_encoder, torchvision_encoder


def test_small_vgg_gives_a_grid_of_feature_vectors():
    encoder = SmallVGG(channels=(4, 8, 16))
    assert encoder.feature_size == 16
    images = torch.randn(2, 3, 32, 32)
    grid = encoder(images)
    assert grid.shape == (2, 4 * 4, 16)  # 32 / 2^3 = 4: R = 16 positions, C = 16
    # position r = i * w + j is the last feature map's pixel (i, j)
    maps = encoder.blocks(images)  # (2, 16, 4, 4)
    torch.testing.assert_close(grid[:, 1 * 4 + 2], maps[:, :, 1, 2])
    grid.square().mean().backward()
    for name, p in encoder.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


def test_small_vgg_default_is_16_vectors_of_256_for_64_pixels():
    encoder = SmallVGG().eval()
    assert encoder(torch.randn(1, 3, 64, 64)).shape == (1, 16, 256)


def test_small_vgg_says_what_it_expected():
    encoder = SmallVGG(channels=(4, 8))
    with pytest.raises(ValueError, match=r"expected images of shape \(B, 3, S, S\) with S >= 4"):
        encoder(torch.randn(2, 3, 2, 2))
    with pytest.raises(ValueError, match=r"expected images of shape \(B, 3, S, S\)"):
        encoder(torch.randn(3, 16, 16))
    with pytest.raises(ValueError, match="positive integer channels"):
        SmallVGG(channels=())


def test_build_encoder_by_name():
    assert isinstance(build_encoder("smallvgg", channels=(4,)), SmallVGG)
    with pytest.raises(ValueError, match="unknown encoder 'vgg19': expected one of 'smallvgg'"):
        build_encoder("vgg19")
    assert ENCODERS == ("smallvgg", "vgg16", "resnet18", "resnet50")


def test_without_torchvision_the_error_says_how_to_install_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "torchvision", None)  # import torchvision -> ImportError
    with pytest.raises(ImportError, match=r"pip install rnnkit\[vision\]"):
        torchvision_encoder("resnet18")
    with pytest.raises(ImportError, match=r"'vgg16' encoder needs torchvision"):
        build_encoder("vgg16", pretrained=False)


class _FakeResNet(nn.Module):
    """torchvision's ResNet layout in small: a trunk, then ``avgpool`` and ``fc``."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 8, 3, stride=2, padding=1)
        self.layer1 = nn.Conv2d(8, 12, 3, stride=2, padding=1)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(12, 10)


class _FakeVGG(nn.Module):
    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(3, 512, 3, padding=1), nn.MaxPool2d(4))
        self.classifier = nn.Linear(512 * 4, 10)


@pytest.fixture
def fake_torchvision(monkeypatch):
    """A stand-in ``torchvision.models`` whose pretrained weights cannot be downloaded."""
    calls = []

    def builder(cls):
        def build(weights=None):
            calls.append(weights)
            if weights is not None:
                raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")
            return cls()
        return build

    models = types.SimpleNamespace(resnet18=builder(_FakeResNet), resnet50=builder(_FakeResNet),
                                   vgg16=builder(_FakeVGG))
    monkeypatch.setitem(sys.modules, "torchvision", types.SimpleNamespace(models=models))
    return calls


def test_torchvision_trunks_keep_the_grid_contract(fake_torchvision):
    resnet = torchvision_encoder("resnet18", pretrained=False)
    assert resnet.feature_size == 12  # fc.in_features
    assert resnet(torch.randn(2, 3, 16, 16)).shape == (2, 4 * 4, 12)  # no avgpool, no fc
    vgg = build_encoder("vgg16", pretrained=False)
    assert vgg.feature_size == 512
    assert vgg(torch.randn(2, 3, 16, 16)).shape == (2, 4 * 4, 512)
    assert fake_torchvision == [None, None]


def test_offline_pretrained_weights_give_a_clear_error(fake_torchvision):
    with pytest.raises(RuntimeError, match=r"could not load the pretrained weights of "
                                           r"'resnet50'.*pass pretrained=False"):
        torchvision_encoder("resnet50")
    assert fake_torchvision == ["DEFAULT"]
    with pytest.raises(ValueError, match="unknown torchvision encoder 'alexnet'"):
        torchvision_encoder("alexnet")


def test_one_conv_per_block_keeps_the_grid_and_halves_the_convolutions():
    one = SmallVGG(channels=(4, 8), convs_per_block=1)
    two = SmallVGG(channels=(4, 8), convs_per_block=2)
    images = torch.randn(2, 3, 16, 16)
    assert one(images).shape == two(images).shape == (2, 16, 8)
    convs = [sum(isinstance(m, torch.nn.Conv2d) for m in e.modules()) for e in (one, two)]
    assert convs == [2, 4]
    with pytest.raises(ValueError, match="convs_per_block 1 or 2"):
        SmallVGG(convs_per_block=3)
