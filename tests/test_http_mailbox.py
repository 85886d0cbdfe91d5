"""
Tests of the web mailbox, C{/mail}: the site in this process on a loopback
port with a mail store in memory, fetched with real curl; who sees what,
the login and its limits, CSRF, the sandbox and download headers, the
C{.eml}, the live stream's scope, and [smtp]'s counters.
"""

from __future__ import annotations

import hashlib
import re
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest_twisted
from twisted.internet import reactor
from twisted.internet.defer import inlineCallbacks
from twisted.internet.task import Clock
from twisted.web.client import Agent
from twisted.web.http_headers import Headers
from twisted.web.resource import Resource

from httptest import Served
from mailtest import MailLab
from netlab.core.events import EventLog
from netlab.core.kinds import BuildContext
from netlab.core.passwords import hash_password
from netlab.core.settings import LogSettings
from netlab.protocols.http import mailbox, routes
from netlab.protocols.http.context import HttpContext
from netlab.protocols.http.mailbox import NAME_FAILURES, Sessions, Viewer
from netlab.protocols.http.settings import HttpSettings
from netlab.protocols.http.site import NetlabSite
from netlab.protocols.mail.kind import MailShared, build_smtp
from netlab.protocols.mail.settings import SmtpSettings
from netlab.protocols.mail.store import Envelope
from test_http_dashboard import StreamReader

TOKEN = "teacher-secret"
ATTACHMENT = bytes(range(256)) * 3
HTML = '<p>hi</p><script>parent.pwned = 1</script><img src="http://example.com/x.png">'

def mail_site(lab: MailLab, clock: Clock, events: Any, mail: bool = True) -> Served:
    """
    The mailbox routes on a loopback port, reading C{lab}'s store, logging
    to C{events} (at debug level: closing waits for the last disconnect).
    """
    shared = MailShared(lab.store, lab.accounts, None)
    context = HttpContext(
        settings=HttpSettings(name="http", instructor_token=TOKEN), events=events,
        reactor=clock, mail=(lambda: shared) if mail else None,
    )
    root = Resource()
    routes.install(root, context, routes.of(mailbox))
    return Served(NetlabSite(root, context))


def texts(events: Any) -> list[str]:
    return [e.get("log_text", "") for e in events.seen]


def deliver(lab: MailLab, sender: str, recipients: list[str], subject: str,
            data: bytes | None = None) -> int:
    """Store a message as SMTP would; its id."""
    if data is None:
        data = f"Subject: {subject}\r\nFrom: {sender}\r\n\r\nHello.\r\n".encode()
    envelope = Envelope(sender, tuple(recipients), "", "127.0.0.1:40000", "client", False)
    return lab.store.deliver("u" + subject[:8], envelope, data, lab.clock.seconds(), subject).id


def rich_message() -> bytes:
    message = EmailMessage()
    message["From"] = "alice@netlab.test"
    message["To"] = "bob@netlab.test"
    message["Subject"] = "rich"
    message.set_content("plain <text>\n")
    message.add_alternative(HTML, subtype="html")
    message.add_attachment(ATTACHMENT, maintype="application", subtype="pdf",
                           filename='evil"; name=.html')
    return message.as_bytes().replace(b"\n", b"\r\n")


@inlineCallbacks
def log_in(served: Served, jar: Path, *fields: str, origin: str | None = None) -> Any:
    """POST the login form with curl, keeping the cookie in C{jar}; the L{Response}."""
    form = [arg for field in fields for arg in ("--data-urlencode", field)]
    headers = ["-H", f"Origin: {origin}"] if origin else []
    return (yield served.fetch("/mail/login", "-c", str(jar), *headers, *form))


@pytest_twisted.inlineCallbacks
def test_a_student_sees_only_their_own_mail(clock: Clock, events: Any, tmp_path: Path) -> Any:
    lab = MailLab(clock)
    served = mail_site(lab, clock, events)
    try:
        to_bob = deliver(lab, "alice@netlab.test", ["bob@netlab.test"], "for bob")
        from_bob = deliver(lab, "bob@example.com", ["carol@netlab.test"], "from bob")
        other = deliver(lab, "carol@netlab.test", ["dave@netlab.test"], "not for bob")
        jar = tmp_path / "bob"
        answer = yield log_in(served, jar, "name=bob", "password=anything",
                              origin=served.base)
        assert answer.status == 303 and answer.headers["location"] == "/mail"
        cookie = answer.headers["set-cookie"]
        assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Path=/mail" in cookie
        page = yield served.fetch("/mail", "-b", str(jar))
        text = page.body.decode()
        assert "for bob" in text and "from bob" in text and "not for bob" not in text
        assert "access-control-allow-origin" not in page.headers
        for message_id, status in ((to_bob, 200), (from_bob, 200), (other, 404)):
            for suffix in ("", ".eml"):
                got = yield served.fetch(f"/mail/message/{message_id}{suffix}", "-b", str(jar))
                assert got.status == status, (message_id, suffix)
        nobody = yield served.fetch(f"/mail/message/{to_bob}")
        assert nobody.status == 403
        everyone = yield served.fetch(f"/mail?token={TOKEN}")
        assert all(s in everyone.body.decode() for s in ("for bob", "from bob", "not for bob"))
        assert f'/mail/message/{other}?token={TOKEN}' in everyone.body.decode()
        wrong = yield served.fetch("/mail?token=guess")
        assert wrong.status == 403 and wrong.content_type == "text/plain; charset=utf-8"
    finally:
        yield served.close()
        yield lab.close()

@pytest_twisted.inlineCallbacks
def test_instructor_login_form_and_logout(clock: Clock, events: Any, tmp_path: Path) -> Any:
    lab = MailLab(clock)
    served = mail_site(lab, clock, events)
    try:
        deliver(lab, "carol@netlab.test", ["dave@netlab.test"], "dave's")
        jar = tmp_path / "teacher"
        wrong = yield log_in(served, jar, "token=guess")
        assert wrong.status == 403
        answer = yield log_in(served, jar, f"token={TOKEN}")
        assert answer.status == 303
        page = yield served.fetch("/mail", "-b", str(jar))
        assert "dave&#x27;s" in page.body.decode()
        old_cookie = jar.read_text()
        out = yield served.fetch("/mail/logout", "-b", str(jar), "-c", str(jar), "-X", "POST")
        assert out.status == 303 and "Max-Age=0" in out.headers["set-cookie"]
        # The old cookie no longer opens anything: the session is gone on the server.
        replay = tmp_path / "replay"
        replay.write_text(old_cookie)
        again = yield served.fetch("/mail", "-b", str(replay))
        assert 'action="/mail/login"' in again.body.decode() and "dave" not in again.body.decode()
    finally:
        yield served.close()
        yield lab.close()

@pytest_twisted.inlineCallbacks
def test_login_and_logout_refuse_other_sites_and_get(
    clock: Clock, events: Any, tmp_path: Path
) -> Any:
    lab = MailLab(clock)
    served = mail_site(lab, clock, events)
    try:
        jar = tmp_path / "jar"
        foreign = yield log_in(served, jar, "name=bob", "password=x",
                               origin="http://evil.example")
        assert foreign.status == 403 and "another site" in foreign.body.decode()
        assert "set-cookie" not in foreign.headers
        cross = yield served.fetch("/mail/login", "-H", "Sec-Fetch-Site: cross-site",
                                   "-d", "name=bob&password=x")
        assert cross.status == 403
        for path in ("/mail/login", "/mail/logout"):
            got = yield served.fetch(path)
            assert got.status == 405 and "GET" not in got.headers["allow"]
        bad = yield served.fetch("/mail/login", "-d", "name=has space&password=x")
        assert bad.status == 400 and bad.content_type == "text/plain; charset=utf-8"
        assert any("refused a mail login from another site" in t for t in texts(events))
    finally:
        yield served.close()
        yield lab.close()

@pytest_twisted.inlineCallbacks
def test_users_accounts_and_failure_limit(clock: Clock, events: Any, tmp_path: Path) -> Any:
    lab = MailLab(clock, auth="users", users=(f"bob:{hash_password('right', n=2)}",))
    served = mail_site(lab, clock, events)
    try:
        jar = tmp_path / "jar"
        good = yield log_in(served, jar, "name=bob", "password=right")
        assert good.status == 303
        for _ in range(NAME_FAILURES + 1):  # the last one finds the bucket empty
            wrong = yield log_in(served, jar, "name=bob", "password=wrong")
            assert wrong.status == 403 and wrong.body == b"403 Forbidden: wrong name or password.\n"
        locked = yield log_in(served, jar, "name=bob", "password=right")
        assert locked.status == 429 and int(locked.headers["retry-after"]) > 0
        clock.advance(int(locked.headers["retry-after"]))
        again = yield log_in(served, jar, "name=bob", "password=right")
        assert again.status == 303
        assert any("failed to log in to the web mailbox" in t for t in texts(events))
        assert not any("right" in t or "wrong" in t for t in texts(events))
    finally:
        yield served.close()
        yield lab.close()


@pytest_twisted.inlineCallbacks
def test_message_page_parts_and_downloads(clock: Clock, events: Any, tmp_path: Path) -> Any:
    lab = MailLab(clock)
    served = mail_site(lab, clock, events)
    try:
        data = rich_message()
        message_id = deliver(lab, "alice@netlab.test", ["bob@netlab.test"], "<b>rich</b>", data)
        jar = tmp_path / "jar"
        yield log_in(served, jar, "name=bob", "password=x")
        page = yield served.fetch(f"/mail/message/{message_id}", "-b", str(jar))
        text = page.body.decode()
        assert "&lt;b&gt;rich&lt;/b&gt;" in text and "<b>rich</b>" not in text
        assert "plain &lt;text&gt;" in text
        assert hashlib.sha256(ATTACHMENT).hexdigest() in text and f">{len(ATTACHMENT)}<" in text
        assert "frame-ancestors 'none'" in page.headers["content-security-policy"]
        frames = re.findall(r'<iframe sandbox="" src="([^"]+)"', text)
        assert len(frames) == 1
        part = yield served.fetch(frames[0], "-b", str(jar))
        assert part.status == 200 and part.body.decode().strip() == HTML
        assert part.headers["content-security-policy"].startswith(
            "sandbox; default-src 'none'; img-src data:; style-src 'unsafe-inline'"
        )
        assert part.headers["x-content-type-options"] == "nosniff"
        link = re.findall(r'<a href="([^"]+)" download>evil', text)[0]
        attached = yield served.fetch(link, "-b", str(jar))
        assert attached.body == ATTACHMENT
        assert attached.headers["content-type"] == "application/octet-stream"
        assert attached.headers["content-disposition"] == 'attachment; filename="evil__ name_.html"'
        assert attached.headers["x-content-type-options"] == "nosniff"
        eml = yield served.fetch(f"/mail/message/{message_id}.eml", "-b", str(jar))
        assert eml.body == data and eml.headers["content-type"] == "message/rfc822"
        assert eml.headers["content-disposition"].startswith("attachment;")
        for missing in (f"/mail/message/{message_id}/part/99", "/mail/message/abc",
                        f"/mail/message/{message_id}/x", "/mail/message/99999999999999999999"):
            got = yield served.fetch(missing, "-b", str(jar))
            assert got.status == 404, missing
    finally:
        yield served.close()
        yield lab.close()

@pytest_twisted.inlineCallbacks
def test_stream_tells_each_viewer_only_their_new_mail(
    clock: Clock, events: Any, tmp_path: Path
) -> Any:
    lab = MailLab(clock)
    served = mail_site(lab, clock, events)
    try:
        jar = tmp_path / "jar"
        login = yield log_in(served, jar, "name=bob", "password=x")
        cookie = login.headers["set-cookie"].split(";")[0]
        refused = yield served.fetch("/mail/stream")
        assert refused.status == 403
        response = yield Agent(reactor).request(
            b"GET", served.url("/mail/stream").encode(), Headers({b"cookie": [cookie.encode()]})
        )
        reader = StreamReader()
        response.deliverBody(reader)
        yield reader.wait(1)
        deliver(lab, "carol@netlab.test", ["dave@netlab.test"], "not bob's")
        deliver(lab, "alice@netlab.test", ["Bob@Netlab.test"], "<i>bob's</i>")
        messages = yield reader.wait(2)
        assert [event for event, _ in messages] == ["ready", "mail"]
        assert messages[1][1]["subject"] == "<i>bob's</i>"
        assert messages[1][1]["url"].startswith("/mail/message/")
        yield reader.close()
    finally:
        yield served.close()
        yield lab.close()

@pytest_twisted.inlineCallbacks
def test_no_mailbox_without_smtp(clock: Clock, events: Any) -> Any:
    lab = MailLab(clock)
    served = mail_site(lab, clock, events, mail=False)
    try:
        for path in ("/mail", "/mail/mail.js", "/mail/login"):
            got = yield served.fetch(path)
            assert got.status == 404, path
    finally:
        yield served.close()
        yield lab.close()


def test_sessions_expire_and_are_bounded() -> None:
    clock = Clock()
    sessions = Sessions(clock.seconds, lifetime=100, limit=3)
    tokens = [sessions.open(Viewer(f"user{i}")) for i in range(4)]
    assert len(sessions) == 3
    assert sessions.find(tokens[0]) is None  # the oldest made room
    assert sessions.find(tokens[3]) == Viewer("user3")
    assert len(tokens[3]) == 64 and len(set(tokens)) == 4
    clock.advance(100)
    assert sessions.find(tokens[3]) is None


@pytest_twisted.inlineCallbacks
def test_smtp_counters_show_what_is_stored() -> Any:
    """The dashboard's card: messages and mailboxes stored, as [smtp]'s counters."""
    events = EventLog(LogSettings())
    context = BuildContext(events=events, reactor=reactor)
    settings = SmtpSettings(name="smtp", enabled=True, database=":memory:")
    build_smtp(settings, context)
    [database] = context.resources
    database.open()
    try:
        shared = context.lookup(MailShared)
        assert shared is not None
        extra = events.counters_for("smtp").extra
        assert (extra["messages_stored"], extra["mailboxes"]) == (0, 0)
        envelope = Envelope("a@x", ("b@x", "c@x"), "", "127.0.0.1:1", "h", False)
        shared.store.deliver("u1", envelope, b"Subject: s\r\n\r\nhi\r\n", 0.0, "s")
        assert (extra["messages_stored"], extra["mailboxes"], extra["bytes_stored"]) == (
            1, 2, len(b"Subject: s\r\n\r\nhi\r\n"))
        shared.store.remove("b@x", [1])
        shared.store.remove("c@x", [1])
        assert (extra["messages_stored"], extra["mailboxes"]) == (0, 0)
    finally:
        yield database.close()
