"""
The chat's payload samples at level debug never hold the text of a private
message or a password, however the bytes are cut into reads: in memory
(every split of a line), and against the real daemon's log and its
instructor's /events stream.
"""

from __future__ import annotations

import json
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from twisted.internet.defer import succeed

from conftest import RecordedEvents
from daemon import running_daemon
from helpers import make_hub
from memory import MemoryTCP, PassClock, serve
from netlab.core.events import RECEIVED, SENT
from netlab.core.passwords import hash_password, verify_password
from netlab.protocols.chat.line import ChatFactory
from test_chat_e2e import LineClient

OPER_PASSWORD = "Oq7Zx3Vw"
NICK_PASSWORD = "Nk5Jh8Ty"
PRIVATE_TEXT = "Pz4Qm9Wc"
SECRETS = (OPER_PASSWORD, NICK_PASSWORD, PRIVATE_TEXT)


def leaks(samples: list[str]) -> list[str]:
    """The samples that hold any three characters in a row of a secret."""
    pieces = {s[i:i + 3] for s in SECRETS for i in range(len(s) - 2)}
    return [text for text in samples if any(piece in text for piece in pieces)]


class Chat:
    """The telnet front-end on a hub with an operator and a registered nick, in memory."""

    def __init__(self) -> None:
        self.events = RecordedEvents("debug")
        self.clock = PassClock()
        nick_hash = hash_password(NICK_PASSWORD, n=2**10)
        self.hub = make_hub(
            self.events, self.clock, None, flood_lines=10_000,
            oper_password_hash=hash_password(OPER_PASSWORD, n=2**10),
            verify=lambda password, stored: succeed(verify_password(password, stored)),
        )
        self.hub.store = Registered({"owner": nick_hash})  # type: ignore[assignment]
        self.factory = ChatFactory(self.hub.settings, self.events, self.clock, self.hub)
        self.ports = iter(range(40000, 41000))

    def connect(self) -> MemoryTCP:
        _, transport = serve(self.factory, self.clock, port=next(self.ports))
        self.clock.advance(0)
        return transport

    def type(self, user: MemoryTCP, data: bytes, cut: int | None = None) -> bytes:
        """C{user} sends C{data}, in two reads cut at C{cut}; what they are sent back."""
        pieces = [data] if cut is None else [data[:cut], data[cut:]]
        for piece in pieces:
            user.peer_write(piece)
            self.clock.advance(0)
        return user.peer_read()

    def samples(self) -> list[str]:
        return [e["sample"] for e in self.events.seen if e["netlab_event"] in (RECEIVED, SENT)]


class Registered:
    """A store with registered nicks and no history, enough for the hub."""

    def __init__(self, nicks: dict[str, str]) -> None:
        self.nicks = nicks

    def registered(self, nick: str) -> str | None:
        return self.nicks.get(nick.lower())

    def recent(self, room: str) -> list[Any]:
        return []

    def append(self, line: Any) -> None:
        pass


SECRET_LINES = [
    f"/msg bob {PRIVATE_TEXT}".encode(),
    f"  /MSG bob   {PRIVATE_TEXT} and more".encode(),
    f"\x1b[1m/msg bob {PRIVATE_TEXT}".encode(),
    f"/oper {OPER_PASSWORD}".encode(),
    f"/identify {NICK_PASSWORD}".encode(),
    f"/register {NICK_PASSWORD}".encode(),
    f"/nick owner {NICK_PASSWORD}".encode(),
]


@pytest.mark.parametrize("line", SECRET_LINES)
def test_no_split_of_a_secret_line_shows_its_secret(line: bytes) -> None:
    """However a private or password-bearing line is cut into reads, no sample shows it."""
    for cut in [None, *range(1, len(line) + 2)]:
        chat = Chat()
        alice, bob = chat.connect(), chat.connect()
        chat.type(alice, b"alice\r\n")
        chat.type(bob, b"bob\r\n")
        chat.type(alice, line + b"\r\n", cut)
        chat.clock.advance(0)
        bob.peer_read()
        assert not leaks(chat.samples()), (cut, chat.samples())
    assert any("[private]" in s or "[password]" in s for s in chat.samples())


def test_private_message_sample_shows_the_command_and_target() -> None:
    """What is left of a /msg in the samples: the command and its target, both ways."""
    chat = Chat()
    alice, bob = chat.connect(), chat.connect()
    chat.type(alice, b"alice\r\n")
    chat.type(bob, b"bob\r\n")
    del chat.events.seen[:]
    assert chat.type(alice, f"/msg bob {PRIVATE_TEXT}\r\n".encode()).endswith(
        f"-> *bob* {PRIVATE_TEXT}\r\n".encode()
    )
    assert bob.peer_read().endswith(f"*alice* {PRIVATE_TEXT}\r\n".encode())
    assert sorted(chat.samples()) == [
        ": -> *bob* [private]\\r\\n",
        ": /msg bob [private]\\r\\n",
        ": [00:00] *alice* [private]\\r\\n",
    ]


def test_password_prompt_answers_never_sampled() -> None:
    """Answers to Password:, typed ahead with the nick or wrong, are never shown."""
    chat = Chat()
    user = chat.connect()
    shown = chat.type(user, f"owner\r\nwrong-{NICK_PASSWORD}\r\n{NICK_PASSWORD}\r\n".encode())
    assert b"Hello owner!" in shown
    assert not leaks(chat.samples()), chat.samples()
    assert ": owner\\r\\n[password]\\r\\n[password]\\r\\n" in chat.samples()


def test_public_lines_still_sampled_raw() -> None:
    """Room lines and telnet negotiation are shown as they came, escapes and all."""
    chat = Chat()
    alice = chat.connect()
    chat.type(alice, b"alice\r\n")
    chat.type(alice, b"\xff\xfb\x18hello room\r\n")
    assert ": \\xff\\xfb\\x18hello room\\r\\n" in chat.samples()


# -- the real daemon ------------------------------------------------------------------

DAEMON_CONFIG = """
udp_echo = []
echo = []

[log]
level = "debug"

[http]
listen = ["tcp:0:interface=127.0.0.1"]
instructor_token = "teacher-token"

[chat]
listen = ["tcp:0:interface=127.0.0.1"]
database = ":memory:"
oper_password_hash = "{oper_hash}"
"""


def test_daemon_at_debug_logs_no_secret(tmp_path: Path) -> None:
    """
    At level debug, neither the daemon's log nor the instructor's /events
    stream holds a private message or a password, while both hold samples.
    """
    config = DAEMON_CONFIG.format(oper_hash=hash_password(OPER_PASSWORD, n=2**10))
    with running_daemon(tmp_path, config) as daemon:
        chat_port, http_port = daemon.port("chat"), daemon.port("http")
        stream = urllib.request.urlopen(
            f"http://127.0.0.1:{http_port}/events/stream?token=teacher-token", timeout=20
        )
        alice, bob = LineClient(chat_port, "alice"), LineClient(chat_port, "bob")
        alice.send(f"/register {NICK_PASSWORD}")
        alice.expect("is now registered")
        alice.send(f"/msg bob {PRIVATE_TEXT}")
        bob.expect(PRIVATE_TEXT)
        alice.send(f"/oper wrong-{OPER_PASSWORD}")
        alice.expect("Wrong password.")
        alice.send(f"/oper {OPER_PASSWORD}")
        alice.expect("You are now an operator")
        alice.send("/quit")
        alice.expect("Bye.")
        again = LineClient(chat_port)
        again.expect("Choose a nick")
        again.send("alice")
        again.expect("Password:")
        again.send(NICK_PASSWORD)
        again.expect("Hello alice!")
        again.send("/quit done")
        again.expect("Bye.")
        # The stream has every event up to the last quit: read that far.
        streamed: list[str] = []
        while not any("quit: done" in text for text in streamed):
            line = stream.readline().decode()
            assert line, f"the stream ended; it had {streamed}"
            if line.startswith("data: ") and line != "data: {}\n":
                streamed.append(json.loads(line[6:])["text"])
        stream.close()
        for client in (alice, bob, again):
            client.close()
    logged = daemon.lines
    assert any("received" in line and "[private]" in line for line in logged)
    assert any("received" in line and "[password]" in line for line in logged)
    assert not leaks(logged), leaks(logged)
    assert any("[private]" in text for text in streamed)
    assert not leaks(streamed), leaks(streamed)
