"""GanPair: a DCGAN-style generator and spectral-norm discriminator in one module."""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm

__all__ = ["GanDiscriminator", "GanGenerator", "GanPair"]


def _check_size(image_size: int) -> int:
    """Return the number of 2x stages between 4x4 and `image_size`, which must be 2**k >= 16."""
    stages = int(round(math.log2(image_size))) - 2 if image_size > 0 else -1
    if stages < 2 or 4 * 2**stages != image_size:
        raise ValueError(f"image_size must be a power of two >= 16, got {image_size}")
    return stages


class GanGenerator(nn.Module):
    """DCGAN-style generator: latent vector -> 4x4 map -> (upsample, conv) stages -> tanh image.

    Nearest-neighbour upsampling followed by a 3x3 convolution replaces DCGAN's transposed
    convolutions, whose uneven overlap paints checkerboard and lattice artefacts.

    BatchNorm keeps no running statistics (``track_running_stats=False``): it always
    normalises with the batch's own statistics, so the state holds learned weights only
    and FedAvg averages nothing that is not a parameter.

    Parameters
    ----------
    latent_dim : int
        Length of the noise vector.
    image_size : int
        Output side, a power of two >= 16.
    channels : int
        Image channels.
    width : int
        Feature maps of the last upsampling stage; doubled at each earlier stage.
    """

    def __init__(
        self, latent_dim: int, image_size: int, channels: int = 1, width: int = 32
    ) -> None:
        super().__init__()
        if latent_dim < 1 or channels < 1 or width < 1:
            raise ValueError("latent_dim, channels and width must be >= 1")
        stages = _check_size(image_size)
        self.latent_dim = latent_dim
        top = width * 2 ** (stages - 1)
        self.project = nn.Sequential(
            nn.Linear(latent_dim, top * 16),
            nn.Unflatten(1, (top, 4, 4)),
            nn.BatchNorm2d(top, track_running_stats=False),
            nn.ReLU(inplace=True),
        )
        blocks: list[nn.Module] = []
        previous = top
        for stage in range(stages - 1):
            out = top // 2 ** (stage + 1)
            blocks += [
                nn.Upsample(scale_factor=2, mode="nearest"),
                nn.Conv2d(previous, out, 3, padding=1, bias=False),
                nn.BatchNorm2d(out, track_running_stats=False),
                nn.ReLU(inplace=True),
            ]
            previous = out
        blocks += [
            nn.Upsample(scale_factor=2, mode="nearest"),
            nn.Conv2d(previous, channels, 3, padding=1),
            nn.Tanh(),
        ]
        self.upsample = nn.Sequential(*blocks)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """Map noise of shape (batch, latent_dim) to images in [-1, 1], (batch, C, S, S)."""
        return self.upsample(self.project(z))


class GanDiscriminator(nn.Module):
    """DCGAN discriminator with spectral norm on every layer and no normalisation layers.

    Spectral norm bounds each layer's Lipschitz constant, the usual cure for a
    discriminator that overpowers the generator. Its power-iteration buffers (``_u``,
    ``_v``) are unit vectors, well inside SecAgg+'s clipping range; after averaging they
    are re-normalised by the next forward pass in training mode. With ``spectral=False``
    (DP-SGD: Opacus cannot compute per-example gradients through a parametrization) the
    layers are plain and the activations out of place (Opacus's backward hooks); DP-SGD's
    per-example clipping then bounds the discriminator's steps instead.

    Parameters
    ----------
    image_size : int
        Input side, a power of two >= 16.
    channels : int
        Image channels.
    width : int
        Feature maps of the first stage; doubled at each later stage.
    spectral : bool
        Spectral norm on every layer (off for DP-SGD).
    """

    def __init__(
        self, image_size: int, channels: int = 1, width: int = 32, spectral: bool = True
    ) -> None:
        super().__init__()
        if channels < 1 or width < 1:
            raise ValueError("channels and width must be >= 1")
        stages = _check_size(image_size)
        norm = spectral_norm if spectral else (lambda layer: layer)
        layers: list[nn.Module] = []
        previous = channels
        for stage in range(stages):
            out = width * 2**stage
            layers += [
                norm(nn.Conv2d(previous, out, 4, stride=2, padding=1)),
                nn.LeakyReLU(0.2, inplace=spectral),
            ]
            previous = out
        # A 4x4 "valid" convolution turns the last 4x4 map into one logit.
        layers += [norm(nn.Conv2d(previous, 1, 4)), nn.Flatten()]
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return one real-vs-fake logit per image, shape (batch,)."""
        return self.net(x).squeeze(1)


class GanPair(nn.Module):
    """Generator and discriminator as submodules of one module.

    The state dict is prefixed ``generator.`` / ``discriminator.``, so the pair travels
    and is averaged as one list of arrays, with no GAN special case in FedAvg.

    Parameters
    ----------
    latent_dim : int
        Length of the generator's noise vector.
    image_size : int
        Side of the square images, a power of two >= 16.
    channels : int
        Image channels (1 for CT/MR).
    width : int
        Base number of feature maps of both networks.
    private : bool
        Built for DP-SGD: a discriminator without spectral norm (`GanDiscriminator`).
    """

    def __init__(
        self,
        latent_dim: int = 64,
        image_size: int = 64,
        channels: int = 1,
        width: int = 32,
        private: bool = False,
    ) -> None:
        super().__init__()
        self.latent_dim = latent_dim
        self.image_size = image_size
        self.generator = GanGenerator(latent_dim, image_size, channels, width)
        self.discriminator = GanDiscriminator(image_size, channels, width, spectral=not private)

    def noise(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """Draw `n` standard-normal latent vectors on the model's device."""
        device = next(self.parameters()).device
        z = torch.randn(n, self.latent_dim, generator=generator)
        return z.to(device)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """Generate images from noise (the generator alone)."""
        return self.generator(z)
