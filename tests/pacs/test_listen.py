"""`medfleet site listen`: Orthanc pushes a study in; an unknown calling AE title is refused."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from pydicom import dcmread
from pydicom.uid import generate_uid
from pynetdicom import AE, sop_class

from tests.deployment.harness import free_port, medfleet
from tests.pacs.conftest import LISTEN_AE, PACS_AE, Studies
from tests.pacs.orthanc import Orthanc

MODALITY_AE = "MRI-SCANNER-3"


@pytest.fixture
def listening(
    tmp_path: Path, studies: Studies
) -> Iterator[tuple[Path, int, Orthanc, Callable[[], str]]]:
    """`medfleet site listen` (a real process) and an Orthanc that knows it as a modality."""
    port = free_port()
    cache = tmp_path / "cache"
    config = tmp_path / "pacs.toml"
    config.write_text(
        f'cache-dir = "{cache}"\n[pacs.radiology]\ndicomweb = "http://127.0.0.1:1/dicom-web"\n'
        f'[listen]\nae-title = "{LISTEN_AE}"\nport = {port}\nhost = "127.0.0.1"\n'
        f'allowed-calling-ae = ["{PACS_AE}", "{MODALITY_AE}"]\n'
    )
    orthanc = Orthanc(tmp_path / "orthanc", aet=PACS_AE, modalities={"site": (LISTEN_AE, port)})
    log = (tmp_path / "listen.log").open("wb")
    proc = subprocess.Popen(
        medfleet(["site", "listen", "--pacs-config", str(config)]),
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )

    def stop() -> str:
        """SIGTERM by PID (SIGKILL after 10 s); the command's output."""
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.kill(proc.pid, signal.SIGKILL)
                proc.wait()
        log.flush()
        return (tmp_path / "listen.log").read_text(errors="replace")

    try:
        orthanc.start()
        _wait_for_port(port, proc)
        yield cache, port, orthanc, stop
    finally:
        orthanc.kill()
        stop()
        log.close()


def _wait_for_port(port: int, proc: subprocess.Popen[bytes], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, "site listen exited early"
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise AssertionError("site listen did not open its port")


def _files(cache: Path) -> list[Path]:
    return sorted(cache.rglob("*")) if cache.is_dir() else []


def test_listen_files_a_study_pushed_by_the_pacs_and_refuses_unknown_callers(
    listening: tuple[Path, int, Orthanc, Callable[[], str]], studies: Studies
) -> None:
    # Prepare: one study of site-2 in Orthanc
    cache, port, orthanc, stop = listening
    files = sorted(next(studies.site_2.iterdir()).rglob("*.dcm"))
    orthanc.upload(files)
    (study,) = orthanc.get("/studies")
    originals = {str(dcmread(p).SOPInstanceUID): dcmread(p) for p in files}

    # Execute: Orthanc pushes the study (C-STORE) to the site's AE title
    started = time.monotonic()
    job = orthanc.post("/modalities/site/store", {"Resources": [study], "Synchronous": True})
    seconds = time.monotonic() - started

    # Assert: every instance filed under its study and series, the same dataset, no temp file
    assert job["InstancesCount"] == len(files)
    written = [p for p in _files(cache) if p.is_file()]
    assert not [p for p in written if p.name.startswith(".")]
    assert {p.stem for p in written} == set(originals)
    for path in written:
        ds = dcmread(path)
        expected = originals[path.stem]
        assert path.parent.name == expected.SeriesInstanceUID
        assert path.parent.parent.name == expected.StudyInstanceUID
        assert ds.PixelData == expected.PixelData and ds.PatientID == expected.PatientID
    print(f"\npushed {len(files)} instances in {seconds:.2f} s")

    # Execute: a modality that is allowed, and a caller that is not, each send one image
    image = dcmread(files[0])
    image.SOPInstanceUID = generate_uid()
    accepted = _send(image, MODALITY_AE, port)
    before = _files(cache)
    image.SOPInstanceUID = generate_uid()
    refused = _send(image, "INTRUDER", port)

    # Assert: the allowed one is stored, the unknown AE title is rejected and writes nothing
    assert accepted == "stored"
    assert (cache / image.StudyInstanceUID / image.SeriesInstanceUID).is_dir()
    assert refused == "rejected: calling AE title not recognised"
    assert _files(cache) == before

    # Assert: stopped by SIGTERM, it says what it took and what it refused
    output = stop()
    assert f"{len(files) + 1} instance(s) received, 1 association(s) refused" in output
    assert "refused an association from AE title 'INTRUDER'" in output


def _send(ds: object, calling_ae: str, port: int) -> str:
    ae = AE(ae_title=calling_ae)
    ae.add_requested_context(getattr(sop_class, "MRImageStorage"))  # noqa: B009
    assoc = ae.associate("127.0.0.1", port, ae_title=LISTEN_AE)
    if assoc.is_rejected:
        reason = assoc.acceptor.primitive.diagnostic if assoc.acceptor.primitive else None
        # PS3.8 7.1.1.9: source 1 (service user), reason 3: calling AE title not recognised
        return "rejected: calling AE title not recognised" if reason == 3 else f"rejected {reason}"
    if not assoc.is_established:
        return "no association"
    status = assoc.send_c_store(ds)
    assoc.release()
    return "stored" if status and status.Status == 0 else f"status {status}"
