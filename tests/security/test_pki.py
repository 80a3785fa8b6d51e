"""The development PKI: a CA, one certificate per identity, idempotent init, leaf and CA rotation."""

from __future__ import annotations

import ipaddress
import stat

import grpc
import pytest
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from typer.testing import CliRunner

from svckit import pki
from svckit.tls import GrpcSecurity

SERVICE_HOSTS = {"gateway", "payment", "ledger", "wallet", "recon"}


def _cert(path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


def _verifies(cert: x509.Certificate, ca: x509.Certificate) -> bool:
    try:
        cert.verify_directly_issued_by(ca)
    except (InvalidSignature, ValueError, TypeError):
        return False
    return True


def test_init_makes_a_ca_and_one_certificate_per_identity_with_private_keys(tmp_path):
    made = pki.init(tmp_path)
    assert made == ["ca", *pki.IDENTITIES]
    ca = _cert(tmp_path / "ca.crt")
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    for path in (tmp_path / "ca.key", *(tmp_path / f"{n}.key" for n in pki.IDENTITIES)):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
    for name in pki.IDENTITIES:
        cert = _cert(tmp_path / f"{name}.crt")
        assert _verifies(cert, ca)
        assert pki.identity_of(cert) == name
        assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == name
        sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        usages = set(cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value)
        if name in SERVICE_HOSTS:
            # Serves and calls: reachable as localhost, 127.0.0.1 and its docker-compose host name.
            assert {name, "localhost"} <= set(sans.get_values_for_type(x509.DNSName))
            assert ipaddress.ip_address("127.0.0.1") in sans.get_values_for_type(x509.IPAddress)
            assert usages == {ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH}
        else:
            assert sans.get_values_for_type(x509.DNSName) == []
            assert usages == {ExtendedKeyUsageOID.CLIENT_AUTH}
        assert isinstance(cert.public_key(), ec.EllipticCurvePublicKey)


def test_init_again_keeps_everything_and_fills_only_what_is_missing(tmp_path):
    pki.init(tmp_path)
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    assert pki.init(tmp_path) == []
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before
    (tmp_path / "wallet.crt").unlink()
    assert pki.init(tmp_path) == ["wallet"]
    assert (tmp_path / "ca.crt").read_bytes() == before["ca.crt"]  # same CA: peers still trust it
    # Without its key the CA cannot sign: a new one, and every leaf re-issued from it.
    (tmp_path / "ca.key").unlink()
    assert pki.init(tmp_path) == ["ca", *pki.IDENTITIES]
    ca = _cert(tmp_path / "ca.crt")
    assert all(_verifies(_cert(tmp_path / f"{n}.crt"), ca) for n in pki.IDENTITIES)


def test_rotate_reissues_leaves_from_the_same_ca_with_new_keys(tmp_path):
    pki.init(tmp_path)
    old = _cert(tmp_path / "payment.crt")
    old_key = (tmp_path / "payment.key").read_bytes()
    result = CliRunner().invoke(pki.app, ["rotate", "payment", "--dir", str(tmp_path)])
    assert result.exit_code == 0, result.output
    new = _cert(tmp_path / "payment.crt")
    assert new.serial_number != old.serial_number
    assert (tmp_path / "payment.key").read_bytes() != old_key
    assert _verifies(new, _cert(tmp_path / "ca.crt"))
    assert stat.S_IMODE((tmp_path / "payment.key").stat().st_mode) == 0o600


def test_export_gives_each_identity_its_own_folder_without_the_ca_key(tmp_path):
    result = CliRunner().invoke(pki.app, ["init", "--dir", str(tmp_path / "ca"), "--export", str(tmp_path)])
    assert result.exit_code == 0, result.output
    for name in pki.IDENTITIES:
        folder = tmp_path / name
        assert sorted(p.name for p in folder.iterdir()) == sorted(["ca.crt", f"{name}.crt", f"{name}.key"])
        assert stat.S_IMODE((folder / f"{name}.key").stat().st_mode) == 0o600
        assert (folder / f"{name}.crt").read_bytes() == (tmp_path / "ca" / f"{name}.crt").read_bytes()


def test_an_unknown_ca_refuses_to_issue_with_a_clear_error(tmp_path):
    result = CliRunner().invoke(pki.app, ["issue", "payment", "--dir", str(tmp_path / "nothing")])
    assert result.exit_code == 2
    assert "ca.crt" in result.output


async def _serves(server_files: pki.IdentityFiles, client_files: pki.IdentityFiles) -> bool:
    server = grpc.aio.server()
    health_pb2_grpc.add_HealthServicer_to_server(health.aio.HealthServicer(), server)
    port = server.add_secure_port("127.0.0.1:0", GrpcSecurity(server_files).server_credentials())
    await server.start()
    try:
        async with GrpcSecurity(client_files).aio_channel(f"127.0.0.1:{port}") as channel:
            await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=5)  # type: ignore[attr-defined]  # the stub declares no methods
        return True
    except grpc.aio.AioRpcError:
        return False
    finally:
        await server.stop(0)


async def test_ca_rotation_with_a_trust_bundle_of_the_old_and_new_ca(tmp_path):
    """docs/security.md's procedure: while every process trusts both CAs, old and new leaves talk freely;
    a process that trusts only the new CA refuses the old leaves."""
    old, new = tmp_path / "old", tmp_path / "new"
    pki.init(old, ("ledger", "payment"))
    pki.init(new, ("ledger", "payment"))
    bundle = tmp_path / "bundle.crt"
    bundle.write_bytes((old / "ca.crt").read_bytes() + (new / "ca.crt").read_bytes())

    def side(folder, name, ca=bundle) -> pki.IdentityFiles:
        return pki.IdentityFiles(ca, folder / f"{name}.crt", folder / f"{name}.key")

    assert await _serves(side(old, "ledger"), side(new, "payment"))
    assert await _serves(side(new, "ledger"), side(old, "payment"))
    assert not await _serves(side(new, "ledger", new / "ca.crt"), side(old, "payment"))


@pytest.mark.parametrize("name", ["", "../etc", "a b"])
def test_identity_names_are_plain(tmp_path, name):
    pki.init(tmp_path, ())
    with pytest.raises(ValueError, match="identity name"):
        pki.issue(tmp_path, name)
