"""Tests of the `medfleet data check` command: report, --verbose, --json, exit codes."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import dicom_factory as factory
import pytest

from shared.dicom.cli import register


def run_cli(argv: list[str]) -> int:
    """Parse `argv` with a parser holding only the data commands, then run the command."""
    parser = argparse.ArgumentParser(prog="medfleet")
    parser.add_argument("-v", "--verbose", action="store_true")
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return args.func(args)


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder with two usable images and three skipped files."""
    root = tmp_path_factory.mktemp("cli-site")
    factory.write(factory.image_dataset(factory.stored_values()), root / "ct.dcm")
    factory.write(factory.image_dataset(factory.stored_values(), modality="MR"), root / "mr.dcm")
    factory.structured_report(root / "report.dcm")
    factory.random_bytes(root / "noise.bin")
    factory.truncated(root / "ct.dcm", root / "sub" / "cut.dcm")
    return root


def test_check_prints_counts_without_identifiers(
    site: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Prepare
    argv = ["data", "check", str(site)]

    # Execute
    code = run_cli(argv)

    # Assert
    out = capsys.readouterr().out
    assert code == 0
    assert "usable images:    2" in out
    assert "truncated/corrupt" in out and "not DICOM" in out
    for secret in (factory.PATIENT_NAME, factory.PATIENT_ID, factory.UID_ROOT, "cut.dcm"):
        assert secret not in out


def test_check_verbose_lists_skipped_paths(site: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # Prepare
    argv = ["-v", "data", "check", str(site), "--verbose"]

    # Execute
    code = run_cli(argv)

    # Assert
    out = capsys.readouterr().out
    assert code == 0
    assert f"{site / 'sub' / 'cut.dcm'}: truncated/corrupt" in out
    assert f"{site / 'noise.bin'}: not DICOM" in out
    assert factory.PATIENT_NAME not in out


def test_check_json_prints_the_summary(site: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # Prepare
    argv = ["data", "check", str(site), "--json"]

    # Execute
    code = run_cli(argv)

    # Assert
    summary = json.loads(capsys.readouterr().out)
    assert code == 0
    assert summary["usable"] == 2
    assert summary["usable_MR"] == 1
    assert summary["skipped"] == 3
    assert summary["skipped_non_image"] == 1


def test_check_exits_1_without_usable_images(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Prepare
    factory.random_bytes(tmp_path / "noise.bin")

    # Execute
    code = run_cli(["data", "check", str(tmp_path)])

    # Assert
    assert code == 1
    assert "usable images:    0" in capsys.readouterr().out


def test_check_is_wired_into_the_medfleet_command(tmp_path: Path) -> None:
    # Prepare
    from shared.cli import main

    factory.write(factory.image_dataset(factory.stored_values()), tmp_path / "ct.dcm")

    # Execute
    ok, missing = main(["data", "check", str(tmp_path)]), main(["data", "check", "/nonexistent"])

    # Assert
    assert (ok, missing) == (0, 2)
