"""SliceMax: a 2D classifier scores every slice alone; the series scores as its top slice."""

from __future__ import annotations

import torch
from torch import nn

from shared.models.slices import per_slice, slice_mask

__all__ = ["SliceMax"]


class SliceMax(nn.Module):
    """The baseline series classifier: the image classifier on each slice, then the maximum.

    A slice's score is its class-1 logit margin (logit 1 - logit 0 of the wrapped
    network); the series' score is the largest over its real slices (multiple-instance
    learning's max pooling), returned as the logits ``(0, score)`` so that softmax gives
    ``sigmoid(score)`` and cross-entropy trains it like the other series models.

    Parameters
    ----------
    net : nn.Module
        A 2D classifier mapping (N, C, H, W) to two logits (N, 2), e.g. `LesionCNN`.
    """

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def slice_scores(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """Each slice's logit margin (B, T); -inf at padded positions."""
        logits = per_slice(self.net, x, lengths)
        margin = logits[..., 1] - logits[..., 0]
        return margin.masked_fill(~slice_mask(lengths.to(x.device), x.shape[1]), float("-inf"))

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """Return series logits (B, 2) of padded slices (B, T, C, H, W) and their lengths."""
        score = self.slice_scores(x, lengths).max(dim=1).values
        return torch.stack([torch.zeros_like(score), score], dim=1)
