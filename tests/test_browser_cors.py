"""
Browser test: headless Chromium, on a page of one origin (127.0.0.1), reads
the daemon's inspection routes from another (localhost), preflight and
credentials included, and is refused the event view.

Selenium blocks, so this is a plain test against the daemon subprocess.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

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

# Resolves with the JSON of a credentialed fetch (a custom header and PUT force
# a preflight), or with the error's name when the browser refuses to share it.
FETCH = """
const [url, method, done] = arguments;
fetch(url, {method: method, credentials: "include", headers: {"X-Test": "yes"}})
  .then(r => r.text()).then(done, e => done("refused: " + e.name));
"""


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    """One real daemon with the web site on a free port."""
    with running_daemon(tmp_path_factory.mktemp("cors"), CONFIG) as running:
        yield running


def test_cross_origin_fetch(tmp_path: Path, daemon: Daemon) -> None:
    """/anything answers another origin's preflighted PUT; /events is not shared."""
    port = daemon.port("http")
    with chromium(tmp_path / "profile") as driver:
        driver.set_script_timeout(20)
        driver.get(f"http://127.0.0.1:{port}/ip")
        other = f"http://localhost:{port}"
        seen: Any = driver.execute_async_script(FETCH, f"{other}/anything", "PUT")
        assert '"method": "PUT"' in seen or '"method":"PUT"' in seen, seen
        assert "X-Test" in seen
        refused = driver.execute_async_script(FETCH, f"{other}/events", "GET")
        assert refused == "refused: TypeError"
