"""
End-to-end tests of the browser chat: the real daemon in a subprocess, a
real headless Chromium on /chat and a real netcat user in the same room;
and curl knocking on the WebSocket endpoints from a foreign Origin.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pexpect
import pytest

from browser import chromium
from daemon import Daemon, running_daemon
from helpers import require_tool

CONFIG = """
echo = []
udp_echo = []

[log]
level = "info"

[chat]
listen = ["tcp:0:interface=127.0.0.1"]
database = "{database}"

[http]
listen = ["tcp:0:interface=127.0.0.1"]
"""


@pytest.fixture
def daemon(tmp_path: Path) -> Iterator[Daemon]:
    """The real daemon with the chat, its database in C{tmp_path}, and the web site."""
    with running_daemon(tmp_path, CONFIG.format(database=tmp_path / "chat.sqlite3")) as running:
        yield running


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[Any]:
    """A headless Chromium driven by chromedriver, with a profile of its own."""
    with chromium(tmp_path / "chromium-profile", width=420, height=800) as driver:
        yield driver


def wait_for_text(driver: Any, text: str) -> None:
    """Wait, polling the page, until the chat log shows C{text}."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    WebDriverWait(driver, 20).until(
        lambda d: text in d.find_element(By.ID, "log").text,
        message=f"{text!r} never appeared in the chat log",
    )


def type_line(driver: Any, text: str) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    driver.find_element(By.ID, "line").send_keys(text, Keys.ENTER)


def test_browser_and_netcat_users_talk(daemon: Daemon, browser: Any, tmp_path: Path) -> None:
    """A browser user and a netcat user in one room see each other's lines, markup as text."""
    from selenium.webdriver.common.by import By

    nc = pexpect.spawn(require_tool("nc"), ["127.0.0.1", str(daemon.port("chat"))], timeout=20)
    try:
        browser.get(f"http://127.0.0.1:{daemon.port('http')}/chat")
        wait_for_text(browser, "Choose a nick")
        type_line(browser, "browser_user")
        wait_for_text(browser, "You are now in #lobby")

        nc.expect("Choose a nick")
        nc.sendline("nc_user")
        nc.expect(r"You are now in #lobby \(2 here\)")
        wait_for_text(browser, "* nc_user has joined #lobby")

        type_line(browser, "hello from the browser")
        nc.expect(r"\[\d\d:\d\d\] <browser_user> hello from the browser")
        nc.sendline("hi browser <b>bold</b> <img src=x onerror=alert(1)>")
        wait_for_text(browser, "<nc_user> hi browser <b>bold</b> <img src=x onerror=alert(1)>")
        assert browser.find_elements(By.CSS_SELECTOR, "#log b, #log img") == []

        browser.save_screenshot(str(tmp_path / "chat.png"))
        assert (tmp_path / "chat.png").stat().st_size > 0

        browser.get("about:blank")  # the page goes away: the socket closes
        nc.expect(r"\* browser_user has quit \(connection lost\)")
        daemon.wait_for_log(r"http-ws: 127\.0\.0\.1:\d+ disconnected")
    finally:
        nc.close(force=True)


def test_foreign_origin_refused_by_daemon(daemon: Daemon) -> None:
    """curl posing as a page from another site gets 403 on both endpoints, and it is logged."""
    curl = require_tool("curl")
    port = daemon.port("http")
    for path in ("/ws/echo", "/ws/chat"):
        result = subprocess.run(
            [curl, "-sS", "-o", "-", "-w", "\\n%{http_code}", "--max-time", "20",
             "-H", "Connection: Upgrade", "-H", "Upgrade: websocket",
             "-H", "Sec-WebSocket-Version: 13",
             "-H", "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==",
             "-H", "Origin: https://evil.example",
             f"http://127.0.0.1:{port}{path}"],
            capture_output=True, text=True, timeout=60,
        )
        assert result.returncode == 0, result.stderr
        assert result.stdout.endswith("\n403")
        daemon.wait_for_log(r"http-ws: refused 127\.0\.0\.1:\d+: Origin 'https://evil\.example'")
