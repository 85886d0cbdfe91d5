"""
The only header netlab writes into a message, C{Received:}, and what it
reads out of one (the subject, for listings).

Everything a client chose that goes into the header (its C{EHLO} name) is
cut down to the characters of a host name first, and everything else in it
is netlab's own (the host name the config checked, the peer's address, a
random id, the date), so no client can start a line or a header of its own
in what netlab writes.
"""

from __future__ import annotations

import re
from email.parser import BytesHeaderParser
from email.policy import default
from email.utils import formatdate

HELO_CHARACTERS = re.compile(r"[^A-Za-z0-9.:_\-\[\]]")
MAX_HELO = 64
MAX_SUBJECT = 200


def clean_helo(helo: bytes | str | None) -> str:
    """The client's C{EHLO} name, kept to host-name characters (C{unknown} if none is left)."""
    if isinstance(helo, bytes):
        helo = helo.decode("ascii", "replace")
    cleaned = HELO_CHARACTERS.sub("", helo or "")[:MAX_HELO]
    return cleaned or "unknown"


def printable(text: str) -> bool:
    """Whether C{text} holds no control character (no CR, LF, NUL, DEL...)."""
    return all(c.isprintable() for c in text)


def received_header(
    helo: str, client_host: str, hostname: str, protocol: str, uid: str, now: float
) -> bytes:
    """
    The C{Received:} line netlab puts on top of a message it stores (RFC
    5321, folded), with the protocol named as RFC 3848 does (C{ESMTPSA}:
    over TLS, authenticated).
    """
    return (
        f"Received: from {clean_helo(helo)} ([{clean_helo(client_host)}])\r\n"
        f"\tby {hostname} (netlab) with {protocol} id {uid};\r\n"
        f"\t{formatdate(now, usegmt=True)}\r\n"
    ).encode("ascii")


def subject_of(data: bytes) -> str:
    """A message's subject, decoded, on one line and not too long ("" if none)."""
    try:
        headers = BytesHeaderParser(policy=default).parsebytes(data)
        subject = str(headers.get("Subject", ""))
    except Exception:  # a header the parser cannot read has no subject for us
        return ""
    return "".join(c if c.isprintable() else " " for c in subject)[:MAX_SUBJECT]


__all__ = ["clean_helo", "printable", "received_header", "subject_of"]
