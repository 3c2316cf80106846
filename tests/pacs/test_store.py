"""`predict --store` over STOW-RS, and what it refuses to send."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydicom import dcmread

from client.pacs import load_pacs_settings, store_results
from shared.errors import DataError
from tests.pacs.conftest import Studies, pacs_file
from tests.pacs.orthanc import Orthanc


def test_stow_rs_puts_a_seg_into_its_study(
    orthanc: Orthanc, studies: Studies, tmp_path: Path
) -> None:
    # Prepare: a SEG of a study Orthanc does not hold yet
    config = load_pacs_settings(pacs_file(tmp_path, orthanc, "dicomweb")).get("radiology")
    seg = next(p for p in sorted(studies.site_2.rglob("*.dcm")) if "SEG" in p.parts)
    local = dcmread(seg)

    # Execute
    summary = store_results([seg, tmp_path / "summary.json"], config)

    # Assert: one file sent (the JSON is not DICOM output), filed in its study as a SEG
    assert [r.ok for r in summary.results] == [True]
    found = orthanc.post(
        "/tools/find",
        {"Level": "Instance", "Query": {"StudyInstanceUID": local.StudyInstanceUID}},
    )
    assert len(found) == 1
    tags = orthanc.get(f"/instances/{found[0]}/simplified-tags")
    assert tags["SOPInstanceUID"] == local.SOPInstanceUID and tags["Modality"] == "SEG"
    print(f"\nSTOW-RS of one SEG: {summary.seconds:.3f} s")


def test_store_refuses_a_file_that_is_not_dicom(tmp_path: Path) -> None:
    # Prepare: no PACS is reached: the check comes first
    (tmp_path / "pacs.toml").write_text(
        'cache-dir = "c"\n[pacs.p]\ndicomweb = "http://127.0.0.1:1/dicom-web"\n'
    )
    config = load_pacs_settings(tmp_path / "pacs.toml").get("p")
    bad = tmp_path / "seg.dcm"
    bad.write_bytes(b"not a DICOM file")

    # Execute / Assert
    with pytest.raises(DataError, match="not a DICOM file") as err:
        store_results([bad], config)
    assert str(tmp_path) not in err.value.public
