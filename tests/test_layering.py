"""Layering: `shared`, `client` and `server` load without `simulations` (the site image)."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RUNTIME_PACKAGES = ("shared", "client", "server")

# Runs in a fresh interpreter: a finder first on sys.meta_path refuses `simulations`
# (as an install without that folder would), then every runtime module is imported.
_IMPORT_ALL = """
import importlib, importlib.abc, json, pkgutil, sys

class _NoSimulations(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name == "simulations" or name.startswith("simulations."):
            raise ModuleNotFoundError(f"No module named {name!r}", name="simulations")
        return None

sys.meta_path.insert(0, _NoSimulations())
failures, imported = {}, []
for package in sys.argv[1:]:
    names = [package]
    module = importlib.import_module(package)
    names += [info.name for info in pkgutil.walk_packages(module.__path__, package + ".")]
    for name in names:
        try:
            importlib.import_module(name)
        except Exception as err:
            failures[name] = f"{type(err).__name__}: {err}"
        else:
            imported.append(name)
commands = []
try:
    from shared.cli import build_parser
    parser = build_parser()
    commands = sorted(parser._subparsers._group_actions[0].choices)
except Exception as err:
    failures["shared.cli.build_parser()"] = f"{type(err).__name__}: {err}"
print(json.dumps({"failures": failures, "imported": imported, "commands": commands}))
"""


def _module_names(package: str) -> set[str]:
    """Dotted names of every module file under ``package``, read from the file tree."""
    names = set()
    for path in (ROOT / package).rglob("*.py"):
        parts = path.relative_to(ROOT).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        names.add(".".join(parts))
    return names


def _imports_simulations(tree: ast.AST) -> list[str]:
    """Module names starting with `simulations` in the import statements of ``tree``."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            modules = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            modules = [node.module]
        else:
            continue
        found += [m for m in modules if m == "simulations" or m.startswith("simulations.")]
    return found


def test_no_runtime_module_imports_simulations() -> None:
    # Prepare
    files = sorted(p for package in RUNTIME_PACKAGES for p in (ROOT / package).rglob("*.py"))

    # Execute
    offenders = {}
    for path in files:
        found = _imports_simulations(ast.parse(path.read_text(), filename=str(path)))
        if found:
            offenders[str(path.relative_to(ROOT))] = found

    # Assert
    assert len(files) > 50
    assert offenders == {}, "shared/client/server must not import simulations"


def test_every_runtime_module_imports_without_simulations() -> None:
    # Execute
    result = subprocess.run(
        [sys.executable, "-c", _IMPORT_ALL, *RUNTIME_PACKAGES],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )

    # Assert
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["failures"] == {}
    expected = set().union(*(_module_names(package) for package in RUNTIME_PACKAGES))
    assert set(report["imported"]) == expected
    # The console command still offers every role shipped in the site image.
    assert {"site", "server", "data"} <= set(report["commands"])
    assert "sim" not in report["commands"] and "synth" not in report["commands"]
