"""
The SMTP service in memory: each limit (size before and during DATA,
recipients, messages per connection and per minute, the command and data
deadlines on a task.Clock, line length, errors, junk commands), bad
commands, pipelining around a password check, STARTTLS dropping what came
in the clear, and the Received: header no client can inject into.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import ITLSTransport
from zope.interface import implementer

import selfsigned
from mailtest import Client, MailLab, b64, make_labs, plain, send_mail
from memory import MemoryTCP, serve
from netlab.core.passwords import hash_password

HASH = hash_password("right", n=2**10)


labs = pytest.fixture(make_labs)


@pytest.fixture
def lab(labs: Callable[..., MailLab]) -> MailLab:
    return labs()


def client(lab: MailLab, host: str = "127.0.0.1", port: int = 40000) -> Client:
    c = Client(lab.smtp, lab.clock, host, port)
    assert c.greeting.startswith(b"220 netlab.test ESMTP")
    c.say("EHLO client.test")
    return c


def stored(lab: MailLab) -> list[bytes]:
    return [lab.store.data(m.id) or b"" for m in lab.store.messages_for(None)]


def test_a_message_is_stored_once_for_all_its_recipients(lab: MailLab) -> None:
    """Two recipients (one named twice), one stored message, one delivery each."""
    c = client(lab)
    replies = send_mail(c, "a@x.test", ["b@x.test", "B@x.test", "c@y.test"],
                        "Subject: hi\n\nhello\n..dot\n")
    assert replies.endswith(b"354 Continue\r\n250 Delivery in progress\r\n")
    [message] = lab.store.messages_for(None)
    assert message.envelope.recipients == ("b@x.test", "c@y.test")
    assert message.subject == "hi"
    assert (lab.store.data(message.id) or b"").endswith(b"Subject: hi\r\n\r\nhello\r\n.dot\r\n")
    assert [m.id for m in lab.store.mailbox("b")] == [message.id]
    assert lab.smtp.counters.extra["messages_accepted"] == 1


def test_size_declared_too_big_is_552_before_the_body(lab: MailLab) -> None:
    """MAIL FROM with SIZE= over the cap: 552 at once, before any DATA."""
    c = client(lab)
    limit = lab.settings.max_message_size
    reply = c.say(f"MAIL FROM:<a@x.test> SIZE={limit + 1}")
    assert reply.startswith(b"552 5.3.4 Message too big")
    assert c.say("RCPT TO:<b@x.test>").startswith(b"503")
    assert c.say(f"MAIL FROM:<a@x.test> SIZE={limit} BODY=8BITMIME").startswith(b"250")
    assert lab.smtp.counters.extra["refused_size"] == 1
    assert any("larger than max_message_size" in t for t in lab.texts("dropped"))


def test_size_over_the_cap_during_data_is_552_at_the_end(labs: Callable[..., MailLab]) -> None:
    """A message that grows past the cap is read to its end, dropped, and refused with 552."""
    lab = labs(max_message_size=1024)
    c = client(lab)
    replies = send_mail(c, "a@x.test", ["b@x.test"], "Subject: big\n\n" + "x" * 60 + "\n" * 0
                        + ("y" * 70 + "\n") * 20)
    assert replies.endswith(b"552 5.3.4 Message too big: over max_message_size (1024 bytes)\r\n")
    assert stored(lab) == []
    assert send_mail(c, "a@x.test", ["b@x.test"], "Subject: small\n\nok\n").endswith(
        b"250 Delivery in progress\r\n")
    assert len(stored(lab)) == 1
    assert len([t for t in lab.texts("dropped") if "max_message_size" in t]) == 1


def test_recipients_cap(labs: Callable[..., MailLab]) -> None:
    """Past max_recipients, each further RCPT gets 452; the message goes to the first ones."""
    lab = labs(max_recipients=2)
    c = client(lab)
    c.say("MAIL FROM:<a@x.test>")
    assert c.say("RCPT TO:<1@x.test>").startswith(b"250")
    assert c.say("RCPT TO:<2@x.test>").startswith(b"250")
    assert c.say("RCPT TO:<3@x.test>") == b"452 4.5.3 Too many recipients (limit 2)\r\n"
    assert c.say("DATA").startswith(b"354")
    assert c.say(b"Subject: x\r\n\r\nx\r\n.\r\n").startswith(b"250")
    assert lab.store.messages_for(None)[0].envelope.recipients == ("1@x.test", "2@x.test")
    assert lab.smtp.counters.extra["refused_recipients"] == 1


def test_messages_per_connection(labs: Callable[..., MailLab]) -> None:
    """The connection's third MAIL is refused with 452; a new connection may send again."""
    lab = labs(max_messages_per_connection=2)
    c = client(lab)
    for _ in range(2):
        replies = send_mail(c, "a@x.test", ["b@x.test"], "x\n")
        assert replies.endswith(b"250 Delivery in progress\r\n")
    assert c.say("MAIL FROM:<a@x.test>").startswith(b"452 4.5.3 Too many messages on one")
    other = client(lab, port=40001)
    assert other.say("MAIL FROM:<a@x.test>").startswith(b"250")


def test_messages_per_minute_per_host(labs: Callable[..., MailLab]) -> None:
    """A host's MAILs past messages_per_minute get 450 until the bucket refills; others go on."""
    lab = labs(messages_per_minute=2)
    c = client(lab)
    for _ in range(2):
        assert c.say("MAIL FROM:<a@x.test>").startswith(b"250")
        c.say("RSET")
    assert c.say("MAIL FROM:<a@x.test>").startswith(b"450 4.7.1 Too many messages from 127")
    assert client(lab, host="127.0.0.2").say("MAIL FROM:<a@x.test>").startswith(b"250")
    lab.clock.advance(30)
    assert c.say("MAIL FROM:<a@x.test>").startswith(b"250")


def test_command_deadline_counts_from_the_last_whole_line(lab: MailLab) -> None:
    """Bytes trickled without a line end do not keep the session: 421 at idle_timeout."""
    c = client(lab)
    for _ in range(5):
        lab.clock.advance(10)
        c.say(b"N")
    lab.clock.advance(lab.settings.idle_timeout - 50)
    assert c.read().startswith(b"421 netlab.test no complete command in 60 seconds")
    assert c.closed


def test_data_deadline(lab: MailLab) -> None:
    """The whole message must come within data_timeout, however steadily it trickles."""
    c = client(lab)
    c.say(b"MAIL FROM:<a@x.test>\r\nRCPT TO:<b@x.test>\r\nDATA\r\n")
    for _ in range(int(lab.settings.data_timeout // 50) - 1):
        lab.clock.advance(50)
        assert c.say(b"line\r\n") == b""
    lab.clock.advance(50)
    assert c.read().startswith(b"421 netlab.test the message did not come within 300 seconds")
    assert c.closed
    assert stored(lab) == []
    assert lab.smtp.counters.extra["refused_data_timeout"] == 1


def test_line_too_long(lab: MailLab) -> None:
    """A command over max_line is answered 500 once, however it arrives; the next line is read."""
    c = client(lab)
    limit = lab.settings.max_line
    c.transport.peer_write(b"NOOP " + b"x" * limit)
    c.transport.peer_write(b"x" * 5000)
    assert c.read() == b""
    assert c.say(b"tail\r\nNOOP\r\n") == (
        f"500 5.5.2 Line too long: over max_line ({limit})\r\n250 2.0.0 OK\r\n".encode()
    )
    assert len(c.protocol.buffer) == 0


def test_line_too_long_in_data_refuses_the_message(lab: MailLab) -> None:
    """A message line over max_line makes the message's end 500; nothing is stored."""
    c = client(lab)
    replies = send_mail(c, "a@x.test", ["b@x.test"], "Subject: x\n\n" + "z" * 2000 + "\nend\n")
    assert replies.endswith(b"500 5.5.2 Line too long: over max_line (1000)\r\n")
    assert stored(lab) == []


@pytest.mark.parametrize(
    ("command", "reply"),
    [
        ("FOO bar", b"500 Command not implemented"),
        ("", b"500 Error: bad syntax"),
        ("MAIL FROM:<a@x.test> SMUGGLE=1", b"555 5.5.4 MAIL FROM parameter not recognized: "),
        ("MAIL TO:<a@x.test>", b"501 Syntax error"),
        ("MAIL FROM:<a@x.test> junk <", b"555 5.5.4 MAIL FROM parameter not recognized: "),
        ("RCPT TO:<b@x.test>", b"503 Must have sender before recipient"),
        ("DATA", b"503 Must have valid receiver and originator"),
        ("VRFY bob", b"252 2.5.2 netlab does not verify addresses"),
        ("EXPN staff", b"502 5.5.1 EXPN is not offered here"),
        ("AUTH CRAM-MD5", b"504 Unrecognized authentication type"),
        ("AUTH PLAIN !!!", b"501 5.5.2 Malformed AUTH response"),
        ("AUTH PLAIN " + b64("no-nul"), b"501 5.5.2 Malformed AUTH response"),
        ("STARTTLS", b"454 TLS not available"),
    ],
)
def test_bad_commands(lab: MailLab, command: str, reply: bytes) -> None:
    """One reply each, one logged event for an error (5xx), and the session goes on."""
    c = client(lab)
    assert c.say(command).startswith(reply)
    assert c.say("NOOP") == b"250 2.0.0 OK\r\n"
    errors = [t for t in lab.texts("dropped")]
    assert len(errors) == (1 if reply.startswith(b"5") and not reply.startswith(b"5.") else 0)


def test_too_many_errors_close_the_session(lab: MailLab) -> None:
    """Past max_errors refused commands: 421 and the close."""
    c = client(lab)
    replies = c.say(b"BAD\r\n" * (lab.settings.max_errors + 5))
    assert replies.count(b"500 ") == lab.settings.max_errors + 1
    assert replies.endswith(b"421 netlab.test too many errors (11); closing\r\n")
    assert c.closed


def test_too_many_junk_commands(lab: MailLab) -> None:
    """NOOPs past max_junk_commands: 421 and the close (EHLO counted too)."""
    c = client(lab)
    replies = c.say(b"NOOP\r\n" * lab.settings.max_junk_commands)
    assert replies.count(b"250 2.0.0 OK") == lab.settings.max_junk_commands - 1
    assert replies.endswith(b"421 netlab.test too many commands that send nothing (limit 100)\r\n")


def test_auth_login_and_plain_with_any_login(lab: MailLab) -> None:
    """AUTH LOGIN asks Username: and Password:; the stored message names who logged in."""
    c = client(lab)
    assert c.say("AUTH LOGIN") == b"334 " + b64("Username:").encode() + b"\r\n"
    assert c.say(b64("alice")) == b"334 " + b64("Password:").encode() + b"\r\n"
    assert c.say(b64("pw")) == b"235 Authentication successful.\r\n"
    assert c.say("AUTH PLAIN " + plain("x", "y")).startswith(b"503 Already authenticated")
    send_mail(c, "alice@x.test", ["b@x.test"], "x\n")
    [message] = lab.store.messages_for("alice")
    assert message.envelope.user == "alice"
    assert b"with ESMTPA id" in (lab.store.data(message.id) or b"")
    assert lab.texts("login") == ["smtp: alice (127.0.0.1:40000) logged in (AUTH LOGIN)"]


def test_pipelined_commands_wait_for_the_password_check(labs: Callable[..., MailLab]) -> None:
    """MAIL sent right behind AUTH is answered after the check, as authenticated."""
    checks: list[Deferred[bool]] = []

    def verify_later(password: str, encoded: str) -> Deferred[bool]:
        d: Deferred[bool] = Deferred()
        checks.append(d)
        return d

    lab = labs(verify=verify_later, auth="users", users=(f"alice:{HASH}",), require_auth=True)
    c = client(lab)
    assert c.say(f"AUTH PLAIN {plain('alice', 'right')}\r\nMAIL FROM:<alice@x.test>\r\n"
                 .encode()) == b""
    checks[0].callback(True)
    assert c.read() == b"235 Authentication successful.\r\n250 Sender address accepted\r\n"
    assert lab.texts("dropped") == []


def test_wrong_password_is_535_and_one_event(labs: Callable[..., MailLab]) -> None:
    """A wrong password: 535, the login event, never the password."""
    lab = labs(auth="users", users=(f"alice:{HASH}",))
    c = client(lab)
    assert c.say(f"AUTH PLAIN {plain('alice', 'wrong-pw')}").startswith(b"535")
    assert c.say(f"AUTH PLAIN {plain('nobody', 'right')}").startswith(b"535")
    assert lab.texts("login") == [
        "smtp: alice (127.0.0.1:40000) failed to log in (AUTH PLAIN)",
        "smtp: nobody (127.0.0.1:40000) failed to log in (AUTH PLAIN)",
    ]
    assert lab.texts("dropped") == []
    assert not any("wrong-pw" in t for t in lab.texts())


@implementer(ITLSTransport)
class StartTLSTransport(MemoryTCP):
    """An in-memory transport that records the switch to TLS."""

    started: object = None

    def startTLS(self, contextFactory: object, normal: bool = True) -> None:
        self.started = contextFactory


def test_starttls_drops_what_came_in_the_clear(
    labs: Callable[..., MailLab], tmp_path: Path
) -> None:
    """Commands pipelined behind STARTTLS are never read (the CVE-2011-0411 injection)."""
    key, cert = selfsigned.write_pem(tmp_path)
    lab = labs(tls_certificate=str(cert), tls_key=str(key))
    transport = StartTLSTransport(lab.clock)
    protocol = lab.smtp.buildProtocol(transport.getPeer())
    transport.protocol = protocol
    protocol.makeConnection(transport)
    transport.peer_read()
    transport.peer_write(b"EHLO x\r\n")
    assert b"250-STARTTLS" in transport.peer_read()
    transport.peer_write(b"STARTTLS\r\nMAIL FROM:<evil@x.test>\r\n")
    assert transport.peer_read() == b"220 2.0.0 Ready to start TLS\r\n"
    assert transport.started is lab.smtp.tls
    transport.peer_write(b"EHLO x\r\n")
    assert b"STARTTLS" not in transport.peer_read()
    transport.peer_write(b"RCPT TO:<b@x.test>\r\n")
    assert transport.peer_read().startswith(b"503 Must have sender")


def test_received_header_cannot_be_injected(lab: MailLab) -> None:
    """A CR in EHLO or a quoted address never starts a header of its own in what netlab writes."""
    c = Client(lab.smtp, lab.clock)
    c.say(b"EHLO evil\rX-Injected: yes\r\n")
    assert c.say(b'MAIL FROM:<"a\rb"@x.test>\r\n').startswith(b"553 5.1.7")
    send_mail(c, "a@x.test", ["b@x.test"], "Subject: s\n\nbody\n")
    data = stored(lab)[0]
    header, _, _ = data.partition(b"Subject:")
    assert header.startswith(b"Received: from evilX-Injected:yes ([127.0.0.1])\r\n\tby netlab.test")
    assert b"\rX-Injected" not in data
    assert all(line.startswith((b"Received:", b"\t")) for line in header.split(b"\r\n")[:-1])


def test_refused_connection_gets_421(lab: MailLab) -> None:
    """A client past max_connections_per_peer is told in SMTP's words and closed."""
    lab.smtp.configure(lab.settings.__class__(**{**lab.settings.__dict__,
                                                  "max_connections_per_peer": 1}))
    client(lab)
    _, transport = serve(lab.smtp, lab.clock, port=40001)
    assert transport.peer_read().startswith(b"421 netlab.test too many connections from 127.0.0.1")


def test_shutdown_says_421(lab: MailLab) -> None:
    """The daemon stopping tells each client 421 and closes it."""
    c = client(lab)
    lab.smtp.shutdown("server shutdown")
    assert c.read() == b"421 netlab.test netlab is shutting down\r\n"
    assert c.closed
