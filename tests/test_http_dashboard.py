"""
Tests for the dashboard (C{/}), its live stream, the students' event view
(C{/events}) and C{/healthz}: real HTTP over loopback with curl and
Twisted's Agent, plus the real daemon end to end.
"""

from __future__ import annotations

import json
import re
import socket
from collections.abc import Iterator
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import pytest
import pytest_twisted
from twisted.internet import reactor
from twisted.internet.defer import Deferred, inlineCallbacks
from twisted.internet.protocol import Protocol
from twisted.internet.task import Clock
from twisted.python.failure import Failure
from twisted.web import pages
from twisted.web.client import Agent
from twisted.web.resource import getChildForRequest
from twisted.web.test.requesthelper import DummyRequest

from daemon import Daemon, running_daemon
from helpers import make_hub
from httptest import Served, curl_sync, fetch, http_config, serve, when_idle
from netlab import __version__
from netlab.app import registry
from netlab.core.events import HTTP_REQUEST, RECEIVED
from netlab.core.kinds import TRANSPORT_COUNTERS
from netlab.protocols.http import dashboard, routes, xmlrpc
from netlab.protocols.http.context import HttpContext
from netlab.protocols.http.dashboard import Scope, normal_host, peer_host
from netlab.protocols.http.settings import HttpSettings
from netlab.protocols.http.sse import EventStream

TOKEN = "teacher-secret"
KINDS = {kind.section: kind for kind in registry.KINDS}
STREAM = set(TRANSPORT_COUNTERS["stream"])
DATAGRAM = set(TRANSPORT_COUNTERS["datagram"])


def serve_dashboard(events: Any, clock: Clock, token: str | None = TOKEN,
                    **context: Any) -> Served:
    """The dashboard module alone on a loopback port, with the instructor C{token} if any."""
    settings = {} if token is None else {"instructor_token": token}
    return serve(events, clock, routes.of(dashboard), **settings, **context)


@dataclass
class Reply:
    """A curl answer with the body decoded as text."""

    status: int
    headers: dict[str, str]
    body: str


@inlineCallbacks
def curl(url: str, *args: str) -> Any:
    """A real curl, run without blocking the reactor; a L{Reply}."""
    got = yield fetch(url, *args)
    return Reply(got.status, got.headers, got.body.decode())


@inlineCallbacks
def curl_dashboard(events: Any, clock: Clock, *paths: str, **options: Any) -> Any:
    """Serve the dashboard with C{options}, curl each path in turn, close; the L{Reply}s."""
    served = serve_dashboard(events, clock, **options)
    replies = []
    try:
        for path in paths:
            replies.append((yield curl(served.base + path)))
    finally:
        yield served.close()
    return replies


class StreamReader(Protocol):
    """Reads a text/event-stream body into (event, data) messages."""

    def __init__(self) -> None:
        self.buffer = b""
        self.messages: list[tuple[str, Any]] = []
        self.closed: Deferred[None] = Deferred()
        self._waiting: list[tuple[Any, Deferred[list[tuple[str, Any]]]]] = []

    def dataReceived(self, data: bytes) -> None:
        self.buffer += data
        while b"\n\n" in self.buffer:
            block, self.buffer = self.buffer.split(b"\n\n", 1)
            event, payload = "message", None
            for line in block.decode().split("\n"):
                name, _, value = line.partition(": ")
                if name == "event":
                    event = value
                elif name == "data":
                    payload = json.loads(value)
            if payload is not None:
                self.messages.append((event, payload))
        for entry in list(self._waiting):
            if entry[0](self.messages):
                self._waiting.remove(entry)
                entry[1].callback(self.messages)

    def wait_for(self, test: Any) -> Deferred[list[tuple[str, Any]]]:
        """Fires with the messages so far once C{test(messages)} holds."""
        d: Deferred[list[tuple[str, Any]]] = Deferred()
        self._waiting.append((test, d))
        self.dataReceived(b"")
        return d

    def wait(self, count: int) -> Deferred[list[tuple[str, Any]]]:
        """Fires once C{count} messages have arrived."""
        return self.wait_for(lambda messages: len(messages) >= count)

    def connectionLost(self, reason: Failure = None) -> None:  # type: ignore[assignment]
        for _, d in self._waiting:
            d.errback(AssertionError(f"stream closed; got {self.messages}"))
        self._waiting = []
        self.closed.callback(None)

    def close(self) -> Deferred[None]:
        """Hang up and wait until the connection is gone."""
        if not self.closed.called:
            assert self.transport is not None
            self.transport.stopProducing()
        return self.closed


@inlineCallbacks
def open_stream(url: str) -> Any:
    response = yield Agent(reactor).request(b"GET", url.encode())
    reader = StreamReader()
    response.deliverBody(reader)
    return response, reader


@dataclass
class FakeClient:
    """What the chat hub needs from a front-end connection."""

    peer_host: str = "127.0.0.1"
    peer: str = "127.0.0.1:40000"
    lines: list[str] = field(default_factory=list)

    def send_line(self, text: str) -> None:
        """Keep a line the hub sends."""
        self.lines.append(text)

    def end(self, reason: str) -> None:
        """The hub hangs up: nothing to do."""


@pytest_twisted.inlineCallbacks
def test_dashboard_lists_services_addresses_counters(events: Any, clock: Clock) -> Any:
    """The dashboard lists each service with its addresses and counters, phone-ready."""
    events.listening["echo"] = ["tcp 127.0.0.1:7007"]
    events.listening["udp-echo"] = ["udp 127.0.0.1:7007"]
    echo = events.counters_for("echo")
    echo.connections_open, echo.connections_total, echo.bytes_in = 2, 17, 4242
    events.counters_for("udp-echo").datagrams_in = 9
    (reply,) = yield curl_dashboard(events, clock, "/dashboard")
    assert reply.status == 200
    assert reply.headers["content-type"] == "text/html; charset=utf-8"
    assert "script-src 'self'" in reply.headers["content-security-policy"]
    assert '<meta name="viewport" content="width=device-width, initial-scale=1">' in reply.body
    assert '<section class="card" data-service="echo">' in reply.body
    assert "<li>tcp 127.0.0.1:7007</li>" in reply.body
    assert "<li>udp 127.0.0.1:7007</li>" in reply.body
    assert '<dd data-counter="connections_open">2</dd>' in reply.body
    assert '<dd data-counter="connections_total">17</dd>' in reply.body
    assert '<dd data-counter="bytes_in">4242</dd>' in reply.body
    assert '<dd data-counter="datagrams_in">9</dd>' in reply.body
    assert "The chat is not running." in reply.body


@pytest_twisted.inlineCallbacks
def test_dashboard_escapes_hostile_strings(events: Any, clock: Clock) -> Any:
    """A topic with <script> and a request path with <b> reach the page only as text."""
    hub = make_hub(events, clock)
    session = hub.connect(FakeClient())
    session.line("alice")
    session.line("/topic <script>alert('topic')</script>")
    events.emit(
        HTTP_REQUEST, "http", "127.0.0.1:5000", method="GET", path="/<b>bold</b>?x=\"'",
        status=404, nbytes=0, duration="0.001",
    )
    (reply,) = yield curl_dashboard(events, clock, "/dashboard", hub=hub)
    assert '<section class="card room" data-room="#lobby">' in reply.body
    assert "<li>alice</li>" in reply.body
    assert "&lt;script&gt;alert(&#x27;topic&#x27;)&lt;/script&gt;" in reply.body
    assert "/&lt;b&gt;bold&lt;/b&gt;?x=&quot;&#x27;" in reply.body
    assert "<script>alert" not in reply.body
    assert "<b>bold" not in reply.body


@pytest_twisted.inlineCallbacks
def test_dashboard_hides_payload_samples(events: Any, clock: Clock) -> Any:
    """Other people's payload samples (received/sent events) stay off the public dashboard."""
    events.emit(RECEIVED, "echo", "192.0.2.1:5000", nbytes=6, sample=": secret")
    (reply,) = yield curl_dashboard(events, clock, "/dashboard")
    assert reply.status == 200
    assert "secret" not in reply.body


def someone_elses_chat(events: Any, clock: Clock) -> Any:
    """A hub where alice, from another address, joined and spoke; and one event of ours."""
    hub = make_hub(events, clock)
    alice = hub.connect(FakeClient(peer_host="192.0.2.9", peer="192.0.2.9:4000"))
    alice.line("alice")
    alice.line("meet me at noon")
    events.emit(HTTP_REQUEST, "http", "127.0.0.1:5000", method="GET", path="/mine",
                status=200, nbytes=0, duration="0.001")
    return hub


@pytest_twisted.inlineCallbacks
def test_dashboard_shows_a_student_only_their_own_events(events: Any, clock: Clock) -> Any:
    """
    Without the token, the dashboard (page and stream) shows every counter
    but only the events of the client's own address; with it, everyone's.
    """
    hub = someone_elses_chat(events, clock)
    served = serve_dashboard(events, clock, hub=hub, services=[("chat", "chat")], kinds=KINDS)
    try:
        page = yield curl(served.base + "/dashboard")
        teacher = yield curl(served.base + f"/dashboard?token={TOKEN}")
        wrong = yield curl(served.base + "/dashboard?token=guess")
        for query, want_all in (("", False), (f"?token={TOKEN}", True)):
            _, reader = yield open_stream(served.base + "/dashboard/stream" + query)
            try:
                snapshot = yield first_snapshot(reader)
            finally:
                yield reader.close()
            texts = [e["text"] for e in snapshot["events"]]
            assert any("/mine" in t for t in texts)
            assert any("192.0.2.9" in t for t in texts) is want_all, texts
            (chat,) = [s for s in snapshot["services"] if s["name"] == "chat"]
            assert ["joins", "joins", 1] in chat["counters"]
    finally:
        yield served.close()
    assert "/mine" in page.body
    assert "192.0.2.9" not in page.body and "alice (" not in page.body
    assert '<dd data-counter="messages">1</dd>' in page.body
    assert "192.0.2.9:4000" in teacher.body
    assert wrong.status == 403 and "192.0.2.9" not in wrong.body


@pytest_twisted.inlineCallbacks
def test_dashboard_assets(events: Any, clock: Clock) -> Any:
    """The page's script and style are served with their types; the script never uses innerHTML."""
    script, style = yield curl_dashboard(
        events, clock, "/dashboard/netlab.js", "/dashboard/netlab.css",
    )
    assert script.status == style.status == 200
    assert script.headers["content-type"].startswith("text/javascript")
    assert style.headers["content-type"].startswith("text/css")
    assert "textContent" in script.body
    assert "innerHTML" not in script.body.replace("never innerHTML", "")
    assert "EventSource" in script.body


def echo_totals(messages: list[tuple[str, Any]]) -> list[int]:
    """The echo service's connection total in each snapshot."""
    return [
        counter[2]
        for kind, snapshot in messages if kind == "snapshot"
        for service in snapshot["services"] if service["name"] == "echo"
        for counter in service["counters"] if counter[0] == "connections_total"
    ]


@inlineCallbacks
def first_snapshot(reader: StreamReader) -> Any:
    """The first C{snapshot} event's data on a dashboard stream."""
    messages = yield reader.wait_for(lambda m: any(kind == "snapshot" for kind, _ in m))
    return next(data for kind, data in messages if kind == "snapshot")


def of_kind(messages: list[tuple[str, Any]], wanted: str) -> list[Any]:
    return [data for kind, data in messages if kind == wanted]


@pytest_twisted.inlineCallbacks
def test_dashboard_stream_sends_json_snapshots(events: Any, clock: Clock) -> Any:
    """
    The stream sends the charts' history and a snapshot at once, then each
    second a sample, and a snapshot on a change; it stops with the client.
    """
    events.listening["echo"] = ["tcp 127.0.0.1:7007"]
    echo = events.counters_for("echo")
    echo.connections_total = 1
    served = serve_dashboard(events, clock)
    try:
        response, reader = yield open_stream(served.base + "/dashboard/stream")
        try:
            first = list((yield reader.wait(2)))
            clock.advance(1)
            echo.connections_total = 3
            clock.advance(1)
            messages = yield reader.wait_for(lambda m: echo_totals(m)[-1:] == [3])
            messages = yield reader.wait_for(lambda m: len(of_kind(m, "sample")) == 2)
        finally:
            yield reader.close()
    finally:
        yield served.close()
    assert response.code == 200
    assert response.headers.getRawHeaders(b"content-type") == [b"text/event-stream; charset=utf-8"]
    assert first[0] == ("history", {"seconds": 180, "points": []})
    kind, snapshot = first[1]
    assert kind == "snapshot"
    assert [s["name"] for s in snapshot["services"]] == ["echo", "http"]
    service = snapshot["services"][0]
    assert service["listening"] == ["tcp 127.0.0.1:7007"]
    assert ["connections_total", "connections", 1] in service["counters"]
    assert service["series"] == [["connections_total", "connections/s"], ["bytes", "bytes/s"]]
    assert snapshot["rooms"] is None
    assert snapshot["ready"] is True
    assert {kind for kind, _ in messages} == {"history", "snapshot", "sample"}
    assert echo_totals(messages)[0] == 1
    # Sampled at 0 (where the site started: no point yet), 1 and 2 seconds.
    one, two = (points for sample in of_kind(messages, "sample") for points in sample["points"])
    assert (one["t"], one["rates"]["echo"]["connections_total"]) == (1.0, 0.0)
    assert (two["t"], two["rates"]["echo"]["connections_total"]) == (2.0, 2.0)
    # The LoopingCall stopped when the client went away.
    assert not [c for c in clock.getDelayedCalls() if c.active()]


@pytest_twisted.inlineCallbacks
def test_history_fills_what_nobody_watched_and_comes_first(events: Any, clock: Clock) -> Any:
    """
    A stream that opens after a stretch nobody watched gets that stretch's
    average (up to three minutes of it) as its history: no empty chart.
    """
    events.listening["echo"] = ["tcp 127.0.0.1:7007"]
    served = serve_dashboard(events, clock)
    try:
        _, reader = yield open_stream(served.base + "/dashboard/stream")
        yield reader.wait(2)
        yield reader.close()
        # Nobody watches once the server has seen the stream go.
        yield when_idle(served.site)
        events.counters_for("echo").connections_total = 600
        clock.advance(600)
        _, watcher = yield open_stream(served.base + "/dashboard/stream")
        (filled,) = of_kind((yield watcher.wait_for(lambda m: of_kind(m, "sample"))), "sample")
        yield watcher.close()
        _, late = yield open_stream(served.base + "/dashboard/stream")
        (history,) = of_kind((yield late.wait(1)), "history")
        yield late.close()
    finally:
        yield served.close()
    points = filled["points"]
    assert len(points) == 180
    assert {p["rates"]["echo"]["connections_total"] for p in points} == {1.0}
    assert [p["t"] for p in points[-2:]] == [599.0, 600.0]
    assert history["points"] == points
    assert not [c for c in clock.getDelayedCalls() if c.active()]


@pytest_twisted.inlineCallbacks
def test_events_page_shows_only_own_events(events: Any, clock: Clock) -> Any:
    """/events shows the client's own events, escaped, and not other addresses'."""
    events.emit(RECEIVED, "echo", "127.0.0.1:5000", nbytes=9, sample=": hi\\r\\n\\xff\\xfb<i>")
    events.emit(RECEIVED, "echo", "192.0.2.9:4000", nbytes=5, sample=": other")
    events.emit(RECEIVED, "echo", "[2001:db8::1]:4000", nbytes=5, sample=": v6other")
    (reply,) = yield curl_dashboard(events, clock, "/events")
    assert reply.status == 200
    assert reply.headers["content-type"] == "text/html; charset=utf-8"
    assert "your address, 127.0.0.1" in reply.body
    assert "received 9 bytes from 127.0.0.1:5000: hi\\r\\n\\xff\\xfb&lt;i&gt;" in reply.body
    assert "other" not in reply.body
    assert "<i>" not in reply.body


@pytest_twisted.inlineCallbacks
def test_events_page_everyone_with_token(events: Any, clock: Clock) -> Any:
    """The instructor token shows every client's events; a wrong or empty one is 403."""
    events.emit(RECEIVED, "echo", "192.0.2.9:4000", nbytes=5, sample=": other")
    everyone, wrong, empty, wrong_stream = yield curl_dashboard(
        events, clock, f"/events?token={TOKEN}", "/events?token=guess", "/events?token=",
        "/events/stream?token=guess",
    )
    assert everyone.status == 200
    assert "received 5 bytes from 192.0.2.9:4000: other" in everyone.body
    assert "instructor view" in everyone.body
    for reply in (wrong, empty, wrong_stream):
        assert reply.status == 403
        assert "guess" not in reply.body
        assert "other" not in reply.body


@pytest_twisted.inlineCallbacks
def test_events_wrong_token_without_instructor_token(events: Any, clock: Clock) -> Any:
    """With no instructor token configured, no token shows everyone's events."""
    (reply,) = yield curl_dashboard(events, clock, "/events?token=", token=None)
    assert reply.status == 403


@pytest_twisted.inlineCallbacks
def test_events_stream_replays_and_pushes_own_events(events: Any, clock: Clock) -> Any:
    """The stream resets, replays the client's recent events, then pushes new ones, only its own."""
    events.emit(RECEIVED, "echo", "127.0.0.1:5000", nbytes=2, sample=": a")
    events.emit(RECEIVED, "echo", "192.0.2.9:4000", nbytes=2, sample=": b")
    served = serve_dashboard(events, clock)
    try:
        response, reader = yield open_stream(served.base + "/events/stream")
        try:
            yield reader.wait(2)
            events.emit(RECEIVED, "echo", "192.0.2.9:4000", nbytes=2, sample=": c")
            events.emit(RECEIVED, "udp-echo", "127.0.0.1:6000", nbytes=2, sample=": d")
            messages = yield reader.wait_for(
                lambda messages: any(m.get("peer") == "127.0.0.1:6000" for _, m in messages)
            )
        finally:
            yield reader.close()
    finally:
        yield served.close()
    assert response.code == 200
    assert messages[0] == ("reset", {})
    # The client's own HTTP connection is its own event too; the rest are the echoes.
    assert {kind for kind, _ in messages[1:]} == {"netlab"}
    texts = [m["text"] for _, m in messages[1:] if m["service"] != "http"]
    assert texts == [
        "echo: received 2 bytes from 127.0.0.1:5000: a",
        "udp-echo: received 2 bytes from 127.0.0.1:6000: d",
    ]
    assert not events._subscribers
    assert not [c for c in clock.getDelayedCalls() if c.active()]


@pytest_twisted.inlineCallbacks
def test_events_stream_everyone_with_token(events: Any, clock: Clock) -> Any:
    """With the token the stream carries every client's events."""
    served = serve_dashboard(events, clock)
    try:
        _, reader = yield open_stream(served.base + f"/events/stream?token={TOKEN}")
        try:
            yield reader.wait(1)
            events.emit(RECEIVED, "echo", "192.0.2.9:4000", nbytes=2, sample=": c")
            messages = yield reader.wait_for(
                lambda messages: any(m.get("peer") == "192.0.2.9:4000" for _, m in messages)
            )
        finally:
            yield reader.close()
    finally:
        yield served.close()
    assert messages[0] == ("reset", {})


def listener(bound: bool) -> Any:
    return SimpleNamespace(port=object() if bound else None)


@pytest_twisted.inlineCallbacks
def test_healthz(events: Any, clock: Clock) -> Any:
    """/healthz is 200 "ok" once every listener is bound, 503 before."""
    service = SimpleNamespace(listeners=[listener(True), listener(False)])
    served = serve_dashboard(events, clock, service=service)
    try:
        starting = yield curl(served.base + "/healthz")
        service.listeners[1] = listener(True)
        ready = yield curl(served.base + "/healthz")
    finally:
        yield served.close()
    assert starting.status == 503
    assert starting.headers["content-type"] == "text/plain; charset=utf-8"
    assert ready.status == 200
    assert ready.body == "ok\n"


@pytest_twisted.inlineCallbacks
def test_healthz_without_daemon_service(events: Any, clock: Clock) -> Any:
    """Without a daemon service (a bare site) /healthz is 200."""
    (reply,) = yield curl_dashboard(events, clock, "/healthz")
    assert (reply.status, reply.body) == (200, "ok\n")


@pytest.mark.parametrize(("peer", "host"), [
    ("127.0.0.1:5000", "127.0.0.1"),
    ("[::1]:5000", "::1"),
    ("[fe80::1%eth0]:22", "fe80::1%eth0"),
    ("-", None),
    ("unix-client", None),
    ("/tmp/netlab.sock", None),
])
def test_peer_host(peer: str, host: str | None) -> None:
    """The host part of an event's peer, for IPv4, bracketed IPv6 and no address."""
    assert peer_host(peer) == host


def test_scope_matches_mapped_and_plain_ipv4() -> None:
    """A client on an IPv4-mapped IPv6 socket sees its events from an IPv4 socket."""
    scope = Scope(everyone=False, host=normal_host("::ffff:127.0.0.1"))
    assert scope.shows({"peer": "127.0.0.1:5000"})
    assert not scope.shows({"peer": "127.0.0.2:5000"})
    assert not scope.shows({"peer": "-"})
    assert not Scope(everyone=False, host=None).shows({"peer": "127.0.0.1:1"})
    assert Scope(everyone=True).shows({"peer": "-"})


class ProducerRequest(DummyRequest):
    """A DummyRequest that accepts a push producer (DummyRequest only pulls)."""

    producer: Any = None

    def registerProducer(self, producer: Any, streaming: bool) -> None:
        self.producer = producer


def test_stream_skips_while_client_not_reading() -> None:
    """A paused stream skips messages and then says how many; it never buffers them."""
    request = ProducerRequest([b""])
    stream = EventStream(request)
    assert request.producer is stream
    assert stream.send({"n": 1})
    stream.pauseProducing()
    assert not stream.send({"n": 2})
    assert not stream.send({"n": 3})
    stream.resumeProducing()
    assert b"".join(request.written) == (
        b'retry: 2000\n\ndata: {"n":1}\n\nevent: skipped\ndata: {"skipped":2}\n\n'
    )
    closed: list[bool] = []
    stream.on_close(lambda: closed.append(True))
    request.processingFailed(Failure(ConnectionError("gone")))
    assert closed == [True]
    assert not stream.send({"n": 4})


@pytest.fixture
def live_daemon(tmp_path: Any) -> Iterator[Daemon]:
    """The real daemon with a TCP echo service and the web site."""
    with running_daemon(tmp_path, http_config(echo=True)) as running:
        yield running


def test_daemon_dashboard_and_healthz_with_curl(live_daemon: Daemon) -> None:
    """The real daemon's dashboard shows the echo port it bound and its traffic; /healthz is ok."""
    base = f"http://127.0.0.1:{live_daemon.port('http')}"
    echo_port = live_daemon.port("echo")
    with socket.create_connection(("127.0.0.1", echo_port), timeout=10) as client:
        client.sendall(b"ping\n")
        assert client.recv(100) == b"ping\n"
    health = curl_sync("-w", "%{http_code}", base + "/healthz", check=True)
    assert health.stdout == b"ok\n200"
    # What a browser asks for at / (curl's own */* gets the course's report: test_http_front).
    page = curl_sync("-H", "Accept: text/html", base + "/", check=True).stdout.decode()
    assert f"<li>tcp 127.0.0.1:{echo_port}</li>" in page
    assert '<dd data-counter="bytes_in">5</dd>' in page


# -- the dashboard as a home page --------------------------------------------


def cards(body: str) -> dict[str, str]:
    """Each service card's HTML on a page, by service name."""
    return dict(re.findall(
        r'<section class="card" data-service="([^"]+)">(.*?)</section>', body, re.S
    ))


def counters_on(card: str) -> dict[str, str]:
    """The counters a card's HTML shows, by key."""
    return dict(re.findall(r'<dd data-counter="([^"]+)">([^<]*)</dd>', card))


def lab(events: Any) -> list[tuple[str, str]]:
    """An echo on TCP, a UDP echo, a daytime on both and the site: listening, as configured."""
    events.listening.update({
        "echo": ["tcp 127.0.0.1:7007"],
        "udp-echo": ["udp 127.0.0.1:7007"],
        "daytime": ["tcp 127.0.0.1:7013", "udp 127.0.0.1:7013"],
        "http": ["tcp 127.0.0.1:8080"],
    })
    return [("echo", "echo"), ("udp-echo", "udp_echo"), ("daytime", "daytime"), ("http", "http")]


@pytest_twisted.inlineCallbacks
def test_heading_is_the_daemon_and_its_version(events: Any, clock: Clock) -> Any:
    """The heading names the daemon and its version, not the web service (`netlab: http`)."""
    (reply,) = yield curl_dashboard(events, clock, "/dashboard")
    assert f"<h1>netlab {__version__}</h1>" in reply.body
    assert f"<title>netlab {__version__}</title>" in reply.body
    assert "netlab: http" not in reply.body


@pytest_twisted.inlineCallbacks
def test_websockets_counted_on_the_site_card_not_a_phantom_one(
    events: Any, clock: Clock
) -> Any:
    """
    The WebSocket books (`http-ws`) are the site's own: no `http-ws • not
    listening` card, their numbers on the site's card.
    """
    served = serve_dashboard(events, clock, services=lab(events), kinds=KINDS)
    try:
        books = served.context.websockets()
        books.counters.connections_open = 1
        books.counters.extra["messages_in"] = 4
        reply = yield curl(served.base + "/dashboard")
    finally:
        yield served.close()
    shown = cards(reply.body)
    assert list(shown) == ["echo", "udp-echo", "daytime", "http"]
    site = counters_on(shown["http"])
    assert site["websocket_connections_open"] == "1"
    assert site["websocket_messages_in"] == "4"
    assert "http-ws" not in reply.body


@pytest_twisted.inlineCallbacks
def test_each_card_shows_only_its_kinds_counters(events: Any, clock: Clock) -> Any:
    """No datagrams on a TCP service, no connections on a UDP one; both on a service with both."""
    services = lab(events)
    (reply,) = yield curl_dashboard(
        events, clock, "/dashboard", services=services, kinds=KINDS,
    )
    shown = {name: set(counters_on(card)) for name, card in cards(reply.body).items()}
    assert shown["echo"] == STREAM
    assert shown["udp-echo"] == DATAGRAM
    assert shown["daytime"] == STREAM | DATAGRAM
    assert shown["http"] == STREAM | {
        "websocket_connections_open", "websocket_messages_in", "websocket_messages_out"
    }
    data = dashboard.snapshot(serve_dashboard_context(events, clock, services))
    assert {s["name"]: {c[0] for c in s["counters"]} for s in data["services"]} == shown


def serve_dashboard_context(events: Any, clock: Clock, services: Any) -> Any:
    """An HttpContext as the daemon builds it for C{services}, without listening."""
    from httptest import build_site
    return build_site(events, clock, services=services, kinds=KINDS).context


@pytest_twisted.inlineCallbacks
def test_chat_card_counts_the_users_connected_now(events: Any, clock: Clock) -> Any:
    """Two users who came and went leave the chat card at `users 0`, not `users 2`."""
    hub = make_hub(events, clock)
    events.listening["chat"] = ["tcp 127.0.0.1:7070"]
    services = [("chat", "chat"), ("http", "http")]
    sessions = []
    for nick in ("alice", "bob"):
        session = hub.connect(FakeClient())
        session.line(nick)
        sessions.append(session)
    served = serve_dashboard(events, clock, hub=hub, services=services, kinds=KINDS)
    try:
        both = yield curl(served.base + "/dashboard")
        for session in sessions:
            hub.remove(session, "quit")
        none = yield curl(served.base + "/dashboard")
    finally:
        yield served.close()
    assert counters_on(cards(both.body)["chat"])["users_online"] == "2"
    chat = counters_on(cards(none.body)["chat"])
    assert chat["users_online"] == "0"
    assert chat["rooms"] == "1"
    assert chat["joins"] == "2"


@pytest_twisted.inlineCallbacks
def test_xmlrpc_refusal_is_counted_on_the_card(events: Any, clock: Clock) -> Any:
    """An XML-RPC document refused (logged `refused`) shows as `refused 1`, not `refused 0`."""
    served = serve(events, clock, routes.of(dashboard, xmlrpc), services=[("http", "http")],
                   kinds=KINDS)
    try:
        answer = yield served.fetch(
            "/RPC2", "-H", "Content-Type: text/xml",
            "--data-binary", '<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "b">]><x/>',
        )
        reply = yield curl(served.base + "/dashboard")
    finally:
        yield served.close()
    assert b"refused" in answer.body
    assert events.kinds("refused")
    assert counters_on(cards(reply.body)["http"])["refused"] == "1"


def links(body: str) -> list[str]:
    return re.findall(r'<a href="([^"]+)"', body)


@pytest_twisted.inlineCallbacks
def test_dashboard_links_every_page(events: Any, clock: Clock) -> Any:
    """
    The dashboard links the chat, the mailbox, the event view, the clock, the
    metrics and the list of routes; each link is a route of the site; no chat
    (or no mail), no link to it.
    """
    hub = make_hub(events, clock)
    (with_chat,) = yield curl_dashboard(
        events, clock, "/dashboard", hub=hub, mail=lambda: None  # as with [smtp]
    )
    (without,) = yield curl_dashboard(events, clock, "/dashboard")
    paths = {route.path for route in routes.ROUTES}
    found = links(with_chat.body)
    for page in ("/", "/chat", "/mail", "/events", "/time.html", "/metrics", "/routes"):
        assert page in found
    assert set(found) <= paths
    assert "/chat" not in links(without.body)
    assert "/mail" not in links(without.body)


@pytest_twisted.inlineCallbacks
def test_try_it_lines_use_the_host_the_browser_used(events: Any, clock: Clock) -> Any:
    """
    Each address has a line to try it with: nc, nc -u, telnet for the chat,
    curl for the site; with the browser's host name where the service
    listens on all interfaces or the address the page came from, else the
    service's own address; a Host that is not a host name is not repeated.
    """
    events.listening.update({
        "echo": ["tcp 127.0.0.1:7007", "tcp [::1]:7007"],
        "udp-echo": ["udp 0.0.0.0:7007"],
        "chat": ["tcp 0.0.0.0:7070"],
        "http": ["tcp 127.0.0.1:8080"],
        "far": ["tcp 192.0.2.1:9000"],
    })
    services = [("echo", "echo"), ("udp-echo", "udp_echo"), ("chat", "chat"),
                ("http", "http"), ("far", "echo")]
    served = serve_dashboard(events, clock, services=services, kinds=KINDS)
    try:
        named = yield curl(served.base + "/dashboard", "-H", "Host: lab.example:8080")
        hostile = yield curl(served.base + "/dashboard", "-H", "Host: <b>x</b>")
    finally:
        yield served.close()
    tries = dict(re.findall(r'data-service="([^"]+)">.*?<p class="try">(.*?)</p>',
                            named.body, re.S))
    assert "<code>nc lab.example 7007</code>" in tries["echo"]
    assert "<code>nc ::1 7007</code>" in tries["echo"]
    assert "<code>nc -u lab.example 7007</code>" in tries["udp-echo"]
    assert "<code>telnet lab.example 7070</code>" in tries["chat"]
    assert "<code>curl http://lab.example:8080/get</code>" in tries["http"]
    assert "<code>nc 192.0.2.1 9000</code>" in tries["far"]
    assert "<b>x" not in hostile.body and "&lt;b&gt;" not in hostile.body
    assert "<code>nc 127.0.0.1 7007</code>" in hostile.body


@pytest_twisted.inlineCallbacks
def test_events_page_says_what_it_shows_at_each_level(events: Any, clock: Clock) -> Any:
    """
    At the default level /events does not promise payload samples (they are
    debug-level events); at debug level it says it shows them.
    """
    events.set_level("info")
    (info,) = yield curl_dashboard(events, clock, "/events")
    events.set_level("debug")
    (debug,) = yield curl_dashboard(events, clock, "/events")
    scope_of = re.compile(r'<p class="scope">(.*?)</p>', re.S)
    (said_info,) = scope_of.findall(info.body)
    (said_debug,) = scope_of.findall(debug.body)
    assert "payload samples" not in said_info.replace("no payload samples", "")
    assert "level = &quot;debug&quot;" in said_info
    assert "payload samples" in said_debug and "no payload samples" not in said_debug


# -- /routes -------------------------------------------------------------------


def not_found_type() -> type:
    return type(pages.notFound("", ""))


def test_every_route_example_reaches_its_resource(events: Any, clock: Clock,
                                                  tmp_path: Any) -> None:
    """Each route's example address is served by a resource of the site, not the 404 page."""
    (tmp_path / "index.html").write_text("<p>hello</p>")
    context = HttpContext(
        settings=HttpSettings(name="http", static_dir=str(tmp_path)), events=events,
        reactor=clock, hub=make_hub(events, clock), mail=lambda: None,  # as with [smtp]
    )
    root = routes.build_root(context)
    for route in routes.ROUTES:
        assert route.tried_at.startswith(route.path), route
        path = route.tried_at.partition("?")[0]
        request = DummyRequest(path.encode().split(b"/")[1:])
        found = getChildForRequest(root, request)
        assert not isinstance(found, not_found_type()), route.tried_at


@pytest_twisted.inlineCallbacks
def test_routes_page_lists_every_route(events: Any, clock: Clock) -> Any:
    """
    /routes lists every route of the table with its methods and an example:
    a table with links for a browser, text for curl; routes left out are off.
    """
    served = serve(events, clock, routes.ROUTES)
    try:
        text = yield served.fetch("/routes")
        page = yield curl(served.base + "/routes", "-H", "Accept: text/html",
                          "-H", "Host: lab.example:8080")
    finally:
        yield served.close()
    lines = text.text().splitlines()
    assert lines[0] == f"netlab {__version__}: every address of this site"
    listed = {line.split()[0]: line for line in lines[2:] if line}
    assert list(listed) == [route.path for route in routes.ROUTES]
    assert listed["/status"].split()[1:] == ["GET", f"{served.base}/status/418"]
    assert listed["/put"].split()[1:] == ["PUT", "curl", "-X", "PUT", f"{served.base}/put"]
    assert listed["/chat"].endswith("(off on this server)")
    assert page.status == 200
    assert "script-src 'self'" in page.headers["content-security-policy"]
    rows = dict(re.findall(r'<tr data-route="([^"]+)">(.*?)</tr>', page.body))
    assert list(rows) == [route.path for route in routes.ROUTES]
    assert '<a href="/delay/1">http://lab.example:8080/delay/1</a>' in rows["/delay"]
    assert "off on this server" in rows["/static"]
    assert "/routes" in links(page.body)


def test_dashboard_says_how_the_cluster_is(events: Any, clock: Clock) -> None:
    """
    With [cluster], the rooms show every node's users (with their node), and
    the dashboard says which node this is and whether it is in touch.
    """
    from netlab.protocols.chat.bus import MemoryBroker
    from test_chat_bus import bus_of, joined, node

    broker = MemoryBroker(clock)
    here, there = node(events, broker, "lab.w0"), node(events, broker, "lab.w1")
    joined(here, "alice")
    op = joined(there, "bob")
    op.say("/oper sesame")
    context = SimpleNamespace(
        events=events, hub=here, services=[], kinds={}, settings=HttpSettings(name="http"),
        websocket_service="http-ws", service=None,
    )
    data = dashboard.snapshot(context)  # type: ignore[arg-type]
    assert data["cluster"] == {
        "node": "lab.w0", "state": "joined", "nodes": ["lab.w1"],
        "text": "Cluster: this node is lab.w0, in touch through Redis with 1 other: lab.w1.",
    }
    (lobby,) = data["rooms"]
    assert lobby["users"] == [
        {"nick": "alice", "oper": False, "node": None},
        {"nick": "bob", "oper": True, "node": "lab.w1"},
    ]
    html = dashboard.dashboard_html(data)
    assert '<p id="cluster" class="cluster" data-state="joined">Cluster: this node' in html
    assert "<li>bob (oper) <small>on lab.w1</small></li>" in html
    bus_of(here).cut("connection refused")
    data = dashboard.snapshot(context)  # type: ignore[arg-type]
    assert data["cluster"]["state"] == "degraded"
    assert data["cluster"]["text"] == (
        "Cluster degraded: this node (lab.w0) is out of touch with Redis (connection "
        "refused); its users chat among themselves until it is back."
    )


def test_dashboard_shows_the_whole_daemon_and_each_worker(events: Any, clock: Clock) -> None:
    """
    In a worker of [daemon] workers = 2, the cards count the whole daemon
    (every worker's, summed) and a Workers section shows each worker.
    """
    from netlab.core.events import ServiceCounters
    from netlab.core.workertable import WorkerTable, counters_state

    mine = events.counters_for("echo")
    mine.connections_total, mine.connections_open, mine.bytes_in = 3, 1, 30
    table = WorkerTable(0, 4101, events)
    table.update({"1": {"pid": 4102, "counters": counters_state({"echo": ServiceCounters(
        connections_total=5, connections_open=2, bytes_in=50)})}})
    daemon = SimpleNamespace(listeners=[], worker_table=table)
    context = SimpleNamespace(
        events=events, hub=None, services=[("echo", "echo")], kinds=KINDS,
        settings=HttpSettings(name="http"), websocket_service="http-ws", service=daemon,
    )
    data = dashboard.snapshot(context)  # type: ignore[arg-type]
    (echo,) = [s for s in data["services"] if s["name"] == "echo"]
    counters = {key: value for key, _, value in echo["counters"]}
    assert (counters["connections_total"], counters["connections_open"]) == (8, 3)
    assert counters["bytes_in"] == 80
    assert data["workers"] == [
        {"worker": 0, "pid": 4101, "connections_open": 1, "connections_total": 3,
         "answering": True},
        {"worker": 1, "pid": 4102, "connections_open": 2, "connections_total": 5,
         "answering": False},
    ]
    html = dashboard.dashboard_html(data)
    assert '<table id="workers" class="workers">' in html
    assert "<td>1</td><td>4102</td><td>2</td><td>5</td>" in html
    # One process: no Workers section.
    alone = dashboard.snapshot(SimpleNamespace(**{**vars(context), "service": None}))  # type: ignore[arg-type]
    assert alone["workers"] is None
    assert 'id="workers"' not in dashboard.dashboard_html(alone)

