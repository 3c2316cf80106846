"""Federated GAN task: a DCGAN pair learns to synthesise a site's 2D DICOM images."""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from monai.data import CacheDataset, DataLoader, PersistentDataset
from monai.transforms import Compose, EnsureTyped, Resized, ScaleIntensityRangePercentilesd
from torch import nn

from shared.config import RunConfig
from shared.data import split_by_patient
from shared.data.listing import file_signature
from shared.dicom import ImageRecord, index_folder
from shared.dicom.transforms import LoadDicomImaged
from shared.errors import ConfigError, DataError
from shared.models.gan import GanPair
from shared.tasks.base import (
    Prediction,
    Predictions,
    RoundResult,
    SiteData,
    Task,
    TrainSettings,
)
from shared.tasks.gan_dp import train_private
from shared.tasks.gan_grid import save_sample_grid
from shared.tasks.gan_quality import FeatureNet, frechet_distance, image_features, kernel_mmd
from shared.tasks.loop import cycle_batches, prepare_model

__all__ = ["GanTask"]

#: One-sided label smoothing: the discriminator's target for real images while training.
REAL_TARGET = 0.9
ADAM_BETAS = (0.5, 0.999)
#: Generated images scored against each site's validation images; fixed noise each round.
EVAL_SAMPLES = 128
GRID_SAMPLES = 64
#: At most this many training images form the real-vs-real reference distance `fd_real`.
REFERENCE_IMAGES = 256
_EVAL_SEED_OFFSET = 7_777


class GanTask(Task):
    """Unconditional image synthesis with a DCGAN generator and spectral-norm discriminator.

    Both networks train at each site every round and are averaged together (one state
    dict, prefixed ``generator.`` / ``discriminator.``). Sites score the global model on
    their real validation images: `g_loss`, `d_loss` and two sample-quality distances on
    features of a fixed random CNN (`fd`, Fréchet distance; `mmd`, kernel MMD), which
    are not Inception-FID values (see `shared.tasks.gan_quality`); `fd_real`, the same
    distance from the site's real training images, is the floor to compare `fd` with.
    `g_loss` depends on the global model only, so it is the same at every site. The
    server writes a grid of samples from a fixed noise batch every round.

    Run-config options: see `shared.tasks.gan_options` (`gan-lr` is the Adam learning
    rate of both networks; the run-wide `lr` is not used). With ``dp = dp-sgd`` the
    discriminator has no spectral norm and its steps on real images are DP-SGD
    (`shared.tasks.gan_dp`); the generator never sees a real image.
    """

    name: ClassVar[str] = "gan"
    table_metrics: ClassVar[tuple[str, ...]] = (
        "train_g_loss",
        "train_d_loss",
        "g_loss",
        "d_loss",
        "fd",
        "fd_real",
        "mmd",
    )

    def __init__(self, config: RunConfig) -> None:
        super().__init__(config)
        self.latent_dim = int(config.option("gan-latent-dim"))
        self.image_size = int(config.option("gan-image-size"))
        self.steps = int(config.option("gan-steps-per-round"))
        self.lr = float(config.option("gan-lr"))
        self.width = int(config.option("gan-width"))
        self.val_fraction = float(config.option("val-fraction"))
        self.private = str(config.option("dp")) == "dp-sgd"
        if self.image_size & (self.image_size - 1):
            raise ConfigError(
                f"config key 'gan-image-size' must be a power of two in [16, 256], "
                f"got {self.image_size}"
            )
        self._features: FeatureNet | None = None

    def build_model(self) -> nn.Module:
        torch.manual_seed(self.config.seed)
        return GanPair(
            self.latent_dim, self.image_size, channels=1, width=self.width, private=self.private
        )

    def load_site(self, site_dir: Path, cache_dir: Path | None = None) -> SiteData:
        records, report = index_folder(site_dir)
        report.require_usable()
        train, val = split_by_patient(
            records, lambda r: r.patient_key, self.val_fraction, self.config.seed
        )
        if not train or not val:
            raise DataError(
                "the GAN task needs usable images of at least 2 patients (one for "
                "validation); check the site with `medfleet data check`"
            )
        return SiteData(
            name=site_dir.name,
            train=self._dataset(train, cache_dir),
            val=self._dataset(val, cache_dir),
            report=dict(report.summary()),
        )

    def _dataset(self, records: list[ImageRecord], cache_dir: Path | None) -> Any:
        size = (self.image_size, self.image_size)
        transform = Compose(
            [
                LoadDicomImaged(keys="image"),
                # Per-image percentiles to [-1, 1], the generator's tanh range, whatever
                # the scanner's HU offset and gain.
                ScaleIntensityRangePercentilesd("image", 0.5, 99.5, -1.0, 1.0, clip=True),
                Resized("image", spatial_size=size),
                EnsureTyped(keys="image", dtype=torch.float32, track_meta=False),
            ]
        )
        # The preparation is part of PersistentDataset's cache key: another size is re-made.
        items = [{**_item(record), "prep": f"gan-{self.image_size}"} for record in records]
        if cache_dir is not None:
            return PersistentDataset(items, transform, cache_dir=cache_dir)
        return CacheDataset(items, transform, cache_rate=1.0, num_workers=0, progress=False)

    def train_round(self, model: nn.Module, data: SiteData, settings: TrainSettings) -> RoundResult:
        pair = _as_pair(model)
        prepare_model(pair, settings)
        opt_g = torch.optim.Adam(pair.generator.parameters(), lr=self.lr, betas=ADAM_BETAS)
        opt_d = torch.optim.Adam(pair.discriminator.parameters(), lr=self.lr, betas=ADAM_BETAS)
        private = settings.dp is not None and settings.dp.mode == "dp-sgd"
        loader = DataLoader(
            data.train,
            batch_size=settings.batch_size,
            shuffle=True,
            # Opacus samples at 1 / len(loader): never above batch_size / n, as accounted
            drop_last=not private and data.num_train > settings.batch_size,
            pin_memory=settings.device.type == "cuda",
        )
        steps = self.steps or settings.local_epochs * len(loader)
        if private and settings.dp is not None:
            budget = settings.dp.for_site(
                data.num_train, settings.batch_size, settings.local_epochs, settings.num_rounds,
                steps_per_round=steps,
            )  # fmt: skip
            totals = train_private(
                pair, loader, (opt_d, opt_g), steps, budget, settings, REAL_TARGET
            )
            return RoundResult(data.num_train, {**totals, **budget.metrics(settings.server_round)})
        totals = {"train_d_loss": 0.0, "train_g_loss": 0.0}
        for batch in cycle_batches(loader, steps):
            real = batch["image"].to(settings.device, non_blocking=True)
            d_loss, g_loss = _train_step(pair, real, opt_d, opt_g, settings.grad_clip_norm)
            totals["train_d_loss"] += d_loss / steps
            totals["train_g_loss"] += g_loss / steps
        return RoundResult(data.num_train, totals)

    @torch.no_grad()
    def evaluate(self, model: nn.Module, data: SiteData, settings: TrainSettings) -> RoundResult:
        pair = _as_pair(model)
        # Training mode on purpose: spectral norm's power iteration re-normalises its
        # averaged u/v vectors; there is no dropout, and BatchNorm uses batch statistics
        # in both modes, so the scores are otherwise those of eval mode.
        pair.to(settings.device).train()
        batches = DataLoader(data.val, batch_size=settings.batch_size)
        real = torch.cat([b["image"] for b in batches]) if data.num_val else None
        if real is None or len(real) < 2:
            return RoundResult(0, {})
        seed = torch.Generator().manual_seed(self.config.seed + _EVAL_SEED_OFFSET)
        fake = _generate(pair, pair.noise(EVAL_SAMPLES, seed))
        d_real = pair.discriminator(real.to(settings.device))
        d_fake = pair.discriminator(fake)
        g_loss = float(_bce(d_fake, 1.0))
        d_loss = float(_bce(d_real, 1.0) + _bce(d_fake, 0.0))
        metrics = {
            "loss": g_loss,
            "g_loss": g_loss,
            "d_loss": d_loss,
            "d_real_prob": float(torch.sigmoid(d_real).mean()),
        }
        reference = _first_images(data.train, REFERENCE_IMAGES)
        metrics.update(self._quality(real, fake, reference, settings.device))
        return RoundResult(len(real), metrics)

    def on_round_end(self, model: nn.Module, server_round: int, out_dir: Path) -> dict[str, str]:
        """Save a grid of samples from a fixed noise batch to `samples/round-<r>.png`."""
        pair = _as_pair(model)
        noise = pair.noise(GRID_SAMPLES, torch.Generator().manual_seed(self.config.seed))
        with torch.no_grad():
            images = _generate(pair, noise)[:, 0].cpu().numpy()
        path = save_sample_grid(images, Path(out_dir) / "samples" / f"round-{server_round}.png")
        return {"samples": str(path)}

    def predict(self, model: nn.Module, source: Path, settings: TrainSettings) -> Predictions:
        """Generate `gan-samples` images from noise seeded by ``settings.seed``.

        `source` is not read. Each `Prediction` is ``sample-<i>`` with the (H, W) float32
        image in [-1, 1] as its array; the same seed gives the same images.
        """
        count = int(self.config.option("gan-samples"))
        pair = _as_pair(model).to(settings.device)
        noise = pair.noise(count, torch.Generator().manual_seed(settings.seed))
        with torch.no_grad():
            images = _generate(pair, noise)[:, 0].cpu().numpy()
        items = [Prediction(f"sample-{i}", {}, image) for i, image in enumerate(images)]
        return Predictions(items, {"generated": count})

    def write_predictions(
        self, model: nn.Module, predictions: Predictions, out_dir: Path, settings: TrainSettings
    ) -> dict[str, list[str]]:
        """Each sample as a PNG and as a DICOM Secondary Capture, and a grid of all."""
        from shared.predict.capture import write_captures

        model_id = f"{self.config.to_mapping()}-{settings.seed}"
        pngs, dicoms = write_captures(predictions, out_dir, model_id)
        arrays = np.stack([p.array for p in predictions if p.array is not None])
        grid = save_sample_grid(arrays, Path(out_dir) / "samples.png")
        return {
            "png": [str(p) for p in pngs],
            "dicom": [str(p) for p in dicoms],
            "grid": [str(grid)],
        }

    def export_module(self, model: nn.Module) -> nn.Module:
        """The generator: noise (batch, latent_dim) in, images in [-1, 1] out."""
        return _as_pair(model).generator

    def example_input(self, batch: int = 2) -> torch.Tensor:
        generator = torch.Generator().manual_seed(self.config.seed)
        return torch.randn(batch, int(self.config.option("gan-latent-dim")), generator=generator)

    def input_spec(self) -> dict[str, Any]:
        size = int(self.config.option("gan-image-size"))
        return {
            "kind": "noise vector (generator input)",
            "latent_dim": int(self.config.option("gan-latent-dim")),
            "output": f"{size} x {size} one-channel image with values in [-1, 1]",
            "intensity": "training images scaled by their 0.5-99.5 percentiles to [-1, 1]",
        }

    def _quality(
        self, real: torch.Tensor, fake: torch.Tensor, reference: torch.Tensor, device: torch.device
    ) -> dict[str, float]:
        """`fd` and `mmd` of samples against real images; `fd_real` of real training images."""
        net = self._feature_net().to(device)
        real_features, fake_features = image_features(net, real), image_features(net, fake)
        scores = {
            "fd": frechet_distance(real_features, fake_features),
            "mmd": kernel_mmd(real_features, fake_features),
        }
        if len(reference) >= 2:
            # Real images scored like samples: the floor that a perfect generator reaches.
            scores["fd_real"] = frechet_distance(real_features, image_features(net, reference))
        return scores

    def _feature_net(self) -> FeatureNet:
        if self._features is None:
            self._features = FeatureNet(channels=1)
        return self._features


def _item(record: ImageRecord) -> dict[str, Any]:
    # The signature is part of PersistentDataset's cache key: a changed file is decoded again.
    return {"image": str(record.path), "signature": file_signature(record.path)}


def _as_pair(model: nn.Module) -> GanPair:
    if not isinstance(model, GanPair):
        raise TypeError(f"the GAN task needs a GanPair model, got {type(model).__name__}")
    return model


def _bce(logits: torch.Tensor, target: float) -> torch.Tensor:
    return F.binary_cross_entropy_with_logits(logits, torch.full_like(logits, target))


def _train_step(
    pair: GanPair,
    real: torch.Tensor,
    opt_d: torch.optim.Optimizer,
    opt_g: torch.optim.Optimizer,
    clip_norm: float = 0.0,
) -> tuple[float, float]:
    """One discriminator and one generator update (non-saturating loss); returns both losses.

    Each network's gradient is clipped to the global L2 norm `clip_norm` when positive.
    """
    fake = pair.generator(pair.noise(len(real)))
    opt_d.zero_grad()
    real_loss = _bce(pair.discriminator(real), REAL_TARGET)
    d_loss = real_loss + _bce(pair.discriminator(fake.detach()), 0.0)
    d_loss.backward()
    _clip(pair.discriminator, clip_norm)
    opt_d.step()
    opt_g.zero_grad()
    g_loss = _bce(pair.discriminator(fake), 1.0)
    g_loss.backward()
    _clip(pair.generator, clip_norm)
    opt_g.step()
    return d_loss.item(), g_loss.item()


def _clip(network: nn.Module, max_norm: float) -> None:
    if max_norm > 0:
        torch.nn.utils.clip_grad_norm_(network.parameters(), max_norm)


def _first_images(dataset: Any, limit: int) -> torch.Tensor:
    """Stack the first `limit` images of a dataset of {"image": tensor} items."""
    return torch.stack([dataset[i]["image"] for i in range(min(limit, len(dataset)))])


def _generate(pair: GanPair, noise: torch.Tensor, batch_size: int = 64) -> torch.Tensor:
    """Generator output for `noise`, in fixed-size chunks (BatchNorm uses batch statistics)."""
    chunks = [pair.generator(noise[i : i + batch_size]) for i in range(0, len(noise), batch_size)]
    return torch.cat(chunks)
