"""
Tests for netlab.protocols.http.media (httpbin's /image routes and
/forms/post) and /brotli: fetched with real curl from a site on loopback.
"""

from __future__ import annotations

import json
import zlib
from html.parser import HTMLParser
from typing import Any
from urllib.parse import urlencode

import brotli
import pytest
import pytest_twisted
from twisted.internet.task import Clock

from httptest import Served, serve
from netlab.protocols.http import forms, inspect, media, routes, transfer
from netlab.protocols.http.media import chosen_kind

# Each image's magic number (WebP: RIFF, a length, then WEBP).
MAGIC = {
    "png": (b"\x89PNG\r\n\x1a\n", "image/png"),
    "jpeg": (b"\xff\xd8\xff", "image/jpeg"),
    "webp": (b"RIFF", "image/webp"),
    "svg": (b"<?xml", "image/svg+xml"),
}


def serve_media(events: Any, clock: Clock) -> Served:
    """The media routes, /post, and /brotli on loopback port 0."""
    return serve(events, clock, routes.of(media, forms, inspect, transfer), root=routes.Root())


def kind_of(body: bytes) -> str:
    """Which of the four formats C{body} is, by its first bytes."""
    for kind, (magic, _) in MAGIC.items():
        if body.startswith(magic) and (kind != "webp" or body[8:12] == b"WEBP"):
            return kind
    raise AssertionError(f"not an image: {body[:16]!r}")


@pytest_twisted.inlineCallbacks
def test_each_image_by_path(events: Any, clock: Clock) -> Any:
    """/image/KIND is that format, by its magic number and Content-Type, under 10 KB."""
    served = serve_media(events, clock)
    try:
        got = {}
        for kind in MAGIC:
            got[kind] = yield served.fetch(f"/image/{kind}")
        unknown = yield served.fetch("/image/gif")
    finally:
        yield served.close()
    for kind, (_, media_type) in MAGIC.items():
        answer = got[kind]
        assert answer.status == 200
        assert answer.content_type == media_type
        assert kind_of(answer.body) == kind
        assert int(answer.headers["content-length"]) == len(answer.body) < 10_000
        assert answer.headers["x-content-type-options"] == "nosniff"
    assert b"<svg" in got["svg"].body
    assert unknown.status == 404


@pytest.mark.parametrize(("accept", "kind"), [
    (None, "png"), ("image/webp", "webp"), ("image/svg+xml", "svg"), ("image/jpeg", "jpeg"),
    ("image/png", "png"), ("image/*", "png"), ("*/*", "png"),
    ("text/html,image/jpeg;q=0.9,image/webp", "webp"),  # httpbin's order, not the q-values
])
def test_accept_chooses_as_httpbin(accept: str | None, kind: str) -> None:
    """/image picks by httpbin's order of types named in Accept."""
    assert chosen_kind(None if accept is None else accept.encode()) == kind


@pytest_twisted.inlineCallbacks
def test_image_by_accept_and_406(events: Any, clock: Clock) -> Any:
    """/image sends what Accept asks for (curl's */*: PNG); no image type is 406 with
    httpbin's JSON."""
    served = serve_media(events, clock)
    try:
        default = yield served.fetch("/image")
        webp = yield served.fetch("/image", "-H", "Accept: image/webp")
        svg = yield served.fetch("/image", "-H", "Accept: image/svg+xml")
        refused = yield served.fetch("/image", "-H", "Accept: text/plain")
    finally:
        yield served.close()
    assert (kind_of(default.body), default.content_type) == ("png", "image/png")
    assert (kind_of(webp.body), webp.content_type) == ("webp", "image/webp")
    assert (kind_of(svg.body), svg.content_type) == ("svg", "image/svg+xml")
    assert "Accept" in default.headers["vary"]
    assert refused.status == 406
    assert refused.json() == {
        "message": "Client did not request a supported media type.",
        "accept": ["image/webp", "image/svg+xml", "image/jpeg", "image/png", "image/*"],
    }


class FormReader(HTMLParser):
    """The form of a page as a browser sees it: its action, method and controls."""

    def __init__(self) -> None:
        super().__init__()
        self.form: dict[str, str] = {}
        self.controls: list[dict[str, str]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        named = {name: value or "" for name, value in attrs}
        if tag == "form":
            self.form = named
        elif tag in ("input", "textarea"):
            self.controls.append({"tag": tag, **named})


def filled_in(controls: list[dict[str, str]]) -> list[tuple[str, str]]:
    """What a browser submits for the order: each text box typed in, one size, two toppings."""
    typed = {"custname": "Ada Lovelace", "custtel": "+44 20 7946 0000",
             "custemail": "ada@example.org", "delivery": "19:30",
             "comments": "Ring twice & wait\r\nthanks"}
    pairs = []
    for control in controls:
        name = control["name"]
        kind = control.get("type", "text")
        if kind == "radio":
            if control["value"] == "medium":
                pairs.append((name, control["value"]))
        elif kind == "checkbox":
            if control["value"] in ("cheese", "mushroom"):
                pairs.append((name, control["value"]))
        else:
            pairs.append((name, typed[name]))
    return pairs


@pytest_twisted.inlineCallbacks
def test_forms_post_submits_to_post(events: Any, clock: Clock) -> Any:
    """/forms/post is httpbin's order form; its fields, urlencoded as a browser sends them
    to its action, come back in /post's JSON."""
    served = serve_media(events, clock)
    try:
        page = yield served.fetch("/forms/post")
        reader = FormReader()
        reader.feed(page.body.decode("utf-8"))
        pairs = filled_in(reader.controls)
        posted = yield served.fetch(
            reader.form["action"], "-X", reader.form["method"].upper(),
            "-H", "Content-Type: application/x-www-form-urlencoded",
            "--data-binary", urlencode(pairs),
        )
    finally:
        yield served.close()
    assert page.content_type == "text/html; charset=utf-8"
    assert reader.form == {"method": "post", "action": "/post"}
    assert [c["name"] for c in reader.controls] == [
        "custname", "custtel", "custemail", "size", "size", "size",
        "topping", "topping", "topping", "topping", "delivery", "comments",
    ]
    assert posted.status == 200
    assert posted.json()["form"] == {
        "custname": "Ada Lovelace", "custtel": "+44 20 7946 0000",
        "custemail": "ada@example.org", "size": "medium", "topping": ["cheese", "mushroom"],
        "delivery": "19:30", "comments": "Ring twice & wait\r\nthanks",
    }


@pytest_twisted.inlineCallbacks
def test_brotli(events: Any, clock: Clock) -> Any:
    """/brotli is Content-Encoding: br on the wire, and once decoded (by the brotli module,
    and by curl --compressed) /deflate's JSON with "brotli" for "deflated"."""
    served = serve_media(events, clock)
    try:
        raw = yield served.fetch("/brotli")
        unpacked = yield served.fetch("/brotli", "--compressed")
        deflated = yield served.fetch("/deflate")
    finally:
        yield served.close()
    assert (raw.headers["content-encoding"], raw.headers["vary"]) == ("br", "Accept-Encoding")
    expected = json.loads(zlib.decompress(deflated.body))
    expected["brotli"] = expected.pop("deflated")
    assert json.loads(brotli.decompress(raw.body)) == expected
    decoded = unpacked.json()
    assert decoded["brotli"] is True
    assert "br" in decoded["headers"]["Accept-Encoding"]
