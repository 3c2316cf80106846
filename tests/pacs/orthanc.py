"""A real Orthanc PACS for tests: generated config, free 127.0.0.1 ports, stopped by PID."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.deployment.harness import free_port

__all__ = ["Orthanc", "orthanc_binary"]

DICOMWEB_PLUGIN = Path("/usr/share/orthanc/plugins/libOrthancDicomWeb.so")


def orthanc_binary() -> str:
    """Orthanc's executable; skip the test without it (fail in CI, where it must be there)."""
    found = shutil.which("Orthanc") or next(
        (p for p in ("/usr/sbin/Orthanc", "/usr/bin/Orthanc") if os.access(p, os.X_OK)), None
    )
    if found is None or not DICOMWEB_PLUGIN.is_file():
        if os.environ.get("CI"):
            pytest.fail("Orthanc is required in CI: apt-get install orthanc orthanc-dicomweb")
        pytest.skip(
            "Orthanc is not installed (apt-get install orthanc orthanc-dicomweb, or "
            "make system-deps as root); the PACS tests need a real one"
        )
    return found


class Orthanc:
    """One Orthanc process with its own storage under `root`; restartable on that storage."""

    def __init__(
        self, root: Path, aet: str = "ORTHANC", modalities: Mapping[str, tuple[str, int]] = {}
    ) -> None:
        self.binary = orthanc_binary()
        self.root = Path(root)
        self.aet = aet
        self.modalities = dict(modalities)
        self.dicom_port, self.http_port = free_port(), free_port()
        # A modality given port 0 gets a free one (the site's C-MOVE receiver).
        self.modalities = {
            name: (aet, port or free_port()) for name, (aet, port) in self.modalities.items()
        }
        self.proc: subprocess.Popen[bytes] | None = None
        self.session = requests.Session()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    @property
    def dicomweb(self) -> str:
        return f"{self.url}/dicom-web"

    def start(self, timeout: float = 30.0) -> Orthanc:
        """Write the config, start Orthanc, wait until its REST API answers."""
        storage = self.root / "storage"
        storage.mkdir(parents=True, exist_ok=True)
        config = {
            "Name": "medfleet-test-pacs",
            "StorageDirectory": str(storage),
            "IndexDirectory": str(storage),
            "DicomAet": self.aet,
            "DicomPort": self.dicom_port,
            "HttpPort": self.http_port,
            "RemoteAccessAllowed": False,
            "AuthenticationEnabled": False,
            "DicomCheckCalledAet": True,
            # Only known modalities may query, retrieve and store (the site's AE titles).
            "DicomAlwaysAllowEcho": False,
            "DicomAlwaysAllowStore": False,
            "DicomAlwaysAllowFind": False,
            "DicomAlwaysAllowGet": False,
            "DicomAlwaysAllowMove": False,
            "DicomCheckModalityHost": False,
            "DicomModalities": {
                name: {"AET": aet, "Host": "127.0.0.1", "Port": port}
                for name, (aet, port) in self.modalities.items()
            },
            "Plugins": [str(DICOMWEB_PLUGIN)],
            "DicomWeb": {"Enable": True, "Root": "/dicom-web/"},
        }
        path = self.root / "orthanc.json"
        path.write_text(json.dumps(config, indent=1))
        log = (self.root / "orthanc.log").open("ab")
        self.proc = subprocess.Popen(
            [self.binary, str(path)], stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"Orthanc exited with {self.proc.returncode}: {self.log()}")
            try:
                if self.session.get(f"{self.url}/system", timeout=1).ok:
                    return self
            except requests.ConnectionError:
                pass
            time.sleep(0.1)
        self.kill()
        raise RuntimeError(f"Orthanc did not answer within {timeout} s: {self.log()}")

    def kill(self) -> None:
        """SIGKILL by PID (a crash: no clean shutdown)."""
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)

    def stop(self) -> None:
        """SIGTERM by PID, SIGKILL after 10 s."""
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.kill()

    def log(self) -> str:
        path = self.root / "orthanc.log"
        return path.read_text(errors="replace")[-2000:] if path.is_file() else ""

    def upload(self, files: Iterable[Path]) -> int:
        """POST each DICOM file to Orthanc's REST API (the test's set-up, not MedFleet's)."""
        count = 0
        for path in files:
            response = self.session.post(f"{self.url}/instances", data=Path(path).read_bytes())
            response.raise_for_status()
            count += 1
        return count

    def get(self, path: str) -> Any:
        response = self.session.get(f"{self.url}{path}", timeout=30)
        response.raise_for_status()
        return response.json()

    def post(self, path: str, body: Any) -> Any:
        response = self.session.post(f"{self.url}{path}", json=body, timeout=120)
        response.raise_for_status()
        return response.json() if response.content else None
