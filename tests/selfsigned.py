"""A throwaway self-signed certificate for localhost, made in memory, for TLS over loopback."""

from __future__ import annotations

import datetime
from functools import cache
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from twisted.internet import ssl


@cache
def _key_and_certificate() -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    """A key (EC, quick to make) and a self-signed certificate naming localhost."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False)
        .sign(key, hashes.SHA256())
    )
    return key, cert


def server_options() -> ssl.CertificateOptions:
    """Server-side TLS options with the throwaway certificate."""
    # cryptography objects, not Twisted's PrivateCertificate: pyOpenSSL
    # deprecates being handed its own X509 and PKey objects.
    key, cert = _key_and_certificate()
    return ssl.CertificateOptions(privateKey=key, certificate=cert)


def client_options(alpn: list[bytes] | None = None) -> ssl.IOpenSSLClientConnectionCreator:
    """Client-side TLS options that trust (and verify) only the throwaway certificate,
    offering the C{alpn} protocols, if any."""
    pem = _key_and_certificate()[1].public_bytes(serialization.Encoding.PEM)
    return ssl.optionsForClientTLS(
        "localhost", trustRoot=ssl.Certificate.loadPEM(pem), acceptableProtocols=alpn
    )


def write_pem(directory: Path) -> tuple[Path, Path]:
    """The throwaway key and certificate as PEM files in C{directory}: (key, cert)."""
    key, cert = _key_and_certificate()
    key_path, cert_path = directory / "key.pem", directory / "cert.pem"
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return key_path, cert_path
