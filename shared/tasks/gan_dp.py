"""DP-SGD for the GAN: only the discriminator sees real images, so only its real step is private.

Per step (as in DP-GAN, Xie et al. 2018, and Opacus's DCGAN example, with one change):

1. the discriminator learns from a batch of generated images: a plain step, since those
   images and the networks' current weights are already public (post-processing);
2. it learns from a Poisson-sampled batch of real images: Opacus's DP-SGD step, each
   image's gradient clipped to ``dp-clip-norm`` and Gaussian noise added;
3. the generator learns through the discriminator: a plain step.

Opacus's example makes step 1 a private step too and counts it; here only step 2 is
counted (`SiteDpSgd.steps_per_round` = the round's steps), which halves the steps the
accountant composes for the same guarantee. The number of generated images is the
configured batch size, not the sampled one, so nothing in steps 1 and 3 depends on
which real images were drawn.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F

from shared.tasks.loop import cycle_batches, make_private

if TYPE_CHECKING:
    from shared.models.gan import GanPair
    from shared.privacy import SiteDpSgd

__all__ = ["train_private"]


def train_private(
    pair: GanPair,
    loader: Iterable[dict[str, Any]],
    optimizers: tuple[torch.optim.Optimizer, torch.optim.Optimizer],
    steps: int,
    private: SiteDpSgd,
    settings: Any,
    real_target: float,
) -> dict[str, float]:
    """Train `pair` in place for `steps` steps; return the mean losses of the round.

    Parameters
    ----------
    pair : GanPair
        Built with ``private=True`` (no spectral norm, which Opacus cannot hook).
    loader : Iterable
        The round's batches of ``{"image": tensor}``; Opacus replaces it by Poisson
        sampling with the same expected batch size.
    optimizers : tuple
        The discriminator's and the generator's optimizers.
    steps : int
        Private steps of the round.
    private : SiteDpSgd
        Noise multiplier and per-image clipping norm.
    settings : TrainSettings
        Device and batch size.
    real_target : float
        The discriminator's (smoothed) target for real images.
    """
    opt_d, opt_g = optimizers
    # Opacus's GradSampleModule, DPOptimizer and DPDataLoader (their own hooks and steps)
    wrapped: tuple[Any, Any, Any] = make_private(pair.discriminator, opt_d, loader, private)
    disc, dp_opt_d, dp_loader = wrapped
    if dp_loader.sample_rate > private.sample_rate * (1 + 1e-9):  # never spend unaccounted
        disc._close()
        raise ValueError(
            f"Poisson sampling at {dp_loader.sample_rate:.4g} exceeds the accounted rate "
            f"{private.sample_rate:.4g}: build the loader without drop_last"
        )
    totals = {"train_d_loss": 0.0, "train_g_loss": 0.0}
    try:
        for batch in cycle_batches(dp_loader, steps):
            real = batch["image"].to(settings.device)
            fake = pair.generator(pair.noise(settings.batch_size))
            disc.disable_hooks()  # steps 1 and 3 need no per-image gradients
            fake_loss = _public_step(disc(fake.detach()), 0.0, dp_opt_d.original_optimizer)
            disc.enable_hooks()
            dp_opt_d.zero_grad()
            # A sum over the sampled images over their count: an empty Poisson batch is a
            # zero loss (Opacus still adds the step's noise), not the NaN of an empty mean.
            logits = disc(real)
            real_loss = _bce_sum(logits, real_target) / max(len(real), 1)
            real_loss.backward()
            dp_opt_d.step()
            disc.disable_hooks()
            g_loss = _public_step(disc(fake), 1.0, opt_g)
            disc.enable_hooks()
            totals["train_d_loss"] += (float(real_loss.detach()) + fake_loss) / steps
            totals["train_g_loss"] += g_loss / steps
    finally:
        disc._close()  # removes Opacus's hooks from the discriminator
    return totals


def _public_step(logits: torch.Tensor, target: float, optimizer: torch.optim.Optimizer) -> float:
    """A plain step of `optimizer` on the BCE of `logits` against `target`; the loss."""
    optimizer.zero_grad()
    loss = _bce_sum(logits, target) / len(logits)
    loss.backward()
    optimizer.step()
    return float(loss.detach())


def _bce_sum(logits: torch.Tensor, target: float) -> torch.Tensor:
    return F.binary_cross_entropy_with_logits(
        logits, torch.full_like(logits, target), reduction="sum"
    )
