"""
The IRC front-end end to end: the real daemon in a subprocess, a real IRC
client (Twisted's C{IRCClient}), a telnet-style user and a browser-style
WebSocket user (Twisted's WebSocket client on /ws/chat) in one room, seeing
each other's joins, lines, actions and topics; and the config's refusals.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import pytest_twisted
from twisted.internet import reactor
from twisted.internet.defer import Deferred
from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol
from twisted.web.websocket import WebSocketClientEndpoint
from twisted.words.protocols import irc

from daemon import run_daemon
from helpers import Collector
from netlab.app.registry import parse
from netlab.core.config import ConfigError
from test_http_websocket import UserFactory, WebSocketUser

CONFIG = """
echo = []
udp_echo = []

[log]
level = "info"

[chat]
listen = ["tcp:0:interface=127.0.0.1"]
database = "{database}"

[irc]
enabled = true
listen = ["tcp:0:interface=127.0.0.1"]

[http]
listen = ["tcp:0:interface=127.0.0.1"]
"""


class IrcTester(irc.IRCClient):
    """A real IRC client that keeps what it heard, as tuples, and can wait for one."""

    # Its own PINGs every two minutes: none in a test that ends in seconds.
    heartbeatInterval = None

    def __init__(self, nick: str) -> None:
        self.nickname = nick
        self.heard: list[tuple[str, ...]] = []
        self.signed_on: Deferred[None] = Deferred()
        self.gone: Deferred[None] = Deferred()
        self._waiting: list[tuple[Callable[[tuple[str, ...]], bool], Deferred[Any]]] = []

    def hear(self, *what: str) -> None:
        self.heard.append(what)
        for entry in list(self._waiting):
            if entry[0](what):
                self._waiting.remove(entry)
                entry[1].callback(what)

    def wait_for(self, *what: str) -> Deferred[Any]:
        """Fires once C{what} (a prefix of a heard tuple) has been heard."""
        def test(heard: tuple[str, ...]) -> bool:
            return heard[: len(what)] == what

        d: Deferred[Any] = Deferred()
        if any(test(h) for h in self.heard):
            d.callback(what)
        else:
            self._waiting.append((test, d))
        return d

    def connectionLost(self, reason: Any = None) -> None:
        super().connectionLost(reason)
        self.gone.callback(None)

    def signedOn(self) -> None:
        self.signed_on.callback(None)

    def joined(self, channel: str) -> None:
        self.hear("joined", channel)

    def userJoined(self, user: str, channel: str) -> None:
        self.hear("userJoined", user.split("!")[0], channel)

    def privmsg(self, user: str, channel: str, message: str) -> None:
        self.hear("privmsg", user.split("!")[0], channel, message)

    def action(self, user: str, channel: str, data: str) -> None:
        self.hear("action", user.split("!")[0], channel, data)

    def topicUpdated(self, user: str, channel: str, newTopic: str) -> None:
        self.hear("topic", user.split("!")[0], channel, newTopic)

    def userQuit(self, user: str, quitMessage: str) -> None:
        self.hear("quit", user.split("!")[0], quitMessage)


@pytest.mark.timeout(90)
@pytest_twisted.inlineCallbacks
def test_irc_telnet_and_browser_users_in_one_room(tmp_path: Path) -> Any:
    """Each of the three sees the others' joins, lines and topics, in their own form."""
    daemon = run_daemon(tmp_path, CONFIG.format(database=tmp_path / "chat.sqlite3"))
    try:
        alice = IrcTester("alice")
        endpoint = TCP4ClientEndpoint(reactor, "127.0.0.1", daemon.port("irc"))
        yield connectProtocol(endpoint, alice)
        yield alice.signed_on
        yield alice.wait_for("joined", "#lobby")

        telnet = Collector()
        endpoint = TCP4ClientEndpoint(reactor, "127.0.0.1", daemon.port("chat"))
        yield connectProtocol(endpoint, telnet)
        yield telnet.wait_text(b"Choose a nick")
        telnet.send(b"bob\r\n")
        yield telnet.wait_text(b"You are now in #lobby (2 here)")
        yield alice.wait_for("userJoined", "bob", "#lobby")

        url = f"ws://127.0.0.1:{daemon.port('http')}/ws/chat"
        browser: WebSocketUser = yield Deferred.fromCoroutine(
            WebSocketClientEndpoint.new(reactor, url).connect(UserFactory())
        )
        yield browser.wait_text("Choose a nick")
        browser.say("carol")
        yield browser.wait_text("You are now in #lobby (3 here)")
        yield alice.wait_for("userJoined", "carol", "#lobby")
        yield telnet.wait_text(b"* carol has joined #lobby")

        alice.say("#lobby", "hello from irc")
        yield telnet.wait_text(b"<alice> hello from irc\r\n")
        yield browser.wait_text("<alice> hello from irc")

        telnet.send(b"hello from telnet\r\n")
        yield alice.wait_for("privmsg", "bob", "#lobby", "hello from telnet")
        yield browser.wait_text("<bob> hello from telnet")

        browser.say("hello from the browser")
        yield alice.wait_for("privmsg", "carol", "#lobby", "hello from the browser")
        yield telnet.wait_text(b"<carol> hello from the browser\r\n")

        alice.describe("#lobby", "waves")
        yield telnet.wait_text(b"* alice waves\r\n")
        yield browser.wait_text("* alice waves")

        telnet.send(b"/topic Lab day\r\n")
        yield alice.wait_for("topic", "bob", "#lobby", "Lab day")
        yield browser.wait_text("* bob set the topic of #lobby: Lab day")

        alice.topic("#lobby", "IRC topic")
        yield alice.wait_for("topic", "alice", "#lobby", "IRC topic")
        yield telnet.wait_text(b"* alice set the topic of #lobby: IRC topic\r\n")
        yield browser.wait_text("* alice set the topic of #lobby: IRC topic")

        alice.msg("bob", "just for bob")
        yield telnet.wait_text(b"*alice* just for bob\r\n")
        telnet.send(b"/msg alice just for alice\r\n")
        yield alice.wait_for("privmsg", "bob", "alice", "just for alice")

        yield telnet.close()
        yield alice.wait_for("quit", "bob")
        yield browser.close()
        yield alice.wait_for("quit", "carol")
        alice.quit("done")
        yield alice.gone
        assert daemon.stop() == 0, daemon.log()
        log = daemon.log()
        assert "irc: listening on tcp 127.0.0.1:" in log
        assert "just for" not in log  # private text never logged
    finally:
        daemon.kill()


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"chat": {"enabled": False}, "irc": {"enabled": True}},
         "x.toml: [irc].enabled = true: IRC users join the [chat] rooms: enable [chat] too"),
        ({"irc": {"server_name": "bad name"}},
         'x.toml: [irc].server_name = "bad name": must be a host name'),
        ({"irc": {"network": ""}},
         'x.toml: [irc].network = "": must be 1 to 32 letters'),
        ({"irc": {"motd": "hi\x1b[2J"}},
         'x.toml: [irc].motd = "hi\\u001b[2J": must not contain control characters'),
        ({"irc": {"ping_timeout": 0}},
         "x.toml: [irc].ping_timeout = 0: must be from 1 to 3600"),
    ],
)
def test_config_errors(data: dict[str, Any], message: str) -> None:
    """Each refused value stops the load with one line naming file, key and value."""
    with pytest.raises(ConfigError) as caught:
        parse(data, "x.toml")
    assert message in str(caught.value)
    assert "\n" not in str(caught.value)


def test_off_by_default() -> None:
    config = parse({}, "x.toml")
    assert not config.irc.enabled
    assert config.irc.listen == ("tcp:6667:interface=127.0.0.1",)
