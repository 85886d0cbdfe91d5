"""
End-to-end test of the web mailbox: the real daemon with [smtp] and the
web site, smtplib sending a message with a hostile HTML part and an
attachment, and headless Chromium logged in as the recipient watching it
arrive live on /mail, opening it, the HTML shown sandboxed (its script
never runs); another student and the instructor checked over real HTTP.
"""

from __future__ import annotations

import hashlib
import http.cookiejar
import smtplib
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest

from browser import chromium
from daemon import Daemon, running_daemon

TOKEN = "teacher-secret"
HOST = "127.0.0.1"
WAIT = 20

CONFIG = """
echo = []
udp_echo = []

[chat]
enabled = false

[http]
listen = ["tcp:0:interface=127.0.0.1"]
instructor_token = "{token}"

[smtp]
enabled = true
listen = ["tcp:0:interface=127.0.0.1"]
database = "{database}"
"""

ATTACHMENT = b"lab notes\x00\x01\x02 " * 50
HTML = (
    '<p id="flag">the script did not run</p>'
    "<script>document.getElementById('flag').textContent = 'the script ran';"
    "try { window.parent.pwned = 1; } catch (e) {}"
    "try { window.top.document.title = 'PWNED'; } catch (e) {}</script>"
    "<p>Hello in <b>HTML</b></p>"
)


@pytest.fixture
def daemon(tmp_path: Path) -> Iterator[Daemon]:
    config = CONFIG.format(token=TOKEN, database=tmp_path / "mail.sqlite3")
    with running_daemon(tmp_path, config) as running:
        yield running


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[Any]:
    with chromium(tmp_path / "chromium-profile") as driver:
        yield driver


def send_hostile_message(port: int, subject: str) -> None:
    message = EmailMessage()
    message["From"] = "alice@netlab.test"
    message["To"] = "bob@netlab.test"
    message["Subject"] = subject
    message.set_content("Hello in plain text.\n")
    message.add_alternative(HTML, subtype="html")
    message.add_attachment(ATTACHMENT, maintype="application", subtype="octet-stream",
                           filename="notes.bin")
    with smtplib.SMTP(HOST, port, timeout=WAIT) as client:
        client.send_message(message)


def logged_in_opener(base: str, name: str) -> urllib.request.OpenerDirector:
    """A urllib client with a cookie jar, logged in to /mail as C{name}."""
    opener = urllib.request.build_opener(
        urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()),
        urllib.request.ProxyHandler({}),
    )
    form = urllib.parse.urlencode({"name": name, "password": "any"}).encode()
    with opener.open(base + "/mail/login", data=form, timeout=WAIT) as reply:
        assert reply.url == base + "/mail"
    return opener


def status_of(opener: urllib.request.OpenerDirector, url: str) -> int:
    try:
        with opener.open(url, timeout=WAIT) as reply:
            return int(reply.status)
    except urllib.error.HTTPError as e:
        return e.code


def test_recipient_sees_new_mail_live_and_its_html_sandboxed(
    daemon: Daemon, browser: Any
) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    base = f"http://{HOST}:{daemon.port('http')}"
    wait = WebDriverWait(browser, WAIT)
    browser.get(base + "/mail")
    browser.find_element(By.ID, "name").send_keys("bob")
    browser.find_element(By.ID, "password").send_keys("anything")
    browser.find_element(By.ID, "login").click()
    wait.until(lambda d: d.find_element(By.TAG_NAME, "body").get_attribute("data-live") == "open",
               message="the page's live stream never opened")
    assert browser.find_elements(By.CSS_SELECTOR, "li.message") == []

    subject = "Lab 3 <b>results</b>"
    send_hostile_message(daemon.port("smtp"), subject)

    link = wait.until(
        lambda d: d.find_elements(By.CSS_SELECTOR, "li.message a.subject"),
        message="the message never appeared on the open page",
    )[0]
    assert link.text == subject  # markup shown as text
    link.click()

    digest = hashlib.sha256(ATTACHMENT).hexdigest()
    wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#attachments td.sha256"))
    row = browser.find_element(By.CSS_SELECTOR, "#attachments tr.attachment")
    assert "notes.bin" in row.text and str(len(ATTACHMENT)) in row.text and digest in row.text
    assert "Hello in plain text." in browser.find_element(By.CSS_SELECTOR, ".text-part pre").text
    assert browser.title == subject

    frame = browser.find_element(By.CSS_SELECTOR, ".html-part iframe")
    assert frame.get_attribute("sandbox") == ""
    browser.switch_to.frame(frame)
    flag = wait.until(lambda d: d.find_elements(By.ID, "flag"))[0]
    assert flag.text == "the script did not run"
    assert "Hello in HTML" in browser.find_element(By.TAG_NAME, "body").text
    browser.switch_to.default_content()
    assert browser.title == subject
    assert browser.execute_script("return window.pwned === undefined") is True

    # Another student does not see it; the instructor does.
    carol = logged_in_opener(base, "carol")
    with carol.open(base + "/mail", timeout=WAIT) as reply:
        assert "Lab 3" not in reply.read().decode()
    message_path = urllib.parse.urlparse(browser.current_url).path
    assert status_of(carol, base + message_path) == 404
    bob = logged_in_opener(base, "bob@netlab.test")
    assert status_of(bob, base + message_path) == 200
    everyone = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with everyone.open(f"{base}/mail?token={TOKEN}", timeout=WAIT) as reply:
        assert "Lab 3 &lt;b&gt;results&lt;/b&gt;" in reply.read().decode()

