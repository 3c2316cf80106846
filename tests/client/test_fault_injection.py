"""debug-attack specs: poisoned updates and a task that raises in a given round (tests only)."""

from __future__ import annotations

from pathlib import Path

import pytest

from client.fault_injection import Attack, InjectedFault, InjectedRaise, parse_attack
from shared.errors import ConfigError
from simulations.synth import generate_sites


def test_specs_parse_to_their_fault() -> None:
    assert parse_attack("site-3:scale=1000") == Attack("site-3", 1000.0)
    assert parse_attack("site-3:sign-flip=30") == Attack("site-3", -30.0)
    assert parse_attack("site-x:raise=round2") == InjectedRaise("site-x", 2)
    assert parse_attack("") is None
    with pytest.raises(ConfigError, match="raise=roundN"):
        parse_attack("site-x:raise=2")


def test_the_injected_failure_quotes_a_path_and_patient_only_in_its_round(tmp_path: Path) -> None:
    # Prepare
    (site,) = generate_sites(tmp_path, n_sites=1, seed=0, scale=0.05)
    fault = InjectedRaise("site-1", 2)

    # Execute / Assert: other rounds and sites pass; round 2 raises a foreign-typed error
    fault.check("site-1", 1, site)
    fault.check("site-2", 2, site)
    with pytest.raises(InjectedFault) as caught:
        fault.check("site-1", 2, site)
    assert str(site) in str(caught.value) and "SITE1-P0001" in str(caught.value)
