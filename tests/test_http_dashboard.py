"""
Tests for the dashboard (C{/}), its live stream, the students' event view
(C{/events}) and C{/healthz}: real HTTP over loopback with curl and
Twisted's Agent, plus the real daemon end to end.
"""

from __future__ import annotations

import json
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
from twisted.web.client import Agent
from twisted.web.test.requesthelper import DummyRequest

from daemon import Daemon, running_daemon
from helpers import make_hub
from httptest import Served, curl_sync, fetch, http_config, serve
from netlab.core.events import HTTP_REQUEST, RECEIVED
from netlab.protocols.http import dashboard, routes
from netlab.protocols.http.dashboard import Scope, normal_host, peer_host
from netlab.protocols.http.sse import EventStream

TOKEN = "teacher-secret"


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
    served = serve_dashboard(events, clock, hub=hub)
    try:
        page = yield curl(served.base + "/dashboard")
        teacher = yield curl(served.base + f"/dashboard?token={TOKEN}")
        wrong = yield curl(served.base + "/dashboard?token=guess")
        for query, want_all in (("", False), (f"?token={TOKEN}", True)):
            _, reader = yield open_stream(served.base + "/dashboard/stream" + query)
            try:
                ((_, snapshot),) = (yield reader.wait(1))[:1]
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
        for _, snapshot in messages
        for service in snapshot["services"] if service["name"] == "echo"
        for counter in service["counters"] if counter[0] == "connections_total"
    ]


@pytest_twisted.inlineCallbacks
def test_dashboard_stream_sends_json_snapshots(events: Any, clock: Clock) -> Any:
    """The stream sends a snapshot at once, another on a change, and stops with the client."""
    events.listening["echo"] = ["tcp 127.0.0.1:7007"]
    echo = events.counters_for("echo")
    echo.connections_total = 1
    served = serve_dashboard(events, clock)
    try:
        response, reader = yield open_stream(served.base + "/dashboard/stream")
        try:
            first = list((yield reader.wait(1)))
            clock.advance(1)
            echo.connections_total = 2
            clock.advance(1)
            messages = yield reader.wait_for(lambda m: echo_totals(m)[-1:] == [2])
        finally:
            yield reader.close()
    finally:
        yield served.close()
    assert response.code == 200
    assert response.headers.getRawHeaders(b"content-type") == [b"text/event-stream; charset=utf-8"]
    kind, snapshot = first[0]
    assert kind == "snapshot"
    assert [s["name"] for s in snapshot["services"]] == ["echo", "http"]
    service = snapshot["services"][0]
    assert service["listening"] == ["tcp 127.0.0.1:7007"]
    assert ["connections_total", "connections", 1] in service["counters"]
    assert snapshot["rooms"] is None
    assert snapshot["ready"] is True
    assert {kind for kind, _ in messages} == {"snapshot"}
    assert echo_totals(messages)[0] == 1
    # The LoopingCall stopped when the client went away.
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
