"""Cross-site and evaluation-only settings refused at the door, each naming its keys."""

from __future__ import annotations

import pytest

from shared.config import RunConfig
from shared.errors import ConfigError

EVALUATE = {"evaluate-model": "/models/global_model.pt", "num-server-rounds": 0}


@pytest.mark.parametrize(
    ("keys", "message"),
    [
        ({"cross-site-local": True, "secagg": True}, r"'cross-site-local'.*'secagg' = true"),
        ({"cross-site-local": True, "dp": "client"}, r"'cross-site-local'.*'dp' = 'client'"),
        ({"cross-site-local": True, "dp": "dp-sgd"}, r"'cross-site-local'.*'dp' = 'dp-sgd'"),
        ({"cross-site-local": True, **EVALUATE}, r"'cross-site-local'.*'evaluate-model'"),
        ({"num-server-rounds": 0}, r"'num-server-rounds' = 0 trains nothing.*'evaluate-model'"),
        ({**EVALUATE, "num-server-rounds": 3}, r"'evaluate-model'.*'num-server-rounds' = 3"),
        ({**EVALUATE, "resume-from": "/runs/a"}, r"'evaluate-model' and 'resume-from'"),
    ],
)
def test_cross_site_settings_that_cannot_hold_are_refused(keys: dict, message: str) -> None:
    # Execute / Assert
    with pytest.raises(ConfigError, match=message):
        RunConfig.from_mapping(keys)


def test_cross_site_local_and_evaluation_only_runs_are_accepted() -> None:
    # Execute
    local = RunConfig.from_mapping({"cross-site-local": True, "secagg": False})
    evaluate = RunConfig.from_mapping({**EVALUATE, "secagg": True, "min-sites": 3})

    # Assert
    assert local.option("cross-site-local") is True
    assert evaluate.num_rounds == 0
    assert evaluate.option("evaluate-model") == EVALUATE["evaluate-model"]
