"""
The "Time page" lab exercise: C{GET /time.html} (or C{/time}) shows the
server's current date and time; C{?format=json} gives it to programs.

The course's page is C{<h1>HH:MM:SS DD.MM.YYYY</h1>}: the page's heading is
exactly that, in the site's C{timezone} (UTC unless the config names an
IANA zone), and the rest of netlab's page spells the moment out.

The time comes from the context's reactor, so a test can set it with a
C{task.Clock}.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import cast
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from twisted.web import pages
from twisted.web.iweb import IRenderable
from twisted.web.resource import IResource, Resource
from twisted.web.server import Request
from twisted.web.template import renderElement, tags

from netlab.protocols.http.context import HttpContext
from netlab.protocols.http.inspect import bad_request

DAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
MONTHS = ("January", "February", "March", "April", "May", "June", "July", "August",
          "September", "October", "November", "December")


def zone_problem(name: str) -> str | None:
    """Why C{name} is not a time zone this machine knows, or None (the config check)."""
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return "unknown time zone"
    return None


@dataclass(frozen=True)
class TimeReading:
    """One moment, in the forms the page and the JSON show."""

    unix: int
    iso: str
    text: str
    clock: str = ""
    zone: str = "UTC"

    @classmethod
    def at(cls, seconds: float, zone: str = "UTC") -> TimeReading:
        """The reading for C{seconds} since the epoch, to the whole second, in C{zone}."""
        moment = datetime.fromtimestamp(int(seconds), tz=ZoneInfo(zone))
        # Names spelt out here rather than by strftime, which follows the locale.
        text = (
            f"{DAYS[moment.weekday()]}, {moment.day} {MONTHS[moment.month - 1]} "
            f"{moment.year}, {moment:%H:%M:%S} {moment.tzname()}"
        )
        iso = (
            moment.strftime("%Y-%m-%dT%H:%M:%SZ") if not moment.utcoffset()
            else moment.isoformat()
        )
        return cls(unix=int(seconds), iso=iso, text=text,
                   clock=moment.strftime("%H:%M:%S %d.%m.%Y"), zone=zone)

    def as_json(self) -> dict[str, object]:
        return {"iso": self.iso, "unix": self.unix, "zone": self.zone, "text": self.text}


# Readable on a phone and a projector alike: system font, full size, the
# clock as large as the screen allows.
PAGE_STYLE = (
    "body{font-family:system-ui,sans-serif;font-size:1rem;line-height:1.5;"
    "margin:0 auto;max-width:40rem;padding:1rem}"
    "h1{font-size:clamp(2rem,10vw,4rem);font-variant-numeric:tabular-nums;"
    "margin:.5rem 0;overflow-wrap:anywhere}"
)


class TimePage(Resource):
    """The server's time as an HTML page, or as JSON with C{?format=json}."""

    def __init__(self, context: HttpContext) -> None:
        super().__init__()
        self.context = context

    def getChild(self, path: bytes, request: Request) -> IResource:
        return pages.notFound()

    def render_GET(self, request: Request) -> object:
        reading = TimeReading.at(self.context.reactor.seconds(), self.context.settings.timezone)
        request.setHeader(b"Cache-Control", b"no-store")
        wanted = (request.args or {}).get(b"format", [b"html"])[0]
        if wanted == b"json":
            request.setHeader(b"Content-Type", b"application/json")
            return json.dumps(reading.as_json(), indent=2).encode() + b"\n"
        if wanted != b"html":
            return bad_request(request, "format must be html or json")
        page = tags.html(
            tags.head(
                tags.meta(charset="utf-8"),
                # Laid out to a phone's width, not 980 px scaled down to tiny.
                tags.meta(name="viewport", content="width=device-width, initial-scale=1"),
                tags.title("Server time"),
                tags.style(PAGE_STYLE),
            ),
            tags.body(
                tags.h1(reading.clock),
                tags.p(tags.time(reading.text, datetime=reading.iso, id="now")),
                tags.p("Unix time: ", tags.code(str(reading.unix))),
                tags.p(tags.a("The same as JSON", href="?format=json")),
            ),
            lang="en",
        )
        request.setHeader(b"Content-Type", b"text/html; charset=utf-8")
        return renderElement(request, cast(IRenderable, page))

    render_HEAD = render_GET


def page(context: HttpContext) -> TimePage:
    """C{/time} (and C{/time.html}, the same page): the time on the site's clock."""
    return TimePage(context)
