"""SiteClient's round settings: FedProx's mu from the fit config, clipping and AMP from the run."""

from __future__ import annotations

from pathlib import Path

import pytest

from client.site_client import SiteClient
from shared.config import RunConfig, SiteConfig
from shared.tasks import get_task
from shared.tasks.base import SiteData


def _client(run_config: dict[str, object]) -> SiteClient:
    run = RunConfig.from_mapping(run_config)
    site = SiteConfig(name="site-1", data_dir=Path("unused"), device="cpu")
    return SiteClient(get_task(run), SiteData(name="site-1", train=[], val=[]), run, site)


def test_settings_take_fedprox_mu_from_the_fit_instruction() -> None:
    # Prepare
    client = _client({"grad-clip-norm": 0.5, "amp": False})
    # Execute
    settings = client._settings({"proximal_mu": 0.01, "server-round": 3, "lr": 0.2})
    plain = client._settings({})
    # Assert
    assert (settings.proximal_mu, settings.server_round, settings.lr) == (0.01, 3, 0.2)
    assert (settings.grad_clip_norm, settings.amp) == (0.5, False)
    assert (plain.proximal_mu, plain.server_round) == (0.0, 1)


def test_settings_default_to_no_clipping_and_amp_on() -> None:
    # Execute
    settings = _client({})._settings({})
    # Assert
    assert (settings.grad_clip_norm, settings.amp) == (0.0, True)


def test_a_negative_mu_from_the_server_is_refused_by_name() -> None:
    # Execute / Assert
    with pytest.raises(ValueError, match="'proximal_mu'"):
        _client({})._settings({"proximal_mu": -1.0})
