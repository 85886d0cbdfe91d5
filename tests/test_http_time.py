"""
Tests for netlab.protocols.http.timepage: the page served in process with a
C{task.Clock} for its time and fetched with real curl, and the real daemon.
"""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterator
from typing import Any

import pytest
import pytest_twisted
from twisted.internet import reactor
from twisted.internet.defer import Deferred
from twisted.internet.task import Clock
from twisted.internet.utils import getProcessOutputAndValue
from twisted.web.resource import Resource

from daemon import Daemon, run_daemon
from helpers import require_tool
from netlab.daemon.config import HttpSettings
from netlab.daemon.events import DISCONNECTED
from netlab.protocols.http import timepage
from netlab.protocols.http.site import HttpContext, NetlabSite
from netlab.protocols.http.timepage import TimeReading

NOVEMBER_2023 = 1_700_000_000  # Tuesday, 14 November 2023, 22:13:20 UTC


class Served:
    """The time page on a NetlabSite on loopback port 0, its time from C{clock}."""

    def __init__(self, events: Any, clock: Clock) -> None:
        context = HttpContext(settings=HttpSettings(name="http"), events=events, reactor=clock)
        root = Resource()
        timepage.install(root, context)
        self.site = NetlabSite(root, context)
        self.port = reactor.listenTCP(0, self.site, interface="127.0.0.1")

    @pytest_twisted.inlineCallbacks
    def fetch(self, path: str, *args: str) -> Any:
        """curl -i C{path}: (status, headers with lower-case names, body)."""
        curl = require_tool("curl")
        url = f"http://127.0.0.1:{self.port.getHost().port}{path}"
        out, err, code = yield getProcessOutputAndValue(
            curl, ["-sS", "-i", "--noproxy", "*", *args, url], env={}
        )
        assert code == 0, err
        head, _, body = out.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        headers = dict(
            (name.strip().lower(), value.strip())
            for name, value in (line.split(":", 1) for line in lines[1:])
        )
        return int(lines[0].split()[1]), headers, body

    @pytest_twisted.inlineCallbacks
    def close(self) -> Any:
        """Wait until the server side of every connection has closed; stop listening."""
        if self.site.counters.connections_open:
            idle: Deferred[None] = Deferred()

            def seen(event: dict[str, Any]) -> None:
                open_now = self.site.counters.connections_open
                if event["netlab_event"] == DISCONNECTED and not open_now:
                    unsubscribe()
                    idle.callback(None)

            unsubscribe = self.site.context.events.subscribe(seen)
            yield idle
        yield self.port.stopListening()


def test_reading_spells_out_the_moment() -> None:
    """A reading has the ISO-8601, Unix and English forms of the same whole second."""
    reading = TimeReading.at(NOVEMBER_2023 + 0.75)
    assert reading.iso == "2023-11-14T22:13:20Z"
    assert reading.unix == NOVEMBER_2023
    assert reading.text == "Tuesday, 14 November 2023, 22:13:20 UTC"
    assert TimeReading.at(0).text == "Thursday, 1 January 1970, 00:00:00 UTC"


@pytest_twisted.inlineCallbacks
def test_time_page_shows_the_clock_time(events: Any, clock: Clock) -> Any:
    """GET /time.html is an HTML page with the server clock's date and time."""
    clock.advance(NOVEMBER_2023)
    served = Served(events, clock)
    code, headers, body = yield served.fetch("/time.html")
    assert code == 200
    assert headers["content-type"] == "text/html; charset=utf-8"
    assert headers["cache-control"] == "no-store"
    page = body.decode()
    assert page.startswith("<!DOCTYPE html>")
    assert "Tuesday, 14 November 2023, 22:13:20 UTC" in page
    assert 'datetime="2023-11-14T22:13:20Z"' in page
    assert str(NOVEMBER_2023) in page
    clock.advance(3600)
    code, _, later = yield served.fetch("/time")
    assert code == 200
    assert "Tuesday, 14 November 2023, 23:13:20 UTC" in later.decode()
    yield served.close()


@pytest_twisted.inlineCallbacks
def test_time_as_json(events: Any, clock: Clock) -> Any:
    """?format=json gives the ISO-8601 time, the Unix time and the zone."""
    clock.advance(NOVEMBER_2023)
    served = Served(events, clock)
    for path in ("/time.html?format=json", "/time?format=json"):
        code, headers, body = yield served.fetch(path)
        assert code == 200
        assert headers["content-type"] == "application/json"
        reading = json.loads(body)
        assert reading["iso"] == "2023-11-14T22:13:20Z"
        assert reading["unix"] == NOVEMBER_2023
        assert reading["zone"] == "UTC"
    yield served.close()


@pytest_twisted.inlineCallbacks
def test_other_paths_and_formats_are_refused(events: Any, clock: Clock) -> Any:
    """Anything under /time.html/ is 404; an unknown format is 400; HEAD has no body."""
    served = Served(events, clock)
    for path in ("/time.html/", "/time.html/x", "/time/x/y"):
        code, _, _ = yield served.fetch(path)
        assert code == 404, path
    code, _, body = yield served.fetch("/time.html?format=%3Cxml%3E")
    assert code == 400
    assert b"format must be html or json" in body
    assert b"<xml>" not in body
    code, headers, body = yield served.fetch("/time.html", "-I")
    assert code == 200
    assert headers["content-type"] == "text/html; charset=utf-8"
    assert body == b""
    yield served.close()


E2E_CONFIG = """
echo = []
udp_echo = []

[chat]
enabled = false

[http]
listen = ["tcp:0:interface=127.0.0.1"]
"""


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    """One real daemon for the end-to-end test."""
    running = run_daemon(tmp_path_factory.mktemp("http-time"), E2E_CONFIG)
    yield running
    try:
        assert running.stop() == 0, running.log()
    finally:
        running.kill()


def test_e2e_time_page(daemon: Daemon) -> None:
    """The real daemon's /time.html shows today, and its JSON is the current time."""
    curl = require_tool("curl")
    base = f"http://127.0.0.1:{daemon.port('http')}"
    before = int(time.time())
    page = subprocess.run([curl, "-sS", "--noproxy", "*", f"{base}/time.html"],
                          capture_output=True, timeout=30, env={}, check=True)
    data = subprocess.run([curl, "-sS", "--noproxy", "*", f"{base}/time.html?format=json"],
                          capture_output=True, timeout=30, env={}, check=True)
    after = int(time.time()) + 1
    reading = json.loads(data.stdout)
    assert before <= reading["unix"] <= after
    assert reading["zone"] == "UTC"
    assert TimeReading.at(reading["unix"]).iso == reading["iso"]
    assert time.strftime("%Y", time.gmtime(before)).encode() in page.stdout
