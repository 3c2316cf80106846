"""Batches of variable-length slice series: which slices are real, and running a 2D net on them."""

from __future__ import annotations

from collections.abc import Callable

import torch

__all__ = ["check_series_batch", "per_slice", "slice_mask"]


def check_series_batch(x: torch.Tensor, lengths: torch.Tensor) -> None:
    """Raise ValueError unless `x` is (B, T, C, H, W) and every length lies in [1, T]."""
    if x.ndim != 5:
        raise ValueError(
            f"series batch must be (batch, slices, channels, H, W), got {tuple(x.shape)}"
        )
    if lengths.ndim != 1 or len(lengths) != len(x):
        raise ValueError("lengths must hold one slice count per series of the batch")
    if len(lengths) and (int(lengths.min()) < 1 or int(lengths.max()) > x.shape[1]):
        raise ValueError(f"every series length must lie in [1, {x.shape[1]}]")


def slice_mask(lengths: torch.Tensor, max_length: int) -> torch.Tensor:
    """Boolean (B, max_length): True where a slice is one of its series' `lengths[b]`."""
    steps = torch.arange(max_length, device=lengths.device)
    return steps[None, :] < lengths[:, None]


def per_slice(
    net: Callable[[torch.Tensor], torch.Tensor],
    x: torch.Tensor,
    lengths: torch.Tensor,
    fill: float = 0.0,
) -> torch.Tensor:
    """Run a 2D network on the real slices of a padded batch only.

    Parameters
    ----------
    net : Callable
        Maps slices (N, C, H, W) to features (N, F).
    x : torch.Tensor
        Padded series (B, T, C, H, W).
    lengths : torch.Tensor
        Slices of each series (B,); slices past a series' length are padding.
    fill : float
        Value of the outputs at padded positions.

    Returns
    -------
    torch.Tensor
        (B, T, F): `net`'s output of each real slice, `fill` at padded positions. Padding
        never passes through `net`, so it cannot change a normalisation layer's input.
    """
    check_series_batch(x, lengths)
    mask = slice_mask(lengths.to(x.device), x.shape[1])
    features = net(x[mask])
    out = features.new_full((x.shape[0], x.shape[1], *features.shape[1:]), fill)
    out[mask] = features
    return out
