"""Patient-level train/validation split: deterministic, disjoint, stable."""

import pytest

from shared.data import split_by_patient


def _items(patients: int, per_patient: int = 3) -> list[tuple[str, int]]:
    return [(f"p{p}", i) for p in range(patients) for i in range(per_patient)]


def test_split_is_deterministic_and_patient_disjoint() -> None:
    # Prepare
    items = _items(20)

    # Execute
    train, val = split_by_patient(items, lambda x: x[0], 0.2, seed=3)
    again = split_by_patient(list(reversed(items)), lambda x: x[0], 0.2, seed=3)

    # Assert
    assert {p for p, _ in train}.isdisjoint({p for p, _ in val})
    assert len({p for p, _ in val}) == 4
    assert sorted(val) == sorted(again[1])
    assert split_by_patient(items, lambda x: x[0], 0.2, seed=4)[1] != val


def test_adding_a_patient_moves_nobody_else_to_validation() -> None:
    # Prepare
    _, val = split_by_patient(_items(30), lambda x: x[0], 0.2, seed=0)

    # Execute
    _, val_more = split_by_patient(_items(31), lambda x: x[0], 0.2, seed=0)

    # Assert: at most the new patient and the last one by rank may differ
    assert len({p for p, _ in val} - {p for p, _ in val_more}) <= 1


def test_split_edge_cases() -> None:
    # Execute / Assert
    assert split_by_patient(_items(1), lambda x: x[0]) == (_items(1), [])
    train, val = split_by_patient(_items(2), lambda x: x[0], 0.9)
    assert train and val  # never everything in validation
    with pytest.raises(ValueError, match="val_fraction"):
        split_by_patient(_items(3), lambda x: x[0], 1.0)
