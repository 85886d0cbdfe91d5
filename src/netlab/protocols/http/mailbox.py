"""
The web mailbox, C{/mail}: the messages C{[smtp]} stored, for the people
they concern, live.

Who is looking is proved once, by a login form that checks the mail
services' own accounts (C{[smtp] auth}: with C{"any"} every name and
password is let in, so anyone can read any name's mail, as over POP3;
with C{"users"}, the scrypt hash), and then remembered by a session
cookie: a random token, C{HttpOnly} and C{SameSite=Strict}, kept in a
bounded server-side table with an expiry.  The instructor token (C{[http]
instructor_token}, in the form or as C{?token=} as for C{/events}) sees
every message.  Login and logout are C{POST} only and refuse a foreign
C{Origin}; failed passwords are limited per address and per name, and the
password checks under way are bounded.

A student sees the messages sent from or to their address or login
(L{netlab.protocols.mail.store.sees}).  A message is shown with its
headers and text parts as text; an HTML part is served from its own
address with a Content-Security-Policy that sandboxes it (no script, no
origin, nothing loaded but inline images and style) and shown in an
C{<iframe sandbox>}; attachments are listed by name, size and sha256 and
downloaded as attachments; the whole message downloads as C{.eml}.  Every
string from a message is escaped.  C{/mail/stream} (Server-Sent Events)
tells an open page of each new message its viewer may see.
"""

from __future__ import annotations

import email
import email.policy
import hashlib
import hmac
import math
import secrets
import time
from collections.abc import Iterator
from dataclasses import dataclass
from email.message import Message
from html import escape
from importlib.resources import files
from typing import Any
from urllib.parse import quote

from twisted.cred.credentials import UsernamePassword
from twisted.logger import LogLevel
from twisted.python.failure import Failure
from twisted.web import static
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET, Request

from netlab.core.events import LOGIN, describe_address
from netlab.core.limits import FailureLimit
from netlab.core.passwords import HashingQueue
from netlab.protocols.http.context import HttpContext
from netlab.protocols.http.forms import parse_urlencoded
from netlab.protocols.http.multipart import ParseError
from netlab.protocols.http.sse import EventStream
from netlab.protocols.mail.accounts import login_name
from netlab.protocols.mail.kind import MailShared
from netlab.protocols.mail.store import StoredMessage, sees

COOKIE = b"netlab_mail"
SESSION_SECONDS = 8 * 3600.0
MAX_SESSIONS = 1000
TOKEN_BYTES = 32
# Failed logins: this many at once per address and per name, refilled
# over the window (as the login service's defaults).
ADDRESS_FAILURES = 10
NAME_FAILURES = 5
FAILURE_WINDOW = 60.0
# Password checks (scrypt, in threads) at once, and waiting their turn.
HASHING_RUNNING = 2
HASHING_WAITING = 8
MAX_FORM_BYTES = 4096
MAX_FORM_FIELDS = 4
KEEPALIVE_SECONDS = 15.0

PAGE_POLICY = (
    b"default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
    b"img-src 'self'; frame-src 'self'; base-uri 'none'; form-action 'self'; "
    b"frame-ancestors 'none'"
)
# An HTML part: a sandbox (a unique origin, no scripts, no forms, no
# popups) that loads nothing but inline images and style, framed only by
# netlab's own pages.
HTML_PART_POLICY = (
    b"sandbox; default-src 'none'; img-src data:; style-src 'unsafe-inline'; "
    b"frame-ancestors 'self'"
)
DOWNLOAD_POLICY = b"sandbox; default-src 'none'"

PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<link rel="stylesheet" href="/mail/mail.css">
<script src="/mail/mail.js" defer></script>
</head>
<body>
<header><h1>{title}</h1>{logout}</header>
<main>
{body}
</main>
</body>
</html>
"""


# -- who is looking ---------------------------------------------------------------


@dataclass(frozen=True)
class Viewer:
    """
    Who is looking: C{login} (C{None}: the instructor, who sees all), and
    the query to carry in links when the token came in the address.
    """

    login: str | None
    query: str = ""

    def sees(self, message: StoredMessage) -> bool:
        return sees(self.login, message)

    def describe(self) -> str:
        return "every message (instructor)" if self.login is None else self.login


@dataclass
class Session:
    """One logged-in browser: its viewer and when the session ends."""

    viewer: Viewer
    expires: float


class Sessions:
    """
    The server-side session table: a random token per login, kept by its
    sha256 (so the table itself holds nothing a cookie could be made
    from), ended by logout or expiry; at most C{limit}, the oldest ending
    first when a new one needs room.
    """

    def __init__(self, now: Any, lifetime: float = SESSION_SECONDS,
                 limit: int = MAX_SESSIONS) -> None:
        self.now = now
        self.lifetime = lifetime
        self.limit = limit
        self._sessions: dict[str, Session] = {}

    @staticmethod
    def _key(token: bytes) -> str:
        return hashlib.sha256(token).hexdigest()

    def open(self, viewer: Viewer) -> bytes:
        """A new session for C{viewer}; its token, for the cookie."""
        now = self.now()
        if len(self._sessions) >= self.limit:
            self._sessions = {k: s for k, s in self._sessions.items() if s.expires > now}
        while len(self._sessions) >= self.limit:
            del self._sessions[next(iter(self._sessions))]
        token = secrets.token_hex(TOKEN_BYTES).encode("ascii")
        self._sessions[self._key(token)] = Session(viewer, now + self.lifetime)
        return token

    def find(self, token: bytes) -> Viewer | None:
        """The viewer of session C{token}, or None (unknown, or expired)."""
        key = self._key(token)
        session = self._sessions.get(key)
        if session is None:
            return None
        if session.expires <= self.now():
            del self._sessions[key]
            return None
        return session.viewer

    def close(self, token: bytes) -> None:
        self._sessions.pop(self._key(token), None)

    def __len__(self) -> int:
        return len(self._sessions)


class MailWeb:
    """What every C{/mail} resource of one site shares."""

    def __init__(self, context: HttpContext) -> None:
        assert context.mail is not None
        self.context = context
        self.find_mail = context.mail
        now = context.reactor.seconds
        self.sessions = Sessions(now)
        self.by_address = FailureLimit(ADDRESS_FAILURES, FAILURE_WINDOW, now)
        self.by_name = FailureLimit(NAME_FAILURES, FAILURE_WINDOW, now)
        self.hashing = HashingQueue(HASHING_RUNNING, HASHING_WAITING)

    @property
    def mail(self) -> MailShared:
        shared = self.find_mail()
        assert shared is not None, "[smtp] is built with the daemon, before requests come"
        return shared

    def viewer(self, request: Request) -> Viewer | str | None:
        """
        Who C{request} comes from: a L{Viewer}, C{None} (nobody logged in),
        or why it is refused (a wrong instructor token).
        """
        given = request.args.get(b"token")
        if given is not None:
            if self.token_is_right(given[0]):
                return Viewer(None, "?token=" + quote(given[0].decode("utf-8", "replace")))
            return "That instructor token is not right."
        cookie = request.getCookie(COOKIE)
        return self.sessions.find(cookie) if cookie else None

    def token_is_right(self, given: bytes) -> bool:
        expected = self.context.settings.instructor_token.encode()
        return bool(expected) and hmac.compare_digest(given, expected)

    def event(self, request: Request, what: str, user: str,
              level: LogLevel = LogLevel.info) -> None:
        """One login event of the web mailbox; never a password or a token."""
        self.context.events.emit(
            LOGIN, self.context.settings.name, describe_address(request.getClientAddress()),
            level, user=user[:64], what=what,
        )


def web(context: HttpContext) -> MailWeb | None:
    """The site's L{MailWeb}, or C{None} when C{[smtp]} does not run."""
    if context.mail is None:
        return None
    return context.shared(MailWeb, MailWeb)


# -- answers ------------------------------------------------------------------------


def plain(request: Request, code: int, text: str) -> bytes:
    """A refusal: the status and one line of plain text."""
    request.setResponseCode(code)
    request.setHeader(b"Content-Type", b"text/plain; charset=utf-8")
    request.setHeader(b"Cache-Control", b"no-store")
    request.setHeader(b"X-Content-Type-Options", b"nosniff")
    return f"{code} {text}\n".encode()


def see_other(request: Request, where: bytes) -> bytes:
    request.setResponseCode(303)
    request.setHeader(b"Location", where)
    request.setHeader(b"Content-Type", b"text/plain; charset=utf-8")
    request.setHeader(b"Cache-Control", b"no-store")
    return b"303 See Other: " + where + b"\n"


def html_page(request: Request, title: str, body: str, viewer: Viewer | None = None) -> bytes:
    """A whole page of the mailbox; C{body} is already escaped HTML."""
    request.setHeader(b"Content-Type", b"text/html; charset=utf-8")
    request.setHeader(b"Content-Security-Policy", PAGE_POLICY)
    request.setHeader(b"X-Content-Type-Options", b"nosniff")
    # Not no-referrer: with it a browser posts the login form with
    # "Origin: null", and the Origin check could not tell this site's form.
    request.setHeader(b"Referrer-Policy", b"same-origin")
    request.setHeader(b"Cache-Control", b"no-store")
    logout = ""
    if viewer is not None and not viewer.query:
        logout = (
            '<form method="post" action="/mail/logout" class="logout">'
            f'<span id="viewer">{escape(viewer.describe())}</span> '
            '<button type="submit">Log out</button></form>'
        )
    elif viewer is not None:
        logout = f'<span id="viewer">{escape(viewer.describe())}</span>'
    return PAGE.format(title=escape(title), logout=logout, body=body).encode()


def same_origin(request: Request) -> bool:
    """
    Whether a form post comes from this site: a browser names the page's
    origin in C{Origin} (and C{Sec-Fetch-Site}); a client that sends
    neither (curl) is not a browser another site could drive.
    """
    fetch_site = request.getHeader("sec-fetch-site")
    if fetch_site is not None and fetch_site not in ("same-origin", "none"):
        return False
    origin = request.getHeader("origin")
    if origin is None:
        return True
    scheme = "https" if request.isSecure() else "http"
    host = request.getHeader("host") or ""
    return origin == f"{scheme}://{host}"


def form_fields(request: Request) -> dict[str, str] | None:
    """
    The fields of a form post (the site leaves bodies to each resource), or
    None if it is not one this page sends (too many or too long fields).
    """
    assert request.content is not None
    request.content.seek(0, 0)
    body = request.content.read(MAX_FORM_BYTES + 1)
    if len(body) > MAX_FORM_BYTES:
        return None
    try:
        return dict(parse_urlencoded(body, max_fields=MAX_FORM_FIELDS))
    except ParseError:
        return None


def when(seconds: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(seconds))


def summary(message: StoredMessage, query: str = "") -> dict[str, Any]:
    """What a list row shows of a message (and the live stream sends)."""
    envelope = message.envelope
    return {
        "id": message.id,
        "subject": message.subject or "(no subject)",
        "from": envelope.sender or "<>",
        "to": ", ".join(envelope.recipients),
        "received": when(message.received),
        "size": message.size,
        "url": f"/mail/message/{message.id}{query}",
    }


def row_html(message: StoredMessage, query: str) -> str:
    row = summary(message, query)
    return (
        f'<li class="message" data-id="{row["id"]}">'
        f'<a class="subject" href="{escape(row["url"])}">{escape(row["subject"])}</a>'
        f'<span class="from">{escape(row["from"])}</span>'
        f'<span class="to">to {escape(row["to"])}</span>'
        f'<span class="received">{escape(row["received"])}</span>'
        f'<span class="size">{row["size"]} bytes</span></li>'
    )


# -- /mail ---------------------------------------------------------------------------


LOGIN_FORM = """
<section class="login">
<h2>Log in to read your mail</h2>
<p>{how}</p>
<form method="post" action="/mail/login">
<label>Name or address <input name="name" id="name" autocomplete="username" required></label>
<label>Password <input name="password" id="password" type="password"
 autocomplete="current-password"></label>
<button type="submit" id="login">Log in</button>
</form>
<details><summary>Instructor</summary>
<form method="post" action="/mail/login">
<label>Instructor token <input name="token" id="token" type="password"></label>
<button type="submit">See all mail</button>
</form>
</details>
</section>
"""

AUTH_HOW = {
    "any": "This mail server takes any name with any password (<code>auth = \"any\"</code>): "
           "log in with the name or address you sent mail to or from.",
    "users": "Log in with your mail account, as for SMTP and POP3.",
}


class MailboxPage(Resource):
    """C{GET /mail}: the login form, or the viewer's messages, newest first, live."""

    def __init__(self, web: MailWeb) -> None:
        super().__init__()
        self.web = web

    def getChild(self, path: bytes, request: Request) -> Resource:
        if path == b"":
            return self
        return super().getChild(path, request)

    def render_GET(self, request: Request) -> bytes:
        viewer = self.web.viewer(request)
        if isinstance(viewer, str):
            return plain(request, 403, viewer)
        if viewer is None:
            how = AUTH_HOW.get("any" if self.web.mail.accounts.open else "users", "")
            return html_page(request, "netlab mail", LOGIN_FORM.format(how=how))
        messages = self.web.mail.store.messages_for(viewer.login)
        rows = "".join(row_html(m, viewer.query) for m in messages)
        body = (
            f'<p class="scope">Messages sent from or to {escape(viewer.describe())}; '
            'new ones appear here as they come '
            '(<span id="live" class="live">not live</span>).</p>'
            f'<ol id="messages" class="messages" data-stream="/mail/stream{escape(viewer.query)}">'
            f'{rows}</ol>'
            f'<p id="empty" class="muted"{" hidden" if messages else ""}>No messages yet.</p>'
        )
        return html_page(request, "netlab mail", body, viewer)


class LoginResource(Resource):
    """
    C{POST /mail/login}: a name and password checked against the mail
    accounts, or the instructor token; a session cookie and back to
    C{/mail}.
    """

    isLeaf = True

    def __init__(self, web: MailWeb) -> None:
        super().__init__()
        self.web = web

    def render_POST(self, request: Request) -> bytes | int:
        if not same_origin(request):
            self.web.event(request, "refused a mail login from another site", "-",
                           LogLevel.warn)
            return plain(request, 403, "Forbidden: a login from another site is refused.")
        host = describe_address(request.getClientAddress()).rpartition(":")[0] or "-"
        fields = form_fields(request)
        if fields is None:
            return plain(request, 400, "Bad Request: not a login form.")
        if "token" in fields:
            return self.instructor(request, host, fields["token"])
        name = login_name(fields.get("name", ""))
        password = fields.get("password")
        if name is None or password is None:
            return plain(request, 400, "Bad Request: give a name (no spaces) and a password.")
        key = name.casefold()
        wait = max(self.web.by_address.wait(host), self.web.by_name.wait(key))
        if wait:
            request.setHeader(b"Retry-After", str(math.ceil(wait)).encode())
            self.web.event(request, "mail login refused: too many failures", name,
                           LogLevel.warn)
            return plain(request, 429, f"Too Many Requests: too many failed logins; "
                                       f"try again in {math.ceil(wait)} s.")
        accounts = self.web.mail.accounts
        credentials = UsernamePassword(name.encode("utf-8"), password.encode("utf-8"))
        checking = self.web.hashing.run(accounts.requestAvatarId, credentials)
        if checking is None:
            return plain(request, 503, "Service Unavailable: too many logins are being "
                                       "checked; try again in a moment.")
        gone: list[bool] = []
        request.notifyFinish().addErrback(lambda _: gone.append(True))

        def checked(avatar: Any) -> None:
            if gone:
                return
            login = str(avatar)
            self.web.event(request, "logged in to the web mailbox", login)
            self.start(request, Viewer(login))

        def refused(failure: Failure) -> None:
            self.web.by_address.failed(host)
            self.web.by_name.failed(key)
            self.web.event(request, "failed to log in to the web mailbox", name, LogLevel.warn)
            if not gone:
                request.write(plain(request, 403, "Forbidden: wrong name or password."))
                request.finish()

        checking.addCallbacks(checked, refused)
        return NOT_DONE_YET

    def instructor(self, request: Request, host: str, token: str) -> bytes | int:
        wait = self.web.by_address.wait(host)
        if wait:
            request.setHeader(b"Retry-After", str(math.ceil(wait)).encode())
            return plain(request, 429, f"Too Many Requests: too many failed logins; "
                                       f"try again in {math.ceil(wait)} s.")
        if not self.web.token_is_right(token.encode("utf-8")):
            self.web.by_address.failed(host)
            self.web.event(request, "wrong instructor token for the web mailbox",
                           "instructor", LogLevel.warn)
            return plain(request, 403, "Forbidden: that instructor token is not right.")
        self.web.event(request, "logged in to the web mailbox", "instructor")
        self.start(request, Viewer(None))
        return NOT_DONE_YET

    def start(self, request: Request, viewer: Viewer) -> None:
        token = self.web.sessions.open(viewer)
        request.addCookie(
            COOKIE, token, path=b"/mail", httpOnly=True, sameSite="strict",
            secure=request.isSecure() or None,
        )
        request.write(see_other(request, b"/mail"))
        request.finish()


class LogoutResource(Resource):
    """C{POST /mail/logout}: the session ends, the cookie goes."""

    isLeaf = True

    def __init__(self, web: MailWeb) -> None:
        super().__init__()
        self.web = web

    def render_POST(self, request: Request) -> bytes:
        if not same_origin(request):
            return plain(request, 403, "Forbidden: a logout from another site is refused.")
        token = request.getCookie(COOKIE)
        if token:
            self.web.sessions.close(token)
        request.addCookie(COOKIE, b"", path=b"/mail", httpOnly=True, sameSite="strict",
                          max_age=b"0")
        return see_other(request, b"/mail")


class MailStream(Resource):
    """C{GET /mail/stream}: each new message the viewer may see, as it comes."""

    isLeaf = True

    def __init__(self, web: MailWeb) -> None:
        super().__init__()
        self.web = web

    def render_GET(self, request: Request) -> bytes | int:
        viewer = self.web.viewer(request)
        if isinstance(viewer, str):
            return plain(request, 403, viewer)
        if viewer is None:
            return plain(request, 403, "Forbidden: log in at /mail first.")
        if request.method == b"HEAD":
            request.setHeader(b"Content-Type", b"text/event-stream; charset=utf-8")
            return b""
        stream = EventStream(request)
        stream.send({}, event="ready")

        def push(message: StoredMessage) -> None:
            if viewer.sees(message):
                stream.send(summary(message, viewer.query), event="mail")

        stream.on_close(self.web.mail.store.watch(push))
        stream.keepalive(self.web.context.reactor, KEEPALIVE_SECONDS)
        return NOT_DONE_YET


# -- one message ------------------------------------------------------------------------


@dataclass(frozen=True)
class Part:
    """One leaf of a message's MIME tree, numbered in tree order."""

    number: int
    content_type: str
    filename: str | None
    payload: bytes
    text: str | None  # decoded, for text/plain and text/html parts shown inline

    @property
    def kind(self) -> str:
        if self.text is None:
            return "attachment"
        return "html" if self.content_type == "text/html" else "text"


def parse(data: bytes) -> Message:
    return email.message_from_bytes(data, policy=email.policy.default)


def decoded_text(part: Message, payload: bytes) -> str:
    charset = part.get_content_charset() or "utf-8"
    try:
        return payload.decode(charset, "replace")
    except LookupError:  # a charset Python does not know
        return payload.decode("utf-8", "replace")


def parts_of(message: Message) -> Iterator[Part]:
    """Every leaf part; text and HTML ones not sent as attachments decoded."""
    for number, part in enumerate(message.walk()):
        if part.is_multipart():
            continue
        payload = part.get_payload(decode=True)
        if not isinstance(payload, bytes):
            payload = b""
        content_type = part.get_content_type()
        filename = part.get_filename()
        inline = (
            part.get_content_disposition() != "attachment" and filename is None
            and content_type in ("text/plain", "text/html")
        )
        yield Part(number, content_type, filename, payload,
                   decoded_text(part, payload) if inline else None)


def header_text(value: object) -> str:
    try:
        return str(value)
    except Exception:  # a header the parser could not make sense of
        return repr(value)


SHOWN_HEADERS = ("From", "To", "Cc", "Date", "Subject", "Message-ID")


def safe_filename(name: str) -> str:
    """A download name with nothing a header or a path could misread."""
    kept = "".join(c if c.isascii() and (c.isalnum() or c in "._- ") else "_" for c in name)
    return kept.strip(" .")[:100] or "attachment"


class MessageResource(Resource):
    """
    C{GET /mail/message/ID}: one message's page; C{ID.eml}: the message;
    C{ID/part/N}: one part (an HTML part sandboxed, anything else as an
    attachment).  A message the viewer may not see is not there.
    """

    isLeaf = True

    def __init__(self, web: MailWeb) -> None:
        super().__init__()
        self.web = web

    def render_GET(self, request: Request) -> bytes:
        viewer = self.web.viewer(request)
        if isinstance(viewer, str):
            return plain(request, 403, viewer)
        if viewer is None:
            return plain(request, 403, "Forbidden: log in at /mail first.")
        path = request.postpath or []
        first = path[0] if path else b""
        eml = first.endswith(b".eml") and len(path) == 1
        digits = first[:-4] if eml else first
        store = self.web.mail.store
        message = store.message(int(digits)) if digits.isdigit() and len(digits) < 19 else None
        data = store.data(message.id) if message is not None else None
        if message is None or data is None or not viewer.sees(message):
            return plain(request, 404, "Not Found: no such message here.")
        if eml:
            return self.eml(request, message, data)
        if len(path) == 1:
            return self.page(request, viewer, message, data)
        if len(path) == 3 and path[1] == b"part" and path[2].isdigit() and len(path[2]) < 6:
            number = int(path[2])
            for part in parts_of(parse(data)):
                if part.number == number:
                    return self.part(request, part)
        return plain(request, 404, "Not Found: no such part of that message.")

    def eml(self, request: Request, message: StoredMessage, data: bytes) -> bytes:
        request.setHeader(b"Content-Type", b"message/rfc822")
        request.setHeader(
            b"Content-Disposition", f'attachment; filename="message-{message.id}.eml"'.encode()
        )
        request.setHeader(b"X-Content-Type-Options", b"nosniff")
        request.setHeader(b"Content-Security-Policy", DOWNLOAD_POLICY)
        request.setHeader(b"Cache-Control", b"no-store")
        return data

    def part(self, request: Request, part: Part) -> bytes:
        request.setHeader(b"X-Content-Type-Options", b"nosniff")
        request.setHeader(b"Cache-Control", b"no-store")
        request.setHeader(b"Referrer-Policy", b"no-referrer")
        if part.kind == "html":
            assert part.text is not None
            request.setHeader(b"Content-Type", b"text/html; charset=utf-8")
            request.setHeader(b"Content-Security-Policy", HTML_PART_POLICY)
            return part.text.encode("utf-8")
        name = safe_filename(part.filename or f"part-{part.number}")
        request.setHeader(b"Content-Type", b"application/octet-stream")
        request.setHeader(b"Content-Disposition", f'attachment; filename="{name}"'.encode())
        request.setHeader(b"Content-Security-Policy", DOWNLOAD_POLICY)
        return part.payload

    def page(self, request: Request, viewer: Viewer, message: StoredMessage,
             data: bytes) -> bytes:
        parsed = parse(data)
        base = f"/mail/message/{message.id}"
        query = viewer.query
        envelope = message.envelope
        shown = [(name, header_text(parsed[name])) for name in SHOWN_HEADERS if name in parsed]
        shown += [
            ("Envelope from", envelope.sender or "<>"),
            ("Envelope to", ", ".join(envelope.recipients)),
            ("Logged in as", envelope.user or "nobody"),
            ("Client", f"{envelope.client} (HELO {envelope.helo})"),
            ("TLS", "yes" if envelope.tls else "no"),
            ("Received", when(message.received)),
            ("Size", f"{message.size} bytes"),
        ]
        headers = "".join(
            f"<div><dt>{escape(name)}</dt><dd>{escape(value)}</dd></div>"
            for name, value in shown
        )
        head, _, _ = data.partition(b"\r\n\r\n")
        sections = []
        attachments = []
        for part in parts_of(parsed):
            url = escape(f"{base}/part/{part.number}{query}")
            if part.kind == "text":
                sections.append(
                    f'<section class="part text-part"><h2>Text</h2>'
                    f'<pre>{escape(part.text or "")}</pre></section>'
                )
            elif part.kind == "html":
                sections.append(
                    '<section class="part html-part"><h2>HTML (sandboxed: no scripts run)</h2>'
                    f'<iframe sandbox="" src="{url}" title="HTML part {part.number}" '
                    'referrerpolicy="no-referrer"></iframe>'
                    f'<p><a href="{url}" rel="noreferrer">Open it alone</a></p></section>'
                )
            else:
                name = part.filename or f"part {part.number}"
                digest = hashlib.sha256(part.payload).hexdigest()
                attachments.append(
                    f'<tr class="attachment"><td class="name"><a href="{url}" download>'
                    f"{escape(name)}</a></td><td>{escape(part.content_type)}</td>"
                    f'<td class="size">{len(part.payload)}</td>'
                    f'<td class="sha256"><code>{digest}</code></td></tr>'
                )
        if attachments:
            sections.append(
                '<section class="part"><h2>Attachments</h2><table id="attachments">'
                "<tr><th>Name</th><th>Type</th><th>Bytes</th><th>sha256</th></tr>"
                + "".join(attachments) + "</table></section>"
            )
        body = (
            f'<p><a href="/mail{escape(query)}">All messages</a> · '
            f'<a id="eml" href="{escape(base + ".eml" + query)}" download>'
            "Download the message (.eml)</a></p>"
            f'<dl id="headers" class="headers">{headers}</dl>'
            + "".join(sections)
            + "<details><summary>Every header, as it came</summary>"
            f'<pre id="raw-headers">{escape(head.decode("utf-8", "replace"))}</pre></details>'
        )
        return html_page(request, message.subject or "(no subject)", body, viewer)


# -- builders for the route table ---------------------------------------------------------


def asset(name: str) -> bytes:
    return files("netlab.protocols.http").joinpath("assets", name).read_bytes()


def page(context: HttpContext) -> Resource | None:
    shared = web(context)
    return None if shared is None else MailboxPage(shared)


def login(context: HttpContext) -> Resource | None:
    shared = web(context)
    return None if shared is None else LoginResource(shared)


def logout(context: HttpContext) -> Resource | None:
    shared = web(context)
    return None if shared is None else LogoutResource(shared)


def stream(context: HttpContext) -> Resource | None:
    shared = web(context)
    return None if shared is None else MailStream(shared)


def message(context: HttpContext) -> Resource | None:
    shared = web(context)
    return None if shared is None else MessageResource(shared)


def script(context: HttpContext) -> Resource | None:
    if context.mail is None:
        return None
    return static.Data(asset("mail.js"), "text/javascript; charset=utf-8")


def stylesheet(context: HttpContext) -> Resource | None:
    if context.mail is None:
        return None
    return static.Data(asset("mail.css"), "text/css; charset=utf-8")


__all__ = ["MailWeb", "Sessions", "Viewer", "safe_filename", "same_origin"]
