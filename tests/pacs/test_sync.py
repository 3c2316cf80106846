"""`medfleet site sync` against a real Orthanc: the saved query's studies, whole, once."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from pydicom import dcmread

from client.pacs import load_pacs_settings, sync_pacs
from client.pacs.cache import PacsCache
from shared.cli import main
from shared.volumes import index_segmentation_site
from tests.pacs.conftest import DATE_FROM, Studies, pacs_file
from tests.pacs.orthanc import Orthanc


def _expected(studies: Studies) -> dict[str, set[str]]:
    """Site-1's studies the saved query selects (MR, MR HE*, dated from DATE_FROM)."""
    found = studies.by_study(studies.site_1)
    return {
        study: set(sops)
        for study, sops in found.items()
        if min(sops.values()) >= DATE_FROM  # every instance of a study has its date
    }


def _cached(cache: Path) -> dict[str, set[str]]:
    """Study UID -> SOP Instance UIDs of the cache's complete studies, read from the files."""
    out: dict[str, set[str]] = {}
    for path in cache.rglob("*.dcm"):
        if any(part.startswith(".") for part in path.relative_to(cache).parts):
            continue
        ds = dcmread(path, stop_before_pixels=True)
        out.setdefault(str(ds.StudyInstanceUID), set()).add(str(ds.SOPInstanceUID))
    return out


@pytest.mark.parametrize("protocol", ["dimse", "dimse-move", "dicomweb"])
def test_sync_retrieves_the_saved_query_whole_then_nothing_new(
    protocol: str, orthanc: Orthanc, studies: Studies, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    # Prepare: the query must drop one MR study by its date and the CT study by modality
    config = pacs_file(tmp_path / "site", orthanc, protocol)
    cache = tmp_path / "site" / "cache"
    expected = _expected(studies)
    assert 0 < len(expected) < len(studies.by_study(studies.site_1))

    # Execute: the command twice
    started = time.monotonic()
    first = main(["site", "sync", "--pacs-config", str(config)])
    seconds = time.monotonic() - started
    first_out = capsys.readouterr().out
    second = main(["site", "sync", "--pacs-config", str(config)])
    second_out = capsys.readouterr().out

    # Assert: exactly the selected studies, every instance, the files as uploaded
    assert first == 0 and second == 0, first_out + second_out
    assert _cached(cache) == expected
    instances = sum(len(sops) for sops in expected.values())
    assert f"{len(expected)} studies match the saved query, 0 already in the cache, " in first_out
    assert f"{len(expected)} retrieved ({instances} instances" in first_out
    assert f"{len(expected)} already in the cache, 0 retrieved (0 instances" in second_out
    ledger = json.loads((cache / ".medfleet-pacs" / "ledger.json").read_text())["studies"]
    assert {uid: entry["instances"] for uid, entry in ledger.items()} == {
        uid: len(sops) for uid, sops in expected.items()
    }
    # The index sees one segmentation case (series + SEG) per study, nothing skipped
    cases, report = index_segmentation_site(cache)
    assert len(cases) == len(expected)
    assert sum(report.summary().get(k, 0) for k in report.summary() if "skipped" in k) == 0
    # `data check` reports on the cache as on any folder: each study's MR images and its SEG
    assert main(["data", "check", str(cache), "--json"]) == 0
    checked = json.loads(capsys.readouterr().out)
    assert checked == {
        "files": instances,
        "series": len(expected),
        "usable": instances - len(expected),
        "usable_MR": instances - len(expected),
        "skipped": len(expected),
        "skipped_non_image": len(expected),
    }
    rate = len(expected) / seconds * 60
    print(f"\n{protocol}: {len(expected)} studies, {instances} instances in {seconds:.2f} s "
          f"({rate:.0f} studies/min)")  # fmt: skip


def test_a_retrieve_killed_midway_leaves_no_partial_study_and_resumes(
    orthanc: Orthanc, studies: Studies, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    # Prepare: Orthanc dies by SIGKILL after 10 instances of the second study
    config = pacs_file(tmp_path / "site", orthanc, "dimse")
    settings = load_pacs_settings(config)
    cache = PacsCache(settings.cache_dir)
    expected = _expected(studies)

    def crash(study_number: int, received: int) -> None:
        if study_number == 2 and received == 10:
            orthanc.kill()

    # Execute
    interrupted = sync_pacs(settings, on_instance=crash)

    # Assert: the sync says so; one whole study in the cache, the partial one in staging
    assert not interrupted.ok
    assert interrupted.error.startswith("PACS 'radiology' ")
    assert interrupted.retrieved == 1 and len(interrupted.incomplete) == 1
    kept = _cached(cache.root)
    assert len(kept) == 1 and next(iter(kept.values())) == expected[next(iter(kept))]
    partial = interrupted.incomplete[0]
    assert partial in expected and partial not in kept
    assert 10 <= cache.staged(partial) < len(expected[partial])
    assert set(cache.ledger()) == set(kept)
    cases, _ = index_segmentation_site(cache.root)
    assert len(cases) == 1

    # Execute: the command while the PACS is still down
    code = main(["site", "sync", "--pacs-config", str(config)])
    out = capsys.readouterr().out

    # Assert: exit 1, the partial study and the reason reported, the cache unchanged
    assert code == 1
    assert "1 study(ies) incomplete, kept in staging" in out
    assert "interrupted: PACS 'radiology' refused or did not answer the association" in out
    assert _cached(cache.root) == kept

    # Execute: Orthanc back on its storage, sync again
    orthanc.start()
    resumed = sync_pacs(settings)

    # Assert: everything complete, staging empty
    assert resumed.ok, resumed
    assert resumed.already == 1 and resumed.retrieved == len(expected) - 1
    assert _cached(cache.root) == expected
    assert cache.partial() == []
    assert len(index_segmentation_site(cache.root)[0]) == len(expected)


@pytest.mark.parametrize("protocol", ["dimse", "dicomweb"])
def test_the_body_part_of_a_series_selects_its_study(
    protocol: str, orthanc: Orthanc, studies: Studies, tmp_path: Path
) -> None:
    # Prepare: one more study whose MR series says BRAIN (site-1's say HEAD)
    import io

    from pydicom import dcmwrite

    study = next(iter(sorted(studies.site_2.iterdir())))
    for path in sorted(study.rglob("*.dcm")):
        ds = dcmread(path)
        if ds.Modality == "MR":
            ds.BodyPartExamined = "BRAIN"
        buffer = io.BytesIO()
        dcmwrite(buffer, ds, enforce_file_format=True)
        orthanc.session.post(f"{orthanc.url}/instances", data=buffer.getvalue()).raise_for_status()
    config = pacs_file(tmp_path / "site", orthanc, protocol, date_from="20000101")
    config.write_text(
        config.read_text().replace('modality = "MR"', 'modality = "MR"\nbody-part = "BRAIN"')
    )

    # Execute
    summary = sync_pacs(load_pacs_settings(config))

    # Assert: that study alone
    assert summary.ok and summary.found == 1
    assert set(_cached(tmp_path / "site" / "cache")) == set(studies.by_study(study))
