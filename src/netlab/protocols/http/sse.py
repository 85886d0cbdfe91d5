"""
Server-Sent Events: one open C{text/event-stream} response that JSON
messages are pushed down until the client goes away.

The stream is a push producer on its request, so a client that stops
reading pauses it: messages are then skipped (and counted) instead of
piling up in the server's memory, and the client is told how many it
missed once it reads again.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from twisted.internet.interfaces import IPushProducer
from twisted.internet.task import LoopingCall
from twisted.python.failure import Failure
from twisted.web.server import Request
from zope.interface import implementer

CONTENT_TYPE = b"text/event-stream; charset=utf-8"


def message(data: Any, event: str | None = None) -> bytes:
    """One SSE message; JSON never contains a raw newline, so one C{data:} line."""
    text = json.dumps(data, separators=(",", ":"))
    head = f"event: {event}\n" if event else ""
    return f"{head}data: {text}\n\n".encode()


@implementer(IPushProducer)
class EventStream:
    """
    An open event stream on C{request}; C{on_close} callbacks run once,
    when the client disconnects (or the server drops the connection).
    """

    def __init__(self, request: Request, retry_ms: int = 2000) -> None:
        self.request = request
        self.open = True
        self.paused = False
        self.skipped = 0
        self._on_close: list[Callable[[], object]] = []
        request.setHeader(b"Content-Type", CONTENT_TYPE)
        request.setHeader(b"Cache-Control", b"no-store")
        request.setHeader(b"X-Content-Type-Options", b"nosniff")
        # Reverse proxies (nginx) would otherwise buffer the stream.
        request.setHeader(b"X-Accel-Buffering", b"no")
        request.registerProducer(self, True)
        request.notifyFinish().addBoth(self._finished)
        request.write(b"retry: %d\n\n" % retry_ms)

    def on_close(self, callback: Callable[[], object]) -> None:
        """Run C{callback} when the stream ends (at once if it already has)."""
        if self.open:
            self._on_close.append(callback)
        else:
            callback()

    def send(self, data: Any, event: str | None = None) -> bool:
        """Push one message; C{False} if it was skipped (closed, or client not reading)."""
        if not self.open:
            return False
        if self.paused:
            self.skipped += 1
            return False
        self.request.write(message(data, event))
        return True

    def end(self) -> None:
        """
        End the stream from the server's side: the response is finished (a
        browser's EventSource would reconnect; curl is done).
        """
        if self.open:
            self.request.unregisterProducer()
            self.request.finish()

    def comment(self, text: str = "keepalive") -> None:
        """A comment line: keeps proxies from timing the stream out, finds dead peers."""
        if self.open and not self.paused:
            self.request.write(f": {text}\n\n".encode())

    def keepalive(self, clock: Any, seconds: float) -> None:
        """Send a comment every C{seconds} on C{clock} while the stream is open."""
        loop = LoopingCall(self.comment)
        loop.clock = clock
        loop.start(seconds, now=False)

        def stop() -> None:
            if loop.running:
                loop.stop()

        self.on_close(stop)

    def pauseProducing(self) -> None:
        self.paused = True

    def resumeProducing(self) -> None:
        self.paused = False
        if self.skipped and self.open:
            skipped, self.skipped = self.skipped, 0
            self.send({"skipped": skipped}, event="skipped")

    def stopProducing(self) -> None:
        self._close()

    def _finished(self, result: Failure | None) -> None:
        self._close()

    def _close(self) -> None:
        if not self.open:
            return
        self.open = False
        callbacks, self._on_close = self._on_close, []
        for callback in callbacks:
            callback()


__all__ = ["CONTENT_TYPE", "EventStream", "message"]
