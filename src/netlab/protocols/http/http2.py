"""
HTTP/2 for the web site, when TLS ALPN chose it: Twisted's own HTTP/2
connection (the C{h2} package frames it), with netlab's books and limits.

L{NetlabChannel} stays the connection's protocol and its entry in the
site's books (open, closed, per-peer slot, bytes in); once ALPN says
C{h2}, it hands every byte to a L{NetlabH2Connection}.  Each request's
channel is a L{NetlabH2Stream}, which answers what L{NetlabRequest} asks
of a channel: a body over C{max_body} is answered C{413} on its stream at
once, and the stream is then reset with C{NO_ERROR} (RFC 9113 section
8.1), so the client stops sending the body; the connection and its other
streams go on.

What HTTP/1.1 framing limits in the channel (the header deadline, 414 and
431, two Host headers) is h2's business under HTTP/2: it caps a request's
header list at 64 KiB and a connection at 100 concurrent streams, and
answers a breach with a GOAWAY, not a status code.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from twisted.internet.error import ConnectionLost
from twisted.python.failure import Failure

from netlab.core._twisted import (
    HTTP2Connection,
    HTTP2Stream,
    http2_add_stream,
    http2_answer_at_once,
    http2_drop_stream,
)

if TYPE_CHECKING:
    from netlab.protocols.http.site import NetlabChannel, NetlabSite


class NetlabH2Stream(HTTP2Stream):
    """
    One request of an HTTP/2 connection, and that request's channel.

    @ivar refusal: the status, phrase and reason its request was refused
        with (its body is over C{max_body}), or None; once refused, what
        more of the body arrives is dropped.
    @ivar registered: filed in the connection's tables (after C{__init__}).
    @ivar response_head: always None: h2 frames a response's head itself
        (L{NetlabRequest.write} sets and reads it on any channel).
    """

    site: NetlabSite
    streamID: int

    def __init__(
        self, streamID: int, connection: NetlabH2Connection, headers: Any,
        requestFactory: Any, site: NetlabSite, factory: Any,
    ) -> None:
        # Set before Twisted's __init__, which builds the request and gives
        # it the headers: a Content-Length over max_body is refused there.
        self.connection = connection
        self.refusal: tuple[int, str, str] | None = None
        self.registered = False
        self.response_head: list[bytes] | None = None
        super().__init__(streamID, connection, headers, requestFactory, site, factory)

    @property
    def refused(self) -> bool:
        """Whether its request was refused (what L{NetlabRequest} asks a channel)."""
        return self.refusal is not None

    @property
    def record(self) -> NetlabChannel:
        """The connection's entry in the site's books."""
        return self.connection.record

    def headers_in(self) -> None:
        """The request's headers are in: under HTTP/2 there is no header deadline to stop."""

    def body_too_large(self) -> None:
        """Answer 413 on this stream and read no more of its body (once)."""
        if self.refused:
            return
        site = self.site
        why = f"request body over max_body ({site.context.settings.max_body} bytes)"
        self.refusal = (413, "Content Too Large", why)
        site.books.refused(self.record.peer, why)
        if self.registered:
            self.connection.answer_refusal(self)

    def receiveDataChunk(self, data: bytes, flowControlledLength: int) -> None:
        if self.refused:
            # Dropped, but the connection's flow-control window is given
            # back, or the client's other streams would stall.
            self.connection.openStreamWindow(self.streamID, flowControlledLength)
            return
        super().receiveDataChunk(data, flowControlledLength)

    def requestComplete(self) -> None:
        if not self.refused:
            super().requestComplete()


class NetlabH2Connection(HTTP2Connection):
    """
    An HTTP/2 connection that a L{NetlabChannel} hands its bytes to, set up
    as Twisted's C{_GenericHTTPChannelProtocol} sets up the one it switches
    to, on the site's clock, and building L{NetlabH2Stream}s.

    @ivar record: the channel: the connection's entry in the site's books.
    """

    # (Twisted's class says None until they are set.)
    site: NetlabSite  # type: ignore[assignment]
    factory: NetlabSite  # type: ignore[assignment]
    timeOut: float | None  # type: ignore[assignment]

    def __init__(self, channel: NetlabChannel) -> None:
        site = channel.site
        super().__init__(reactor=site.context.reactor)
        self.record = channel
        self.requestFactory = channel.requestFactory
        self.site = site
        self.factory = site
        self.timeOut = site.timeOut
        self.callLater = channel.callLater  # type: ignore[method-assign]
        # Streams refused while a read is processed: dropped once it is
        # done, as the events h2 has already parsed from it may name them.
        self._reading = False
        self._answered: list[NetlabH2Stream] = []

    def dataReceived(self, data: bytes) -> None:
        self._reading = True
        try:
            super().dataReceived(data)
        finally:
            self._reading = False
        answered, self._answered = self._answered, []
        for stream in answered:
            self._drop(stream)

    def _requestReceived(self, event: Any) -> None:
        """Twisted's, with netlab's stream class."""
        stream = NetlabH2Stream(
            event.stream_id, self, event.headers, self.requestFactory, self.site, self.factory,
        )
        http2_add_stream(self, stream)
        stream.registered = True
        if stream.refused:
            # Refused as it was built (a Content-Length over max_body).
            self.answer_refusal(stream)

    def answer_refusal(self, stream: NetlabH2Stream) -> None:
        """
        Answer C{stream}'s refusal now, its request unread, then drop it
        (once the read under way, if any, is processed).
        """
        assert stream.refusal is not None
        code, phrase, why = stream.refusal
        body = f"{code} {phrase}: {why}\n".encode()
        http2_answer_at_once(self, stream.streamID, code, [
            (b"content-type", b"text/plain; charset=utf-8"),
            (b"content-length", b"%d" % (len(body),)),
        ], body)
        if self._reading:
            self._answered.append(stream)
        else:
            self._drop(stream)

    def _drop(self, stream: NetlabH2Stream) -> None:
        http2_drop_stream(self, stream.streamID, Failure(ConnectionLost("request refused")))
