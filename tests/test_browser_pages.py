"""
Browser tests of the pages a newcomer opens first: no page load logs a 404
(the browser's own /favicon.ico), and /time.html reads on a phone.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from browser import chromium
from daemon import Daemon, running_daemon

CONFIG = """
udp_echo = []
echo = []

[chat]
enabled = false

[http]
listen = ["tcp:0:interface=127.0.0.1"]
"""


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    """The real daemon with the web site alone on a free port."""
    with running_daemon(tmp_path_factory.mktemp("pages"), CONFIG) as running:
        yield running


def test_page_loads_fetch_the_icon_and_log_no_404(tmp_path: Path, daemon: Daemon) -> None:
    """Chromium asks for /favicon.ico on its first page: it is there (200, logged once)."""
    url = f"http://127.0.0.1:{daemon.port('http')}"
    with chromium(tmp_path / "profile") as browser:
        browser.get(url + "/time.html")
        daemon.wait_for_log(r'"GET /favicon\.ico" 200')
        browser.get(url + "/dashboard")
    assert '" 404 ' not in daemon.log()


def test_time_page_reads_on_a_phone(tmp_path: Path, daemon: Daemon) -> None:
    """At a phone's width (375 CSS pixels) the page is laid out to the screen, not
    980 px wide and scaled down: nothing scrolls sideways and the text is full size."""
    url = f"http://127.0.0.1:{daemon.port('http')}/time.html"
    with chromium(tmp_path / "profile", width=375, height=740, mobile=True) as browser:
        browser.get(url)
        layout = browser.execute_script(
            "return {width: document.documentElement.clientWidth,"
            " scroll: document.documentElement.scrollWidth,"
            " text: parseFloat(getComputedStyle(document.body).fontSize),"
            " heading: parseFloat(getComputedStyle(document.querySelector('h1')).fontSize)}"
        )
    assert layout["width"] <= 400, layout
    assert layout["scroll"] <= layout["width"], layout
    assert layout["text"] >= 16 and layout["heading"] >= 28, layout
