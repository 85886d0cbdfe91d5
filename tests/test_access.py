"""Tests for allow/deny address lists: per service and global, stream, datagram and HTTP."""

from __future__ import annotations

from typing import Any

import pytest
import pytest_twisted
from twisted.internet.task import Clock

from helpers import DatagramCollector, close_all, connect, listen
from httptest import serve
from netlab.app.registry import parse
from netlab.core.events import REFUSED
from netlab.core.limits import AccessList, DatagramGuard
from netlab.protocols.echo import EchoFactory, EchoSettings
from netlab.protocols.udp import UdpEchoSettings


@pytest.mark.parametrize(
    ("allow", "deny", "host", "verdict"),
    [
        ((), (), "192.0.2.1", None),
        ((), ("192.0.2.0/24",), "192.0.2.9", "address 192.0.2.9 is denied"),
        ((), ("192.0.2.0/24",), "198.51.100.1", None),
        (("10.0.0.0/8",), (), "192.0.2.1", "address 192.0.2.1 is not in the allow list"),
        (("10.0.0.0/8",), (), "10.1.2.3", None),
        (("10.0.0.0/8",), ("10.9.0.0/16",), "10.9.1.1", "address 10.9.1.1 is denied"),
        ((), ("127.0.0.0/8",), "::ffff:127.0.0.1", "address 127.0.0.1 is denied"),
        (("::1/128",), (), "::1", None),
        (("::1/128",), (), "local", "not in the allow list"),
        ((), ("10.0.0.0/8",), "local", None),
    ],
)
def test_access_list(allow: tuple[str, ...], deny: tuple[str, ...], host: str,
                     verdict: str | None) -> None:
    """Deny always refuses; a non-empty allow list admits only its networks."""
    assert AccessList(allow, deny).refusal(host) == verdict


def test_global_access_merged_into_services() -> None:
    """[access] deny adds to each service's deny; a service's allow replaces the global one."""
    config = parse({
        "access": {"allow": ["10.0.0.0/8"], "deny": ["10.9.0.0/16"]},
        "echo": [{"deny": ["10.8.0.0/16"]}, {"name": "two", "allow": ["127.0.0.1/32"],
                                               "listen": ["tcp:7010"]}],
    })
    first, second = config.echo
    assert first.allow == ("10.0.0.0/8",)
    assert first.deny == ("10.9.0.0/16", "10.8.0.0/16")
    assert second.allow == ("127.0.0.1/32",)
    assert config.http.deny == ("10.9.0.0/16",)


@pytest_twisted.inlineCallbacks
def test_stream_refused_with_one_line(events: Any, clock: Clock) -> Any:
    """A denied client of a stream service gets one line, and the refusal is logged and counted."""
    factory = EchoFactory(
        EchoSettings(name="echo", deny=("127.0.0.0/8",)), events, clock
    )
    port = listen(factory)
    client = yield connect(port)
    yield client.closed
    assert client.data == b"ERROR address 127.0.0.1 is denied\r\n"
    assert factory.counters.refused == 1
    assert events.kinds(REFUSED)[0]["limit"] == "address 127.0.0.1 is denied"
    yield port.stopListening()


@pytest_twisted.inlineCallbacks
def test_allow_list_admits_listed(events: Any, clock: Clock) -> Any:
    """A client inside the allow list is served as usual."""
    factory = EchoFactory(EchoSettings(name="echo", allow=("127.0.0.0/8",)), events, clock)
    port = listen(factory)
    client = yield connect(port)
    client.send(b"in")
    yield client.wait_text(b"in")
    yield close_all(client)
    yield factory.when_idle()
    yield port.stopListening()


@pytest_twisted.inlineCallbacks
def test_datagrams_from_denied_source_dropped(events: Any, clock: Clock) -> Any:
    """A UDP service never answers a denied source; the drop is counted as a refusal."""
    from twisted.internet import reactor

    from netlab.protocols.udp import UdpEcho

    denied = DatagramGuard(
        UdpEchoSettings(name="udp", allow=("192.0.2.0/24",)), events, "udp", clock.seconds
    )
    open_guard = DatagramGuard(UdpEchoSettings(name="udp2"), events, "udp2", clock.seconds)
    refusing = reactor.listenUDP(0, UdpEcho("udp", denied, events), interface="127.0.0.1")
    answering = reactor.listenUDP(0, UdpEcho("udp2", open_guard, events), interface="127.0.0.1")
    client = DatagramCollector()
    client_port = reactor.listenUDP(0, client, interface="127.0.0.1")
    client_port.write(b"to the refusing one", ("127.0.0.1", refusing.getHost().port))
    client_port.write(b"to the open one", ("127.0.0.1", answering.getHost().port))
    received = yield client.wait_datagrams(1)
    assert [data for data, _ in received] == [b"to the open one"]
    assert denied.counters.refused == 1
    assert denied.counters.dropped == 1
    for port in (client_port, refusing, answering):
        yield port.stopListening()


@pytest_twisted.inlineCallbacks
def test_http_denied_gets_403(events: Any, clock: Clock) -> Any:
    """A denied HTTP client gets a 403 naming why."""
    served = serve(events, clock, deny=("127.0.0.0/8",))
    response = yield served.fetch("/anything")
    assert response.status == 403
    assert b"address 127.0.0.1 is denied" in response.body
    yield served.close()
