"""
Answers paced over time, on the site's clock: httpbin's C{/drip} (bytes
trickled over a duration, after a delay) and go-httpbin's C{/sse} (Server-
Sent Events spread the same way).

Each write is its own step on C{context.reactor} (a L{LoopingCall}: one
DelayedCall at a time, however many steps), so a student watching with
C{curl -N} sees every piece arrive when it is due, and the steps stop as
soon as the client goes away. Every value is checked first: one
plain-text 400 line for a malformed one, or a duration and delay over
C{max_delay}, a count over C{max_bytes} or C{max_stream}.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from twisted.internet.interfaces import IReactorTime
from twisted.internet.task import LoopingCall
from twisted.python.failure import Failure
from twisted.web import http
from twisted.web.server import NOT_DONE_YET, Request

from netlab.protocols.http.context import HttpContext
from netlab.protocols.http.inspect import bad_request
from netlab.protocols.http.settings import HttpSettings
from netlab.protocols.http.sse import CONTENT_TYPE, EventStream
from netlab.protocols.http.status import STATUS_CODE, WHOLE, Leaf, no_store

# Seconds, as httpbin takes them, or with go-httpbin's "s" or "ms" after.
DURATION = re.compile(r"([0-9]{1,6}(?:\.[0-9]{1,6})?)(s|ms)?")
# The shortest pause between two writes of /drip: a long drip of many bytes
# goes out in pieces (each still its own write), not one timer per byte.
SHORTEST_PAUSE = 0.01


class BadValueError(ValueError):
    """A query value that is malformed or over its limit; the message says which."""


@dataclass(frozen=True)
class Query:
    """The query of one request, read one named value at a time."""

    args: dict[bytes, list[bytes]]

    def text(self, name: str) -> str | None:
        values = self.args.get(name.encode())
        return None if values is None else values[0].decode("ascii", "replace")

    def seconds(self, name: str, default: float) -> float:
        """C{?name=} in seconds (C{1.5}, C{1.5s}, C{1500ms}), or C{default}."""
        text = self.text(name)
        if text is None:
            return default
        match = DURATION.fullmatch(text)
        if match is None:
            raise BadValueError(f"{name} must be a number of seconds, e.g. {name}=1.5")
        return float(match[1]) / (1000 if match[2] == "ms" else 1)

    def whole(self, name: str, default: int, lowest: int, limit: int, setting: str) -> int:
        """C{?name=}, a whole number from C{lowest} up to C{limit} (C{setting}'s), or C{default}."""
        text = self.text(name)
        if text is None:
            return default
        if not WHOLE.fullmatch(text) or int(text) < lowest:
            raise BadValueError(f"{name} must be a whole number of at least {lowest}")
        if int(text) > limit:
            raise BadValueError(f"{name} {text} is over the limit: {setting} is {limit}")
        return int(text)

    def status(self, name: str) -> int:
        """C{?name=}, a final status code (200 to 599), or 200."""
        text = self.text(name)
        if text is None:
            return http.OK
        if not STATUS_CODE.fullmatch(text) or int(text) < 200:
            raise BadValueError(f"{name} must be a status code from 200 to 599")
        return int(text)


def within(duration: float, delay: float, limit: float) -> None:
    """Refuses a C{duration} and C{delay} that together wait longer than C{max_delay}."""
    if duration + delay > limit:
        raise BadValueError(
            f"duration + delay is {duration + delay:g} seconds, over the limit:"
            f" max_delay is {limit:g}"
        )


def pause_between(duration: float, steps: int) -> float:
    """go-httpbin's pause: C{steps} writes, the last C{duration} after the first."""
    return duration / (steps - 1) if steps > 1 else 0.0


class Pacer:
    """
    Calls C{step(i)} for each C{i} in C{range(count)} on C{clock}: the first
    after C{delay} seconds, then one every C{pause}; no more once
    C{request} has ended early (the client went away).
    """

    def __init__(
        self, clock: IReactorTime, request: Request, count: int, delay: float, pause: float,
        step: Callable[[int], object],
    ) -> None:
        self.count = count
        self.pause = pause
        self.step = step
        self.done = 0
        self.loop = LoopingCall(self._next)
        self.loop.clock = clock
        request.notifyFinish().addErrback(self._gone)
        self.waiting: Any = clock.callLater(delay, self._begin)

    def _begin(self) -> None:
        self.waiting = None
        self.loop.start(self.pause, now=True)

    def _next(self) -> None:
        index, self.done = self.done, self.done + 1
        if self.done >= self.count:
            self.loop.stop()
        self.step(index)

    def _gone(self, reason: Failure) -> None:
        if self.waiting is not None and self.waiting.active():
            self.waiting.cancel()
        if self.loop.running:
            self.loop.stop()


class Paced(Leaf):
    """A paced answer: its query read by L{answer}, a bad value one plain 400 line."""

    def __init__(self, context: HttpContext) -> None:
        super().__init__()
        self.context = context

    def render_GET(self, request: Request) -> object:
        try:
            return self.answer(request, Query(request.args or {}), self.context.settings)
        except BadValueError as error:
            return bad_request(request, str(error))

    render_HEAD = render_GET

    def answer(self, request: Request, query: Query, settings: HttpSettings) -> object:
        """Check the query (raising L{BadValueError} before anything is sent), then answer."""
        raise NotImplementedError


class Drip(Paced):
    """
    C{/drip?duration=2&numbytes=10&code=200&delay=0}: httpbin's, NUMBYTES
    C{*}s spread over DURATION seconds after DELAY, with C{code} and the
    C{Content-Length} announced up front, as httpbin does (so it is a slow
    body, not a chunked one). A HEAD gets the headers at once.
    """

    def answer(self, request: Request, query: Query, settings: HttpSettings) -> object:
        duration = query.seconds("duration", 2.0)
        delay = query.seconds("delay", 0.0)
        size = query.whole("numbytes", 10, 1, settings.max_bytes, "max_bytes")
        code = query.status("code")
        within(duration, delay, settings.max_delay)
        request.setResponseCode(code)
        request.setHeader(b"Content-Type", b"application/octet-stream")
        no_store(request)
        if code not in http.NO_BODY_CODES:
            request.setHeader(b"Content-Length", b"%d" % size)
        if request.method == b"HEAD":
            return b""
        steps = min(size, int(duration / SHORTEST_PAUSE) + 1)

        def drip(index: int) -> None:
            request.write(b"*" * ((index + 1) * size // steps - index * size // steps))
            if index == steps - 1:
                request.finish()

        Pacer(self.context.reactor, request, steps, delay, pause_between(duration, steps), drip)
        return NOT_DONE_YET


class Pings(Paced):
    """
    C{/sse?count=10&duration=5&delay=0}: go-httpbin's, COUNT events spread
    over DURATION seconds after DELAY, each C{event: ping} with
    C{data: {"id": N, "timestamp": MILLISECONDS}}, then the end of the
    stream. It is the site's L{EventStream}: a client that stops reading
    misses pings (and is told how many) rather than filling the server. A
    HEAD gets the headers at once.
    """

    def answer(self, request: Request, query: Query, settings: HttpSettings) -> object:
        count = query.whole("count", 10, 1, settings.max_stream, "max_stream")
        duration = query.seconds("duration", 5.0)
        delay = query.seconds("delay", 0.0)
        within(duration, delay, settings.max_delay)
        if request.method == b"HEAD":
            request.setHeader(b"Content-Type", CONTENT_TYPE)
            return b""
        clock = self.context.reactor
        stream: EventStream | None = None

        def ping(index: int) -> None:
            nonlocal stream
            if stream is None:
                stream = EventStream(request)
            stream.send({"id": index, "timestamp": int(clock.seconds() * 1000)}, event="ping")
            if index == count - 1:
                stream.end()

        Pacer(clock, request, count, delay, pause_between(duration, count), ping)
        return NOT_DONE_YET


def drip(context: HttpContext) -> Drip:
    """C{/drip}."""
    return Drip(context)


def pings(context: HttpContext) -> Pings:
    """C{/sse}."""
    return Pings(context)
