"""`medfleet provision`: build the CA, the server kit and one startup kit per site."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature

from server.federation import Federation, load_federation
from server.pki import (
    CertifiedKey,
    generate_ca,
    generate_node_key,
    issue_server_cert,
    load_ca,
    write_private,
    write_public,
)
from shared import kit
from shared.errors import ProvisioningError

__all__ = ["CA_DIR", "ProvisionReport", "provision"]

log = logging.getLogger("medfleet.server.provision")

CA_DIR = "ca"
CA_KEY = "ca.key"

_SITE_TOML = """\
# MedFleet startup kit of site '{name}'. Keep this folder on the site's server only:
# auth.key identifies the site to the federation.
# Set data-dir and device (or pass --data / --device), then run
#   medfleet site start --kit <this folder>
[site]
name = "{name}"
server-address = "{address}"
data-dir = ""        # folder with this site's DICOM files, e.g. "/srv/medfleet/dicom"
device = "auto"      # auto, cpu or cuda[:N]
"""


@dataclass
class ProvisionReport:
    """What a provisioning run created and what it found and kept."""

    created: list[Path] = field(default_factory=list)
    kept: list[Path] = field(default_factory=list)


def _private_dir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    os.chmod(path, 0o700)
    return path


def _ca(out: Path, report: ProvisionReport) -> CertifiedKey:
    ca_dir = _private_dir(out / CA_DIR)
    cert_path, key_path = ca_dir / kit.CA_CERT, ca_dir / CA_KEY
    if cert_path.exists() and key_path.exists():
        kit.check_private_key(key_path)
        log.info("reusing the existing CA in %s", ca_dir)
        report.kept.append(ca_dir)
        return load_ca(cert_path, key_path)
    if cert_path.exists() or key_path.exists():
        raise ProvisioningError(
            f"{ca_dir} holds only half of a CA (certificate or key); restore the missing "
            "file from backup instead of creating a new CA, which would lock out every site"
        )
    ca = generate_ca()
    write_private(key_path, ca.key_pem())
    write_public(cert_path, ca.cert_pem())
    report.created.append(ca_dir)
    return ca


def _check_issued_by(cert_path: Path, ca: CertifiedKey) -> None:
    cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
    try:
        cert.verify_directly_issued_by(ca.cert)
    except (InvalidSignature, ValueError, TypeError) as err:
        raise ProvisioningError(
            f"{cert_path} was not issued by the CA in {CA_DIR}/ ({type(err).__name__}); "
            "delete server.pem and server.key to issue a new server certificate"
        ) from None


def _server_cert(
    server_dir: Path, ca: CertifiedKey, fed: Federation, report: ProvisionReport
) -> None:
    cert_path, key_path = server_dir / kit.SERVER_CERT, server_dir / kit.SERVER_KEY
    if cert_path.exists() and key_path.exists():
        _check_issued_by(cert_path, ca)
        report.kept.append(cert_path)
        return
    issued = issue_server_cert(ca, fed.sans)
    key_path.unlink(missing_ok=True)
    write_private(key_path, issued.key_pem())
    write_public(cert_path, issued.cert_pem())
    report.created.append(cert_path)


def _site_kit(
    out: Path, name: str, ca: CertifiedKey, fed: Federation, report: ProvisionReport
) -> bytes:
    site_dir = _private_dir(out / name)
    key_path, pub_path = site_dir / kit.SITE_AUTH_KEY, site_dir / kit.SITE_AUTH_PUB
    write_public(site_dir / kit.CA_CERT, ca.cert_pem())
    if key_path.exists() and pub_path.exists():
        report.kept.append(site_dir)
        return pub_path.read_bytes()
    if key_path.exists() or pub_path.exists():
        raise ProvisioningError(
            f"site kit {site_dir} holds only one half of its key pair; delete {site_dir} "
            "to issue a new key (and give the site the new kit)"
        )
    private, public = generate_node_key(name)
    write_private(key_path, private)
    write_public(pub_path, public)
    settings = site_dir / kit.SITE_TOML
    if not settings.exists():  # the site may have filled in its data-dir already
        write_public(settings, _SITE_TOML.format(name=name, address=fed.address).encode())
    report.created.append(site_dir)
    return public


def _server_toml(fed: Federation) -> bytes:
    lines = [
        "# MedFleet server kit. Start with: medfleet server start --kit <this folder>",
        "[server]",
        f'address = "{fed.address}"',
        f"port = {fed.port}",
        "",
        "[sites]  # site name -> public key registered with the SuperLink",
    ]
    lines += [f'{name} = "{kit.SITE_KEYS_DIR}/{name}.pub"' for name in fed.sites]
    return ("\n".join(lines) + "\n").encode()


def provision(federation_file: Path, out: Path) -> ProvisionReport:
    """Create (or complete) the kits for every site and the server.

    Re-running is safe: an existing CA, server key and site keys are kept, never
    overwritten; sites added to the federation file get new kits.

    Parameters
    ----------
    federation_file : Path
        The federation TOML (`[server] address`, `[sites] names`).
    out : Path
        Folder receiving `ca/` (keep offline), `server/` and one folder per site.

    Returns
    -------
    ProvisionReport
        Paths created and paths kept.
    """
    fed = load_federation(federation_file)
    report = ProvisionReport()
    out.mkdir(parents=True, exist_ok=True)
    ca = _ca(out, report)
    server_dir = _private_dir(out / "server")
    write_public(server_dir / kit.CA_CERT, ca.cert_pem())
    _server_cert(server_dir, ca, fed, report)
    keys_dir = server_dir / kit.SITE_KEYS_DIR
    keys_dir.mkdir(exist_ok=True)
    for name in fed.sites:
        write_public(keys_dir / f"{name}.pub", _site_kit(out, name, ca, fed, report))
    write_public(server_dir / kit.SERVER_TOML, _server_toml(fed))
    return report
