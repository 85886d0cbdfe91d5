"""
The systemd notification protocol (sd_notify), with the standard library:
tell the service manager READY=1 once every listener is bound, STOPPING=1
on shutdown, and WATCHDOG=1 at half the watchdog interval.

Outside systemd (no C{$NOTIFY_SOCKET}) every call is a no-op.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping
from typing import Any

from twisted.internet.task import LoopingCall


def notify_address(environ: Mapping[str, str]) -> str | bytes | None:
    """Where to send notifications: a path, an abstract name, or C{None}."""
    address = environ.get("NOTIFY_SOCKET", "")
    if not address:
        return None
    if address.startswith("@"):
        return b"\0" + address[1:].encode()
    return address


def notify(message: str, environ: Mapping[str, str] = os.environ) -> bool:
    """Send one notification; whether there was a service manager to send it to."""
    address = notify_address(environ)
    if address is None:
        return False
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        try:
            sock.connect(address)
            sock.sendall(message.encode("utf-8", "replace"))
        except OSError:
            return False
    return True


def watchdog_interval(environ: Mapping[str, str]) -> float | None:
    """Seconds between WATCHDOG=1 pings (half the interval systemd set), if any."""
    usec = environ.get("WATCHDOG_USEC", "")
    pid = environ.get("WATCHDOG_PID", "")
    if not usec.isdigit() or int(usec) <= 0:
        return None
    if pid and pid != str(os.getpid()):
        return None
    return int(usec) / 2_000_000


class Notifier:
    """The daemon's side of sd_notify: readiness, stopping and the watchdog."""

    def __init__(self, clock: Any, environ: Mapping[str, str] = os.environ) -> None:
        self.environ = dict(environ)
        self.clock = clock
        self._watchdog: LoopingCall | None = None

    @property
    def active(self) -> bool:
        return notify_address(self.environ) is not None

    def ready(self, status: str) -> None:
        """Every listener is bound: READY=1, what listens, and start the watchdog."""
        if not self.active:
            return
        notify(f"READY=1\nSTATUS={status}\nMAINPID={os.getpid()}", self.environ)
        interval = watchdog_interval(self.environ)
        if interval is not None and self._watchdog is None:
            self._watchdog = LoopingCall(notify, "WATCHDOG=1", self.environ)
            self._watchdog.clock = self.clock
            self._watchdog.start(interval, now=True)

    def stopping(self) -> None:
        """Shutdown has begun: STOPPING=1, and no more watchdog pings."""
        if self._watchdog is not None and self._watchdog.running:
            self._watchdog.stop()
        self._watchdog = None
        if self.active:
            notify("STOPPING=1\nSTATUS=stopping", self.environ)
