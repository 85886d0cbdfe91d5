"""
The real daemon, started with the documented example config
(examples/netlab.toml) for the course's exercises.

Every listen address keeps its interface but gets port 0, so the tests run
beside anything already listening on the documented ports; each service's
bound port is read from the daemon's own "listening on" lines, and the
course's client programs are then run with only the host and port edited,
as a student would.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

from daemon import Daemon, run_daemon

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "netlab.toml"

_LISTEN_PORT = re.compile(r'"(tcp6?|udp|ssl):\d+:')


def example_on_free_ports() -> str:
    """
    The example config's text, every listen string on port 0, and its static
    and tls folders named in full (the copy is written elsewhere).
    """
    text = _LISTEN_PORT.sub(lambda m: f'"{m[1]}:0:', EXAMPLE.read_text(encoding="utf-8"))
    static = EXAMPLE.parent / "static"
    text = text.replace('static_dir = "static"', f'static_dir = "{static}"')
    tls = EXAMPLE.parent / "tls"
    return text.replace("privateKey=tls/", f"privateKey={tls}/").replace(
        'tls_certificate = "tls/', f'tls_certificate = "{tls}/'
    )


class Course:
    """The running example daemon, and where each service of it listens."""

    HOST = "127.0.0.1"

    def __init__(self, daemon: Daemon) -> None:
        self.daemon = daemon

    def port(self, service: str, kind: str = "tcp") -> int:
        return self.daemon.port(service, kind)

    def address(self, service: str, kind: str = "tcp") -> tuple[str, int]:
        return self.HOST, self.port(service, kind)

    def url(self, path: str = "/") -> str:
        return f"http://{self.HOST}:{self.port('http')}{path}"


def start(tmp_path: Path) -> Iterator[Course]:
    """The example daemon for a module's tests; it must stop cleanly after them."""
    daemon = run_daemon(tmp_path, example_on_free_ports())
    try:
        yield Course(daemon)
        assert daemon.stop() == 0, daemon.log()
    finally:
        daemon.kill()
