"""RunConfig / SiteConfig parsing: defaults, types, ranges, simulated site mapping."""

from dataclasses import replace
from pathlib import Path

import pytest

from shared.config import RunConfig, SiteConfig
from shared.errors import ConfigError


def test_run_config_parses_flower_run_config() -> None:
    # Prepare
    raw = {"num-server-rounds": 7, "lr": "0.01", "secagg": "true", "min-sites": 3}

    # Execute
    run = RunConfig.from_mapping(raw)

    # Assert
    assert (run.num_rounds, run.lr, run.secagg.enabled) == (7, 0.01, True)
    assert run.batch_size == RunConfig.batch_size
    again = RunConfig.from_mapping(run.to_mapping())
    assert replace(again, options={}) == replace(run, options={})


@pytest.mark.parametrize(
    ("raw", "key"),
    [
        ({"num-server-rounds": 0}, "num-server-rounds"),
        ({"lr": -1.0}, "lr"),
        ({"batch-size": 2.5}, "batch-size"),
        ({"fraction-evaluate": 1.5}, "fraction-evaluate"),
        ({"device": "tpu"}, "device"),
        ({"secagg": "maybe"}, "secagg"),
    ],
)
def test_run_config_error_names_the_key(raw: dict, key: str) -> None:
    # Execute / Assert
    with pytest.raises(ConfigError, match=key):
        RunConfig.from_mapping(raw)


def test_simulated_node_maps_to_nth_site_folder(tmp_path: Path) -> None:
    # Prepare
    for name in ("site-2", "site-1", ".cache"):
        (tmp_path / name).mkdir()
    run = RunConfig.from_mapping({"sim-data-root": str(tmp_path)})

    # Execute
    first = SiteConfig.from_node_config({"partition-id": 0, "num-partitions": 2}, run)
    second = SiteConfig.from_node_config({"partition-id": 1, "num-partitions": 2}, run)

    # Assert
    assert (first.name, second.name) == ("site-1", "site-2")
    with pytest.raises(ConfigError, match="2 site folders"):
        SiteConfig.from_node_config({"partition-id": 2}, run)


def test_deployed_node_needs_an_existing_data_dir(tmp_path: Path) -> None:
    # Prepare
    run = RunConfig()

    # Execute / Assert
    with pytest.raises(ConfigError, match="data-dir"):
        SiteConfig.from_node_config({}, run)
    with pytest.raises(ConfigError, match="not a directory") as err:
        SiteConfig.from_node_config({"data-dir": str(tmp_path / "missing")}, run)
    assert str(tmp_path) not in str(err.value)  # paths never go into messages
    site = SiteConfig.from_node_config({"data-dir": str(tmp_path), "site-name": "site-a"}, run)
    assert site.name == "site-a" and site.data_dir == tmp_path
