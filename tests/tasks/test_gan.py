"""GAN task: networks, state dict, quality scores, sample grid, config checks, short training."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from matplotlib.image import imread

from shared.config import RunConfig
from shared.errors import ConfigError
from shared.models.gan import GanPair
from shared.tasks import get_task
from shared.tasks.base import SiteData, TrainSettings
from shared.tasks.gan import GanTask, _train_step
from shared.tasks.gan_quality import FeatureNet, frechet_distance, image_features, kernel_mmd


def make_task(**options: object) -> GanTask:
    task = get_task(RunConfig(task="gan", seed=3, batch_size=8, options=dict(options)))
    assert isinstance(task, GanTask)
    return task


def blobs(n: int, size: int = 32, seed: int = 0) -> torch.Tensor:
    """Toy 'scans': a bright disc at a random place on a dark, slightly noisy background."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size]
    images = []
    for _ in range(n):
        cy, cx = rng.uniform(size * 0.3, size * 0.7, 2)
        radius = rng.uniform(size * 0.1, size * 0.2)
        disc = ((yy - cy) ** 2 + (xx - cx) ** 2 < radius**2).astype(np.float32)
        images.append(disc * 1.6 - 0.8 + rng.normal(0, 0.05, (size, size)))
    return torch.tensor(np.stack(images)[:, None], dtype=torch.float32).clamp(-1, 1)


def toy_site(n_train: int = 48, n_val: int = 24, size: int = 32) -> SiteData:
    train = [{"image": im} for im in blobs(n_train, size, seed=1)]
    val = [{"image": im} for im in blobs(n_val, size, seed=2)]
    return SiteData(name="toy", train=train, val=val)


def settings(server_round: int = 1) -> TrainSettings:
    return TrainSettings(1, 8, 1e-3, 3, torch.device("cpu"), server_round)


@pytest.mark.parametrize("image_size", [16, 32, 64])
def test_gan_pair_forward_backward(image_size: int) -> None:
    # Prepare
    torch.manual_seed(0)
    pair = GanPair(latent_dim=16, image_size=image_size, width=4)
    # Execute
    images = pair(pair.noise(3))
    logits = pair.discriminator(images)
    logits.sum().backward()
    # Assert
    assert images.shape == (3, 1, image_size, image_size)
    assert float(images.detach().abs().max()) <= 1.0
    assert logits.shape == (3,)
    assert all(p.grad is not None for p in pair.parameters())


@pytest.mark.parametrize("image_size", [0, 8, 48, 100])
def test_gan_pair_rejects_bad_image_size(image_size: int) -> None:
    # Execute / Assert
    with pytest.raises(ValueError, match="image_size"):
        GanPair(latent_dim=16, image_size=image_size)


def test_state_dict_is_prefixed_learned_weights_within_secagg_range() -> None:
    # Prepare
    task = make_task()
    # Execute
    state = task.build_model().state_dict()
    # Assert
    assert {key.split(".")[0] for key in state} == {"generator", "discriminator"}
    assert not any("running" in key or "num_batches" in key for key in state)
    assert all(value.is_floating_point() for value in state.values())
    assert max(float(value.abs().max()) for value in state.values()) <= 8.0
    assert len(task.get_weights(task.build_model())) == len(state)


def test_build_model_is_seeded() -> None:
    # Prepare
    task = make_task(**{"gan-width": 8})
    # Execute
    first, second = task.get_weights(task.build_model()), task.get_weights(task.build_model())
    # Assert
    assert all(np.array_equal(a, b) for a, b in zip(first, second, strict=True))


def test_quality_scores_zero_for_identical_sets_and_symmetric() -> None:
    # Prepare
    net = FeatureNet()
    a = image_features(net, blobs(40, seed=1))
    b = image_features(net, blobs(40, seed=2))
    # Execute
    same = frechet_distance(a, a), kernel_mmd(a, a)
    forward, backward = frechet_distance(a, b), frechet_distance(b, a)
    # Assert
    assert same[0] == pytest.approx(0.0, abs=1e-6)
    assert same[1] == pytest.approx(0.0, abs=1e-9)
    assert forward == pytest.approx(backward, rel=1e-6)
    assert kernel_mmd(a, b) == pytest.approx(kernel_mmd(b, a), rel=1e-9)


def test_quality_scores_separate_noise_from_images() -> None:
    # Prepare
    net = FeatureNet()
    real = image_features(net, blobs(40, seed=1))
    like_real = image_features(net, blobs(40, seed=2))
    noise = image_features(
        net, torch.rand(40, 1, 32, 32, generator=torch.Generator().manual_seed(0)) * 2 - 1
    )
    # Execute
    fd_close, fd_far = frechet_distance(real, like_real), frechet_distance(real, noise)
    mmd_close, mmd_far = kernel_mmd(real, like_real), kernel_mmd(real, noise)
    # Assert
    assert fd_far > 10 * fd_close
    assert mmd_far > 10 * mmd_close


def test_feature_net_is_deterministic_and_frozen() -> None:
    # Prepare
    images = blobs(5)
    torch.manual_seed(123)  # the global seed must not matter
    first = FeatureNet()
    torch.manual_seed(456)
    second = FeatureNet()
    # Execute
    a, b = image_features(first, images), image_features(second, images)
    # Assert
    np.testing.assert_array_equal(a, b)
    assert not any(p.requires_grad for p in first.parameters())


def test_quality_scores_reject_bad_shapes() -> None:
    # Execute / Assert
    with pytest.raises(ValueError, match="at least 2"):
        frechet_distance(np.zeros((1, 4)), np.zeros((5, 4)))
    with pytest.raises(ValueError, match="equal D"):
        kernel_mmd(np.zeros((3, 4)), np.zeros((3, 5)))


def test_on_round_end_writes_fixed_png_grid(tmp_path: Path) -> None:
    # Prepare
    task = make_task(**{"gan-width": 4, "gan-latent-dim": 16})
    model = task.build_model()
    # Execute
    files = task.on_round_end(model, 3, tmp_path)
    again = task.on_round_end(model, 4, tmp_path)
    # Assert
    path = Path(files["samples"])
    assert path == tmp_path / "samples" / "round-3.png"
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert imread(path).shape[:2] == (8 * 66 + 2, 8 * 66 + 2)  # 8x8 tiles of 64 px, 2 px gaps
    assert Path(again["samples"]).read_bytes() == path.read_bytes()  # fixed noise batch


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("gan-latent-dim", 4),
        ("gan-latent-dim", "many"),
        ("gan-image-size", 48),
        ("gan-image-size", 8),
        ("gan-steps-per-round", -1),
        ("gan-steps-per-round", 2.5),
        ("gan-lr", 0.0),
        ("gan-lr", 1.0),
        ("gan-width", 2),
        ("val-fraction", 1.0),
    ],
)
def test_config_errors_name_the_key(key: str, value: object) -> None:
    # Execute / Assert
    with pytest.raises(ConfigError, match=f"'{key}'"):
        make_task(**{key: value})


def test_config_accepts_strings_from_the_command_line() -> None:
    # Execute
    task = make_task(**{"gan-latent-dim": "32", "gan-lr": "1e-4", "gan-image-size": "32"})
    # Assert
    assert (task.latent_dim, task.lr, task.image_size) == (32, 1e-4, 32)


def test_train_round_updates_both_networks_and_reports_losses() -> None:
    # Prepare
    task = make_task(**{"gan-image-size": 32, "gan-width": 8, "gan-steps-per-round": 3})
    model = task.build_model()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    # Execute
    result = task.train_round(model, toy_site(), settings())
    # Assert
    changed = {
        k.split(".")[0] for k, v in model.state_dict().items() if not torch.equal(v, before[k])
    }
    assert changed == {"generator", "discriminator"}
    assert result.num_examples == 48
    assert set(result.metrics) == {"train_d_loss", "train_g_loss"}


def test_short_training_lowers_fd_on_toy_data() -> None:
    # Prepare
    task = make_task(
        **{"gan-image-size": 32, "gan-width": 8, "gan-steps-per-round": 40, "gan-lr": 1e-3}
    )
    model, data = task.build_model(), toy_site()
    untrained = task.evaluate(model, data, settings())
    # Execute
    for server_round in (1, 2, 3):
        task.train_round(model, data, settings(server_round))
    trained = task.evaluate(model, data, settings())
    # Assert
    assert {"loss", "g_loss", "d_loss", "fd", "fd_real", "mmd"} <= set(trained.metrics)
    assert trained.num_examples == 24
    assert trained.metrics["fd"] < 0.5 * untrained.metrics["fd"]


def test_load_site_reads_every_dicom_image_scaled_to_tanh_range(tmp_path: Path) -> None:
    # Prepare
    from simulations.synth import generate_sites

    (site_dir,) = generate_sites(tmp_path, 1, seed=5, scale=0.1)
    task = make_task(**{"gan-image-size": 32})
    # Execute
    data = task.load_site(site_dir)
    image = data.train[0]["image"]
    # Assert
    assert data.num_train > 0 and data.num_val > 0
    assert tuple(image.shape) == (1, 32, 32)
    assert -1.0 <= float(image.min()) < float(image.max()) <= 1.0


def test_train_step_clips_each_networks_gradient() -> None:
    # Prepare: with SGD at lr=1 each network moves by minus its (clipped) gradient.
    torch.manual_seed(0)
    pair = GanPair(latent_dim=16, image_size=16, width=4)

    def flat(net: torch.nn.Module) -> torch.Tensor:
        return torch.cat([p.detach().flatten() for p in net.parameters()])

    before = flat(pair.generator), flat(pair.discriminator)
    opt_d = torch.optim.SGD(pair.discriminator.parameters(), lr=1.0)
    opt_g = torch.optim.SGD(pair.generator.parameters(), lr=1.0)
    # Execute
    _train_step(pair, blobs(8, size=16), opt_d, opt_g, clip_norm=1e-3)
    # Assert
    assert float((flat(pair.generator) - before[0]).norm()) == pytest.approx(1e-3, rel=1e-3)
    assert float((flat(pair.discriminator) - before[1]).norm()) == pytest.approx(1e-3, rel=1e-3)


def test_predict_generates_seeded_samples_without_reading_a_source(tmp_path: Path) -> None:
    # Prepare
    task = make_task(**{"gan-image-size": 32, "gan-width": 4, "gan-latent-dim": 16})
    model = task.build_model()
    assert isinstance(model, GanPair)
    missing = tmp_path / "nothing-here"

    # Execute
    default = task.predict(model, missing, settings())
    again = task.predict(model, missing, settings())
    other = task.predict(model, missing, TrainSettings(1, 8, 1e-3, 4, torch.device("cpu")))
    few_task = make_task(
        **{"gan-image-size": 32, "gan-width": 4, "gan-latent-dim": 16, "gan-samples": 3}
    )
    few = few_task.predict(model, missing, settings())

    # Assert: 16 images by default, the generator's output for noise seeded by the seed
    noise = torch.randn(16, 16, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        expected = model.generator(noise)[:, 0].numpy()
    assert [p.key for p in default] == [f"sample-{i}" for i in range(16)]
    assert all(p.values == {} and p.array is not None for p in default)
    images = np.stack([p.array for p in default if p.array is not None])
    np.testing.assert_allclose(images, expected, rtol=1e-5, atol=1e-6)
    assert images.shape == (16, 32, 32) and float(np.abs(images).max()) <= 1.0
    assert all(np.array_equal(a.array, b.array) for a, b in zip(default, again, strict=True))
    assert not np.array_equal(default[0].array, other[0].array)
    assert len(few) == 3 and few.inputs == {"generated": 3}
    with pytest.raises(ConfigError, match="gan-samples"):
        make_task(**{"gan-samples": 0}).predict(model, missing, settings())
