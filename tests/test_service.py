"""Tests for netlab.app.service: the whole daemon built from a config, in process."""

from __future__ import annotations

import socket
from typing import Any

import pytest_twisted
from twisted.internet import reactor
from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol

from conftest import RecordedEvents
from helpers import Collector, DatagramCollector, close_all
from netlab.app.registry import parse
from netlab.app.service import NetlabService
from netlab.core.listen import bound_port

CONFIG = {
    "echo": [
        {"listen": ["tcp:0:interface=127.0.0.1"], "mode": "ok", "banner": "hi"},
        {"listen": ["tcp:0:interface=127.0.0.1"], "enabled": False},
    ],
    "udp_echo": [{"listen": ["udp:0:interface=127.0.0.1"]}],
    "chat": {"enabled": False},
    "http": {"enabled": False},
}


def build() -> tuple[NetlabService, RecordedEvents]:
    events = RecordedEvents(level="info")
    service = NetlabService(parse(CONFIG), reactor, events=events)
    return service, events


def test_disabled_services_not_built() -> None:
    """Only enabled services get listeners."""
    service, _ = build()
    assert len(service.listeners) == 2
    assert [f.name for f in service.factories] == ["echo"]


@pytest_twisted.inlineCallbacks
def test_start_serve_stop(events: Any) -> Any:
    """The daemon binds port 0, logs the bound ports, serves, and stops cleanly."""
    service, events = build()
    service.privilegedStartService()
    service.startService()
    tcp_port, udp_port = (bound_port(s) for s in service.listeners)
    assert tcp_port and udp_port
    listening = [e["address"] for e in events.kinds("listening")]
    assert listening == [f"tcp 127.0.0.1:{tcp_port}", f"udp 127.0.0.1:{udp_port}"]
    assert events.listening == {
        "echo": [f"tcp 127.0.0.1:{tcp_port}"],
        "udp-echo": [f"udp 127.0.0.1:{udp_port}"],
    }

    client = yield connectProtocol(
        TCP4ClientEndpoint(reactor, "127.0.0.1", tcp_port), Collector()
    )
    client.send(b"x\n")
    yield client.wait_text(b"OK...x\n")

    udp = DatagramCollector()
    udp_listener = reactor.listenUDP(0, udp, interface="127.0.0.1")
    udp_listener.write(b"datagram", ("127.0.0.1", udp_port))
    yield udp.wait_datagrams(1)
    yield udp_listener.stopListening()

    yield service.stopService()
    yield client.closed
    assert client.data == b"hi\r\nOK...x\nServer shutting down.\r\n"
    kinds = [e["netlab_event"] for e in events.seen]
    assert kinds[0] == "daemon_start"
    assert kinds[-1] == "daemon_stop"
    with socket.socket() as s:
        assert s.connect_ex(("127.0.0.1", tcp_port)) != 0
    yield close_all(client)


@pytest_twisted.inlineCallbacks
def test_udp_ports_shared_with_guards() -> Any:
    """Every UDP guard knows every UDP port the daemon bound."""
    service, _ = build()
    service.privilegedStartService()
    service.startService()
    udp_port = bound_port(service.listeners[1])
    assert service.udp_ports == {udp_port}
    yield service.stopService()


@pytest_twisted.inlineCallbacks
def test_open_file_limit_raised_and_logged() -> Any:
    """At start the soft open-files limit is raised to the hard limit, and logged."""
    import resource
    import subprocess
    import sys

    # In a child first, from a low soft limit, so this process keeps its own.
    code = (
        "import resource; from netlab.app.service import raise_open_file_limit as r;"
        "h = resource.getrlimit(resource.RLIMIT_NOFILE)[1];"
        "resource.setrlimit(resource.RLIMIT_NOFILE, (64, h));"
        "s, hh = r(); print(s == hh == h)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.stdout.strip() == "True", result.stderr
    service, recorded = build()
    service.privilegedStartService()
    service.startService()
    (limit,) = recorded.kinds("file_limit")
    assert (limit["soft"], limit["hard"]) == resource.getrlimit(resource.RLIMIT_NOFILE)
    yield service.stopService()


def test_listen_backlog_raised() -> None:
    """Stream listeners get a backlog of 1024 unless the endpoint string names one."""
    from netlab.core.listen import with_backlog

    assert with_backlog("tcp:7007:interface=127.0.0.1") == (
        "tcp:7007:interface=127.0.0.1:backlog=1024"
    )
    assert with_backlog("tcp:7007:backlog=10") == "tcp:7007:backlog=10"
    assert with_backlog("unix:/run/x.sock") == "unix:/run/x.sock:backlog=1024"
    assert with_backlog("systemd:domain=INET:name=echo") == "systemd:domain=INET:name=echo"
