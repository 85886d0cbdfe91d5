"""
Browser tests: headless Chromium (through selenium and chromedriver) on the
real daemon's dashboard and event view, which must update live, without a
reload, and show hostile text as text.

Selenium blocks, so these are plain tests against the daemon subprocess.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from selenium import webdriver
from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from browser import chromium
from daemon import Daemon, running_daemon

CONFIG = """
udp_echo = []

[log]
level = "debug"

[chat]
listen = ["tcp:0:interface=127.0.0.1"]

[http]
listen = ["tcp:0:interface=127.0.0.1"]

[[echo]]
name = "echo"
listen = ["tcp:0:interface=127.0.0.1"]
"""
WAIT = 20
ECHO_TOTAL = '[data-service="echo"] [data-counter="connections_total"]'
HOSTILE_TOPIC = (
    "<img src=x onerror=\"document.title='pwned'\"><script>document.title='pwned'</script>"
)


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    """One real daemon with echo, chat and the web site on free ports."""
    with running_daemon(tmp_path_factory.mktemp("browser"), CONFIG) as running:
        yield running


@pytest.fixture
def browser(tmp_path: Path, daemon: Daemon) -> Iterator[webdriver.Chrome]:
    """Headless Chromium, closed before the daemon stops."""
    with chromium(tmp_path / "profile") as driver:
        yield driver


def wait(driver: webdriver.Chrome) -> WebDriverWait[webdriver.Chrome]:
    """Polls the DOM; the page re-renders its sections, so stale elements are retried."""
    return WebDriverWait(
        driver, WAIT, poll_frequency=0.1,
        ignored_exceptions=(NoSuchElementException, StaleElementReferenceException),
    )


def text_of(driver: webdriver.Chrome, selector: str) -> str:
    return str(driver.find_element(By.CSS_SELECTOR, selector).text)


def open_page(driver: webdriver.Chrome, daemon: Daemon, path: str) -> None:
    """Load a page and wait until its event stream is connected."""
    driver.get(f"http://127.0.0.1:{daemon.port('http')}{path}")
    wait(driver).until(lambda d: d.find_element(By.ID, "status").get_attribute("data-state")
                       == "live")
    # Set on this very document: a reload would lose it.
    driver.execute_script("window.netlabNoReload = 'still here';")


def echo_once(daemon: Daemon, data: bytes) -> None:
    with socket.create_connection(("127.0.0.1", daemon.port("echo")), timeout=10) as client:
        client.sendall(data)
        received = b""
        while len(received) < len(data):
            received += client.recv(4096)


def chat(daemon: Daemon, *lines: bytes) -> socket.socket:
    """A chat user who typed C{lines}, still connected."""
    client = socket.create_connection(("127.0.0.1", daemon.port("chat")), timeout=10)
    for line in lines:
        client.sendall(line + b"\r\n")
    return client


def test_dashboard_counter_updates_live(browser: webdriver.Chrome, daemon: Daemon,
                                       tmp_path: Path) -> None:
    """The echo connection counter on the page goes up without a reload when a client connects."""
    open_page(browser, daemon, "/")
    assert f"tcp 127.0.0.1:{daemon.port('echo')}" in text_of(browser, '[data-service="echo"]')
    before = int(text_of(browser, ECHO_TOTAL))
    echo_once(daemon, b"hello\n")
    wait(browser).until(lambda d: int(text_of(d, ECHO_TOTAL)) > before)
    assert int(text_of(browser, ECHO_TOTAL)) == before + 1
    assert browser.execute_script("return window.netlabNoReload;") == "still here"
    shot = tmp_path / "dashboard.png"
    assert browser.save_screenshot(str(shot))
    assert shot.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")


def test_hostile_topic_is_text(browser: webdriver.Chrome, daemon: Daemon) -> None:
    """A topic full of HTML, set live from the chat, shows as text and runs nothing."""
    open_page(browser, daemon, "/")
    user = chat(daemon, b"mallory", b"/topic " + HOSTILE_TOPIC.encode())
    try:
        wait(browser).until(
            lambda d: text_of(d, '[data-room="#lobby"] .topic') == HOSTILE_TOPIC
        )
        assert "mallory" in text_of(browser, '[data-room="#lobby"] .users')
        assert browser.find_elements(By.CSS_SELECTOR, "#rooms img, #rooms script") == []
        assert browser.title != "pwned"
        assert browser.execute_script("return window.netlabNoReload;") == "still here"
    finally:
        user.close()


def test_events_page_shows_own_bytes_live(browser: webdriver.Chrome, daemon: Daemon) -> None:
    """/events shows this client's echo bytes as they happen, with CR, LF and IAC made visible."""
    open_page(browser, daemon, "/events")
    echo_once(daemon, b"hi <b>x</b>\r\n\xff\xfb\x01")
    expected = "hi <b>x</b>\\r\\n\\xff\\xfb\\x01"
    wait(browser).until(lambda d: expected in text_of(d, "#events"))
    assert browser.find_elements(By.CSS_SELECTOR, "#events b") == []
    assert browser.execute_script("return window.netlabNoReload;") == "still here"


def test_dashboard_fits_a_phone(browser: webdriver.Chrome, daemon: Daemon) -> None:
    """On a phone-sized screen the dashboard needs no sideways scrolling."""
    browser.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", {
        "width": 390, "height": 844, "deviceScaleFactor": 3, "mobile": True,
    })
    open_page(browser, daemon, "/")
    sizes: Any = browser.execute_script(
        "return [document.documentElement.scrollWidth, window.innerWidth];"
    )
    assert sizes[0] <= sizes[1]
