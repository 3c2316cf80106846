"""Layering: `shared`, `client` and `server` load without `simulations` (the site image)."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

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


# Runs in a fresh interpreter: the console command's parser, the checks `server run` makes
# before it submits, and `site approve`'s store; prints the heavy libraries then loaded.
_LIGHT_COMMANDS = """
import json, pathlib, sys
from shared.cli import build_parser
from server.cli import run_mapping
from client.approval import ApprovalStore
args = build_parser().parse_args(["server", "run", "--kit", "k", "--state-dir", "s",
                                  "--rounds", "2", "--set", "lr=0.01"])
config = run_mapping(args, 3, pathlib.Path(sys.argv[1]))
ApprovalStore(pathlib.Path(sys.argv[1])).apps()
heavy = ("torch", "monai", "sklearn", "scipy", "matplotlib", "highdicom", "ray")
print(json.dumps({"lr": config["lr"], "loaded": sorted(m for m in heavy if m in sys.modules)}))
"""


def test_commands_that_only_check_and_submit_import_no_torch(tmp_path: Path) -> None:
    # Execute: `medfleet server run`'s checks (the run config refused or kept) and `site
    # approve`'s store, as every call of them in a deployment runs them
    result = subprocess.run(
        [sys.executable, "-c", _LIGHT_COMMANDS, str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )

    # Assert: the config was checked (lr parsed from --set) without torch, MONAI and the
    # rest: 7 s of CPU on every such call when a package imported them eagerly
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report == {"lr": 0.01, "loaded": []}


def test_a_lazy_package_export_is_the_defining_module_s_object() -> None:
    # Execute
    import shared.volumes
    from shared.volumes.seg_write import write_seg

    # Assert: the package's name is the module's function; an unknown name still fails
    assert shared.volumes.write_seg is write_seg
    assert "write_seg" in vars(shared.volumes)  # cached after the first read
    with pytest.raises(AttributeError, match="no_such_name"):
        shared.volumes.no_such_name  # noqa: B018
