"""The one supervised local training loop: seeding, device, AMP, clipping, FedProx, SCAFFOLD."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence, Sized
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from shared.progress import progress

if TYPE_CHECKING:
    from shared.privacy import SiteDpSgd
    from shared.tasks.base import TrainSettings

__all__ = [
    "BatchLoss",
    "autocast_dtype",
    "cycle_batches",
    "make_private",
    "prepare_model",
    "proximal_term",
    "train_local",
]

#: ``(model, batch) -> (mean loss of the batch, number of examples in it)``.
BatchLoss = Callable[[nn.Module, Any], tuple[torch.Tensor, int]]


def prepare_model(model: nn.Module, settings: TrainSettings) -> nn.Module:
    """Seed torch for the round, move `model` to the site's device and set train mode.

    The seed is ``settings.seed + settings.server_round``: every round draws fresh but
    reproducible shuffles, augmentations and noise. Call it before building the round's
    loader, since MONAI's DataLoader seeds its random transforms when it is created.
    """
    torch.manual_seed(settings.seed + settings.server_round)
    return model.to(settings.device).train()


def autocast_dtype(device: torch.device, amp: bool) -> torch.dtype | None:
    """The mixed-precision dtype for `device`: bf16 where supported, else fp16; None on CPU."""
    if not amp or device.type != "cuda":
        return None
    return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16


def cycle_batches(loader: Iterable[Any], steps: int) -> Iterator[Any]:
    """Yield `steps` batches, starting the (reshuffled) loader again when it runs out.

    Loops that count steps rather than epochs (the GAN) use it; an empty loader yields
    nothing.
    """
    done = 0
    while done < steps:
        started = done
        for batch in loader:
            yield batch
            done += 1
            if done == steps:
                return
        if done == started:
            return


def proximal_term(
    params: Sequence[nn.Parameter], global_params: Sequence[torch.Tensor], mu: float
) -> torch.Tensor:
    """FedProx's ``mu / 2 * sum ||w - w_global||^2`` over `params` (Li et al., 2020)."""
    total = sum(((w - g) ** 2).sum() for w, g in zip(params, global_params, strict=True))
    return (mu / 2.0) * torch.as_tensor(total)


def train_local(
    model: nn.Module,
    make_loader: Callable[[], Iterable[Any]],
    batch_loss: BatchLoss,
    make_optimizer: Callable[[nn.Module], torch.optim.Optimizer],
    settings: TrainSettings,
    private: SiteDpSgd | None = None,
) -> float:
    """Train `model` in place for ``settings.local_epochs`` passes over the loader.

    Seeds and moves the model (`prepare_model`), then builds the loader and optimizer.
    On CUDA with ``settings.amp`` the forward pass runs under `torch.autocast` (fp16
    with a gradient scaler). Gradients are clipped to ``settings.grad_clip_norm`` when
    it is positive, and FedProx's proximal term pulls the trainable weights towards
    their values at the start of the round when ``settings.proximal_mu`` is positive.
    With ``settings.scaffold`` every step is followed by SCAFFOLD's drift correction.
    With `private` the round is DP-SGD (Opacus): Poisson-sampled batches, each example's
    gradient clipped to ``private.max_grad_norm`` and Gaussian noise added to every step;
    AMP, gradient clipping and the proximal term are then off (the config refuses the
    last two with dp-sgd).

    Parameters
    ----------
    model : nn.Module
        The model, holding the global weights of the round.
    make_loader : Callable[[], Iterable]
        Builds the round's batches (called after seeding).
    batch_loss : BatchLoss
        Mean loss and example count of one batch; it moves the batch to the device.
    make_optimizer : Callable[[nn.Module], torch.optim.Optimizer]
        Builds the optimizer of the model's parameters.
    settings : TrainSettings
        Epochs, seed, device and the AMP, clipping and proximal settings.
    private : SiteDpSgd, optional
        DP-SGD's noise multiplier and per-example clipping norm at this site.

    Returns
    -------
    float
        Example-weighted mean of the batch losses (without the proximal term).
    """
    prepare_model(model, settings)
    loader = make_loader()
    optimizer = make_optimizer(model)
    params = [p for p in model.parameters() if p.requires_grad]
    global_params = [p.detach().clone() for p in params]
    dtype = autocast_dtype(settings.device, settings.amp and private is None)
    net: nn.Module = model
    if private is not None:
        net, optimizer, loader = make_private(model, optimizer, loader, private)
    try:
        return _epochs(net, loader, batch_loss, optimizer, settings, params, global_params, dtype)
    finally:
        if net is not model:
            net._close()  # type: ignore[operator]  # removes Opacus's hooks from `model`


def make_private(
    model: nn.Module, optimizer: torch.optim.Optimizer, loader: Any, private: SiteDpSgd
) -> tuple[nn.Module, torch.optim.Optimizer, Any]:
    """Opacus's PrivacyEngine around the round's model, optimizer and loader.

    Returns Opacus's GradSampleModule, DPOptimizer and Poisson-sampling DPDataLoader;
    the module's ``_close()`` removes its hooks from `model` again.
    """
    from opacus import PrivacyEngine

    from shared.privacy import quiet_opacus

    quiet_opacus()
    engine = PrivacyEngine(accountant="rdp")
    return engine.make_private(  # type: ignore[no-any-return]
        module=model,
        optimizer=optimizer,
        data_loader=loader,
        noise_multiplier=private.noise_multiplier,
        max_grad_norm=private.max_grad_norm,
        poisson_sampling=True,
    )


def _epochs(
    model: nn.Module,
    loader: Iterable[Any],
    batch_loss: BatchLoss,
    optimizer: torch.optim.Optimizer,
    settings: TrainSettings,
    params: list[nn.Parameter],
    global_params: list[torch.Tensor],
    dtype: torch.dtype | None,
) -> float:
    # Only fp16 needs loss scaling; a disabled scaler passes every call straight through.
    scaler = torch.amp.GradScaler("cuda", enabled=dtype is torch.float16)
    total, seen = 0.0, 0
    steps = len(loader) * settings.local_epochs if isinstance(loader, Sized) else None
    with progress(f"training {settings.local_epochs} epoch(s)", steps) as advance:
        for _ in range(settings.local_epochs):
            for batch in loader:
                loss, count = _step(
                    model, batch, batch_loss, optimizer, settings, params, global_params,
                    dtype, scaler,
                )  # fmt: skip
                total += float(loss.detach()) * count
                seen += count
                advance(1)
    return total / max(seen, 1)


def _step(
    model: nn.Module,
    batch: Any,
    batch_loss: BatchLoss,
    optimizer: torch.optim.Optimizer,
    settings: TrainSettings,
    params: list[nn.Parameter],
    global_params: list[torch.Tensor],
    dtype: torch.dtype | None,
    scaler: torch.amp.GradScaler,
) -> tuple[torch.Tensor, int]:
    """One optimiser step on `batch`; returns its mean loss and example count."""
    optimizer.zero_grad()
    with torch.autocast(settings.device.type, dtype=dtype, enabled=dtype is not None):
        loss, count = batch_loss(model, batch)
    objective = loss.float()
    if settings.proximal_mu > 0:
        objective = objective + proximal_term(params, global_params, settings.proximal_mu)
    scaler.scale(objective).backward()
    if settings.grad_clip_norm > 0:
        scaler.unscale_(optimizer)  # clip the true gradients, not the scaled ones
        torch.nn.utils.clip_grad_norm_(params, settings.grad_clip_norm)
    scaler.step(optimizer)
    scaler.update()
    if settings.scaffold is not None:
        settings.scaffold.after_step()  # SCAFFOLD's drift correction
    return loss, count
