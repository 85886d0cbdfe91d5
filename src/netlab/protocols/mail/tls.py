"""
The TLS context of STARTTLS and STLS, from the PEM files the config names:
the certificate (and its chain), and the key beside it or in the same file.
"""

from __future__ import annotations

from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from OpenSSL import SSL
from twisted.internet import ssl


class TlsError(Exception):
    """The certificate or key cannot be used; C{in_key} says which file is at fault."""

    def __init__(self, message: str, in_key: bool = False) -> None:
        super().__init__(message)
        self.in_key = in_key


def _read(path: str, in_key: bool) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as e:
        raise TlsError(f"cannot read: {e.strerror or e}", in_key) from None


def load_tls(certificate: str, key: str = "") -> ssl.CertificateOptions | None:
    """
    Server TLS options from PEM files (None when C{certificate} is empty):
    C{certificate} holds the certificate first, then any chain, and the key
    too when C{key} is empty.

    @raise TlsError: naming what is wrong.
    """
    if not certificate:
        return None
    pem = _read(certificate, False)
    try:
        chain = x509.load_pem_x509_certificates(pem)
    except ValueError:
        raise TlsError("holds no PEM certificate") from None
    key_pem = _read(key, True) if key else pem
    try:
        private_key = serialization.load_pem_private_key(key_pem, password=None)
    except (ValueError, TypeError) as e:
        why = "holds no unencrypted PEM private key" if "password" not in str(e) else str(e)
        raise TlsError(why, bool(key)) from None
    options = ssl.CertificateOptions(
        privateKey=private_key,  # type: ignore[arg-type]
        certificate=chain[0],  # type: ignore[arg-type]
        extraCertChain=chain[1:],  # type: ignore[arg-type]
    )
    try:
        options.getContext()  # checks that the key is the certificate's
    except SSL.Error:
        raise TlsError("the key does not belong to the certificate", bool(key)) from None
    return options


__all__ = ["TlsError", "load_tls"]
