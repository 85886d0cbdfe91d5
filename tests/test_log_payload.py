"""
log_payload: one service's payload samples at info, without the daemon at
debug level (the course's "service messages" exercise), and nobody else's.
"""

from __future__ import annotations

from typing import Any

from twisted.internet.task import Clock
from twisted.logger import LogLevel

from conftest import RecordedEvents
from memory import serve
from netlab.core.events import RECEIVED, SENT
from netlab.core.limits import DatagramGuard
from netlab.protocols.echo import EchoFactory, EchoSettings
from netlab.protocols.udp import UdpEcho, UdpEchoSettings


def echo(events: RecordedEvents, clock: Clock, **settings: Any) -> EchoFactory:
    return EchoFactory(EchoSettings(name=settings.pop("name", "echo"), **settings), events, clock)


def test_only_the_chosen_service_shows_its_data_at_info() -> None:
    """At level info, the service with log_payload shows its samples, as text; the other none."""
    events, clock = RecordedEvents(level="info"), Clock()
    shown = echo(events, clock, name="shown", log_payload=True)
    quiet = echo(events, clock, name="quiet")
    for factory in (shown, quiet):
        _, client = serve(factory, clock)
        client.peer_write("привет, netlab\n".encode())
        assert client.peer_read() == "привет, netlab\n".encode()
    samples = [(e["service"], e["netlab_event"], e["log_level"], e["sample"])
               for e in events.seen if e["netlab_event"] in (RECEIVED, SENT)]
    assert samples == [
        ("shown", RECEIVED, LogLevel.info, ": привет, netlab\\n"),
        ("shown", SENT, LogLevel.info, ": привет, netlab\\n"),
    ]


def test_reload_turns_it_on_and_off() -> None:
    """configure() with log_payload changes what the next chunk narrates."""
    events, clock = RecordedEvents(level="info"), Clock()
    factory = echo(events, clock)
    _, client = serve(factory, clock)
    client.peer_write(b"one")
    factory.configure(EchoSettings(name="echo", log_payload=True))
    client.peer_write(b"two")
    factory.configure(EchoSettings(name="echo"))
    client.peer_write(b"three")
    assert [e["sample"] for e in events.kinds(RECEIVED)] == [": two"]


def test_debug_level_still_shows_every_service() -> None:
    """Without log_payload, the daemon at debug level shows samples at debug, as before."""
    events, clock = RecordedEvents(level="debug"), Clock()
    _, client = serve(echo(events, clock), clock)
    client.peer_write(b"hi")
    (received,) = events.kinds(RECEIVED)
    assert received["log_level"] == LogLevel.debug


class Transport:
    """Where a UDP protocol's replies go, for a test without sockets."""

    def __init__(self) -> None:
        self.sent: list[tuple[bytes, Any]] = []

    def write(self, data: bytes, addr: Any) -> None:
        self.sent.append((data, addr))


def test_udp_echo_log_payload() -> None:
    """A UDP echo with log_payload shows what came and went, at info."""
    events, clock = RecordedEvents(level="info"), Clock()
    settings = UdpEchoSettings(name="udp-echo", log_payload=True)
    protocol = UdpEcho("udp-echo", DatagramGuard(settings, events, "udp-echo", clock.seconds),
                       events)
    protocol.transport = Transport()  # type: ignore[assignment]
    protocol.datagramReceived(b"ping", ("127.0.0.1", 40000))
    assert [(e["netlab_event"], e["sample"], e["log_level"]) for e in events.seen
            if e["netlab_event"] in (RECEIVED, SENT)] == [
        (RECEIVED, ": ping", LogLevel.info), (SENT, ": ping", LogLevel.info),
    ]
