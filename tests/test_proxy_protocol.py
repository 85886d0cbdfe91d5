"""
The PROXY protocol on every stream service (C{haproxy:} listen strings,
netlab.core.listen.ProxyHeaderFactory): in memory for the header's
arrival, time and refusals; then real sockets against the real daemon
(echo, the classic daytime, the web site's /ip and /get).
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import socket
import struct
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from twisted.internet.task import Clock

from daemon import running_daemon
from httptest import build_site, curl_sync
from memory import serve
from netlab.app import registry
from netlab.core.config import ConfigError
from netlab.core.listen import PROXY_HEADER_TIMEOUT, ProxyHeaderFactory, parse_proxy_header
from netlab.protocols import classic, echo
from netlab.protocols.http import inspect, routes
from netlab.protocols.http.routes import Root

V1 = b"PROXY TCP4 203.0.113.7 127.0.0.1 5555 7007\r\n"
V2_SIGNATURE = b"\r\n\r\n\x00\r\nQUIT\n"


def v2_header(source: str, source_port: int, command: int = 0x21) -> bytes:
    """A PROXY v2 header (PROXY command, TCP over IPv4 or IPv6) from C{source}."""
    address = ipaddress.ip_address(source)
    if address.version == 4:
        family, other = 0x11, ipaddress.ip_address("127.0.0.1")
    else:
        family, other = 0x21, ipaddress.ip_address("::1")
    body = address.packed + other.packed + struct.pack("!HH", source_port, 7007)
    return V2_SIGNATURE + bytes([command, family]) + struct.pack("!H", len(body)) + body


def echo_factory(events: Any, clock: Clock, **settings: Any) -> echo.EchoFactory:
    return echo.EchoFactory(echo.EchoSettings(name="echo", **settings), events, clock)


def proxied(factory: Any, events: Any, clock: Clock) -> ProxyHeaderFactory:
    return ProxyHeaderFactory(factory, events, factory.name, clock)


# -- the header, in memory ---------------------------------------------------------


def test_v1_header_then_echo_as_the_client(events: Any, clock: Clock) -> None:
    """After a v1 header the service runs for the client it names: echoed, and connected,
    counted and closed as 203.0.113.7, not as the proxy."""
    factory = echo_factory(events, clock)
    reader, transport = serve(proxied(factory, events, clock), clock)
    assert not events.kinds("connected")
    transport.peer_write(V1 + b"hello\n")
    assert transport.peer_read() == b"hello\n"
    [connected] = events.kinds("connected")
    assert connected["peer"] == "203.0.113.7:5555"
    assert reader.getHost().port == 7007
    transport.peer_close()
    clock.advance(0)
    [closed] = events.kinds("disconnected")
    assert closed["peer"] == "203.0.113.7:5555" and closed["bytes_in"] == 6
    assert factory.counters.connections_open == 0
    assert not clock.getDelayedCalls()


def test_header_in_pieces(events: Any, clock: Clock) -> None:
    """A header that arrives a byte at a time is read whole (Twisted's own wrapper hangs up
    on a first read shorter than 8 bytes)."""
    factory = echo_factory(events, clock)
    _, transport = serve(proxied(factory, events, clock), clock)
    for byte in v2_header("2001:db8::7", 4444):
        transport.peer_write(bytes([byte]))
    transport.peer_write(b"six\n")
    assert transport.peer_read() == b"six\n"
    assert events.kinds("connected")[0]["peer"] == "[2001:db8::7]:4444"


def test_per_peer_cap_counts_the_original_client(events: Any, clock: Clock) -> None:
    """max_connections_per_peer counts each client the proxy names, not the proxy."""
    factory = echo_factory(events, clock, max_connections_per_peer=1)
    wrapped = proxied(factory, events, clock)
    transports = []
    for client in ("203.0.113.7", "203.0.113.8", "203.0.113.7"):
        _, transport = serve(wrapped, clock)
        transport.peer_write(f"PROXY TCP4 {client} 127.0.0.1 5555 7007\r\n".encode())
        transports.append(transport)
    assert transports[0].connected and not transports[0].disconnecting
    assert transports[1].connected and not transports[1].disconnecting
    assert transports[2].peer_read().startswith(b"ERROR ")
    [refused] = events.kinds("refused")
    assert refused["peer"] == "203.0.113.7:5555"
    assert [e["peer"] for e in events.kinds("connected")] == [
        "203.0.113.7:5555", "203.0.113.8:5555"]


def test_access_list_sees_the_original_client(events: Any, clock: Clock) -> None:
    """deny applies to the client the header names."""
    factory = echo_factory(events, clock, deny=("203.0.113.0/24",))
    _, transport = serve(proxied(factory, events, clock), clock)
    transport.peer_write(V1)
    assert transport.peer_read().startswith(b"ERROR ")
    assert events.kinds("refused")[0]["peer"] == "203.0.113.7:5555"


@pytest.mark.parametrize("sent", [
    b"hello there\r\n",  # no header at all
    b"PROXY TCP4 203.0.113.7 nowhere 5555 7007\r\n",  # a bad address
    b"PROXY " + b"x" * 200,  # a v1 line too long to be one
    V2_SIGNATURE + b"\x31\x11\x00\x0c" + b"\x00" * 12,  # version 3
])
def test_no_valid_header_is_refused_once(events: Any, clock: Clock, sent: bytes) -> None:
    """A connection that does not start with a valid header is told in one line, counted
    as refused, logged once and closed; the service never sees it."""
    factory = echo_factory(events, clock)
    _, transport = serve(proxied(factory, events, clock), clock)
    transport.peer_write(sent)
    transport.peer_write(b"more\n")
    line = transport.peer_read()
    assert transport.disconnecting
    assert line.startswith(b"ERROR ") and line.endswith(b"\r\n") and line.count(b"\n") == 1
    assert b"PROXY protocol header" in line
    clock.advance(0)
    assert transport.disconnected
    assert len(events.kinds("refused")) == 1
    assert factory.counters.refused == 1
    assert not events.kinds("connected")
    assert not clock.getDelayedCalls()


def test_no_header_in_time_is_refused(events: Any, clock: Clock) -> None:
    """A connection that sends no header (or half of one) is refused after
    PROXY_HEADER_TIMEOUT; one that closes first is not logged."""
    factory = echo_factory(events, clock)
    wrapped = proxied(factory, events, clock)
    _, silent = serve(wrapped, clock)
    _, partial = serve(wrapped, clock)
    _, gone = serve(wrapped, clock)
    partial.peer_write(V1[:20])
    gone.peer_close()
    clock.advance(PROXY_HEADER_TIMEOUT - 0.1)
    assert not events.kinds("refused")
    clock.advance(0.1)
    assert silent.peer_read() == b"ERROR no PROXY protocol header within 10 seconds\r\n"
    assert partial.peer_read().startswith(b"ERROR ")
    clock.advance(0)
    assert silent.disconnected and partial.disconnected
    assert len(events.kinds("refused")) == 2
    assert not clock.getDelayedCalls()


def test_local_command_is_the_proxy_itself(events: Any, clock: Clock) -> None:
    """A v2 LOCAL header (a proxy's health check) names no client: the connection is the
    proxy's own."""
    factory = echo_factory(events, clock)
    _, transport = serve(proxied(factory, events, clock), clock, host="127.0.0.9")
    transport.peer_write(v2_header("203.0.113.7", 5555, command=0x20) + b"ping\n")
    assert transport.peer_read() == b"ping\n"
    assert events.kinds("connected")[0]["peer"] == "127.0.0.9:40000"


def test_a_service_that_speaks_first_waits_for_the_header(events: Any, clock: Clock) -> None:
    """daytime answers on connect: behind haproxy:, only once the header has come."""
    settings = classic.ClassicSettings(name="daytime")
    factory = classic.DaytimeFactory(settings, events, clock)
    _, transport = serve(proxied(factory, events, clock), clock)
    assert transport.peer_read() == b""
    transport.peer_write(V1)
    assert transport.peer_read()
    assert events.kinds("connected")[0]["peer"] == "203.0.113.7:5555"


def test_web_site_reports_the_original_client(events: Any, clock: Clock) -> None:
    """/ip, over a v2 header, answers the client's address; its access event names it."""
    site = build_site(events, clock, routes.of(inspect), root=Root())
    _, transport = serve(ProxyHeaderFactory(site, events, "http", clock), clock)
    transport.peer_write(v2_header("198.51.100.20", 6000)
                         + b"GET /ip HTTP/1.1\r\nHost: lab\r\nAccept: application/json\r\n\r\n")
    clock.advance(0)
    answer = transport.peer_read()
    assert answer.startswith(b"HTTP/1.1 200 ")
    assert json.loads(answer.partition(b"\r\n\r\n")[2]) == {"origin": "198.51.100.20"}
    [access] = events.kinds("http_request")
    assert access["peer"] == "198.51.100.20:6000"


@given(st.binary(max_size=120))
def test_parse_proxy_header_refuses_or_waits_never_crashes(received: bytes) -> None:
    """Whatever arrives first, the header reader answers: a header, wait, or ValueError."""
    with contextlib.suppress(ValueError):
        parse_proxy_header(received)


@given(st.binary(max_size=60))
def test_parse_proxy_header_after_a_v2_signature(tail: bytes) -> None:
    """The same for what follows a v2 signature."""
    with contextlib.suppress(ValueError):
        parse_proxy_header(V2_SIGNATURE + tail)


def test_parse_proxy_header_leaves_what_follows() -> None:
    """The bytes after a header are the service's."""
    source, destination, rest = parse_proxy_header(V1 + b"GET /") or (None, None, b"")
    assert str(getattr(source, "host", "")) == "203.0.113.7"
    assert getattr(destination, "port", 0) == 7007
    assert rest == b"GET /"
    assert parse_proxy_header(V1[:-1]) is None
    assert parse_proxy_header(v2_header("203.0.113.7", 1)[:15]) is None


# -- listen strings ---------------------------------------------------------------------


def test_every_stream_kind_accepts_haproxy_listen_strings(tmp_path: Path) -> None:
    """The config loader takes haproxy: in front of every stream service's listen string."""
    stream_sections = [
        kind.section for kind in registry.KINDS
        if dict(kind.settings.__dataclass_fields__["listen"].metadata).get("endpoints")
        in ("stream", "any")
    ]
    assert {"echo", "http", "chat", "login"} <= set(stream_sections)
    listen = 'listen = ["haproxy:tcp:0:interface=127.0.0.1"]'
    needs = {"dictionary": 'words = { lab = "a room for experiments" }'}
    for section in stream_sections:
        kind = next(k for k in registry.KINDS if k.section == section)
        header = f"[[{section}]]" if kind.many else f"[{section}]"
        path = tmp_path / f"{section}.toml"
        path.write_text(f"{header}\n{listen}\n{needs.get(section, '')}\n")
        loaded = registry.load(path)
        [settings] = [s for where, s in loaded.services() if where.startswith(section)][:1]
        assert settings.listen == ("haproxy:tcp:0:interface=127.0.0.1",)


@pytest.mark.parametrize(("listen", "message"), [
    ("haproxy:udp:7000", "haproxy: wraps a stream endpoint"),
    ("haproxy:haproxy:tcp:7000", "haproxy: wraps a stream endpoint"),
    ("haproxy:tcp:70000", "port \"70000\" is not a number"),
])
def test_bad_haproxy_listen_strings(tmp_path: Path, listen: str, message: str) -> None:
    path = tmp_path / "netlab.toml"
    path.write_text(f'[[echo]]\nlisten = ["{listen}"]\n')
    with pytest.raises(ConfigError, match=message):
        registry.load(path)


# -- the real daemon, real sockets --------------------------------------------------


def exchange(port: int, data: bytes, until: bytes = b"\n") -> bytes:
    """Connect to the daemon, send C{data}, read until C{until} or the close."""
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(data)
        got = b""
        while until not in got:
            chunk = sock.recv(65536)
            if not chunk:
                break
            got += chunk
        return got


def test_daemon_echo_and_web_behind_haproxy(tmp_path: Path) -> None:
    """The real daemon with echo, daytime and the web site on haproxy: strings: a v1 and a
    v2 header from a real socket, then echo and HTTP; the log and /ip show the client the
    header named; a connection without a header is told, closed and logged once."""
    proxy = "haproxy:tcp:0:interface=127.0.0.1"
    config = (
        f'udp_echo = []\n[[echo]]\nname = "echo"\nlisten = ["{proxy}"]\n'
        f'[daytime]\nenabled = true\nlisten = ["{proxy}"]\n'
        f'[chat]\nenabled = false\n[http]\nlisten = ["{proxy}"]\n'
    )
    with running_daemon(tmp_path, config) as running:
        echoed = exchange(running.port("echo"), V1 + b"through the proxy\n")
        assert echoed == b"through the proxy\n"
        running.wait_for_log(r"echo: 203\.0\.113\.7:5555 connected")
        daytime = exchange(running.port("daytime"), v2_header("203.0.113.9", 6000))
        assert daytime.strip()
        running.wait_for_log(r"daytime: 203\.0\.113\.9:6000 connected")
        request = b"GET /ip HTTP/1.1\r\nHost: lab\r\nAccept: application/json\r\n" \
                  b"Connection: close\r\n\r\n"
        answer = exchange(running.port("http"), v2_header("203.0.113.7", 5555) + request,
                          until=b"}")
        assert answer.startswith(b"HTTP/1.1 200 ")
        assert json.loads(answer.partition(b"\r\n\r\n")[2]) == {"origin": "203.0.113.7"}
        running.wait_for_log(r'http: 203\.0\.113\.7:5555 "GET /ip" 200')
        # curl's own PROXY v1 header (its real addresses) works too.
        sent = curl_sync("--haproxy-protocol", f"http://127.0.0.1:{running.port('http')}/ip")
        assert sent.returncode == 0, sent.stderr
        assert json.loads(sent.stdout) == {"origin": "127.0.0.1"}
        refused = exchange(running.port("echo"), b"no header here\n")
        assert refused == b"ERROR no PROXY protocol header\r\n"
        running.wait_for_log(r"echo: refused 127\.0\.0\.1:\d+: no PROXY protocol header")
    assert running.log().count("no PROXY protocol header") == 1
