"""Certificates and keys for a federation, built with `cryptography` (no hand-made crypto)."""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from shared.errors import ProvisioningError

__all__ = [
    "CertifiedKey",
    "generate_ca",
    "generate_node_key",
    "issue_server_cert",
    "load_ca",
    "write_private",
    "write_public",
]

# P-384 is a NIST curve, as Flower's SuperNode authentication requires.
_CURVE = ec.SECP384R1
_CA_YEARS = 10
_LEAF_YEARS = 2


class CertifiedKey:
    """A private key with its certificate."""

    def __init__(self, key: ec.EllipticCurvePrivateKey, cert: x509.Certificate) -> None:
        self.key = key
        self.cert = cert

    def key_pem(self) -> bytes:
        """The private key as unencrypted PKCS#8 PEM (what TLS servers load)."""
        return self.key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )

    def cert_pem(self) -> bytes:
        """The certificate as PEM."""
        return self.cert.public_bytes(serialization.Encoding.PEM)


def _name(common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "MedFleet federation"),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def _validity(builder: x509.CertificateBuilder, years: int) -> x509.CertificateBuilder:
    now = dt.datetime.now(dt.UTC)
    return builder.not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(
        now + dt.timedelta(days=365 * years)
    )


def generate_ca(common_name: str = "MedFleet federation CA") -> CertifiedKey:
    """Create a self-signed CA allowed to sign server certificates only (path length 0)."""
    key = ec.generate_private_key(_CURVE())
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(common_name))
        .issuer_name(_name(common_name))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
    )
    cert = _validity(builder, _CA_YEARS).sign(key, hashes.SHA384())
    return CertifiedKey(key, cert)


def _general_name(name: str) -> x509.GeneralName:
    try:
        return x509.IPAddress(ipaddress.ip_address(name))
    except ValueError:
        return x509.DNSName(name)


def issue_server_cert(ca: CertifiedKey, sans: tuple[str, ...]) -> CertifiedKey:
    """Issue a TLS server certificate for `sans` (DNS names or IP addresses), signed by `ca`."""
    if not sans:
        raise ProvisioningError("the server certificate needs at least one SAN")
    key = ec.generate_private_key(_CURVE())
    ca_ski = ca.cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(sans[0]))
        .issuer_name(ca.cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .add_extension(x509.SubjectAlternativeName([_general_name(s) for s in sans]), False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(True, False, True, False, False, False, False, False, False),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski), False
        )
    )
    cert = _validity(builder, _LEAF_YEARS).sign(ca.key, hashes.SHA384())
    return CertifiedKey(key, cert)


def generate_node_key(comment: str) -> tuple[bytes, bytes]:
    """Create a SuperNode authentication key pair in OpenSSH format.

    Parameters
    ----------
    comment : str
        Appended to the public key line (the site name), for humans.

    Returns
    -------
    tuple[bytes, bytes]
        The private key (OpenSSH PEM, unencrypted) and the public key line.
    """
    key = ec.generate_private_key(_CURVE())
    private = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.OpenSSH,
        serialization.NoEncryption(),
    )
    public = key.public_key().public_bytes(
        serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
    )
    return private, public + b" " + comment.encode() + b"\n"


def load_ca(cert_path: Path, key_path: Path) -> CertifiedKey:
    """Load an existing CA, checking that key and certificate belong together."""
    try:
        cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
        key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
    except (OSError, ValueError) as err:
        raise ProvisioningError(
            f"cannot load the existing CA in {cert_path.parent}: {err}"
        ) from None
    if not isinstance(key, ec.EllipticCurvePrivateKey) or key.public_key() != cert.public_key():
        raise ProvisioningError(
            f"CA key and certificate in {cert_path.parent} do not match; restore them from "
            "backup or provision into a new --out folder"
        )
    return CertifiedKey(key, cert)


def write_private(path: Path, data: bytes) -> None:
    """Write a private key readable by its owner only (0600), never over an existing file."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise ProvisioningError(f"refusing to overwrite the existing key {path}") from None
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
    os.chmod(path, 0o600)  # the umask may have removed bits, never added them; be explicit


def write_public(path: Path, data: bytes) -> None:
    """Write a certificate, public key or settings file (0644)."""
    path.write_bytes(data)
    os.chmod(path, 0o644)
