"""MONAI transforms run on plain tensors, without MetaTensor bookkeeping, where none is needed."""

from __future__ import annotations

from typing import Any

from monai.data import get_track_meta, set_track_meta
from monai.transforms import Compose

__all__ = ["UntrackedCompose"]


class UntrackedCompose(Compose):
    """A `Compose` whose transforms run with MONAI's metadata tracking switched off.

    Per-item random augmentation of 2D images needs no affine or applied-operations
    history; tracking it made MONAI's flips four times slower than the flip itself
    (0.42 ms against 0.11 ms per 64x64 image). Outputs are plain `torch.Tensor`s. Nested
    in a `CacheDataset` pipeline it is the first random step, so everything before it is
    cached once and everything in it runs per item, as with the transforms it holds.
    Tracking is switched back on afterwards, also when a transform raises.
    """

    def __call__(  # type: ignore[override]  # Compose's own signature, as in MONAI
        self,
        input_: Any,
        start: int = 0,
        end: int | None = None,
        threading: bool = False,
        lazy: bool | None = None,
    ) -> Any:
        previous = get_track_meta()
        set_track_meta(False)
        try:
            return super().__call__(input_, start, end, threading, lazy)
        finally:
            set_track_meta(previous)
