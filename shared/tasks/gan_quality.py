"""GAN sample quality without downloads: a fixed random CNN's features, Fréchet distance, MMD."""

from __future__ import annotations

import numpy as np
import torch
from scipy import linalg
from torch import nn

__all__ = ["FeatureNet", "frechet_distance", "image_features", "kernel_mmd"]

#: Seed of the feature network's weights: every site and the server build the same network.
FEATURE_SEED = 20240613


class FeatureNet(nn.Module):
    """A small CNN with fixed, seeded random weights that maps images to pooled features.

    This is *not* Inception-FID. Random convolutional features respond to intensity,
    edges and texture at three scales, enough to rank generators trained on the same
    data (lower distance = samples statistically closer to the real images), but the
    numbers are not comparable with published FID values or across image sizes.
    The weights never change and never leave the code: no download, no training.
    """

    def __init__(self, channels: int = 1, widths: tuple[int, ...] = (16, 32, 64)) -> None:
        super().__init__()
        rng = torch.Generator().manual_seed(FEATURE_SEED)
        self.feature_dim = sum(widths)
        self.stages = nn.ModuleList()
        previous = channels
        for width in widths:
            conv = nn.Conv2d(previous, width, 3, padding=1, bias=False)
            with torch.no_grad():
                # He initialisation keeps activations of order one through the ReLUs.
                std = (2.0 / (previous * 9)) ** 0.5
                conv.weight.copy_(torch.randn(conv.weight.shape, generator=rng) * std)
            self.stages.append(nn.Sequential(conv, nn.ReLU(), nn.AvgPool2d(2)))
            previous = width
        self.requires_grad_(False)
        self.eval()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return the spatial means of every stage's maps, concatenated: (batch, sum(widths))."""
        pooled = []
        for stage in self.stages:
            x = stage(x)
            pooled.append(x.mean(dim=(2, 3)))
        return torch.cat(pooled, dim=1)


@torch.no_grad()
def image_features(net: FeatureNet, images: torch.Tensor, batch_size: int = 64) -> np.ndarray:
    """Features of `images` (N, C, H, W, values in [-1, 1]) as a float64 (N, D) array."""
    device = next(net.parameters()).device
    chunks = [net(images[i : i + batch_size].to(device)) for i in range(0, len(images), batch_size)]
    if not chunks:
        return np.zeros((0, net.feature_dim))
    return torch.cat(chunks).cpu().double().numpy()


def frechet_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Fréchet distance between Gaussians fitted to two feature sets (FID's formula).

    ``|mu_a - mu_b|^2 + tr(S_a) + tr(S_b) - 2 tr((S_a^1/2 S_b S_a^1/2)^1/2)``, computed with
    symmetric eigendecompositions so it is symmetric, never NaN and 0 for equal sets.

    Parameters
    ----------
    a, b : np.ndarray
        Feature sets of shape (N_a, D) and (N_b, D), N_a, N_b >= 2.

    Returns
    -------
    float
        The distance, >= 0; lower means more similar.
    """
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1]:
        raise ValueError(f"feature sets must be (N, D) with equal D, got {a.shape} and {b.shape}")
    if len(a) < 2 or len(b) < 2:
        raise ValueError("each feature set needs at least 2 samples")
    a, b = a.astype(np.float64), b.astype(np.float64)
    cov_a, cov_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    values, vectors = linalg.eigh(cov_a)
    root_a = (vectors * np.sqrt(np.clip(values, 0.0, None))) @ vectors.T
    middle = root_a @ cov_b @ root_a
    cross = np.sqrt(np.clip(linalg.eigvalsh((middle + middle.T) / 2), 0.0, None)).sum()
    mean_term = float(np.sum((a.mean(0) - b.mean(0)) ** 2))
    return max(0.0, mean_term + float(np.trace(cov_a) + np.trace(cov_b) - 2.0 * cross))


def kernel_mmd(a: np.ndarray, b: np.ndarray) -> float:
    """Squared kernel MMD between two feature sets with KID's cubic polynomial kernel.

    ``k(x, y) = (x . y / D + 1)^3``; the biased (V-statistic) estimate, which is exactly 0
    for identical sets, symmetric and never negative. Lower means more similar.

    Parameters
    ----------
    a, b : np.ndarray
        Feature sets of shape (N_a, D) and (N_b, D), N_a, N_b >= 1.
    """
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1]:
        raise ValueError(f"feature sets must be (N, D) with equal D, got {a.shape} and {b.shape}")
    if len(a) < 1 or len(b) < 1:
        raise ValueError("each feature set needs at least 1 sample")
    a, b = a.astype(np.float64), b.astype(np.float64)
    dim = a.shape[1]

    def kernel(x: np.ndarray, y: np.ndarray) -> float:
        return float(np.mean((x @ y.T / dim + 1.0) ** 3))

    return max(0.0, kernel(a, a) + kernel(b, b) - 2.0 * kernel(a, b))
