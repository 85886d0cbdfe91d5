"""
End-to-end tests of the mail services: the real daemon, and Python's own
clients, smtplib and poplib, over plain TCP, STARTTLS/STLS and implicit
TLS, reading back exactly what was sent; then a restart, with the
messages still there.
"""

from __future__ import annotations

import email
import email.policy
import poplib
import smtplib
import ssl
import subprocess
from collections.abc import Iterator
from email.message import EmailMessage
from pathlib import Path

import pytest

import selfsigned
from daemon import Daemon, running_daemon
from helpers import require_tool
from netlab.core.passwords import hash_password

TIMEOUT = 20
HOST = "127.0.0.1"


def mail_config(tmp_path: Path, auth: str = 'auth = "any"') -> str:
    """SMTP and POP3 only, each on a plain and an ssl: port 0, with STARTTLS/STLS."""
    key, cert = selfsigned.write_pem(tmp_path)
    tls = f"ssl:0:interface=127.0.0.1:privateKey={key}:certKey={cert}"
    files = f'tls_certificate = "{cert}"\ntls_key = "{key}"\n'
    return (
        'udp_echo = []\necho = []\n[chat]\nenabled = false\n[http]\nenabled = false\n'
        f'[smtp]\nenabled = true\nlisten = ["tcp:0:interface=127.0.0.1", "{tls}"]\n'
        f'database = "{tmp_path / "mail.sqlite3"}"\n{files}{auth}\n'
        f'[pop3]\nenabled = true\nlisten = ["tcp:0:interface=127.0.0.1", "{tls}"]\n{files}'
    )


@pytest.fixture
def daemon(tmp_path: Path) -> Iterator[Daemon]:
    with running_daemon(tmp_path, mail_config(tmp_path)) as running:
        yield running


def ports(daemon: Daemon, service: str) -> tuple[int, int]:
    """The plain and the TLS port of C{service}, in the order they are listed."""
    plain, tls = daemon.ports[(service, "tcp")]
    return plain, tls


def trusting(tmp_path: Path) -> ssl.SSLContext:
    """
    A client context that checks the certificate against the test's own
    (which names localhost, and the tests connect to 127.0.0.1).
    """
    context = ssl.create_default_context(cafile=str(tmp_path / "cert.pem"))
    context.check_hostname = False
    return context


def read_all(pop: poplib.POP3) -> list[bytes]:
    """Every message in the mailbox, as its bytes."""
    count, _ = pop.stat()
    return [b"\r\n".join(pop.retr(i)[1]) + b"\r\n" for i in range(1, count + 1)]


def test_sendmail_then_poplib_reads_it_back(daemon: Daemon) -> None:
    """smtplib over plain TCP with AUTH PLAIN; poplib USER/PASS, LIST, UIDL, TOP, RETR, DELE."""
    smtp_port, _ = ports(daemon, "smtp")
    body = "Subject: lab 1\r\nFrom: alice@netlab.test\r\n\r\nhello, bob\r\n.a dot line\r\n"
    with smtplib.SMTP(HOST, smtp_port, timeout=TIMEOUT) as client:
        code, features = client.ehlo("student-pc")
        assert code == 250
        for extension in ("size", "8bitmime", "pipelining", "auth"):
            assert client.has_extn(extension), features
        client.login("alice", "whatever")
        refused = client.sendmail("alice@netlab.test", ["bob@netlab.test"], body)
        assert refused == {}
        assert client.noop()[0] == 250
        assert client.verify("bob@netlab.test")[0] == 252
    pop_port, _ = ports(daemon, "pop3")
    pop = poplib.POP3(HOST, pop_port, timeout=TIMEOUT)
    pop.user("bob")
    pop.pass_("anything")
    assert pop.stat()[0] == 1
    [message] = read_all(pop)
    received, _, rest = message.partition(b"Subject:")
    assert received.startswith(b"Received: from student-pc ([127.0.0.1])")
    assert b"Subject:" + rest == body.encode()
    uid = pop.uidl(1).split()[2]
    assert pop.uidl()[1] == [b"1 " + uid]
    top = pop.top(1, 0)[1]
    assert top[-2:] == [b"From: alice@netlab.test", b""]
    pop.dele(1)
    assert pop.stat()[0] == 0
    pop.quit()
    again = poplib.POP3(HOST, pop_port, timeout=TIMEOUT)
    again.user("bob")
    again.pass_("x")
    assert again.stat() == (0, 0)
    again.quit()
    daemon.wait_for_log(r"smtp: 127\.0\.0\.1:\d+ accepted message \w+ \(\d+ bytes\) for 1 recip")
    daemon.wait_for_log(r"pop3: bob \(127\.0\.0\.1:\d+\) logged in \(USER/PASS\)")
    assert "whatever" not in daemon.log()


def test_starttls_send_message_with_attachment_and_stls(daemon: Daemon, tmp_path: Path) -> None:
    """starttls() then send_message with an attachment; stls() then retr gives it back whole."""
    smtp_port, _ = ports(daemon, "smtp")
    message = EmailMessage()
    message["Subject"] = "report"
    message["From"] = "carol@example.com"
    message["To"] = "dave@example.com"
    message.set_content("See the attachment.\n")
    attachment = bytes(range(256)) * 40
    message.add_attachment(attachment, maintype="application", subtype="octet-stream",
                           filename="data.bin")
    with smtplib.SMTP(HOST, smtp_port, timeout=TIMEOUT) as client:
        client.ehlo()
        assert client.has_extn("starttls")
        client.starttls(context=trusting(tmp_path))
        client.ehlo()
        assert not client.has_extn("starttls")
        client.login("carol", "secret")
        assert client.send_message(message) == {}
    pop_port, _ = ports(daemon, "pop3")
    pop = poplib.POP3(HOST, pop_port, timeout=TIMEOUT)
    assert "STLS" in pop.capa()
    pop.stls(context=trusting(tmp_path))
    pop.user("dave@example.com")
    pop.pass_("pw")
    [raw] = read_all(pop)
    pop.quit()
    got = email.message_from_bytes(raw, policy=email.policy.default)
    assert got["Subject"] == "report"
    assert "with ESMTPSA" in got["Received"]
    [part] = list(got.iter_attachments())
    assert part.get_filename() == "data.bin"
    assert part.get_content() == attachment


def test_smtp_ssl_as_the_course_writes_it_and_pop3_ssl(daemon: Daemon) -> None:
    """smtplib.SMTP_SSL + login + sendmail, unchanged but for host and port; POP3_SSL reads it."""
    _, smtp_tls = ports(daemon, "smtp")
    server = smtplib.SMTP_SSL(HOST, smtp_tls, timeout=TIMEOUT)
    server.login("student@netlab.test", "password")
    server.sendmail("student@netlab.test", "teacher@netlab.test", "Subject: hw\n\nDone.\n")
    server.quit()
    _, pop_tls = ports(daemon, "pop3")
    pop = poplib.POP3_SSL(HOST, pop_tls, timeout=TIMEOUT)
    assert "STLS" not in pop.capa()
    pop.apop("teacher@netlab.test", "any password")
    [raw] = read_all(pop)
    pop.quit()
    assert raw.endswith(b"Subject: hw\r\n\r\nDone.\r\n")
    assert b"with ESMTPSA" in raw


def test_messages_survive_a_restart(tmp_path: Path) -> None:
    """What was stored is there after the daemon stops and starts again."""
    config = mail_config(tmp_path)
    with (
        running_daemon(tmp_path, config) as first,
        smtplib.SMTP(HOST, ports(first, "smtp")[0], timeout=TIMEOUT) as client,
    ):
        client.sendmail("a@x.test", ["keep@x.test"], "Subject: kept\r\n\r\nstill here\r\n")
    with running_daemon(tmp_path, config) as second:
        pop = poplib.POP3(HOST, ports(second, "pop3")[0], timeout=TIMEOUT)
        pop.user("keep")
        pop.pass_("x")
        [raw] = read_all(pop)
        pop.quit()
    assert raw.endswith(b"Subject: kept\r\n\r\nstill here\r\n")


def test_configured_users_only(tmp_path: Path) -> None:
    """With auth = "users", a wrong password is refused by both services and a right one works."""
    encoded = hash_password("right", n=2**10)
    auth = f'auth = "users"\nusers = ["alice:{encoded}"]\nrequire_auth = true'
    with running_daemon(tmp_path, mail_config(tmp_path, auth)) as running:
        with smtplib.SMTP(HOST, ports(running, "smtp")[0], timeout=TIMEOUT) as client:
            with pytest.raises(smtplib.SMTPSenderRefused) as refused:
                client.sendmail("alice@x.test", ["alice@x.test"], "Subject: x\r\n\r\nx\r\n")
            assert refused.value.smtp_code == 530
            with pytest.raises(smtplib.SMTPAuthenticationError):
                client.login("alice", "wrong")
            client.login("alice", "right")
            client.sendmail("alice@x.test", ["alice@x.test"], "Subject: mine\r\n\r\nx\r\n")
        pop = poplib.POP3(HOST, ports(running, "pop3")[0], timeout=TIMEOUT)
        with pytest.raises(poplib.error_proto):
            pop.apop("alice", "right")
        pop.user("alice")
        with pytest.raises(poplib.error_proto):
            pop.pass_("wrong")
        pop.user("alice")
        pop.pass_("right")
        assert pop.stat()[0] == 1
        pop.quit()
        running.wait_for_log(r"smtp: alice \(127\.0\.0\.1:\d+\) failed to log in \(AUTH PLAIN\)")
        assert "wrong" not in running.log().replace("wrong name", "")


def test_swaks_scripted_dialogue_pipelined(daemon: Daemon) -> None:
    """swaks, Debian's SMTP test tool, with AUTH LOGIN and PIPELINING; poplib reads it."""
    swaks = require_tool("swaks")
    result = subprocess.run(
        [swaks, "--server", f"{HOST}:{ports(daemon, 'smtp')[0]}", "--pipeline",
         "--auth", "LOGIN", "--auth-user", "alice", "--auth-password", "x",
         "--from", "alice@netlab.test", "--to", "erin@netlab.test",
         "--header", "Subject: from swaks", "--body", "scripted"],
        capture_output=True, text=True, timeout=TIMEOUT,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "<-  250 Delivery in progress" in result.stdout
    pop = poplib.POP3(HOST, ports(daemon, "pop3")[0], timeout=TIMEOUT)
    pop.user("erin")
    pop.pass_("x")
    [raw] = read_all(pop)
    pop.quit()
    assert b"Subject: from swaks" in raw
    assert b"\r\nscripted\r\n" in raw
