"""Model options: MONAI's ResNet-18 classifier and the U-Net's batch norm (for FedBN)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from shared.config import RunConfig
from shared.errors import ConfigError
from shared.tasks import get_task
from shared.weights import norm_state_keys


def _model(**options: object) -> nn.Module:
    return get_task(RunConfig.from_mapping(options)).build_model()


def test_resnet18_takes_the_small_image_stem_below_96_pixels() -> None:
    # Prepare
    from monai.networks.nets import resnet18

    # Execute
    small = _model(model="resnet18", **{"image-size": 28})
    large = _model(model="resnet18", **{"image-size": 128})
    # Assert: first convolution 3x3/1 without max pooling for 28 px, 7x7/2 for 128 px
    conv_small, conv_large = small.conv1, large.conv1
    assert (conv_small.kernel_size, conv_small.stride) == ((3, 3), (1, 1))
    assert (conv_large.kernel_size, conv_large.stride) == ((7, 7), (2, 2))
    reference = resnet18(spatial_dims=2, n_input_channels=1, num_classes=2)
    assert sum(p.numel() for p in large.parameters()) == sum(
        p.numel() for p in reference.parameters()
    )
    assert small(torch.zeros(2, 1, 28, 28)).shape == (2, 2)
    assert len(norm_state_keys(small)) == 5 * 20  # 20 BatchNorms: weight, bias, 3 buffers


def test_same_seed_gives_the_same_resnet() -> None:
    # Execute
    first, second = _model(model="resnet18"), _model(model="resnet18")
    # Assert
    for a, b in zip(first.state_dict().values(), second.state_dict().values(), strict=True):
        assert torch.equal(a, b)


def test_seg_norm_batch_gives_the_unet_batch_norm_and_instance_has_no_state() -> None:
    # Prepare
    seg = {"task": "segmentation", "seg-channels": "4,8"}
    # Execute
    batch = _model(**seg, **{"seg-norm": "batch"})
    instance = _model(**seg)
    # Assert
    assert sum(isinstance(m, nn.BatchNorm3d) for m in batch.modules()) > 0
    assert norm_state_keys(instance) == []


@pytest.mark.parametrize(
    ("options", "key"),
    [
        ({"model": "resnet18"}, "model"),
        ({"task": "segmentation", "seg-norm": "batch", "seg-samples-per-case": 1}, "seg-norm"),
    ],
)
def test_dp_sgd_refuses_batch_norm_naming_the_key(options: dict[str, object], key: str) -> None:
    # Execute / Assert
    with pytest.raises(ConfigError, match=f"{key} = .*cannot train with dp-sgd"):
        RunConfig.from_mapping({"dp": "dp-sgd", **options})


def test_unknown_model_is_refused_with_the_choices() -> None:
    # Execute / Assert
    with pytest.raises(ConfigError, match="lesion-cnn"):
        RunConfig.from_mapping({"model": "resnet-18"})
