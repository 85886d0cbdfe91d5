"""
Tests for netlab.protocols.http.front: C{/} as the course's clients use it
(curl's GET report, curl -F's form report, xmlrpc.client), and as browsers
do (the dashboard), on the whole site on a real loopback port; then the
real daemon, with curl, a raw socket typing bare-LF requests, and nc.
"""

from __future__ import annotations

import platform
import re
import socket
import subprocess
import xmlrpc.client
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pytest
import pytest_twisted
from twisted.internet.task import Clock
from twisted.internet.threads import deferToThread
from twisted.web import server as twisted_server

from daemon import Daemon, running_daemon
from helpers import cannot_run, require_tool
from httptest import (
    Served,
    build_site,
    curl_sync,
    fetch,
    fetch_once,
    http_config,
    parse_response,
    serve,
)
from netlab.core.events import HTTP_REQUEST
from netlab.protocols.http import front, routes
from netlab.protocols.http.front import accepts_html

CHROMIUM_ACCEPT = (
    "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,"
    "image/apng,*/*;q=0.8,application/signed-exchange;v=b3;q=0.7"
)
FIREFOX_ACCEPT = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"
CLIENT_LINE = re.compile(r"client_address=\('127\.0\.0\.1', (\d+)\) \((\S+)\)")


class ClassicGetHandler(BaseHTTPRequestHandler):
    """The course's GET handler (the classic http.server example), to compare with."""

    def do_GET(self) -> None:
        parsed_path = urlparse(self.path)
        message_parts = [
            "CLIENT VALUES:",
            f"client_address={self.client_address} ({self.address_string()})",
            f"command={self.command}",
            f"path={self.path}",
            f"real path={parsed_path.path}",
            f"query={parsed_path.query}",
            f"request_version={self.request_version}",
            "",
            "SERVER VALUES:",
            f"server_version={self.server_version}",
            f"sys_version={self.sys_version}",
            f"protocol_version={self.protocol_version}",
            "",
            "HEADERS RECEIVED:",
        ]
        for name, value in sorted(self.headers.items()):
            message_parts.append(f"{name}={value.rstrip()}")
        message_parts.append("")
        message = "\r\n".join(message_parts)
        self.send_response(200)
        self.end_headers()
        self.wfile.write(message.encode())

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: pytest shows stderr."""


def serve_site(events: Any, clock: Clock, **settings: Any) -> Served:
    """Every route of the site on a loopback port."""
    return serve(events, clock, routes.ROUTES, root=routes.Root(), **settings)


def normalised(report: str, port: int) -> str:
    """A GET report with what must differ between two servers blanked out."""
    report = CLIENT_LINE.sub("client_address=('127.0.0.1', CLIENT) (NAME)", report)
    report = report.replace(f"127.0.0.1:{port}", "127.0.0.1:PORT")
    report = re.sub(r"(?m)^(server_version|protocol_version)=.*\r$", r"\1=X\r", report)
    return report


@pytest.mark.parametrize(
    ("accept", "html"),
    [
        (CHROMIUM_ACCEPT, True),
        (FIREFOX_ACCEPT, True),
        ("TEXT/HTML", True),
        ("text/html;level=1, */*", True),
        ("text/plain, text/html; q=0.5", True),
        (None, False),
        ("*/*", False),
        ("text/*", False),
        ("text/plain", False),
        ("application/xhtml+xml", False),
        ("text/html;q=0, */*", False),
        ("text/html;q=zero", False),
    ],
)
def test_who_gets_the_dashboard(accept: str | None, html: bool) -> None:
    """An Accept that names text/html (every browser's) is a browser; curl's */* is not."""
    assert accepts_html(None if accept is None else accept.encode()) is html


@pytest_twisted.inlineCallbacks
def test_curl_gets_the_classic_report(events: Any, clock: Clock) -> Any:
    """curl -i '/?foo=bar' gets the report the course's http.server handler prints, line for
    line (the client's name aside: netlab does not ask the resolver), with CRLF line ends."""
    served = serve_site(events, clock)
    classic = HTTPServer(("127.0.0.1", 0), ClassicGetHandler)
    try:
        classic_port = classic.server_address[1]
        handled = deferToThread(classic.handle_request)
        theirs = yield fetch(f"http://127.0.0.1:{classic_port}/?foo=bar")
        yield handled
    finally:
        classic.server_close()
    ours = yield served.fetch("/?foo=bar")
    yield served.close()
    assert ours.status == 200
    assert ours.headers["vary"] == "Accept"
    report = ours.text()
    assert normalised(report, served.number) == normalised(theirs.body.decode(), classic_port)
    lines = report.split("\r\n")
    assert "\n" not in report.replace("\r\n", "")
    (peer,) = [e["peer"] for e in events.kinds(HTTP_REQUEST) if e["path"] == "/?foo=bar"]
    assert lines[:8] == [
        "CLIENT VALUES:", f"client_address=('127.0.0.1', {peer.rsplit(':', 1)[1]}) (localhost)",
        "command=GET", "path=/?foo=bar", "real path=/", "query=foo=bar",
        "request_version=HTTP/1.1", "",
    ]
    assert lines[8:12] == [
        "SERVER VALUES:", f"server_version={twisted_server.version.decode()}",
        f"sys_version=Python/{platform.python_version()}", "protocol_version=HTTP/1.1",
    ]
    assert lines[12:14] == ["", "HEADERS RECEIVED:"]
    assert lines[14:] == [*sorted(lines[14:-1]), ""]
    assert lines[14] == "Accept=*/*" and lines[15] == f"Host=127.0.0.1:{served.number}"


@pytest_twisted.inlineCallbacks
def test_browsers_get_the_dashboard(events: Any, clock: Clock) -> Any:
    """A browser's Accept gets the dashboard at /; HEAD follows the same rule, bodiless."""
    served = serve_site(events, clock)
    page = yield served.fetch("/", "-H", f"Accept: {CHROMIUM_ACCEPT}")
    assert page.status == 200
    assert page.content_type == "text/html; charset=utf-8"
    assert page.headers["vary"] == "Accept"
    assert b'<body data-page="dashboard">' in page.body
    head_html = yield served.fetch("/", "-I", "-H", f"Accept: {FIREFOX_ACCEPT}")
    head_text = yield served.fetch("/", "-I")
    assert head_html.content_type == "text/html; charset=utf-8" and head_html.body == b""
    assert head_text.content_type == "text/plain; charset=utf-8" and head_text.body == b""
    yield served.close()


@pytest_twisted.inlineCallbacks
def test_methods_and_other_paths(events: Any, clock: Clock) -> Any:
    """OPTIONS / lists GET, HEAD, OPTIONS, POST; PUT / is 405; unknown paths stay 404."""
    served = serve_site(events, clock)
    options = yield served.fetch("/", "-X", "OPTIONS")
    assert options.status == 204
    assert options.headers["allow"] == "GET, HEAD, OPTIONS, POST"
    put = yield served.fetch("/", "-X", "PUT")
    assert put.status == 405
    assert put.headers["allow"] == "GET, HEAD, OPTIONS, POST"
    for path in ("/nothing", "/index.html", "/time.html/x"):
        missing = yield served.fetch(path)
        assert missing.status == 404, path
    yield served.close()


@pytest_twisted.inlineCallbacks
def test_curl_form_gets_the_classic_form_report(
    events: Any, clock: Clock, tmp_path: Path
) -> Any:
    """curl -F name=x -F foo=bar -F datafile=@file to / gets the cgi.FieldStorage example's
    report, fields and files in the order sent, tab-indented."""
    upload = tmp_path / "notes.txt"
    upload.write_bytes(b"twelve bytes")
    served = serve_site(events, clock)
    got = yield served.fetch("/", "-A", "course-client/1.0", "-F", "name=x", "-F", "foo=bar",
                             "-F", f"datafile=@{upload}")
    yield served.close()
    assert got.status == 200
    lines = got.text().split("\n")
    assert re.fullmatch(r"Client: \('127\.0\.0\.1', \d+\)", lines[0]), lines[0]
    assert lines[1:] == [
        "User-agent: course-client/1.0", "Path: /", "Form data:", "\tname=x", "\tfoo=bar",
        '\tUploaded datafile as "notes.txt" (12 bytes)', "",
    ]


@pytest_twisted.inlineCallbacks
def test_urlencoded_and_refused_bodies(events: Any, clock: Clock) -> Any:
    """curl -d is a form too; a malformed multipart body is 400; JSON is 415, in one line."""
    served = serve_site(events, clock)
    form = yield served.fetch("/?q=1", "-d", "name=x&foo=bar&name=y")
    assert form.text().split("\n")[2:] == [
        "Path: /?q=1", "Form data:", "\tname=x", "\tfoo=bar", "\tname=y", "",
    ]
    broken = yield served.fetch(
        "/", "-H", "Content-Type: multipart/form-data; boundary=b", "--data-binary", "nonsense")
    assert broken.status == 400
    assert broken.text().startswith("400 Bad Request: ")
    json_body = yield served.fetch(
        "/", "-H", "Content-Type: application/json", "--data-binary", "{}")
    assert json_body.status == 415
    assert json_body.text() == (
        "415 Unsupported Media Type: POST / takes a form (multipart/form-data or "
        "application/x-www-form-urlencoded) or an XML-RPC call (text/xml), "
        "not application/json\n"
    )
    yield served.close()
    assert [e["status"] for e in events.kinds(HTTP_REQUEST)] == [200, 400, 415]


@pytest_twisted.inlineCallbacks
def test_xmlrpc_client_at_the_root(events: Any, clock: Clock) -> Any:
    """xmlrpc.client.ServerProxy("http://host:port/") works as against SimpleXMLRPCServer."""
    served = serve_site(events, clock)

    def course_client() -> Any:
        with xmlrpc.client.ServerProxy(served.url("/")) as proxy:
            evens = [proxy.is_even(n) for n in (3, 4, 3.0, 4.0, 2.5)]
            return evens, proxy.system.listMethods()

    def at_rpc2() -> Any:
        with xmlrpc.client.ServerProxy(served.url("/RPC2")) as proxy:
            return proxy.system.listMethods()

    evens, methods = yield deferToThread(course_client)
    rpc2_methods = yield deferToThread(at_rpc2)
    yield served.close()
    assert evens == [False, True, False, True, False]
    assert methods == rpc2_methods
    assert {"is_even", "add", "echo", "time", "system.listMethods", "system.methodHelp",
            "system.methodSignature"} == set(methods)


# -- the real daemon --------------------------------------------------------------


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    """One real daemon, its web site on a free port."""
    with running_daemon(tmp_path_factory.mktemp("http-front"), http_config()) as running:
        yield running


def read_response(stream: Any) -> tuple[bytes, bytes]:
    """One response from a socket file, read to its end (Content-Length or chunked), so
    that the connection can carry another: its head and body."""
    head = b""
    while not head.endswith(b"\r\n\r\n"):
        line = stream.readline()
        assert line, head
        head += line
    length = re.search(rb"(?i)\r\ncontent-length: (\d+)", head)
    if length is not None:
        return head, stream.read(int(length[1]))
    assert re.search(rb"(?i)\r\ntransfer-encoding: chunked\r\n", head), head
    body = b""
    while size := int(stream.readline().split(b";")[0], 16):
        body += stream.read(size)
        assert stream.readline() == b"\r\n"
    assert stream.readline() == b"\r\n"
    return head, body


def test_e2e_bare_lf_requests(daemon: Daemon) -> None:
    """A raw socket typing bare-LF requests, as telnetlib and nc send them, is answered at
    once; the HTTP/1.1 one stays open for a CRLF request after it."""
    port = daemon.port("http")
    with socket.create_connection(("127.0.0.1", port), timeout=20) as s:
        s.sendall(b"GET / HTTP/1.0\n\n")
        data = s.makefile("rb").read()
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.0 200 OK\r\n")
    assert body.startswith(b"CLIENT VALUES:\r\nclient_address=('127.0.0.1', ")
    assert b"\r\nrequest_version=HTTP/1.0\r\n" in body
    assert b"\r\nprotocol_version=HTTP/1.0\r\n" in body
    assert body.endswith(b"\r\n\r\nHEADERS RECEIVED:\r\n")  # it sent none
    with socket.create_connection(("127.0.0.1", port), timeout=20) as s:
        stream = s.makefile("rb")
        s.sendall(b"GET /time.html HTTP/1.1\nHost: x\n\n")
        first_head, first = read_response(stream)
        s.sendall(b"GET /time.html HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        rest = stream.read()
    assert first_head.startswith(b"HTTP/1.1 200 OK\r\n")
    assert re.search(rb"<h1>\d\d:\d\d:\d\d \d\d\.\d\d\.\d{4}</h1>", first)
    assert rest.startswith(b"HTTP/1.1 200 OK\r\n") and b"<h1>" in rest


def test_e2e_nc_typed_request(daemon: Daemon) -> None:
    """printf 'GET / HTTP/1.0\\n\\n' | nc host port: the report, at once."""
    nc = require_tool("nc")
    usage = subprocess.run([nc, "-h"], capture_output=True, text=True, timeout=30)
    if "OpenBSD" not in usage.stdout + usage.stderr:
        cannot_run(f"{nc} is not openbsd netcat")
    result = subprocess.run(
        ["sh", "-c", f"printf 'GET / HTTP/1.0\\n\\n' | {nc} 127.0.0.1 {daemon.port('http')}"],
        capture_output=True, timeout=30, check=True,
    )
    got = parse_response(result.stdout)
    assert got.status == 200
    assert got.text().startswith("CLIENT VALUES:\r\n")
    assert "command=GET\r\npath=/\r\nreal path=/\r\nquery=\r\n" in got.text()


def test_e2e_course_commands(daemon: Daemon, tmp_path: Path) -> None:
    """The course's own curl commands at /, and a browser's Accept, on the real daemon."""
    base = f"http://127.0.0.1:{daemon.port('http')}"
    report = parse_response(curl_sync("-i", f"{base}/?foo=bar", check=True).stdout)
    assert report.text().startswith("CLIENT VALUES:\r\n")
    assert "\r\nquery=foo=bar\r\n" in report.text()
    upload = tmp_path / "file"
    upload.write_bytes(b"x" * 1000)
    form = curl_sync(f"{base}/", "-F", "name=x", "-F", "foo=bar", "-F", f"datafile=@{upload}",
                     check=True).stdout.decode()
    assert form.endswith('Form data:\n\tname=x\n\tfoo=bar\n\tUploaded datafile as "file" '
                         "(1000 bytes)\n")
    page = curl_sync("-H", f"Accept: {CHROMIUM_ACCEPT}", f"{base}/", check=True).stdout
    assert b'<body data-page="dashboard">' in page
    daemon.wait_for_log(r'http: 127\.0\.0\.1:\d+ "POST /" 200 \d+ bytes')


@pytest_twisted.inlineCallbacks
def test_favicon_is_served(events: Any, clock: Any) -> Any:
    """/favicon.ico: an ICO file (the browsers' own request), cached for a day."""
    answer = yield fetch_once(build_site(events, clock, routes.of(front)), "/favicon.ico")
    assert answer.status == 200
    assert answer.headers["content-type"] == "image/x-icon"
    assert "max-age=86400" in answer.headers["cache-control"]
    assert answer.body[:4] == b"\x00\x00\x01\x00"
