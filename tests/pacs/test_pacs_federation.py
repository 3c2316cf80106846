"""A site that trains on its PACS: sync from Orthanc, a federated round, the SEG stored back.

Site-1's studies live only in a real Orthanc; `medfleet site sync` (C-FIND + C-GET) fills
its cache, which is its data folder. Site-2 is a plain folder. One federated round of
the segmentation task runs in simulation, `medfleet predict --store` sends the SEG of a
cached study back (C-STORE), and a DICOMweb query to Orthanc (QIDO-RS, WADO-RS: another
protocol than the one that stored it) finds it in the right study, where highdicom
reads it. Then the server side is searched for site-1's PACS settings and identifiers.
"""

from __future__ import annotations

import logging
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import highdicom as hd
import numpy as np
import pytest
from dicomweb_client.api import DICOMwebClient
from pydicom import dcmread

from shared.cli import main
from shared.config import RunConfig
from simulations.runner import SimulationOptions, run_simulation_job
from tests.pacs.conftest import SITE_AE, Studies, pacs_file
from tests.pacs.orthanc import Orthanc
from tests.privacy.conftest import LogLines, check_no_hits, positive_control
from tests.privacy.search import Needles, pacs_values

pytestmark = pytest.mark.slow

ROUND = {
    "task": "segmentation",
    "num-server-rounds": 1,
    "local-epochs": 1,
    "batch-size": 2,
    "seg-channels": "4,8",
    "seg-res-units": 0,
    "seg-samples-per-case": 2,
    "min-sites": 2,
    "device": "cpu",
    "debug-record-masked": True,
}


@dataclass
class PacsRun:
    orthanc: Orthanc
    config: Path
    cache: Path
    out: Path
    record: dict[str, Any]
    log: str
    study: Path
    seg: Path
    sync_s: float


@pytest.fixture(scope="module")
def pacs_run(tmp_path_factory: pytest.TempPathFactory, studies: Studies) -> Iterator[PacsRun]:
    root = tmp_path_factory.mktemp("pacs-federation")
    sim = root / "sites"
    orthanc = Orthanc(root / "orthanc", aet="RADPACS-7", modalities={"site": (SITE_AE, 1)})
    handler = LogLines()
    loggers = [logging.getLogger(), logging.getLogger("flwr"), logging.getLogger("medfleet")]
    try:
        orthanc.start()
        orthanc.upload(sorted(studies.site_1.rglob("*.dcm")))
        config = pacs_file(
            root / "site-1-state", orthanc, date_from="20000101", cache=str(sim / "site-1")
        )
        started = time.monotonic()
        assert main(["site", "sync", "--pacs-config", str(config)]) == 0
        sync_s = time.monotonic() - started
        shutil.copytree(studies.site_2, sim / "site-2")
        out = root / "run"
        run = RunConfig.from_mapping({**ROUND, "sim-data-root": str(sim), "out-dir": str(out)})
        handler.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s"))
        for logger in loggers:
            logger.addHandler(handler)
        try:
            record = run_simulation_job(SimulationOptions(run, 2, sim))
        finally:
            for logger in loggers:
                logger.removeHandler(handler)
        study = sorted(p for p in (sim / "site-1").iterdir() if not p.name.startswith("."))[0]
        predicted = root / "predict"
        code = main(
            ["predict", "--model", str(out), "--input", str(study), "--out", str(predicted),
             "--device", "cpu", "--store", "radiology", "--pacs-config", str(config)]
        )  # fmt: skip
        assert code == 0
        (seg,) = sorted((predicted / "seg").glob("*.dcm"))
        log = "\n".join(handler.lines)
        yield PacsRun(orthanc, config, sim / "site-1", out, record, log, study, seg, sync_s)
    finally:
        orthanc.kill()


def test_a_site_trains_on_its_pacs_cache_beside_a_folder_site(
    pacs_run: PacsRun, studies: Studies
) -> None:
    # Assert: the round completed with both sites, site-1 on all four synced cases
    record = pacs_run.record
    assert record["status"] == "completed", record.get("error")
    (entry,) = record["rounds"]
    assert sorted(entry["fit"]["sites"]) == ["site-1", "site-2"]
    in_pacs = studies.by_study(studies.site_1)
    site_1 = entry["fit"]["sites"]["site-1"]
    assert site_1["data_series"] == len(in_pacs)
    assert site_1["data_files"] == sum(len(sops) for sops in in_pacs.values())
    assert site_1["data_usable_SEG"] == len(in_pacs) and site_1["data_skipped"] == 0
    # Site-2 trained on its folder as before
    site_2 = studies.by_study(studies.site_2)
    assert entry["fit"]["sites"]["site-2"]["data_series"] == len(site_2)
    assert entry["evaluate"]["sites"]["site-1"]["num_examples_val"] >= 1


def test_the_stored_seg_is_in_its_study_and_highdicom_reads_it(pacs_run: PacsRun) -> None:
    # Prepare: the source series and the SEG predict wrote, as files here
    source = dcmread(next(pacs_run.study.rglob("*.dcm")), stop_before_pixels=True)
    images = [dcmread(p, stop_before_pixels=True) for p in pacs_run.study.rglob("*.dcm")]
    mr_series = {str(ds.SeriesInstanceUID) for ds in images if ds.Modality == "MR"}
    local = dcmread(pacs_run.seg)

    # Execute: ask the PACS over DICOMweb, as a viewer would
    client = DICOMwebClient(url=pacs_run.orthanc.dicomweb)
    segs = client.search_for_series(
        str(source.StudyInstanceUID), search_filters={"Modality": "SEG"}
    )
    uids = {s["0020000E"]["Value"][0] for s in segs}
    stored = client.retrieve_instance(
        str(source.StudyInstanceUID), str(local.SeriesInstanceUID), str(local.SOPInstanceUID)
    )
    seg = hd.seg.Segmentation.from_dataset(stored)

    # Assert: in the source study beside its label SEG, referencing the MR series, same voxels
    assert str(local.SeriesInstanceUID) in uids and len(uids) == 2
    assert seg.StudyInstanceUID == source.StudyInstanceUID
    assert seg.PatientID == source.PatientID
    referenced = {str(s.SeriesInstanceUID) for s in seg.ReferencedSeriesSequence}
    assert referenced == mr_series
    assert np.array_equal(stored.pixel_array, local.pixel_array)
    assert seg.number_of_segments == local.SegmentSequence.__len__()


def test_a_second_sync_retrieves_nothing_new_though_the_study_grew(pacs_run: PacsRun) -> None:
    # Prepare: the PACS holds one instance more of the study than the cache (the SEG)
    study = str(dcmread(pacs_run.seg, stop_before_pixels=True).StudyInstanceUID)
    client = DICOMwebClient(url=pacs_run.orthanc.dicomweb)
    in_pacs = len(client.search_for_instances(study))
    assert in_pacs == len(list((pacs_run.cache / study).rglob("*.dcm"))) + 1

    # Execute
    before = _data_files(pacs_run.cache)
    started = time.monotonic()
    code = main(["site", "sync", "--pacs-config", str(pacs_run.config)])
    seconds = time.monotonic() - started

    # Assert: the predicted SEG in the PACS does not become a training label here
    after = _data_files(pacs_run.cache)
    assert code == 0 and after == before
    print(f"\nsecond sync {seconds:.2f} s; first {pacs_run.sync_s:.2f} s")


def _data_files(cache: Path) -> list[tuple[Path, int]]:
    """The cache's data files (not its ledger) with their modification times."""
    files = (p for p in cache.rglob("*") if p.is_file() and ".medfleet-pacs" not in p.parts)
    return sorted((p, p.stat().st_mtime_ns) for p in files)


def test_no_pacs_setting_or_identifier_reaches_the_server(
    pacs_run: PacsRun, studies: Studies, tmp_path: Path
) -> None:
    # Prepare: site-1's identifiers, its cache's paths, and everything in its PACS file
    folders = {"site-1": pacs_run.cache, "site-2": studies.site_2}
    pacs = pacs_values(pacs_run.config)
    needles = Needles.of_sites(studies.root / "seg", folders).plus("site-1", pacs)
    assert {SITE_AE, "RADPACS-7", str(pacs_run.orthanc.dicom_port), "MR HE*"} <= pacs

    # Execute
    searched = check_no_hits(needles, [pacs_run.out], {"server-process log": pacs_run.log})

    # Assert: the search saw the run's replies
    assert searched > 50_000 and (pacs_run.out / "received-debug").is_dir()
    found = positive_control(Needles({"site-1": pacs}), [pacs_run.out], tmp_path / "planted")
    assert len(found) == 4, found  # the search finds PACS values planted in a copy
    print(f"\nPACS federation: {len(needles)} needles ({len(pacs)} from the PACS file), "
          f"{searched} bytes searched, hits: 0")  # fmt: skip
