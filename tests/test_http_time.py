"""
Tests for netlab.protocols.http.timepage: the page served in process with a
C{task.Clock} for its time and fetched with real curl, and the real daemon.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import pytest
import pytest_twisted
from twisted.internet.task import Clock

from daemon import Daemon, running_daemon
from httptest import Served, curl_sync, http_config, serve
from netlab.app.registry import parse
from netlab.core.config import ConfigError
from netlab.protocols.http import routes, timepage
from netlab.protocols.http.timepage import TimeReading

NOVEMBER_2023 = 1_700_000_000  # Tuesday, 14 November 2023, 22:13:20 UTC


def serve_time(events: Any, clock: Clock, **settings: Any) -> Served:
    """The time page alone on a loopback port, its time from C{clock}."""
    return serve(events, clock, routes.of(timepage), **settings)


def test_reading_spells_out_the_moment() -> None:
    """A reading has the ISO-8601, Unix and English forms of the same whole second."""
    reading = TimeReading.at(NOVEMBER_2023 + 0.75)
    assert reading.iso == "2023-11-14T22:13:20Z"
    assert reading.unix == NOVEMBER_2023
    assert reading.text == "Tuesday, 14 November 2023, 22:13:20 UTC"
    assert TimeReading.at(0).text == "Thursday, 1 January 1970, 00:00:00 UTC"
    assert reading.clock == "22:13:20 14.11.2023"
    assert reading.zone == "UTC"


def test_reading_in_a_time_zone() -> None:
    """In a configured zone: the local clock, the zone's abbreviation, an ISO offset."""
    reading = TimeReading.at(NOVEMBER_2023, "Asia/Kolkata")
    assert reading.clock == "03:43:20 15.11.2023"
    assert reading.text == "Wednesday, 15 November 2023, 03:43:20 IST"
    assert reading.iso == "2023-11-15T03:43:20+05:30"
    assert reading.as_json()["zone"] == "Asia/Kolkata"


def test_unknown_time_zone_is_a_config_error() -> None:
    """[http].timezone must be a zone this machine knows, as [chat].timezone."""
    with pytest.raises(ConfigError) as caught:
        parse({"http": {"timezone": "Mars/Olympus"}}, "x.toml")
    assert str(caught.value) == 'x.toml: [http].timezone = "Mars/Olympus": unknown time zone'
    assert parse({"http": {"timezone": "Europe/Berlin"}}, "x.toml")


@pytest_twisted.inlineCallbacks
def test_time_page_shows_the_clock_time(events: Any, clock: Clock) -> Any:
    """GET /time.html is an HTML page with the server clock's date and time."""
    clock.advance(NOVEMBER_2023)
    served = serve_time(events, clock)
    got = yield served.fetch("/time.html")
    assert got.status == 200
    assert got.headers["content-type"] == "text/html; charset=utf-8"
    assert got.headers["cache-control"] == "no-store"
    page = got.body.decode()
    assert page.startswith("<!DOCTYPE html>")
    assert "Tuesday, 14 November 2023, 22:13:20 UTC" in page
    assert 'datetime="2023-11-14T22:13:20Z"' in page
    assert str(NOVEMBER_2023) in page
    assert "<h1>22:13:20 14.11.2023</h1>" in page
    clock.advance(3600)
    later = yield served.fetch("/time")
    assert later.status == 200
    assert "Tuesday, 14 November 2023, 23:13:20 UTC" in later.body.decode()
    yield served.close()


@pytest_twisted.inlineCallbacks
def test_time_page_in_the_configured_zone(events: Any, clock: Clock) -> Any:
    """With timezone set, the heading and the JSON are in that zone."""
    clock.advance(NOVEMBER_2023)
    served = serve_time(events, clock, timezone="Europe/Berlin")
    page = yield served.fetch("/time.html")
    data = yield served.fetch("/time.html?format=json")
    yield served.close()
    assert "<h1>23:13:20 14.11.2023</h1>" in page.body.decode()
    assert "Tuesday, 14 November 2023, 23:13:20 CET" in page.body.decode()
    assert json.loads(data.body)["zone"] == "Europe/Berlin"
    assert json.loads(data.body)["iso"] == "2023-11-14T23:13:20+01:00"


@pytest_twisted.inlineCallbacks
def test_time_as_json(events: Any, clock: Clock) -> Any:
    """?format=json gives the ISO-8601 time, the Unix time and the zone."""
    clock.advance(NOVEMBER_2023)
    served = serve_time(events, clock)
    for path in ("/time.html?format=json", "/time?format=json"):
        got = yield served.fetch(path)
        assert got.status == 200
        assert got.headers["content-type"] == "application/json"
        reading = json.loads(got.body)
        assert reading["iso"] == "2023-11-14T22:13:20Z"
        assert reading["unix"] == NOVEMBER_2023
        assert reading["zone"] == "UTC"
    yield served.close()


@pytest_twisted.inlineCallbacks
def test_other_paths_and_formats_are_refused(events: Any, clock: Clock) -> Any:
    """Anything under /time.html/ is 404; an unknown format is 400; HEAD has no body."""
    served = serve_time(events, clock)
    for path in ("/time.html/", "/time.html/x", "/time/x/y"):
        got = yield served.fetch(path)
        assert got.status == 404, path
    bad = yield served.fetch("/time.html?format=%3Cxml%3E")
    assert bad.status == 400
    assert b"format must be html or json" in bad.body
    assert b"<xml>" not in bad.body
    head = yield served.fetch("/time.html", "-I")
    assert head.status == 200
    assert head.headers["content-type"] == "text/html; charset=utf-8"
    assert head.body == b""
    yield served.close()


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    """One real daemon for the end-to-end test."""
    with running_daemon(tmp_path_factory.mktemp("http-time"), http_config()) as running:
        yield running


def test_e2e_time_page(daemon: Daemon) -> None:
    """The real daemon's /time.html shows today, and its JSON is the current time."""
    base = f"http://127.0.0.1:{daemon.port('http')}"
    before = int(time.time())
    page = curl_sync(f"{base}/time.html", check=True)
    data = curl_sync(f"{base}/time.html?format=json", check=True)
    after = int(time.time()) + 1
    reading = json.loads(data.stdout)
    assert before <= reading["unix"] <= after
    assert reading["zone"] == "UTC"
    assert TimeReading.at(reading["unix"]).iso == reading["iso"]
    assert time.strftime("%Y", time.gmtime(before)).encode() in page.stdout
