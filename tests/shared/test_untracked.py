"""UntrackedCompose: MONAI augmentation on plain tensors, the same draws, tracking restored."""

from __future__ import annotations

import pytest
import torch
from monai.data import MetaTensor, get_track_meta
from monai.transforms import Compose, Lambdad, RandFlipd, RandGaussianNoised

from shared.data.untracked import UntrackedCompose


def _augment() -> list[object]:
    return [
        RandFlipd("image", prob=0.5, spatial_axis=0),
        RandGaussianNoised("image", prob=1.0, std=0.1),
    ]


def test_same_seed_gives_the_same_images_as_a_plain_compose_but_as_plain_tensors() -> None:
    # Prepare
    image = torch.arange(16.0).reshape(1, 4, 4)
    tracked, untracked = Compose(_augment()), UntrackedCompose(_augment())
    tracked.set_random_state(seed=3)
    untracked.set_random_state(seed=3)
    # Execute
    expected = [tracked({"image": MetaTensor(image)})["image"] for _ in range(4)]
    got = [untracked({"image": MetaTensor(image)})["image"] for _ in range(4)]
    # Assert
    for want, out in zip(expected, got, strict=True):
        assert type(out) is torch.Tensor
        assert torch.equal(out, want.as_tensor())
    assert get_track_meta() is True


def test_tracking_comes_back_on_when_a_transform_raises() -> None:
    # Prepare
    def boom(_: object) -> object:
        raise RuntimeError("broken")

    broken = UntrackedCompose([Lambdad("image", boom)])
    # Execute / Assert
    with pytest.raises(RuntimeError, match="applying transform"):
        broken({"image": torch.zeros(1, 2, 2)})
    assert get_track_meta() is True
