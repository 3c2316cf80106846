"""SeriesGRU: a 2D CNN encoder per slice, a bidirectional GRU over the slices, a series head."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from shared.models.cnn import LesionCNN
from shared.models.slices import per_slice

__all__ = ["SeriesGRU"]


class SeriesGRU(nn.Module):
    """Classifies a whole series of 2D slices (a CT series along its normal).

    Each slice goes through LesionCNN's convolutional feature extractor (group norm, so a
    slice's features do not depend on the other slices of the batch) and a linear
    projection; a bidirectional GRU reads the slice features in order; the head sees the
    GRU's last state of each direction and the maximum of its outputs over the slices.
    Series of different lengths share a batch through packing
    (`torch.nn.utils.rnn.pack_padded_sequence`): padded slices are neither encoded nor
    read by the GRU, so a series scores the same alone or padded in any batch.

    Parameters
    ----------
    in_channels : int
        Slice channels (1 for CT/MR).
    num_classes : int
        Output logits per series.
    channels : tuple of int
        LesionCNN's feature maps per block.
    hidden : int
        Width of the slice features and of each GRU direction.
    dropout : float
        Dropout before the head, in [0, 1).
    """

    def __init__(
        self,
        in_channels: int = 1,
        num_classes: int = 2,
        channels: tuple[int, ...] = (16, 32, 64, 64),
        hidden: int = 64,
        dropout: float = 0.3,
    ) -> None:
        super().__init__()
        if hidden < 1:
            raise ValueError(f"hidden must be >= 1, got {hidden}")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout}")
        # LesionCNN validates in_channels, num_classes and channels; its head is not used.
        self.encoder = LesionCNN(in_channels, num_classes, channels).features
        self.project = nn.Sequential(nn.Flatten(), nn.Linear(channels[-1] * 4, hidden), nn.ReLU())
        self.gru = nn.GRU(hidden, hidden, batch_first=True, bidirectional=True)
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(4 * hidden, num_classes))

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """Return series logits (B, num_classes).

        Parameters
        ----------
        x : torch.Tensor
            Slices (B, T, C, H, W) in series order, zero-padded after each series' end.
        lengths : torch.Tensor
            Number of real slices of each series (B,), each in [1, T].
        """
        features = per_slice(lambda s: self.project(self.encoder(s)), x, lengths)
        packed = pack_padded_sequence(
            features, lengths.cpu(), batch_first=True, enforce_sorted=False
        )
        outputs, last = self.gru(packed)
        # -inf at padded steps: the maximum over slices only sees real ones.
        padded, _ = pad_packed_sequence(outputs, batch_first=True, padding_value=float("-inf"))
        pooled = padded.max(dim=1).values
        both_ends = torch.cat([last[0], last[1]], dim=1)  # forward's last, backward's first
        return self.head(torch.cat([pooled, both_ends], dim=1))
