"""
The course's "Sending mail" exercise against the real daemon started with
the example config (examples/netlab.toml, ports moved to free ones): its
smtplib.SMTP_SSL + login + sendmail example unchanged but for host and
port, on the implicit-TLS port, and the message read back with poplib, as
docs/course.md and the README show.
"""

from __future__ import annotations

import poplib
import smtplib
from collections.abc import Iterator
from pathlib import Path

import pytest

import course
from course import Course


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Course]:
    yield from course.start(tmp_path_factory.mktemp("mail-course"))


def test_sending_mail_as_the_course_writes_it(lab: Course) -> None:
    """SMTP_SSL on the second [smtp] port, login, sendmail; POP3 on [pop3] reads it back."""
    plain, _ipv6, implicit_tls = lab.daemon.ports[("smtp", "tcp")]
    login, password = "student@netlab.test", "any password"
    from_addr, to_addr = login, "teacher@netlab.test"
    msg = "Subject: Homework\n\nHello from smtplib!"

    server = smtplib.SMTP_SSL(course.Course.HOST, implicit_tls, timeout=20)
    server.login(login, password)
    server.sendmail(from_addr, to_addr, msg)
    server.quit()

    mailbox = poplib.POP3(course.Course.HOST, lab.port("pop3"), timeout=20)
    mailbox.user("teacher")
    mailbox.pass_("any password")
    count, _ = mailbox.stat()
    lines = mailbox.retr(count)[1]
    mailbox.quit()
    assert lines[-3:] == [b"Subject: Homework", b"", b"Hello from smtplib!"]
    assert plain != implicit_tls
    assert (Path(lab.daemon.cwd) / "netlab-mail.sqlite3").exists()
