"""
The POP3 service in memory: the mailbox a login reads, bad commands and
message numbers (one -ERR each, never a traceback), DELE/RSET/QUIT, TOP,
dot-stuffing, the errors limit, APOP only where any password goes, and
commands pipelined behind a password check.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable

import pytest
from twisted.internet.defer import Deferred

from mailtest import Client, MailLab, make_labs, send_mail
from netlab.core.passwords import hash_password
from netlab.protocols.mail.pop3 import dot_stuffed, top_of

HASH = hash_password("right", n=2**10)


labs = pytest.fixture(make_labs)


def mail(lab: MailLab, recipients: list[str], body: str, sender: str = "a@x.test") -> None:
    c = Client(lab.smtp, lab.clock, port=41000)
    c.say("EHLO x")
    assert send_mail(c, sender, recipients, body).endswith(b"250 Delivery in progress\r\n")


def logged_in(lab: MailLab, user: str) -> Client:
    c = Client(lab.pop3, lab.clock)
    assert c.greeting.startswith(b"+OK netlab POP3 ready")
    assert c.say(f"USER {user}\r\nPASS secret words".encode() + b"\r\n") == (
        b"+OK USER accepted, send PASS\r\n+OK Authentication succeeded\r\n"
    )
    return c


def test_each_login_reads_its_own_address(labs: Callable[..., MailLab]) -> None:
    """bob reads bob@ any domain; bob@y.test only that address; carol nothing."""
    lab = labs()
    mail(lab, ["bob@x.test"], "Subject: one\n\n1\n")
    mail(lab, ["BOB@y.test", "carol@x.test"], "Subject: two\n\n2\n")
    assert logged_in(lab, "bob").say("STAT").startswith(b"+OK 2 ")
    assert logged_in(lab, "bob@y.test").say("STAT").startswith(b"+OK 1 ")
    assert logged_in(lab, "dave").say("STAT") == b"+OK 0 0\r\n"


def test_dele_rset_quit(labs: Callable[..., MailLab]) -> None:
    """DELE hides a message, RSET brings it back, QUIT removes what is marked."""
    lab = labs()
    for n in range(3):
        mail(lab, ["bob@x.test"], f"Subject: {n}\n\n{n}\n")
    c = logged_in(lab, "bob")
    assert c.say("DELE 2") == b"+OK message 2 deleted\r\n"
    assert c.say("LIST").startswith(b"+OK 2 messages\r\n1 ")
    assert b"\r\n2 " not in c.say("UIDL")
    assert c.say("RSET") == b"+OK \r\n"
    assert c.say("STAT").startswith(b"+OK 3 ")
    c.say("DELE 1")
    c.say("DELE 3")
    assert c.say("QUIT") == b"+OK netlab POP3 signing off (2 messages deleted)\r\n"
    [left] = lab.store.mailbox("bob")
    assert left.subject == "1"
    assert any("bob deleted 2 messages" in t for t in lab.texts("mail"))


def test_a_connection_lost_without_quit_deletes_nothing(labs: Callable[..., MailLab]) -> None:
    lab = labs()
    mail(lab, ["bob@x.test"], "x\n")
    c = logged_in(lab, "bob")
    c.say("DELE 1")
    c.transport.peer_close()
    lab.clock.advance(0)
    assert len(lab.store.mailbox("bob")) == 1


@pytest.mark.parametrize(
    ("command", "reply"),
    [
        ("RETR", b"-ERR wrong number of arguments for RETR"),
        ("RETR x", b"-ERR not a message number: 'x'"),
        ("RETR 0", b"-ERR no message 0"),
        ("RETR 99999999999", b"-ERR not a message number"),
        ("DELE 7", b"-ERR no message 7"),
        ("LIST 2", b"-ERR no message 2"),
        ("UIDL -1", b"-ERR not a message number: '-1'"),
        ("TOP 1 x", b"-ERR the line count must be a number"),
        ("TOP 1", b"-ERR wrong number of arguments for TOP"),
        ("XYZZY", b"-ERR unknown command 'XYZZY'"),
        ("", b"-ERR empty command"),
        ("USER again", b"-ERR already logged in: USER is for before"),
        ("STLS", b"-ERR already logged in: STLS is for before"),
        ("AUTH PLAIN", b"-ERR already logged in"),
    ],
)
def test_bad_commands(labs: Callable[..., MailLab], command: str, reply: bytes) -> None:
    """One -ERR, one logged event, no traceback; the session goes on."""
    lab = labs()
    mail(lab, ["bob@x.test"], "x\n")
    c = logged_in(lab, "bob")
    assert c.say(command).startswith(reply)
    assert c.say("NOOP") == b"+OK \r\n"
    assert len(lab.texts("dropped")) == 1
    assert not [e for e in lab.seen if e.get("log_failure") is not None]


def test_commands_before_login(labs: Callable[..., MailLab]) -> None:
    lab = labs()
    c = Client(lab.pop3, lab.clock)
    assert c.say("STAT") == b"-ERR log in first (USER and PASS, or APOP), then STAT\r\n"
    assert c.say("PASS x") == b"-ERR USER required before PASS\r\n"
    assert c.say("STLS") == b"-ERR STLS is not offered here (no tls_certificate)\r\n"
    assert c.say("CAPA") == (
        b"+OK I can do the following:\r\nTOP\r\nUSER\r\nUIDL\r\nPIPELINING\r\n"
        b"IMPLEMENTATION netlab\r\n.\r\n"
    )


def test_too_many_errors_close(labs: Callable[..., MailLab]) -> None:
    lab = labs()
    c = Client(lab.pop3, lab.clock)
    replies = c.say(b"BAD\r\n" * 20)
    assert replies.count(b"-ERR unknown command") == 11
    assert replies.endswith(b"-ERR too many errors (11); closing\r\n")
    assert c.closed


def test_line_too_long(labs: Callable[..., MailLab]) -> None:
    lab = labs()
    c = Client(lab.pop3, lab.clock)
    assert c.say(b"USER " + b"x" * 600 + b"\r\nNOOP\r\n").startswith(
        b"-ERR line too long: over max_line (512)\r\n")


def test_command_deadline(labs: Callable[..., MailLab]) -> None:
    lab = labs()
    c = Client(lab.pop3, lab.clock)
    c.say(b"US")
    lab.clock.advance(120)
    assert c.read() == b"-ERR no complete command in 120 seconds; closing\r\n"
    assert c.closed


def test_apop_with_any_login(labs: Callable[..., MailLab]) -> None:
    """The greeting carries the APOP timestamp; any digest of the right form logs in."""
    lab = labs()
    mail(lab, ["bob@x.test"], "x\n")
    c = Client(lab.pop3, lab.clock)
    timestamp = c.greeting.split()[-1]
    digest = hashlib.md5(timestamp + b"pw").hexdigest()
    assert c.say(f"APOP bob {digest}") == b"+OK Authentication succeeded\r\n"
    assert c.say("STAT").startswith(b"+OK 1 ")
    assert lab.texts("login") == ["pop3: bob (127.0.0.1:40000) logged in (APOP)"]


def test_no_apop_for_hashed_accounts(labs: Callable[..., MailLab]) -> None:
    """A scrypt hash cannot check APOP: no timestamp, and APOP is refused."""
    lab = labs(auth="users", users=(f"bob:{HASH}",))
    c = Client(lab.pop3, lab.clock)
    assert c.greeting == b"+OK netlab POP3 ready\r\n"
    assert c.say(f"APOP bob {'0' * 32}") == b"-ERR Authentication failed\r\n"
    assert c.say(b"USER bob\r\nPASS wrong" + b"\r\n").endswith(
        b"-ERR Authentication failed\r\n")
    assert c.say(b"USER bob\r\nPASS right" + b"\r\n").endswith(
        b"+OK Authentication succeeded\r\n")
    assert lab.texts("dropped") == []


def test_pipelined_behind_pass(labs: Callable[..., MailLab]) -> None:
    """STAT right behind PASS is answered after the check, as logged in."""
    checks: list[Deferred[bool]] = []

    def verify_later(password: str, encoded: str) -> Deferred[bool]:
        checks.append(Deferred())
        return checks[-1]

    lab = labs(verify=verify_later, auth="users", users=(f"bob:{HASH}",))
    c = Client(lab.pop3, lab.clock)
    assert c.say(b"USER bob\r\nPASS right\r\nSTAT\r\n") == b"+OK USER accepted, send PASS\r\n"
    checks[0].callback(True)
    assert c.read() == b"+OK Authentication succeeded\r\n+OK 0 0\r\n"


def test_retr_stuffs_every_leading_dot(labs: Callable[..., MailLab]) -> None:
    """A body line starting with a dot comes back stuffed wherever it falls."""
    lab = labs()
    body = "Subject: dots\n\n" + ("x" * 98 + "\n") * 170 + "..a\n...\n..\nend\n"
    mail(lab, ["bob@x.test"], body)
    c = logged_in(lab, "bob")
    answer = c.say("RETR 1")
    assert answer.endswith(b"\r\n..a\r\n...\r\n..\r\nend\r\n.\r\n")


def test_dot_stuffed_and_top_of() -> None:
    assert dot_stuffed(b"a\r\n.b\r\n.\r\n") == b"a\r\n..b\r\n..\r\n"
    assert dot_stuffed(b"no end") == b"no end\r\n"
    message = b"A: 1\r\nB: 2\r\n\r\none\r\ntwo\r\nthree\r\n"
    assert top_of(message, 0) == b"A: 1\r\nB: 2\r\n\r\n"
    assert top_of(message, 2) == b"A: 1\r\nB: 2\r\n\r\none\r\ntwo\r\n"
    assert top_of(message, 9) == message
