"""The deployment's small PKI: one CA and one certificate per identity, for mutual TLS between processes.

    python -m svckit.pki init --dir .data/pki      # CA + every identity's certificate; keeps what exists
    python -m svckit.pki issue payment --dir ...   # (re-)issue one identity's certificate from the CA
    python -m svckit.pki rotate --dir ...          # re-issue every identity's certificate from the same CA
    python -m svckit.pki show --dir ...            # who each certificate names, and until when
    python -m svckit.pki init --dir /pki/ca --export /pki   # containers: also /pki/<identity>/ (no CA key)

An identity travels in its certificate twice: as the URI SAN ``spiffe://marketplace-payments/<name>``
(what servers authorize on) and as the subject CN (for people reading ``openssl x509``). Service
certificates serve and call (both EKUs) and name ``localhost``, ``127.0.0.1`` and the service's
docker-compose host name; the ``operator`` certificate only calls. Keys are EC P-256, written 0600.
CA rotation is a documented procedure (docs/security.md), not a command: it needs a trust bundle
with both CAs deployed everywhere before any leaf changes issuer.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import typer
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

TRUST_DOMAIN = "marketplace-payments"
SPIFFE_PREFIX = f"spiffe://{TRUST_DOMAIN}/"
SERVICE_IDENTITIES = ("gateway", "payment", "ledger", "wallet", "recon")
"""Processes that serve gRPC (or, for the gateway, HTTPS in development) and call other services."""
IDENTITIES = (*SERVICE_IDENTITIES, "operator")
"""Every identity the access tables may name; ``operator`` is a person with grpcurl or a CLI."""

CA_VALID_DAYS = 3650
LEAF_VALID_DAYS = 365
CA_FILE = "ca.crt"
CA_KEY_FILE = "ca.key"


@dataclass(frozen=True)
class IdentityFiles:
    """Where one identity's certificate and key live, next to the CA bundle that verifies peers."""

    ca_file: Path
    cert_file: Path
    key_file: Path


def files(directory: Path, name: str) -> IdentityFiles:
    return IdentityFiles(directory / CA_FILE, directory / f"{name}.crt", directory / f"{name}.key")


def spiffe_id(name: str) -> str:
    return SPIFFE_PREFIX + name


def identity_of(cert: x509.Certificate) -> str | None:
    """The identity a certificate carries in its URI SAN, or None."""
    try:
        sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return None
    for uri in sans.get_values_for_type(x509.UniformResourceIdentifier):
        if uri.startswith(SPIFFE_PREFIX):
            return uri.removeprefix(SPIFFE_PREFIX)
    return None


def _check_name(name: str) -> str:
    if not name or not all(c.isalnum() or c in "-_" for c in name):
        raise ValueError(f"identity name {name!r} must be letters, digits, '-' or '_'")
    return name


def _write_private(path: Path, data: bytes) -> None:
    """Write a key readable by its owner only, atomically (a half-written key is never seen)."""
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(data)
    os.chmod(tmp, 0o600)  # O_CREAT's mode is filtered by the umask and ignored for an existing file
    os.replace(tmp, path)


def _write_public(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)


def _new_key() -> ec.EllipticCurvePrivateKey:
    # P-256: as strong as RSA-3072 for these uses, and its handshakes cost a fraction of RSA's.
    return ec.generate_private_key(ec.SECP256R1())


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _load_ca(directory: Path) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    cert = x509.load_pem_x509_certificate((directory / CA_FILE).read_bytes())
    key = serialization.load_pem_private_key((directory / CA_KEY_FILE).read_bytes(), password=None)
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise ValueError(f"{directory / CA_KEY_FILE} is not an EC key made by this tool")
    return cert, key


def create_ca(directory: Path, common_name: str = f"{TRUST_DOMAIN} dev CA") -> x509.Certificate:
    """A new self-signed CA in ``directory`` (overwrites ca.crt and ca.key)."""
    directory.mkdir(parents=True, exist_ok=True)
    key = _new_key()
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = _now()
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=CA_VALID_DAYS))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    _write_private(directory / CA_KEY_FILE, _key_pem(key))
    _write_public(directory / CA_FILE, cert.public_bytes(serialization.Encoding.PEM))
    return cert


def issue(directory: Path, name: str, extra_hosts: tuple[str, ...] = ()) -> IdentityFiles:
    """Issue (or re-issue) ``name``'s certificate and a fresh key, signed by the CA in ``directory``."""
    _check_name(name)
    ca_cert, ca_key = _load_ca(directory)
    key = _new_key()
    now = _now()
    sans: list[x509.GeneralName] = [x509.UniformResourceIdentifier(spiffe_id(name))]
    usages = [ExtendedKeyUsageOID.CLIENT_AUTH]
    if name != "operator":
        usages.append(ExtendedKeyUsageOID.SERVER_AUTH)
        for host in dict.fromkeys((name, "localhost", *extra_hosts)):
            try:
                sans.append(x509.IPAddress(ipaddress.ip_address(host)))
            except ValueError:
                sans.append(x509.DNSName(host))
        sans.append(x509.IPAddress(ipaddress.ip_address("127.0.0.1")))
    cert = (
        x509.CertificateBuilder()
        .subject_name(
            x509.Name(
                [
                    x509.NameAttribute(NameOID.ORGANIZATION_NAME, TRUST_DOMAIN),
                    x509.NameAttribute(NameOID.COMMON_NAME, name),
                ]
            )
        )
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(min(now + dt.timedelta(days=LEAF_VALID_DAYS), ca_cert.not_valid_after_utc))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.SubjectAlternativeName(sans), critical=False)
        .add_extension(x509.ExtendedKeyUsage(usages), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    out = files(directory, name)
    _write_private(out.key_file, _key_pem(key))
    _write_public(out.cert_file, cert.public_bytes(serialization.Encoding.PEM))
    return out


def init(directory: Path, names: tuple[str, ...] = IDENTITIES) -> list[str]:
    """Make the CA and every identity's certificate that is missing; keep what exists. Returns what was made."""
    made = []
    new_ca = not (directory / CA_FILE).exists() or not (directory / CA_KEY_FILE).exists()
    if new_ca:
        create_ca(directory)
        made.append("ca")
    for name in names:
        out = files(directory, name)
        # A new CA re-issues every leaf: one signed by a CA that is gone would be trusted by no one.
        if new_ca or not out.cert_file.exists() or not out.key_file.exists():
            issue(directory, name)
            made.append(name)
    return made


def export(directory: Path, out_root: Path, names: tuple[str, ...] = IDENTITIES) -> None:
    """Copy each identity's files to ``out_root/<name>/`` (CA certificate, its certificate and key), so
    that a container mounts only its own key and never the CA key (docker-compose.yml)."""
    ca = (directory / CA_FILE).read_bytes()
    for name in names:
        src = files(directory, name)
        dest = files(out_root / _check_name(name), name)
        dest.cert_file.parent.mkdir(parents=True, exist_ok=True)
        _write_public(dest.ca_file, ca)
        _write_public(dest.cert_file, src.cert_file.read_bytes())
        _write_private(dest.key_file, src.key_file.read_bytes())


def rotate(directory: Path, names: tuple[str, ...] = IDENTITIES) -> None:
    """Re-issue every named certificate with a new key from the same CA (peers keep trusting it)."""
    for name in names:
        issue(directory, name)


# ------------------------------------------------------------------------------------------- CLI

app = typer.Typer(help="Development PKI: a CA and one mTLS certificate per identity.", no_args_is_help=True)
DirOpt = Annotated[Path, typer.Option("--dir", help="where ca.crt and <identity>.crt/.key live")]
DEFAULT_DIR = Path(".data/pki")


@app.command("init")
def init_cmd(
    directory: DirOpt = DEFAULT_DIR,
    export_to: Annotated[
        Path | None, typer.Option("--export", help="also copy each identity's files to DIR/<identity>/")
    ] = None,
) -> None:
    """Create the CA and every identity's certificate that does not exist yet (idempotent)."""
    made = init(directory)
    typer.echo(f"{directory}: " + (f"created {', '.join(made)}" if made else "everything already present"))
    if export_to is not None:
        export(directory, export_to)
        typer.echo(f"exported each identity's certificate and key to {export_to}/<identity>/")


@app.command("issue")
def issue_cmd(
    name: Annotated[str, typer.Argument(help=f"identity: one of {', '.join(IDENTITIES)}, or another name")],
    directory: DirOpt = DEFAULT_DIR,
    host: Annotated[list[str] | None, typer.Option(help="extra DNS name or IP for a serving cert")] = None,
) -> None:
    """(Re-)issue one identity's certificate and key from the existing CA."""
    try:
        out = issue(directory, name, tuple(host or ()))
    except (ValueError, FileNotFoundError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    typer.echo(f"issued {out.cert_file} (key {out.key_file})")


@app.command("rotate")
def rotate_cmd(
    name: Annotated[list[str] | None, typer.Argument(help="identities to re-issue (default: all)")] = None,
    directory: DirOpt = DEFAULT_DIR,
) -> None:
    """Re-issue leaf certificates from the same CA; restart each process to pick its new one up."""
    rotate(directory, tuple(name or IDENTITIES))
    typer.echo(f"re-issued {', '.join(name or IDENTITIES)} in {directory}; restart the processes")


@app.command("show")
def show_cmd(directory: DirOpt = DEFAULT_DIR) -> None:
    """Each certificate's identity, issuer and expiry."""
    for path in sorted(directory.glob("*.crt")):
        cert = x509.load_pem_x509_certificate(path.read_bytes())
        who = identity_of(cert) or cert.subject.rfc4514_string()
        typer.echo(
            f"{path.name}\t{who}\tissuer={cert.issuer.rfc4514_string()}\t"
            f"expires={cert.not_valid_after_utc:%Y-%m-%d}"
        )


if __name__ == "__main__":
    app()
