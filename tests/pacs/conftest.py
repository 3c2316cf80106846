"""Fixtures of the PACS tests: synthetic studies, a real Orthanc holding them, a PACS file."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from pydicom import dcmread

from tests.pacs.orthanc import Orthanc, orthanc_binary

#: The site's AE titles, and the saved query's values: the privacy test searches for them.
SITE_AE = "MFSITE1-SCU"
LISTEN_AE = "MFSITE1-STORE"
PACS_AE = "RADPACS-7"
DATE_FROM = "20240501"


@dataclass(frozen=True)
class Studies:
    """The synthetic data: two segmentation sites and one CT study the query must skip."""

    root: Path
    site_1: Path
    site_2: Path
    ct_files: list[Path]

    def by_study(self, folder: Path) -> dict[str, dict[str, str]]:
        """Study UID -> {SOP Instance UID: StudyDate} of the DICOM files under `folder`."""
        out: dict[str, dict[str, str]] = {}
        for path in sorted(folder.rglob("*.dcm")):
            ds = dcmread(path, stop_before_pixels=True)
            out.setdefault(str(ds.StudyInstanceUID), {})[str(ds.SOPInstanceUID)] = str(ds.StudyDate)
        return out


@pytest.fixture(scope="session")
def studies(tmp_path_factory: pytest.TempPathFactory) -> Studies:
    from simulations.synth import generate_sites

    orthanc_binary()  # skip before generating anything when there is no Orthanc
    root = tmp_path_factory.mktemp("pacs-data")
    seg = generate_sites(root / "seg", n_sites=2, seed=3, task="segmentation", scale=0.1)
    ct = generate_sites(root / "ct", n_sites=1, seed=3, task="classification", scale=0.02)
    return Studies(root, seg[0], seg[1], sorted(ct[0].rglob("*.dcm"))[:2])


@pytest.fixture
def orthanc(tmp_path: Path, studies: Studies) -> Iterator[Orthanc]:
    """Orthanc on free ports holding site-1's MR studies and a CT study; killed by PID."""
    server = Orthanc(tmp_path / "orthanc", aet=PACS_AE, modalities={"site": (SITE_AE, 0)})
    try:
        server.start()
        server.upload([*sorted(studies.site_1.rglob("*.dcm")), *studies.ct_files])
        yield server
    finally:
        server.kill()


def pacs_file(
    folder: Path,
    orthanc: Orthanc,
    protocol: str = "dimse",
    date_from: str = DATE_FROM,
    cache: str = "cache",
) -> Path:
    """Write the site's pacs.toml for `orthanc` with a saved MR query.

    `protocol`: ``dimse`` (C-GET), ``dimse-move`` (C-MOVE) or ``dicomweb``.
    """
    if protocol.startswith("dimse"):
        where = (
            f'host = "127.0.0.1"\nport = {orthanc.dicom_port}\n'
            f'called-ae = "{orthanc.aet}"\ncalling-ae = "{SITE_AE}"\n'
        )
        if protocol == "dimse-move":  # Orthanc sends to the site's AE at this port
            where += f'retrieve = "move"\nmove-port = {orthanc.modalities["site"][1]}\n'

    else:
        where = f'dicomweb = "{orthanc.dicomweb}"\n'
    text = (
        f'cache-dir = "{cache}"\n\n[pacs.radiology]\n{where}timeout = 10\n\n'
        f'[pacs.radiology.query]\nmodality = "MR"\nstudy-description = "MR HE*"\n'
        f'date-from = "{date_from}"\ndate-to = "20291231"\n'
    )
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "pacs.toml"
    path.write_text(text)
    return path
