"""Untracked: MONAI augmentation on plain tensors, the very same draws, tracking restored."""

from __future__ import annotations

import pytest
import torch
from monai.data import MetaTensor, get_track_meta
from monai.transforms import Compose, EnsureTyped, Lambdad, RandFlipd, RandGaussianNoised

from shared.data.untracked import Untracked


def _pipeline(wrap: bool) -> Compose:
    def maybe(t: object) -> object:
        return Untracked(t) if wrap else t  # type: ignore[arg-type]

    return Compose(
        [
            EnsureTyped(keys="image"),
            maybe(RandFlipd("image", prob=0.5, spatial_axis=0)),
            maybe(RandGaussianNoised("image", prob=0.5, std=0.1)),
        ]
    )


def test_a_pipeline_draws_the_same_images_with_and_without_it_but_plain_tensors() -> None:
    # Prepare: the seeding a MONAI DataLoader does, through the pipeline's own Compose
    image = torch.arange(16.0).reshape(1, 4, 4)
    tracked, untracked = _pipeline(wrap=False), _pipeline(wrap=True)
    tracked.set_random_state(seed=3)
    untracked.set_random_state(seed=3)
    # Execute
    expected = [tracked({"image": MetaTensor(image)})["image"] for _ in range(8)]
    got = [untracked({"image": MetaTensor(image)})["image"] for _ in range(8)]
    # Assert
    for want, out in zip(expected, got, strict=True):
        assert type(out) is torch.Tensor
        assert torch.equal(out, want.as_tensor())
    assert len({tuple(g.flatten().tolist()) for g in got}) > 1  # it did draw
    assert get_track_meta() is True


def test_tracking_comes_back_on_when_the_transform_raises() -> None:
    # Prepare
    class _Broken(RandFlipd):
        def __call__(self, data: object) -> object:  # type: ignore[override]
            raise RuntimeError("broken")

    # Execute / Assert
    with pytest.raises(RuntimeError, match="broken"):
        Untracked(_Broken("image"))({"image": torch.zeros(1, 2, 2)})
    assert get_track_meta() is True


def test_a_deterministic_transform_is_refused() -> None:
    # Execute / Assert
    with pytest.raises(TypeError, match="not random"):
        Untracked(Lambdad("image", lambda x: x))
