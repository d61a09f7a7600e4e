"""ImageCaptioner: the CNN and the decoder together, and the image vector the decoder reads."""

from dataclasses import replace

import pytest
import torch

from rnnkit.models.captioner import Captioner, CaptionerConfig
from rnnkit.models.image_captioner import ImageCaptioner, ImageCaptionerConfig


@pytest.mark.parametrize(("settings", "features_shape", "decoder_size"), [
    ({}, (2, 128), 128),  # a 2 x 2 grid of 32 channels, flattened
    ({"image_vector": "mean"}, (2, 4, 32), 32),  # the grid, which the decoder averages
    ({"conditioning": "attention"}, (2, 4, 32), 32),  # attention reads the grid
])
def test_the_image_vector_is_the_flattened_grid_by_default(settings, features_shape,
                                                            decoder_size) -> None:
    config = ImageCaptionerConfig(vocab_size=7, cnn_width=4, **settings)
    # 32 pixels / 2^4 blocks = 2 x 2 positions of 8 * cnn_width channels
    assert ImageCaptioner.encoder_grid(config, 32) == (4, 32)
    model = ImageCaptioner(replace(config, feature_size=config.decoder_features((4, 32))))
    assert model.features(torch.randn(2, 3, 32, 32)).shape == features_shape
    assert model.decoder.config.feature_size == decoder_size
    assert type(model.decoder.config) is CaptionerConfig  # the decoder's fields only
    with pytest.raises(ValueError, match="image_vector must be 'flatten' or 'mean'"):
        ImageCaptionerConfig(image_vector="sum")


def test_a_frozen_pretrained_cnn_stays_out_of_the_model() -> None:
    config = ImageCaptionerConfig(vocab_size=7, feature_size=12, encoder="resnet18")
    assert config.pretrained and not config.trains_encoder
    model = ImageCaptioner(config)  # reads cached features: no torchvision needed
    assert model.encoder is None
    logits, _ = model(torch.randn(2, 3, 4), torch.tensor([[2, 5, 3], [2, 6, 3]]))
    assert logits.shape == (2, 2, 7)  # the grid (2, R=3, C=4) flattened: 12 features
    with pytest.raises(ValueError, match="unknown encoder 'alexnet'"):
        ImageCaptionerConfig(encoder="alexnet")


def test_the_sizes_the_data_decides_are_checked_when_the_model_is_built() -> None:
    with pytest.raises(ValueError, match="vocab_size is not set"):
        Captioner(CaptionerConfig(feature_size=6))
    with pytest.raises(ValueError, match="feature_size is not set"):
        ImageCaptioner(ImageCaptionerConfig(vocab_size=6))
    with pytest.raises(ValueError, match=r"start_index must be an id in \[0, V\)"):
        CaptionerConfig(start_index=-1)  # checked already, as far as it can be
