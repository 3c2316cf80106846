"""LesionCNN: the classic lesion classifier (conv-relu-pool blocks and a dense head)."""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["LesionCNN"]


class LesionCNN(nn.Module):
    """A small 2D CNN for lesion classification.

    Group normalisation instead of batch norm: it trains as fast, behaves the same for the
    small, uneven batches of small sites, and has no running statistics, so every state
    entry is a learned weight that FedAvg and SecAgg+ (which clips values to a fixed
    range) treat alike.

    Parameters
    ----------
    in_channels : int
        Image channels (1 for CT/MR).
    num_classes : int
        Output logits.
    channels : tuple of int
        Feature maps of each conv-relu-pool block.
    dropout : float
        Dropout before the last dense layer, in [0, 1).
    """

    def __init__(
        self,
        in_channels: int = 1,
        num_classes: int = 2,
        channels: tuple[int, ...] = (16, 32, 64, 64),
        dropout: float = 0.3,
    ) -> None:
        super().__init__()
        if in_channels < 1 or num_classes < 2 or not channels:
            raise ValueError("in_channels >= 1, num_classes >= 2 and channels non-empty required")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout}")
        blocks: list[nn.Module] = []
        previous = in_channels
        for width in channels:
            blocks += [
                nn.Conv2d(previous, width, kernel_size=3, padding=1),
                nn.GroupNorm(min(8, width), width),
                nn.ReLU(),
                nn.MaxPool2d(2),
            ]
            previous = width
        self.features = nn.Sequential(*blocks, nn.AdaptiveAvgPool2d(2))
        self.head = nn.Sequential(
            nn.Flatten(),
            nn.Linear(previous * 4, 64),
            nn.ReLU(),
            nn.Dropout(dropout),
            nn.Linear(64, num_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return class logits of shape (batch, num_classes)."""
        return self.head(self.features(x))
