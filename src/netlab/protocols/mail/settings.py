"""
The mail services' settings, C{[smtp]} and C{[pop3]}, and the checks of
their values that need more than a range: the accounts, the TLS files, and
C{auth = "any"} only where nobody but this machine can connect.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Any

from netlab.core.endpoints import split_endpoint
from netlab.core.kinds import Fail
from netlab.core.settings import LOOPBACK, StreamSettings, setting
from netlab.core.tomltext import toml_value

SMTP_LISTEN = (f"tcp:2525:interface={LOOPBACK}",)
POP3_LISTEN = (f"tcp:1110:interface={LOOPBACK}",)

# auth: who may log in.  "any": every name and password (a class on one
# machine); "users": only the configured NAME:HASH accounts.
AUTH_MODES = ("any", "users")

MIB = 1024 * 1024


@dataclass(frozen=True, kw_only=True)
class MailTlsSettings:
    """Where a mail service's certificate is, for STARTTLS and STLS."""

    tls_certificate: str = setting("", beside_config=True)
    tls_key: str = setting("", beside_config=True)


@dataclass(frozen=True, kw_only=True)
class SmtpSettings(StreamSettings, MailTlsSettings):
    """The mail sink, C{[smtp]}: off by default; it also holds the accounts and the store."""

    enabled: bool = setting(False)
    listen: tuple[str, ...] = setting((), endpoints="stream")
    # The command deadline: a whole command line within this many seconds.
    idle_timeout: float = setting(60.0, lo=1, hi=3600)
    hostname: str = setting("netlab.test")
    database: str = setting("netlab-mail.sqlite3")
    auth: str = setting("any", choices=AUTH_MODES)
    auth_any_off_loopback: bool = setting(False)
    users: tuple[str, ...] = setting(())
    require_auth: bool = setting(False)
    max_message_size: int = setting(10 * MIB, lo=1024, hi=256 * MIB)
    max_recipients: int = setting(50, lo=1, hi=10_000)
    max_messages_per_connection: int = setting(20, lo=1, hi=100_000)
    messages_per_minute: int = setting(60, lo=1, hi=1_000_000)
    data_timeout: float = setting(300.0, lo=1, hi=3600)
    max_line: int = setting(1000, lo=512, hi=65_536)
    max_errors: int = setting(10, lo=1, hi=1000)
    max_junk_commands: int = setting(100, lo=1, hi=100_000)
    mailbox_messages: int = setting(200, lo=1, hi=1_000_000)
    mailbox_bytes: int = setting(50 * MIB, lo=1024, hi=16 * 1024 * MIB)
    max_stored_bytes: int = setting(256 * MIB, lo=1024, hi=64 * 1024 * MIB)


@dataclass(frozen=True, kw_only=True)
class Pop3Settings(StreamSettings, MailTlsSettings):
    """Reading the stored mail, C{[pop3]}: off by default; needs C{[smtp]}."""

    enabled: bool = setting(False)
    listen: tuple[str, ...] = setting((), endpoints="stream")
    idle_timeout: float = setting(120.0, lo=1, hi=3600)
    hostname: str = setting("netlab.test")
    max_line: int = setting(512, lo=255, hi=65_536)
    max_errors: int = setting(10, lo=1, hi=1000)


def on_loopback(description: str) -> bool:
    """
    Whether only this machine can reach C{description}: a loopback
    interface, or a Unix socket.  No interface means every interface, and a
    socket systemd passes in could be anything: neither is loopback.
    """
    kind, _, kwargs = split_endpoint(description)
    if kind == "unix":
        return True
    interface = kwargs.get("interface")
    if kind not in ("tcp", "tcp6", "ssl", "tls") or not interface:
        return False
    try:
        return ipaddress.ip_address(interface.split("%", 1)[0]).is_loopback
    except ValueError:
        return False


def check_tls(settings: MailTlsSettings, fail: Fail) -> None:
    """The certificate and key load and belong together (or none is given)."""
    from netlab.protocols.mail.tls import TlsError, load_tls

    if settings.tls_key and not settings.tls_certificate:
        raise fail("tls_key", settings.tls_key, "needs tls_certificate too")
    try:
        load_tls(settings.tls_certificate, settings.tls_key)
    except TlsError as e:
        key = "tls_key" if e.in_key else "tls_certificate"
        raise fail(key, getattr(settings, key), str(e)) from None


def check_hostname(hostname: str, fail: Fail) -> None:
    """The name in greetings and headers: a plain host name, nothing a header could carry."""
    if not hostname or len(hostname) > 253 or any(
        not (c.isascii() and (c.isalnum() or c in ".-")) for c in hostname
    ):
        raise fail("hostname", hostname, "must be a host name: letters, digits, . and -")


def check_open_auth(
    auth: str, confirmed: bool, listen: tuple[str, ...], fail: Fail
) -> None:
    """C{auth = "any"} lets anyone in: only on loopback, unless confirmed."""
    if auth != "any" or confirmed:
        return
    for description in listen:
        if not on_loopback(description):
            raise fail(
                "listen", list(listen),
                f"{toml_value(description)} is reachable from other machines and [smtp] auth = "
                '"any" takes any login: set [smtp] auth = "users" with users, or '
                "auth_any_off_loopback = true to accept that",
            )


def check_smtp(smtp: SmtpSettings, config: Any, fail: Fail) -> None:
    """The accounts, the TLS files, the quotas' order, and where open auth may listen."""
    from netlab.protocols.login.settings import parse_users

    if not smtp.enabled:
        return
    try:
        users = parse_users(smtp.users)
    except ValueError as e:
        raise fail("users", list(smtp.users), str(e)) from None
    if smtp.auth == "users" and not users:
        raise fail("auth", smtp.auth, "needs at least one NAME:HASH in users")
    check_hostname(smtp.hostname, fail)
    if smtp.mailbox_bytes < smtp.max_message_size:
        raise fail("mailbox_bytes", smtp.mailbox_bytes, "must be at least max_message_size")
    if smtp.max_stored_bytes < smtp.mailbox_bytes:
        raise fail("max_stored_bytes", smtp.max_stored_bytes, "must be at least mailbox_bytes")
    check_tls(smtp, fail)
    check_open_auth(smtp.auth, smtp.auth_any_off_loopback, smtp.listen, fail)


def check_pop3(pop3: Pop3Settings, config: Any, fail: Fail) -> None:
    """POP3 reads what [smtp] stores, with its accounts."""
    if not pop3.enabled:
        return
    smtp: SmtpSettings = config.smtp
    if not smtp.enabled:
        raise fail("enabled", True, "POP3 reads the mail [smtp] stores: enable [smtp] too")
    check_hostname(pop3.hostname, fail)
    check_tls(pop3, fail)
    check_open_auth(smtp.auth, smtp.auth_any_off_loopback, pop3.listen, fail)
