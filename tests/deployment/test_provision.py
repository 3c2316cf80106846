"""Provisioning: file modes, SANs, key formats, idempotence and errors."""

from __future__ import annotations

import ipaddress
import stat
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import (
    load_pem_private_key,
    load_ssh_private_key,
    load_ssh_public_key,
)

from server.federation import load_federation
from server.provision import provision
from shared import kit
from shared.errors import ConfigError, ProvisioningError

SITES = ("site-a", "site-b", "site-c")


def write_federation(
    path: Path, address: str = "fl.example-hospital.org:9092", sites=SITES
) -> Path:
    names = ", ".join(f'"{s}"' for s in sites)
    path.write_text(
        f'[server]\naddress = "{address}"\nsan = ["10.0.0.5"]\n[sites]\nnames = [{names}]\n'
    )
    return path


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def kits(tmp_path: Path) -> Path:
    provision(write_federation(tmp_path / "hospitals.toml"), tmp_path / "kits")
    return tmp_path / "kits"


def test_layout_and_private_key_modes(kits: Path) -> None:
    # Assert
    for private in [kits / "ca" / "ca.key", kits / "server" / kit.SERVER_KEY]:
        assert mode(private) == 0o600
    for site in SITES:
        assert mode(kits / site / kit.SITE_AUTH_KEY) == 0o600
        assert mode(kits / site) == 0o700
        assert (kits / site / kit.CA_CERT).read_bytes() == (kits / "ca" / "ca.pem").read_bytes()
        assert not list((kits / site).glob("*.key.*"))
    # The CA key and site private keys never land in the server kit.
    server_files = {p.name for p in (kits / "server").rglob("*")}
    assert "ca.key" not in server_files and kit.SITE_AUTH_KEY not in server_files


def test_server_certificate_sans_and_chain(kits: Path) -> None:
    # Prepare
    ca = x509.load_pem_x509_certificate((kits / "ca" / "ca.pem").read_bytes())
    cert = x509.load_pem_x509_certificate((kits / "server" / kit.SERVER_CERT).read_bytes())
    # Execute
    sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    # Assert
    assert "fl.example-hospital.org" in sans.get_values_for_type(x509.DNSName)
    ips = sans.get_values_for_type(x509.IPAddress)
    assert ipaddress.ip_address("10.0.0.5") in ips and ipaddress.ip_address("127.0.0.1") in ips
    cert.verify_directly_issued_by(ca)
    key = load_pem_private_key((kits / "server" / kit.SERVER_KEY).read_bytes(), None)
    assert key.public_key() == cert.public_key()


def test_site_keys_are_openssh_nist_ec_and_registered(kits: Path) -> None:
    for site in SITES:
        # Execute
        private = load_ssh_private_key((kits / site / kit.SITE_AUTH_KEY).read_bytes(), None)
        public = load_ssh_public_key((kits / "server" / "site-keys" / f"{site}.pub").read_bytes())
        # Assert: the format `flower-supernode --auth-supernode-private-key` and
        # `flwr supernode register` accept.
        assert isinstance(private, ec.EllipticCurvePrivateKey)
        assert private.curve.name == "secp384r1"
        assert private.public_key() == public
    settings = kit.read_kit_toml(kits / "server" / kit.SERVER_TOML)
    assert list(settings["sites"]) == list(SITES)
    site = kit.read_kit_toml(kits / "site-a" / kit.SITE_TOML)["site"]
    assert site["server-address"] == "fl.example-hospital.org:9092" and site["data-dir"] == ""


def test_rerun_keeps_ca_and_keys_and_adds_new_site(tmp_path: Path, kits: Path) -> None:
    # Prepare
    before = {p: p.read_bytes() for p in kits.rglob("*") if p.is_file() and p.suffix == ".key"}
    # Execute
    fed = write_federation(tmp_path / "hospitals.toml", sites=(*SITES, "site-d"))
    report = provision(fed, kits)
    # Assert
    assert all(p.read_bytes() == data for p, data in before.items())
    assert kits / "ca" in report.kept
    assert kits / "site-d" in report.created
    assert (kits / "server" / "site-keys" / "site-d.pub").is_file()


def test_half_a_ca_is_refused(tmp_path: Path, kits: Path) -> None:
    # Prepare
    (kits / "ca" / "ca.key").unlink()
    # Execute / Assert
    with pytest.raises(ProvisioningError, match="half of a CA"):
        provision(tmp_path / "hospitals.toml", kits)
    assert (kits / "ca" / "ca.pem").is_file()


def test_server_cert_from_another_ca_is_refused(tmp_path: Path, kits: Path) -> None:
    # Prepare: a second federation's server certificate in this kit
    other = tmp_path / "other"
    provision(write_federation(tmp_path / "o.toml"), other)
    for name in (kit.SERVER_CERT,):
        (kits / "server" / name).write_bytes((other / "server" / name).read_bytes())
    # Execute / Assert
    with pytest.raises(ProvisioningError, match="not issued by the CA"):
        provision(tmp_path / "hospitals.toml", kits)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('[sites]\nnames = ["a"]\n', r"\[server\] address"),
        ('[server]\naddress = "host"\n[sites]\nnames = ["a"]\n', "host:port"),
        ('[server]\naddress = "h:99999"\n[sites]\nnames = ["a"]\n', "1-65535"),
        ('[server]\naddress = "h:1"\n[sites]\nnames = []\n', "non-empty"),
        ('[server]\naddress = "h:1"\n[sites]\nnames = ["Site A"]\n', "not usable"),
        ('[server]\naddress = "h:1"\n[sites]\nnames = ["ca"]\n', "not usable"),
        ('[server]\naddress = "h:1"\n[sites]\nnames = ["a", "a"]\n', "more than once"),
        ("[server\n", "not valid TOML"),
    ],
)
def test_bad_federation_files(tmp_path: Path, text: str, message: str) -> None:
    # Prepare
    path = tmp_path / "f.toml"
    path.write_text(text)
    # Execute / Assert
    with pytest.raises(ConfigError, match=message):
        load_federation(path)


def test_ipv6_address_and_missing_file(tmp_path: Path) -> None:
    fed = load_federation(write_federation(tmp_path / "f.toml", address="[::1]:9092"))
    assert (fed.host, fed.port) == ("::1", 9092)
    with pytest.raises(ConfigError, match="not found"):
        load_federation(tmp_path / "missing.toml")


def test_check_private_key_refuses_group_readable(kits: Path) -> None:
    # Prepare
    key = kits / "site-a" / kit.SITE_AUTH_KEY
    key.chmod(0o640)
    # Execute / Assert
    with pytest.raises(ProvisioningError, match="chmod 600"):
        kit.check_private_key(key)
    key.chmod(0o600)
    kit.check_private_key(key)
