"""The suite's own layout: every test module can be imported beside every other."""

from collections import Counter
from pathlib import Path

TESTS = Path(__file__).parent


def test_test_modules_outside_packages_have_unique_names() -> None:
    # Prepare: pytest imports a module of a folder without __init__.py by its bare name,
    # so two of one name in such folders stop the whole run at collection
    loose = [
        path.name for path in TESTS.rglob("test_*.py") if not (path.parent / "__init__.py").exists()
    ]

    # Execute
    repeated = sorted(name for name, count in Counter(loose).items() if count > 1)

    # Assert
    assert repeated == []
