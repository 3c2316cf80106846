"""Run-config keys of the GAN task."""

from __future__ import annotations

from shared.schema import Option
from shared.tasks.classification_options import VAL_FRACTION

__all__ = ["OPTIONS"]

OPTIONS = (
    Option("gan-latent-dim", int, 64, "length of the generator's noise vector", low=8, high=512),
    Option("gan-image-size", int, 64, "side of generated images, a power of two", low=16, high=256),
    Option(
        "gan-steps-per-round",
        int,
        50,
        "training steps per round (0: local-epochs passes over the data)",
        low=0,
        high=100_000,
    ),
    Option("gan-lr", float, 2e-4, "Adam learning rate of both networks", low=1e-8, high=0.1),
    Option("gan-width", int, 32, "base feature maps of both networks", low=4, high=256),
    Option("gan-samples", int, 16, "images `medfleet predict` generates", low=1, high=10_000),
    VAL_FRACTION,
)
