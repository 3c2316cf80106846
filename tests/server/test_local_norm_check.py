"""FedBN on a model without normalisation state is refused before round 1, naming the fix."""

from __future__ import annotations

import pytest

from server.server_app import _check_local_norm
from shared.config import RunConfig
from shared.errors import ConfigError
from shared.tasks import get_task


def _model(run: RunConfig) -> object:
    return get_task(run).build_model()


def test_fedbn_on_the_affine_free_instance_norm_unet_names_seg_norm_batch() -> None:
    # Prepare: the U-Net's default instance norm holds no scale, shift or statistics
    run = RunConfig.from_mapping({"task": "segmentation", "strategy": "fedbn"})
    # Execute / Assert
    with pytest.raises(ConfigError, match="set seg-norm = 'batch', or use fedavg"):
        _check_local_norm(run, _model(run))


@pytest.mark.parametrize(
    "config",
    [
        {"task": "segmentation", "strategy": "fedbn", "seg-norm": "batch"},
        {"task": "classification", "strategy": "fedprox", "local-norm": True},
        {"task": "segmentation"},  # no FedBN: nothing to check
    ],
)
def test_models_with_normalisation_state_or_no_fedbn_pass(config: dict[str, object]) -> None:
    # Prepare
    run = RunConfig.from_mapping(config)
    # Execute / Assert: returns quietly
    assert _check_local_norm(run, _model(run)) is None
