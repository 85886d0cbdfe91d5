"""Tests for netlab.protocols.http.websocket: echo, Origin checks and the browser chat."""

from __future__ import annotations

import struct
from collections.abc import Callable
from typing import Any

import pytest_twisted
from twisted.internet import reactor
from twisted.internet.defer import Deferred, TimeoutError
from twisted.internet.interfaces import IListeningPort
from twisted.internet.task import Clock
from twisted.logger import LogLevel, globalLogPublisher
from twisted.python.failure import Failure
from twisted.web.websocket import WebSocketClientEndpoint, WebSocketTransport

from helpers import Collector, chat_user, close_all, connect, listen, make_hub
from httptest import build_site
from netlab.protocols.chat.hub import ChatHub
from netlab.protocols.chat.line import ChatFactory
from netlab.protocols.http import routes, websocket
from netlab.protocols.http.routes import Root
from netlab.protocols.http.site import NetlabSite
from netlab.protocols.http.websocket import origin_allowed
from test_flow_websocket import frame, frames

UPGRADE = (
    "GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
    "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
    "Sec-WebSocket-Version: 13\r\n{extra}\r\n"
)


class WebSocketUser:
    """A WebSocket client that keeps every message and can wait for one."""

    def __init__(self) -> None:
        self.messages: list[str | bytes] = []
        self.closed: Deferred[None] = Deferred()
        self.reason: Failure | None = None
        self.transport: WebSocketTransport | None = None
        self._waiting: list[tuple[Callable[[str | bytes], bool], Deferred[str | bytes]]] = []

    def negotiationStarted(self, transport: WebSocketTransport) -> None:
        self.transport = transport

    def negotiationFinished(self) -> None:
        pass

    def textMessageReceived(self, message: str) -> None:
        self._arrived(message)

    def bytesMessageReceived(self, data: bytes | bytearray) -> None:
        self._arrived(bytes(data))

    def pongReceived(self, payload: bytes) -> None:
        pass

    def connectionLost(self, reason: Failure) -> None:
        waiting, self._waiting = self._waiting, []
        for _, d in waiting:
            d.errback(AssertionError(f"closed while waiting; got {self.messages!r}"))
        self.reason = reason
        self.closed.callback(None)

    def _arrived(self, message: str | bytes) -> None:
        self.messages.append(message)
        for entry in list(self._waiting):
            if entry[0](message):
                self._waiting.remove(entry)
                entry[1].callback(message)

    def wait_for(self, test: Callable[[str | bytes], bool]) -> Deferred[str | bytes]:
        """Fires with the first message, already here or to come, that passes C{test}."""
        d: Deferred[str | bytes] = Deferred()
        for message in self.messages:
            if test(message):
                d.callback(message)
                return d
        self._waiting.append((test, d))
        return d

    def wait_text(self, text: str) -> Deferred[str | bytes]:
        return self.wait_for(lambda m: isinstance(m, str) and text in m)

    def say(self, text: str) -> None:
        assert self.transport is not None
        self.transport.sendTextMessage(text)

    def close(self) -> Deferred[None]:
        assert self.transport is not None
        self.transport.loseConnection()
        return self.closed


class UserFactory:
    def buildProtocol(self, url: str) -> WebSocketUser:
        return WebSocketUser()


def open_socket(port: IListeningPort, path: str) -> Deferred[WebSocketUser]:
    url = f"ws://127.0.0.1:{port.getHost().port}{path}"
    endpoint = WebSocketClientEndpoint.new(reactor, url)
    return Deferred.fromCoroutine(endpoint.connect(UserFactory()))


def web_site(
    events: Any, hub: ChatHub | None = None, clock: Any = reactor, **settings: Any
) -> NetlabSite:
    """A site with only the WebSocket endpoints and the chat page."""
    return build_site(events, clock, routes.of(websocket), root=Root(), hub=hub, **settings)


def chat_hub(events: Any, clock: Any = reactor, **settings: Any) -> ChatHub:
    """A chat hub on the real reactor unless given a clock."""
    return make_hub(events, clock, **settings)


def ws_disconnected(events: Any, kind: str = "disconnected") -> Deferred[dict[str, Any]]:
    """Fires at the server's next WebSocket event of C{kind} (a disconnect by default)."""
    d: Deferred[dict[str, Any]] = Deferred()

    def seen(event: dict[str, Any]) -> None:
        if event["netlab_event"] == kind and event["service"] == "http-ws":
            unsubscribe()
            d.callback(event)

    unsubscribe = events.subscribe(seen)
    return d


def masked_text(payload: bytes) -> bytes:
    """One short text frame as a client must send it: masked (RFC 6455 5.3)."""
    mask = b"abcd"
    body = bytes(byte ^ mask[i % 4] for i, byte in enumerate(payload))
    return bytes([0x81, 0x80 | len(payload)]) + mask + body


@pytest_twisted.inlineCallbacks
def raw_upgrade(site: NetlabSite, path: str, extra: str = "") -> Any:
    """Send a hand-written upgrade request; the raw answer up to the blank line."""
    port = listen(site)
    client: Collector = yield connect(port)
    client.send(UPGRADE.format(path=path, port=port.getHost().port, extra=extra).encode())
    data = yield client.wait_text(b"\r\n\r\n")
    yield close_all(client)
    yield site.when_idle()
    yield port.stopListening()
    return data


def test_origin_rules() -> None:
    """An Origin passes when its host, and its port where the entry names one, is listed."""
    allowed = ("localhost", "127.0.0.1", "[::1]", "lab.example.org:8443")
    assert origin_allowed("http://localhost:8080", allowed)
    assert origin_allowed("http://LOCALHOST", allowed)
    assert origin_allowed("http://[::1]:8080", allowed)
    assert origin_allowed("https://lab.example.org:8443", allowed)
    assert not origin_allowed("https://lab.example.org", allowed)
    assert not origin_allowed("http://localhost.evil.example", allowed)
    assert not origin_allowed("http://evil.example", allowed)
    assert not origin_allowed("null", allowed)
    assert not origin_allowed("http://localhost:99999", allowed)


@pytest_twisted.inlineCallbacks
def test_echo_text_and_binary(events: Any) -> Any:
    """Text comes back as text and binary as binary, byte for byte."""
    site = web_site(events)
    port = listen(site)
    user = yield open_socket(port, "/ws/echo")
    user.say("héllo ☃")
    echoed = yield user.wait_for(lambda m: True)
    assert echoed == "héllo ☃"
    assert user.transport is not None
    user.transport.sendBytesMessage(b"\x00\xff binary \x81")
    echoed = yield user.wait_for(lambda m: isinstance(m, bytes))
    assert echoed == b"\x00\xff binary \x81"
    gone = ws_disconnected(events)
    yield user.close()
    yield gone
    yield site.when_idle()
    yield port.stopListening()
    counters = events.counters["http-ws"]
    assert counters.connections_total == 1 and counters.connections_open == 0
    assert counters.extra["messages_in"] == 2 and counters.extra["messages_out"] == 2
    assert [e["peer"] for e in events.kinds("connected") if e["service"] == "http-ws"]
    assert any(e["status"] == 101 for e in events.kinds("http_request"))


@pytest_twisted.inlineCallbacks
def test_allowed_origin_and_no_origin_upgrade(events: Any) -> Any:
    """A listed Origin, or none at all (a non-browser client), is upgraded (101)."""
    site = web_site(events)
    data = yield raw_upgrade(site, "/ws/echo", "Origin: http://127.0.0.1:8080\r\n")
    assert data.startswith(b"HTTP/1.1 101 ")
    data = yield raw_upgrade(site, "/ws/echo")
    assert data.startswith(b"HTTP/1.1 101 ")


@pytest_twisted.inlineCallbacks
def test_foreign_origin_refused_before_upgrade(events: Any) -> Any:
    """A page from another site gets 403, no upgrade, and a refused event."""
    site = web_site(events, allowed_origins=("localhost",))
    data = yield raw_upgrade(site, "/ws/echo", "Origin: https://evil.example\r\n")
    assert data.startswith(b"HTTP/1.1 403 ")
    assert b"\r\nupgrade:" not in data.lower()
    refused = [e for e in events.kinds("refused") if e["service"] == "http-ws"]
    assert len(refused) == 1 and "evil.example" in refused[0]["limit"]
    data = yield raw_upgrade(site, "/ws/echo", "Origin: http://127.0.0.1\r\n")
    assert data.startswith(b"HTTP/1.1 403 ")


@pytest_twisted.inlineCallbacks
def test_plain_get_is_told_to_upgrade(events: Any) -> Any:
    """A GET or HEAD without the WebSocket handshake gets 426, in plain text."""
    site = web_site(events)
    port = listen(site)
    for method in (b"GET", b"HEAD"):
        client: Collector = yield connect(port)
        client.send(method + b" /ws/echo HTTP/1.0\r\n\r\n")
        yield client.closed
        head, _, body = client.data.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.0 426 ")
        assert b"content-type: text/plain; charset=utf-8" in head.lower()
        assert b"upgrade: websocket" in head.lower()
        assert body == (b"" if method == b"HEAD" else
                        b"426 Upgrade Required: this address takes WebSocket connections only.\n")
    yield site.when_idle()
    yield port.stopListening()


@pytest_twisted.inlineCallbacks
def test_oversized_echo_message_closes(events: Any) -> Any:
    """A message over max_body is not buffered: the socket is closed (1009)."""
    site = web_site(events, max_body=1000)
    port = listen(site)
    user = yield open_socket(port, "/ws/echo")
    gone = ws_disconnected(events)
    user.say("x" * 5000)
    event = yield gone
    assert event["reason"] == "message too big"
    yield user.closed
    yield site.when_idle()
    yield port.stopListening()
    assert [e for e in events.kinds("dropped") if e["service"] == "http-ws"]


@pytest_twisted.inlineCallbacks
def test_client_close_right_after_a_large_echo_closes_the_tcp_connection(
    events: Any, clock: Clock
) -> Any:
    """
    A client's close frame read in the same chunk as the end of a message
    whose echo overfills the write buffer (so the echo has just paused
    reading) is answered and the TCP connection closed once the echo is out,
    not held open until the idle timeout (Autobahn 7.1.6).  The site's timers
    run on C{clock}, never advanced: only a prompt close lets this pass.
    """
    site = web_site(events, clock=clock, max_body=1_000_000)
    port = listen(site)
    client: Collector = yield connect(port)
    try:
        client.send(UPGRADE.format(path="/ws/echo", port=port.getHost().port,
                                   extra="").encode())
        head = yield client.wait_text(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 101 ")
        start = len(head)
        # All but the last bytes of a message far over Twisted's 64 KiB write
        # buffer, then a ping: its pong says the server has read that much.
        large = b"x" * 300_000
        client.send(frame(large, final=False) + frame(b"sync", opcode=0x9))
        yield client.wait_text(b"\x8a\x04sync")
        # The message's last fragment and the close in one small segment: one read.
        client.send(frame(b"end", opcode=0x0) + frame(struct.pack("!H", 1000), opcode=0x8))
        # Bounded in real time; the client's own Deferred stays for the cleanup.
        promptly: Deferred[None] = Deferred()
        client.closed.addCallback(lambda _: None if promptly.called else promptly.callback(None))
        try:
            yield promptly.addTimeout(10, reactor)
        except TimeoutError:
            # Not reading any more, the server would not see the client go
            # either: its idle timer ends the connection, for a clean failure.
            clock.advance(site.context.settings.idle_timeout)
            yield client.closed
            raise AssertionError(
                "closed by the idle timer, not after the client's close") from None
    finally:
        yield close_all(client)
        yield site.when_idle()
        yield port.stopListening()
    assert frames(client.data[start:]) == [
        (0xA, b"sync"), (0x1, large + b"end"), (0x8, struct.pack("!H", 1000)),
    ]
    disconnected = [e for e in events.kinds("disconnected") if e["service"] == "http-ws"]
    assert [e["reason"] for e in disconnected] == ["closed by client"]


@pytest_twisted.inlineCallbacks
def test_upgrade_without_host_is_400(events: Any) -> Any:
    """
    A raw client's upgrade without a Host header gets 400, not a 500 with a
    critical traceback in the log.
    """
    critical: list[dict[str, Any]] = []

    def observe(event: dict[str, Any]) -> None:
        if event.get("log_level") == LogLevel.critical or event.get("isError"):
            critical.append(event)

    globalLogPublisher.addObserver(observe)
    try:
        site = web_site(events)
        port = listen(site)
        client: Collector = yield connect(port)
        client.send(UPGRADE.format(path="/ws/echo", port=0, extra="").replace(
            "Host: 127.0.0.1:0\r\n", "").encode())
        data = yield client.wait_text(b"\r\n\r\n")
        yield close_all(client)
        yield site.when_idle()
        yield port.stopListening()
    finally:
        globalLogPublisher.removeObserver(observe)
    assert data.startswith(b"HTTP/1.1 400 ")
    assert not critical
    assert [e["status"] for e in events.kinds("http_request")] == [400]


@pytest_twisted.inlineCallbacks
def test_chat_without_hub_is_404(events: Any) -> Any:
    """With no chat running, neither /chat nor /ws/chat exists."""
    site = web_site(events)
    data = yield raw_upgrade(site, "/ws/chat")
    assert data.startswith(b"HTTP/1.1 404 ")
    data = yield raw_upgrade(site, "/chat")
    assert data.startswith(b"HTTP/1.1 404 ")


@pytest_twisted.inlineCallbacks
def test_chat_page_is_static_html_with_csp(events: Any) -> Any:
    """/chat is the page, with a policy that allows only its own script."""
    site = web_site(events, hub=chat_hub(events))
    port = listen(site)
    client: Collector = yield connect(port)
    client.send(b"GET /chat HTTP/1.0\r\n\r\n")
    yield client.closed
    yield site.when_idle()
    yield port.stopListening()
    head, _, body = client.data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.0 200 ")
    assert b"text/html; charset=utf-8" in head.lower()
    assert b"script-src 'sha256-" in head.lower()
    assert b"innerHTML" not in body and b"textContent" in body


@pytest_twisted.inlineCallbacks
def test_browser_and_telnet_users_share_the_room(events: Any) -> Any:
    """A WebSocket user and a telnet user talk; hostile text is cleaned; long lines refused."""
    hub = chat_hub(events, max_line=64)
    chat = ChatFactory(hub.settings, events, reactor, hub)
    chat_port = listen(chat)
    site = web_site(events, hub=hub)
    web_port = listen(site)

    web = yield open_socket(web_port, "/ws/chat")
    yield web.wait_text("Choose a nick")
    web.say("webby")
    yield web.wait_text("You are now in #lobby")
    tcp = yield chat_user(chat_port, "tcpuser")
    yield web.wait_text("* tcpuser has joined #lobby")

    web.say("hello from the web")
    yield tcp.wait_text(b"<webby> hello from the web\r\n")
    tcp.send(b"hi back\r\n")
    line = yield web.wait_text("<tcpuser> hi back")
    assert not line.endswith("\r\n")

    web.say("\x1b[2J\x1b]0;pwned\x07evil\u202e text\r\nmore")
    data = yield tcp.wait_text(b"evil text")
    assert b"\x1b" not in data and "\u202e".encode() not in data

    before = len(web.messages)
    web.say("y" * 65)
    web.say("short one")
    yield tcp.wait_text(b"<webby> short one")
    # The error goes to another socket than the line: wait for it too.
    yield web.wait_text("ERROR line longer")
    errors = [m for m in web.messages[before:] if "ERROR" in m]
    assert errors == ["ERROR line longer than 64 bytes, dropped"]
    assert b"yyy" not in tcp.data

    web.say("/who")
    yield web.wait_text("In #lobby (2): webby, tcpuser")

    gone = ws_disconnected(events)
    yield web.close()
    yield tcp.wait_text(b"* webby has quit (connection lost)")
    yield gone
    yield close_all(tcp)
    yield chat.when_idle()
    yield site.when_idle()
    yield close_all(chat_port, web_port)


@pytest_twisted.inlineCallbacks
def test_hub_ends_browser_session(events: Any) -> Any:
    """/quit from the browser ends its socket; the room hears the quit reason."""
    hub = chat_hub(events)
    site = web_site(events, hub=hub)
    port = listen(site)
    one = yield open_socket(port, "/ws/chat")
    one.say("one")
    yield one.wait_text("You are now in #lobby")
    two = yield open_socket(port, "/ws/chat")
    two.say("two")
    yield two.wait_text("You are now in #lobby")
    one.say("/quit see you")
    yield one.closed
    yield two.wait_text("* one has quit (quit: see you)")
    yield two.close()
    yield site.when_idle()
    yield port.stopListening()
    assert not hub.sessions


@pytest_twisted.inlineCallbacks
def test_idle_browser_warned_then_closed(events: Any, clock: Clock) -> Any:
    """An idle browser user is warned first, then disconnected, like a telnet user."""
    hub = chat_hub(events, clock, idle_timeout=100, idle_warning=10)
    site = web_site(events, hub=hub, clock=clock)
    port = listen(site)
    web = yield open_socket(port, "/ws/chat")
    web.say("sleepy")
    yield web.wait_text("You are now in #lobby")
    clock.advance(90)
    yield web.wait_text("type something within 10 seconds or be disconnected")
    web.say("/who")
    yield web.wait_text("In #lobby (1): sleepy")
    clock.advance(89)
    clock.advance(10)
    yield web.wait_text("type something within 10 seconds")
    gone = ws_disconnected(events)
    clock.advance(10)
    yield web.wait_text("Idle for 100 seconds, closing. Bye.")
    event = yield gone
    assert event["reason"] == "idle timeout"
    yield web.closed
    yield site.when_idle()
    yield port.stopListening()


@pytest_twisted.inlineCallbacks
def test_browser_that_stops_reading_is_dropped(events: Any) -> Any:
    """A browser whose unsent backlog passes max_output is dropped; the others go on."""
    hub = chat_hub(events, max_line=1000, flood_lines=100_000)
    chat = ChatFactory(hub.settings, events, reactor, hub)
    chat_port = listen(chat)
    site = web_site(events, hub=hub)
    web_port = listen(site)
    stuck: Collector = yield connect(web_port)
    stuck.send(UPGRADE.format(path="/ws/chat", port=web_port.getHost().port, extra="").encode())
    yield stuck.wait_text(b"Choose a nick")
    stuck.send(masked_text(b"stuck"))
    yield stuck.wait_text(b"You are now in #lobby")
    assert stuck.transport is not None
    stuck.transport.pauseProducing()  # type: ignore[attr-defined]
    talker = yield chat_user(chat_port, "talker")
    listener = yield chat_user(chat_port, "listener")
    dropped = ws_disconnected(events, "dropped")
    # Bounded: 20,000 lines (18 MB), far more than loopback buffers hold.
    talker.send(b"".join(b"%05d %s\r\n" % (i, b"x" * 900) for i in range(20_000)))
    event = yield dropped
    assert event["what"] == "a slow reader"
    talker.send(b"still here\r\n")
    yield listener.wait_text(b"<talker> still here")
    yield close_all(talker, listener, stuck)
    yield chat.when_idle()
    yield site.when_idle()
    yield close_all(chat_port, web_port)


@pytest_twisted.inlineCallbacks
def test_hub_shutdown_closes_browsers(events: Any) -> Any:
    """When the chat shuts down, browser users hear so and their sockets close."""
    hub = chat_hub(events)
    site = web_site(events, hub=hub)
    port = listen(site)
    web = yield open_socket(port, "/ws/chat")
    web.say("leaving")
    yield web.wait_text("You are now in #lobby")
    gone = ws_disconnected(events)
    hub.shutdown()
    yield web.wait_text("* server shutting down")
    event = yield gone
    assert event["reason"] == "server shutdown"
    yield web.closed
    yield site.when_idle()
    yield port.stopListening()
    assert not hub.sessions
