"""DP-SGD for the GAN: the discriminator's real-image step is private, and only it is counted."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from shared.config import RunConfig
from shared.models.gan import GanPair
from shared.privacy import DpConfig, SiteDpSgd, rdp_epsilon
from shared.tasks import get_task
from shared.tasks.base import SiteData, TrainSettings
from shared.tasks.gan_dp import train_private
from tests.tasks.test_gan import blobs, toy_site

OPTIONS = {"dp": "dp-sgd", "gan-image-size": 16, "gan-width": 4, "gan-latent-dim": 8}


def _settings(dp: DpConfig | None = None, server_round: int = 1) -> TrainSettings:
    return TrainSettings(1, 8, 1e-3, 3, torch.device("cpu"), server_round, dp=dp, num_rounds=5)


def _disc_vector(pair: GanPair) -> np.ndarray:
    return torch.cat([p.detach().flatten() for p in pair.discriminator.parameters()]).numpy()


def _one_private_step(images: torch.Tensor, clip: float) -> np.ndarray:
    """The discriminator after one step on `images` (all sampled: rate 1), SGD, no noise."""
    torch.manual_seed(0)
    pair = GanPair(latent_dim=8, image_size=16, width=4, private=True)
    opt_d = torch.optim.SGD(pair.discriminator.parameters(), lr=1.0)
    opt_g = torch.optim.SGD(pair.generator.parameters(), lr=1.0)
    loader = torch.utils.data.DataLoader([{"image": im} for im in images], batch_size=len(images))
    private = SiteDpSgd(0.0, clip, 1.0, 1, 1e-5)
    settings = TrainSettings(1, len(images), 1.0, 0, torch.device("cpu"))
    train_private(pair, loader, (opt_d, opt_g), 1, private, settings, 0.9)
    return _disc_vector(pair)


def test_private_gan_has_no_spectral_norm_and_the_same_keys_everywhere() -> None:
    # Prepare
    task = get_task(RunConfig(task="gan", seed=3, options=dict(OPTIONS)))
    # Execute
    site_model, server_model = task.build_model(), task.build_model()
    # Assert: plain layers (Opacus hooks them), one state dict layout for sites and server
    assert not any("parametrizations" in k for k in site_model.state_dict())
    assert list(site_model.state_dict()) == list(server_model.state_dict())
    public = get_task(RunConfig(task="gan", seed=3)).build_model()
    assert any("parametrizations" in k for k in public.state_dict())


def test_one_image_moves_the_discriminator_by_at_most_the_clipping_norm() -> None:
    # Prepare: neighbouring data sets, one image replaced by an extreme one
    images = blobs(8, size=16, seed=4)
    neighbour = images.clone()
    neighbour[0] = torch.sign(torch.randn(1, 16, 16)) * 1e3
    clip = 0.5
    # Execute: the same fake images (same seed) and the same start on both
    a, b = _one_private_step(images, clip), _one_private_step(neighbour, clip)
    a_raw, b_raw = _one_private_step(images, 1e9), _one_private_step(neighbour, 1e9)
    # Assert: the changed image's clipped gradient, over the expected batch of 8, moves
    # the discriminator by at most 2C/8; unclipped it moves it far more
    assert np.linalg.norm(a - b) <= 2 * clip / 8 + 1e-5
    assert np.linalg.norm(a_raw - b_raw) > 20 * (2 * clip / 8)


def test_dp_sgd_gan_round_trains_and_reports_epsilon_of_the_real_steps_only() -> None:
    # Prepare: 48 images in batches of 8 (rate 1/6), 4 private steps a round
    task = get_task(
        RunConfig(task="gan", seed=3, batch_size=8, options={**OPTIONS, "gan-steps-per-round": 4})
    )
    site: SiteData = toy_site(n_train=48, n_val=16, size=16)
    model = task.build_model()
    before = _disc_vector(model)  # type: ignore[arg-type]
    dp = DpConfig.from_run(task.config)
    # Execute
    result = task.train_round(model, site, _settings(dp, server_round=2))
    # Assert: trained; epsilon of 2 rounds x 4 steps at rate 8/48, not of 2 x 8 steps
    assert not np.array_equal(before, _disc_vector(model))  # type: ignore[arg-type]
    expected = rdp_epsilon(dp.noise_multiplier, 8 / 48, 2 * 4, dp.delta)
    assert result.metrics["dp_epsilon"] == pytest.approx(expected)
    assert result.metrics["dp_epsilon"] < rdp_epsilon(dp.noise_multiplier, 8 / 48, 16, dp.delta)
    assert np.isfinite(result.metrics["train_d_loss"]) and np.isfinite(
        result.metrics["train_g_loss"]
    )
    # Opacus's hooks are gone: the model is the task's plain GanPair again
    assert list(model.state_dict()) == list(task.build_model().state_dict())
    assert not model.discriminator._forward_hooks  # type: ignore[union-attr]


def test_dp_sgd_gan_is_accepted_by_the_config() -> None:
    run = RunConfig.from_mapping({"task": "gan", "dp": "dp-sgd", "dp-target-epsilon": 8.0})
    assert DpConfig.from_run(run).mode == "dp-sgd"
