"""
Browser tests: headless Chromium (through selenium and chromedriver) on the
real daemon's dashboard and event view, which must update live, without a
reload, and show hostile text as text.

Selenium blocks, so these are plain tests against the daemon subprocess.
"""

from __future__ import annotations

import re
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
from httptest import curl_sync
from netlab import __version__
from netlab.core.kinds import TRANSPORT_COUNTERS
from netlab.protocols.http import routes

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


# -- the dashboard as a home page --------------------------------------------


def cards(driver: webdriver.Chrome) -> dict[str, list[str]]:
    """Each service card on the page, with the counters it shows."""
    return {
        card.get_attribute("data-service"): [
            dd.get_attribute("data-counter")
            for dd in card.find_elements(By.CSS_SELECTOR, "[data-counter]")
        ]
        for card in driver.find_elements(By.CSS_SELECTOR, "#services [data-service]")
    }


def test_home_page_names_the_daemon_and_shows_each_service(
    browser: webdriver.Chrome, daemon: Daemon
) -> None:
    """
    The heading is netlab and its version; one card per listening service,
    each with its kind's counters and a line to try it with.
    """
    open_page(browser, daemon, "/")
    assert text_of(browser, "h1") == f"netlab {__version__}"
    shown = wait(browser).until(lambda d: cards(d) or None)
    assert set(shown) == set(daemon_listening(daemon))
    assert set(shown["echo"]) == set(TRANSPORT_COUNTERS["stream"])
    assert {"users_online", "rooms", "messages"} <= set(shown["chat"])
    assert not [key for keys in shown.values() for key in keys if key.startswith("datagrams")]
    tries = text_of(browser, '[data-service="echo"] .try')
    assert f"nc 127.0.0.1 {daemon.port('echo')}" in tries
    chat_try = text_of(browser, '[data-service="chat"] .try')
    assert f"telnet 127.0.0.1 {daemon.port('chat')}" in chat_try


def daemon_listening(daemon: Daemon) -> list[str]:
    """The services the daemon listens for, by the name its /metrics gives them."""
    base = f"http://127.0.0.1:{daemon.port('http')}"
    text = curl_sync(base + "/metrics", check=True).stdout.decode()
    return re.findall(r'^netlab_service_info\{kind="[^"]+",service="([^"]+)"\}', text, re.M)


def polyline_points(driver: webdriver.Chrome, service: str, series: str) -> int:
    line = driver.find_element(
        By.CSS_SELECTOR, f'[data-service="{service}"] polyline[data-series="{series}"]'
    )
    return len((line.get_attribute("points") or "").split())


def peak(driver: webdriver.Chrome, service: str, series: str) -> float:
    item = driver.find_element(
        By.CSS_SELECTOR, f'[data-service="{service}"] .legend [data-series="{series}"]'
    )
    return float(item.get_attribute("data-peak") or 0)


def test_chart_gains_points_and_shows_a_connection(
    browser: webdriver.Chrome, daemon: Daemon
) -> None:
    """The echo card's chart gains a point a second and shows a connection as it happens."""
    open_page(browser, daemon, "/")
    first = wait(browser).until(
        lambda d: polyline_points(d, "echo", "connections_total") or None
    )
    wait(browser).until(lambda d: polyline_points(d, "echo", "connections_total") > first)
    echo_once(daemon, b"chart me\n")
    wait(browser).until(lambda d: peak(d, "echo", "connections_total") > 0)
    wait(browser).until(lambda d: peak(d, "echo", "bytes") > 0)
    assert browser.execute_script("return window.netlabNoReload;") == "still here"


def test_links_to_every_page_work(browser: webdriver.Chrome, daemon: Daemon) -> None:
    """The header links the chat, the event view, the clock, the metrics and the routes."""
    open_page(browser, daemon, "/")
    hrefs = [a.get_attribute("href") for a in browser.find_elements(By.CSS_SELECTOR, "nav a")]
    base = f"http://127.0.0.1:{daemon.port('http')}"
    assert [h.removeprefix(base) for h in hrefs if h] == [
        "/", "/chat", "/events", "/time.html", "/metrics", "/routes",
    ]
    for index in range(1, len(hrefs)):
        open_page(browser, daemon, "/")
        browser.find_elements(By.CSS_SELECTOR, "nav a")[index].click()
        wait(browser).until(lambda d, h=hrefs[index]: d.current_url == h)
        body = text_of(browser, "body")
        assert "No Such Resource" not in body and body, hrefs[index]


def test_routes_page_lists_every_route(browser: webdriver.Chrome, daemon: Daemon) -> None:
    """/routes lists every route of the table; its example links go where they say."""
    browser.get(f"http://127.0.0.1:{daemon.port('http')}/routes")
    rows = wait(browser).until(
        lambda d: d.find_elements(By.CSS_SELECTOR, "#routes tbody tr") or None
    )
    assert [row.get_attribute("data-route") for row in rows] == [r.path for r in routes.ROUTES]
    browser.find_element(By.CSS_SELECTOR, '[data-route="/status"] a').click()
    wait(browser).until(lambda d: d.current_url.endswith("/status/418"))
    assert "teapot" in text_of(browser, "body").lower()


def test_seven_digit_counters_never_wrap(browser: webdriver.Chrome, daemon: Daemon) -> None:
    """On a phone, counters of a million bytes and more stay on one line each."""
    browser.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", {
        "width": 320, "height": 780, "deviceScaleFactor": 3, "mobile": True,
    })
    open_page(browser, daemon, "/")
    echo_once(daemon, b"x" * 1_100_000)
    selector = '[data-service="echo"] [data-counter="bytes_out"]'
    wait(browser).until(lambda d: len(text_of(d, selector)) >= 7)
    lines = browser.execute_script(
        "return [...document.querySelectorAll('[data-counter]')].map((dd) => {"
        "  const range = document.createRange();"
        "  range.selectNodeContents(dd);"
        "  const tops = new Set([...range.getClientRects()].map((r) => Math.round(r.top)));"
        "  return [dd.dataset.counter, dd.textContent, tops.size];"
        "});"
    )
    assert [line for line in lines if line[2] != 1] == []
    sizes: Any = browser.execute_script(
        "return [document.documentElement.scrollWidth, window.innerWidth];"
    )
    assert sizes[0] <= sizes[1]
