"""Tile a batch of generated images into one PNG grid (matplotlib's image writer, no pyplot)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

__all__ = ["grid_shape", "save_sample_grid", "tile_images"]


def grid_shape(n: int) -> tuple[int, int]:
    """Rows and columns of the most nearly square grid holding `n` images."""
    if n < 1:
        raise ValueError(f"need at least one image, got {n}")
    columns = math.ceil(math.sqrt(n))
    return math.ceil(n / columns), columns


def tile_images(images: np.ndarray, pad: int = 2, fill: float = 1.0) -> np.ndarray:
    """Tile (N, H, W) images into one (rows*(H+pad)+pad, cols*(W+pad)+pad) array.

    Parameters
    ----------
    images : np.ndarray
        Single-channel images, shape (N, H, W).
    pad : int
        Pixels of `fill` between and around the tiles.
    fill : float
        Value of the separating lines (1.0 is white for images in [-1, 1]).
    """
    if images.ndim != 3:
        raise ValueError(f"images must be (N, H, W), got shape {images.shape}")
    n, height, width = images.shape
    rows, columns = grid_shape(n)
    grid = np.full(
        (rows * (height + pad) + pad, columns * (width + pad) + pad), fill, dtype=np.float32
    )
    for index, image in enumerate(images):
        top = pad + (index // columns) * (height + pad)
        left = pad + (index % columns) * (width + pad)
        grid[top : top + height, left : left + width] = image
    return grid


def save_sample_grid(images: np.ndarray, path: Path) -> Path:
    """Write (N, H, W) images with values in [-1, 1] as a grey-scale PNG grid at `path`."""
    from matplotlib.image import imsave  # writes through Agg; needs no display

    path.parent.mkdir(parents=True, exist_ok=True)
    imsave(path, tile_images(np.clip(images, -1.0, 1.0)), cmap="gray", vmin=-1.0, vmax=1.0)
    return path
