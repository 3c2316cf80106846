"""The DP budget: the accountant against Google's dp-accounting and closed forms; DP-SGD's bound."""

import math

import numpy as np
import pytest
import torch
from dp_accounting import dp_event, rdp
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from shared.config import RunConfig
from shared.errors import ConfigError
from shared.privacy import DpConfig, SiteDpSgd, noise_for_epsilon, rdp_epsilon
from shared.tasks.base import TrainSettings
from shared.tasks.loop import train_local

#: The orders Opacus's RDP accountant uses, given to dp-accounting too.
ORDERS = [1 + x / 10.0 for x in range(1, 100)] + list(range(12, 64))


def _google(noise: float, rate: float, steps: int, delta: float) -> float:
    accountant = rdp.RdpAccountant(orders=ORDERS)
    event = dp_event.PoissonSampledDpEvent(rate, dp_event.GaussianDpEvent(noise))
    accountant.compose(dp_event.SelfComposedDpEvent(event, steps))
    return float(accountant.get_epsilon(delta))


@pytest.mark.parametrize(
    ("noise", "rate", "steps"),
    [
        (1.1, 256 / 60000, 14040),  # Abadi et al.'s MNIST setting, 60 epochs
        (1.0, 16 / 546, 5 * 35),  # a BreastMNIST-sized site, 5 rounds of one epoch
        (0.8, 1.0, 20),  # dp = client: 20 unsampled rounds
    ],
)
def test_epsilon_equals_google_dp_accountings_for_the_same_setting(
    noise: float, rate: float, steps: int
) -> None:
    assert rdp_epsilon(noise, rate, steps, 1e-5) == pytest.approx(
        _google(noise, rate, steps, 1e-5), rel=1e-4
    )


def test_unsampled_gaussian_epsilon_equals_its_closed_form() -> None:
    # RDP of T Gaussian releases is T * a / (2 z^2) at order a; converted to (eps, delta)
    # with Balle et al. (2020): eps = rdp + log((a-1)/a) - (log(delta) + log(a)) / (a-1).
    noise, steps, delta = 2.0, 10, 1e-6
    closed = min(
        steps * a / (2 * noise**2)
        + math.log((a - 1) / a)
        - (math.log(delta) + math.log(a)) / (a - 1)
        for a in ORDERS
    )
    assert rdp_epsilon(noise, 1.0, steps, delta) == pytest.approx(closed, rel=1e-9)


def test_epsilon_grows_with_rounds_and_noise_for_a_target_spends_at_most_it() -> None:
    eps = [rdp_epsilon(1.0, 0.05, 20 * r, 1e-5) for r in (1, 2, 5)]
    assert eps == sorted(eps) and eps[0] > 0
    noise = noise_for_epsilon(3.0, 1e-5, 0.05, 100)
    assert 2.95 <= rdp_epsilon(noise, 0.05, 100, 1e-5) <= 3.0
    assert rdp_epsilon(0.0, 0.05, 100, 1e-5) == math.inf


def test_a_site_reaches_its_target_epsilon_in_the_last_round() -> None:
    # Prepare: 200 examples, batch 20, 2 local epochs, 4 rounds, target 3
    dp = DpConfig("dp-sgd", target_epsilon=3.0, clip_norm=1.0, delta=1e-5)

    # Execute
    site = dp.for_site(200, 20, 2, 4)

    # Assert
    assert (site.sample_rate, site.steps_per_round) == (0.1, 20)
    assert site.epsilon(4) == pytest.approx(3.0, abs=0.05)
    assert site.epsilon(1) < site.epsilon(2) < site.epsilon(4)
    assert site.metrics(4)["dp_noise_multiplier"] == site.noise_multiplier


def test_an_unreachable_target_is_refused_saying_what_to_raise() -> None:
    with pytest.raises(ConfigError, match="raise 'dp-target-epsilon'"):
        noise_for_epsilon(1e-4, 1e-12, 1.0, 100_000)


class _Linear(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(20, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(x)


def _one_step(private: SiteDpSgd | None) -> float:
    """Norm of the change one SGD step (lr 1) makes on large-gradient data."""
    torch.manual_seed(0)
    model = _Linear()
    before = [p.detach().clone() for p in model.parameters()]
    data = TensorDataset(100 * torch.randn(32, 20), torch.randint(0, 2, (32,)))
    settings = TrainSettings(1, 32, 1.0, 0, torch.device("cpu"))
    train_local(
        model,
        lambda: DataLoader(data, batch_size=32),
        lambda net, b: (nn.functional.cross_entropy(net(b[0]), b[1]), len(b[0])),
        lambda net: torch.optim.SGD(net.parameters(), lr=1.0),
        settings,
        private,
    )
    after = list(model.parameters())
    with torch.no_grad():
        return float(
            torch.sqrt(sum(((a - b) ** 2).sum() for a, b in zip(after, before, strict=True)))
        )


def test_dp_sgd_bounds_each_examples_gradient_by_the_clipping_norm() -> None:
    # Prepare: no noise, so only Opacus's per-example clipping acts (norm 0.5)
    private = SiteDpSgd(noise_multiplier=0.0, max_grad_norm=0.5, sample_rate=1.0,
                        steps_per_round=1, delta=1e-5)  # fmt: skip

    # Execute
    plain, clipped = _one_step(None), _one_step(private)

    # Assert: the mean of per-example gradients clipped to 0.5 has norm <= 0.5
    assert plain > 5.0
    assert clipped <= 0.5 + 1e-6


def test_dp_sgd_adds_noise_of_the_configured_scale() -> None:
    # Prepare: one step (lr 1) over one Poisson-sampled batch of about 32 examples;
    # Opacus adds N(0, (z C)^2) to the summed clipped gradients, then divides by 32.
    noise, clip = 50.0, 0.5
    private = SiteDpSgd(noise_multiplier=noise, max_grad_norm=clip, sample_rate=1.0,
                        steps_per_round=1, delta=1e-5)  # fmt: skip

    # Execute
    change = _one_step(private)

    # Assert: the noise (expected norm ~5.1 over 42 weights) dwarfs the signal (<= 0.5)
    expected = math.sqrt(20 * 2 + 2) * noise * clip / 32
    assert 0.6 * expected < change < 1.4 * expected


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"dp": "client", "strategy": "fedmedian"}, "use fedavg or fedprox"),
        ({"dp": "client", "dp-noise-multiplier": 0.0}, "adds no noise"),
        ({"dp": "dp-sgd", "strategy": "fedprox"}, "proximal term is not per example"),
        ({"dp": "dp-sgd", "grad-clip-norm": 1.0}, "set 'grad-clip-norm' = 0"),
        ({"dp": "dp-sgd", "task": "segmentation"}, "'seg-samples-per-case' = 1"),
        ({"dp": "dpsgd"}, "did you mean 'dp-sgd'"),
        ({"dp-delta": 0.5}, "must be in"),
    ],
)
def test_dp_settings_that_would_not_hold_are_refused(config: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace("(", r"\(")):
        RunConfig.from_mapping(config)


def test_dp_keys_are_typed_from_the_run_config() -> None:
    run = RunConfig.from_mapping({"dp": "dp-sgd", "dp-clip-norm": "0.7", "dp-delta": 1e-6})
    assert DpConfig.from_run(run) == DpConfig("dp-sgd", 1.0, 0.0, 0.7, 1e-6)
    assert not DpConfig.from_run(RunConfig()).enabled
    assert np.isfinite(DpConfig("client", 1.3).client_epsilon(10, 3))
