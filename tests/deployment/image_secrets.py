"""What must never be in a container image: kits, keys, certificates, DICOM files, runs, caches."""

from __future__ import annotations

from pathlib import Path

__all__ = ["finding"]

# Names `medfleet provision`, a site's data and a run write, and the folders holding them.
_NAMES = {"ca.key", "ca.pem", "server.key", "server.pem", "auth.key", "auth.pub", "site.toml",
          "server.toml", "run.json", "approved-apps.json", "labels.csv", "superexec.secret",
          "global_model.pt", "sites.json", "state.db"}  # fmt: skip
_FOLDERS = {"kits", "site-keys", "demo", "runs", "checkpoints"}
# Public files that look like what is searched for: the libraries' own DICOM test and
# palette files (no patient in them) and the public CA certificates of trust stores.
_PUBLIC_DICOM = ("/site-packages/pydicom/data/", "/site-packages/nibabel/")
_PUBLIC_CERTS = ("/etc/ssl/certs/", "/usr/share/ca-certificates/", "/site-packages/certifi/",
                 "/usr/share/doc/ca-certificates/examples/",
                 "/pip/_vendor/certifi/", "/grpc/_cython/_credentials/")  # fmt: skip
# pip's cache (the Dockerfiles install with --no-cache-dir): never in a layer.
_PIP_CACHE = ("/.cache/pip/", "/http-v2/")
_HEAD = 1 << 16  # keys and certificates are a few KB; DICOM says so at byte 128


def finding(image_path: str, disk: Path) -> str | None:
    """Why a file must not be in an image; None when it may.

    By name (kit, data and run files and folders) and by content, whatever the name: a
    DICOM file (its preamble's "DICM"), a PEM private key or a PEM certificate.
    """
    parts = image_path.split("/")
    if set(parts[1:-1]) & _FOLDERS or parts[-1] in _NAMES:
        return "kit, data or run file"
    if _under(image_path, _PIP_CACHE):
        return "pip cache"
    with disk.open("rb") as handle:
        head = handle.read(_HEAD)
    if head[128:132] == b"DICM" and not _under(image_path, _PUBLIC_DICOM):
        return "DICOM file"
    pem = head.lstrip()
    if pem.startswith(b"-----BEGIN") and b"PRIVATE KEY-----" in pem[:64]:
        return "private key"
    if pem.startswith(b"-----BEGIN CERTIFICATE-----") and not _under(image_path, _PUBLIC_CERTS):
        return "certificate"
    return None


def _under(image_path: str, folders: tuple[str, ...]) -> bool:
    return any(folder in image_path for folder in folders)
