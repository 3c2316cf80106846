"""Written MR slices and SEG objects pass dicom3tools' IOD verifier without Error lines."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from .volume_factory import make_mask, make_volume, write_case

DCIODVFY = shutil.which("dciodvfy")


def _errors(path: Path) -> list[str]:
    """Error lines dciodvfy prints for one file (warnings are allowed)."""
    result = subprocess.run([DCIODVFY, str(path)], capture_output=True, text=True, check=False)
    return [line for line in (result.stdout + result.stderr).splitlines() if "Error" in line]


def test_mr_series_and_seg_pass_dciodvfy(tmp_path: Path) -> None:
    if DCIODVFY is None:
        if os.environ.get("CI"):
            pytest.fail("dciodvfy (dicom3tools) is required in CI")
        pytest.skip("dciodvfy (dicom3tools) not installed")
    # Prepare
    series_dir, seg, _ = write_case(tmp_path, make_volume(), make_mask())

    # Execute
    found = {path.name: _errors(path) for path in [*sorted(series_dir.glob("*.dcm"))[:2], seg]}

    # Assert
    assert found == {name: [] for name in found}
