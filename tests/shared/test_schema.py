"""The one config parser: types, ranges, unknown keys with "did you mean", precedence."""

import argparse
from pathlib import Path

import pytest

from shared.config import RunConfig
from shared.errors import ConfigError
from shared.schema import Option, Schema


def test_unknown_key_is_refused_with_the_closest_known_key() -> None:
    # Execute / Assert
    with pytest.raises(ConfigError, match="unknown config key 'seg-patch-sise'.*'seg-patch-size'"):
        RunConfig.from_mapping({"seg-patch-sise": 64})


def test_unknown_strategy_gets_did_you_mean() -> None:
    # Execute / Assert
    with pytest.raises(ConfigError, match="'fedmedain'.*did you mean 'fedmedian'"):
        RunConfig.from_mapping({"strategy": "fedmedain"})


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"task": "clasification"}, "did you mean 'classification'"),
        ({"num-server-rounds": -1}, "'num-server-rounds' must be in \\[0, "),
        ({"num-server-rounds": 0}, "'num-server-rounds' = 0 trains nothing"),
        ({"min-sites": 0}, "'min-sites' must be in \\[1, "),
        ({"lr": 0.0}, "'lr' must be in"),
        ({"image-size": 8}, "'image-size' must be in \\[16, 512\\], got 8"),
        ({"gan-lr": "fast"}, "'gan-lr' must be a number"),
        ({"trimmed-beta": 0.6}, "'trimmed-beta'"),
        ({"round-timeout": 0}, "'round-timeout'"),
        ({"secagg": True, "min-sites": 3, "secagg-threshold": 4}, "secagg-threshold"),
        ({"secagg": True, "min-sites": 3, "strategy": "krum"}, "needs each site's own update"),
    ],
)
def test_bad_values_are_refused_at_the_door(raw: dict, message: str) -> None:
    # Execute / Assert
    with pytest.raises(ConfigError, match=message):
        RunConfig.from_mapping(raw)


def test_values_are_converted_to_the_declared_kind() -> None:
    # Execute: --run-config may give strings, TOML gives ints for whole floats
    run = RunConfig.from_mapping({"lr": 1, "amp": "false", "image-size": 96.0, "seed": "7"})

    # Assert
    assert (run.lr, run.amp, run.seed) == (1.0, False, 7)
    assert run.options["image-size"] == 96 and isinstance(run.options["image-size"], int)
    assert isinstance(run.lr, float)


def test_a_key_declared_twice_must_mean_the_same() -> None:
    # Prepare
    first = Option("x", int, 1, "one")

    # Execute / Assert
    Schema([first, Option("x", int, 1, "one")])
    with pytest.raises(ValueError, match="'x' is declared twice"):
        Schema([first, Option("x", int, 2, "one")])


def _sim_args(*argv: str) -> argparse.Namespace:
    from simulations import cli

    parser = argparse.ArgumentParser()
    parser.add_argument("--verbose", action="store_true")
    cli.register(parser.add_subparsers())
    return parser.parse_args(["sim", *argv])


def test_sim_set_values_are_not_overwritten_by_flag_defaults(tmp_path: Path) -> None:
    # Prepare: the reproduction from the issue
    from simulations.cli import run_mapping

    args = _sim_args("--set", "lr=0.1", "--set", "local-epochs=3", "--set", "seed=7")

    # Execute
    run = RunConfig.from_mapping(run_mapping(args, tmp_path, tmp_path, 3))

    # Assert
    assert (run.lr, run.local_epochs, run.seed) == (0.1, 3, 7)


def test_a_typed_flag_wins_over_set(tmp_path: Path) -> None:
    # Prepare
    from simulations.cli import run_mapping

    args = _sim_args("--lr", "0.05", "--set", "lr=0.1", "--set", "min-sites=2")

    # Execute
    run = RunConfig.from_mapping(run_mapping(args, tmp_path, tmp_path, 3))

    # Assert: flag > --set > derived default (min-sites = --sites)
    assert (run.lr, run.min_sites, run.secagg.num_shares) == (0.05, 2, 3)


def test_server_run_has_the_same_precedence(tmp_path: Path) -> None:
    # Prepare
    from server import cli

    parser = argparse.ArgumentParser()
    cli.register(parser.add_subparsers())
    argv = ["server", "run", "--kit", "k", "--set", "lr=0.1", "--set", "num-server-rounds=9"]
    args = parser.parse_args([*argv, "--set", "local-epochs=3", "--rounds", "4", "--no-secagg"])

    # Execute
    run = RunConfig.from_mapping(cli.run_mapping(args, 4, tmp_path))

    # Assert
    assert (run.lr, run.local_epochs, run.num_rounds, run.min_sites) == (0.1, 3, 4, 4)
    assert run.secagg.enabled is False
