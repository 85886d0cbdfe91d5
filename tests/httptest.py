"""
Scaffolding for the web site's tests: a NetlabSite with chosen modules on a
free loopback port, real curl run without blocking the reactor (or blocking,
against the daemon in another process), its output parsed, and the config
of a real daemon that runs little but the web site.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import pytest_twisted
from twisted.internet import reactor
from twisted.internet.defer import Deferred
from twisted.internet.utils import getProcessOutputAndValue
from twisted.web.resource import Resource

from helpers import require_tool
from netlab.core.events import DISCONNECTED
from netlab.protocols.http import routes
from netlab.protocols.http.context import HttpContext
from netlab.protocols.http.settings import HttpSettings
from netlab.protocols.http.site import NetlabSite

LOOPBACK = "tcp:0:interface=127.0.0.1"


def http_config(*lines: str, listen: str = LOOPBACK, echo: bool = False) -> str:
    """A daemon config: the web site on C{listen} with C{lines} added, no chat, no UDP echo,
    and one TCP echo service named "echo" on a free port if C{echo}, else none."""
    http = "\n".join([f'listen = ["{listen}"]', *lines])
    config = f"udp_echo = []\n{'' if echo else 'echo = []'}\n\n[chat]\nenabled = false\n\n"
    config += f"[http]\n{http}\n"
    if echo:
        config += f'\n[[echo]]\nname = "echo"\nlisten = ["{LOOPBACK}"]\n'
    return config


@dataclass
class Response:
    """What curl -i got back: the last response's status, headers and body."""

    status: int
    headers: dict[str, str]
    body: bytes
    all_headers: list[tuple[str, str]] = field(default_factory=list)
    port: int = 0

    @property
    def content_type(self) -> str:
        """The Content-Type header, or "" without one."""
        return self.headers.get("content-type", "")

    def json(self) -> Any:
        """The body as JSON, which it must say it is."""
        assert self.content_type == "application/json", self.headers
        return json.loads(self.body)

    def text(self) -> str:
        """The body as UTF-8 plain text, which it must say it is."""
        assert self.content_type == "text/plain; charset=utf-8", self.headers
        return self.body.decode("utf-8")


def parse_response(raw: bytes) -> Response:
    """Split curl -i output into the last response's status line, headers (lower-case names)
    and body, skipping interim responses (100 Continue) and, with curl -L, earlier hops."""
    head, _, body = raw.partition(b"\r\n\r\n")
    while body.startswith(b"HTTP/"):
        head, _, body = body.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    pairs = [line.partition(":") for line in lines[1:]]
    all_headers = [(name.strip().lower(), value.strip()) for name, _, value in pairs]
    return Response(int(lines[0].split()[1]), dict(all_headers), body, all_headers)


def curl_args(*args: str) -> list[str]:
    """Real curl's path and options: quiet but for errors, never through a proxy."""
    return [require_tool("curl"), "-sS", "--noproxy", "*", *args]


def run_curl(*args: str) -> Deferred[tuple[bytes, bytes, int]]:
    """Run real curl without blocking the reactor; its (stdout, stderr, exit code)."""
    curl, *options = curl_args(*args)
    # An empty environment: no proxy variables may reroute loopback requests.
    return getProcessOutputAndValue(curl, options, env={})


@pytest_twisted.inlineCallbacks
def fetch(url: str, *args: str) -> Any:
    """Fetch C{url} with curl -i, which must succeed; a L{Response}."""
    out, err, code = yield run_curl("-i", *args, url)
    assert code == 0, err
    return parse_response(out)


def curl_sync(*args: str, check: bool = False) -> subprocess.CompletedProcess[bytes]:
    """Real curl, blocking: the daemon runs in another process."""
    return subprocess.run(curl_args(*args), capture_output=True, timeout=30, env={}, check=check)


def when_idle(site: NetlabSite) -> Deferred[None]:
    """Fires once the site has logged the close of its last open connection."""
    done: Deferred[None] = Deferred()
    if site.counters.connections_open == 0:
        done.callback(None)
        return done

    def seen(event: dict[str, Any]) -> None:
        if (event["netlab_event"] == DISCONNECTED and event["service"] == site.name
                and site.counters.connections_open == 0 and not done.called):
            unsubscribe()
            done.callback(None)

    unsubscribe = site.context.events.subscribe(seen)
    return done


def build_site(
    events: Any, clock: Any, *chosen: Iterable[routes.Route], root: Resource | None = None,
    hub: Any = None, service: Any = None, status_random: Any = None,
    services: Any = (), kinds: Any = None, mail: Any = None, **settings: Any,
) -> NetlabSite:
    """
    A NetlabSite named "http" with C{settings}, the C{chosen} routes
    installed on C{root}; C{services} and C{kinds} as the daemon gives them
    (the dashboard reads them).
    """
    context = HttpContext(
        settings=HttpSettings(name="http", **settings), events=events, reactor=clock,
        hub=hub, service=service, status_random=status_random, services=services,
        kinds=kinds or {}, mail=mail,
    )
    root = Resource() if root is None else root
    for some in chosen:
        routes.install(root, context, some)
    return NetlabSite(root, context)


class Served:
    """A NetlabSite listening on a free loopback port, fetched from with real curl."""

    def __init__(self, site: NetlabSite) -> None:
        self.site = site
        self.context = site.context
        self.port: Any = reactor.listenTCP(0, site, interface="127.0.0.1")
        self.number: int = self.port.getHost().port
        self.base = f"http://127.0.0.1:{self.number}"

    def url(self, path: str) -> str:
        """The full URL of C{path} on this site."""
        return self.base + path

    @pytest_twisted.inlineCallbacks
    def fetch(self, path: str, *args: str) -> Any:
        """curl -i C{path} on this site; a L{Response} that knows the port."""
        response = yield fetch(self.url(path), *args)
        response.port = self.number
        return response

    @pytest_twisted.inlineCallbacks
    def close(self) -> Any:
        """Wait for the server side of every connection to close, then stop listening."""
        yield when_idle(self.site)
        yield self.port.stopListening()


@pytest_twisted.inlineCallbacks
def fetch_once(site: NetlabSite, path: str, *options: str) -> Any:
    """Serve C{site} on a loopback port for one real curl of C{path}; its L{Response}."""
    served = Served(site)
    try:
        answer = yield served.fetch(path, *options)
    finally:
        yield served.close()
    return answer


def serve(events: Any, clock: Any, *chosen: Iterable[routes.Route], **options: Any) -> Served:
    """L{build_site} with these arguments, listening: a L{Served}."""
    return Served(build_site(events, clock, *chosen, **options))
