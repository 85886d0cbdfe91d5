"""
A headless Chromium for browser tests, driven through selenium and
chromedriver, each run with a throwaway profile of its own.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from helpers import require_tool


@contextmanager
def chromium(
    profile: Path, width: int = 1200, height: int = 900, mobile: bool = False
) -> Iterator[Any]:
    """
    A headless Chromium webdriver with its profile in C{profile}, quit on the
    way out; C{mobile} emulates a phone of that size (a page without a
    viewport is then laid out 980 px wide and scaled down, as on a phone).
    """
    binary = require_tool("chromium")
    chromedriver = require_tool("chromedriver")
    # Imported only once both programs are known to be there.
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for argument in (
        "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        "--no-first-run", f"--user-data-dir={profile}", f"--window-size={width},{height}",
    ):
        options.add_argument(argument)
    if mobile:
        options.add_experimental_option("mobileEmulation", {
            "deviceMetrics": {"width": width, "height": height, "pixelRatio": 2.0},
            "userAgent": "Mozilla/5.0 (Linux; Android 14) Mobile",
        })
    driver = webdriver.Chrome(service=Service(chromedriver), options=options)
    try:
        yield driver
    finally:
        driver.quit()
