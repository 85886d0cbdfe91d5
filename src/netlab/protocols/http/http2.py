"""
HTTP/2 for the web site, when TLS ALPN chose it: Twisted's own HTTP/2
connection (the C{h2} package frames it), with netlab's books and limits.

L{NetlabChannel} stays the connection's protocol and its entry in the
site's books (open, closed, per-peer slot, bytes in); once ALPN says
C{h2}, it hands every byte to a L{NetlabH2Connection}.  Each request's
channel is a L{NetlabH2Stream}, which answers what L{NetlabRequest} asks
of a channel: a body over C{max_body} is answered C{413} on its stream at
once.  What more of that body comes is read and dropped (its flow-control
window given back, so the connection's other streams go on) until the
client ends the stream, or until L{REFUSED_BODY_DRAIN} bytes more have
come: then the stream is reset with C{NO_ERROR} (RFC 9113 section 8.1:
stop sending).  Not the reset at once: curl (7.88) reports a reset that
follows a complete response as an error and drops the 413.

What HTTP/1.1 framing limits in the channel (the header and body
deadlines, 414 and 431, two Host headers) is h2's business under HTTP/2: it caps a request's
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

# How much more of a refused body is read (and dropped) before its stream is reset.
REFUSED_BODY_DRAIN = 1_048_576


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
        self.drained = 0
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

    def body_owed(self, request: Any) -> None:
        """
        A body is to come: under HTTP/2 it has no deadline of its own (a
        stream that stops sending holds a stream, not the connection; h2's
        flow control and the connection's idle timeout bound it).
        """

    def body_in(self) -> None:
        """The body is complete: nothing to stop (see L{body_owed})."""

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
            # Dropped, but the flow-control window is given back, or the
            # client's other streams would stall.
            self.connection.openStreamWindow(self.streamID, flowControlledLength)
            self.drained += flowControlledLength
            if self.drained > REFUSED_BODY_DRAIN:
                self.connection.drop(self, reset=True)
            return
        super().receiveDataChunk(data, flowControlledLength)

    def requestComplete(self) -> None:
        if self.refused:
            # The client has sent the whole refused body: forget the stream.
            self.connection.drop(self, reset=False)
        else:
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
        # Refused streams to drop once the read under way is processed, as
        # the events h2 has already parsed from it may name them.
        self._reading = False
        self._dropping: dict[NetlabH2Stream, bool] = {}

    def dataReceived(self, data: bytes) -> None:
        self._reading = True
        try:
            super().dataReceived(data)
        finally:
            self._reading = False
        self._drop_now()

    def _drop_now(self) -> None:
        dropping, self._dropping = self._dropping, {}
        for stream, reset in dropping.items():
            http2_drop_stream(
                self, stream.streamID, Failure(ConnectionLost("request refused")), reset
            )

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
        """Answer C{stream}'s refusal now, its request unread."""
        assert stream.refusal is not None
        code, phrase, why = stream.refusal
        body = f"{code} {phrase}: {why}\n".encode()
        http2_answer_at_once(self, stream.streamID, code, [
            (b"content-type", b"text/plain; charset=utf-8"),
            (b"content-length", b"%d" % (len(body),)),
        ], body)

    def drop(self, stream: NetlabH2Stream, reset: bool) -> None:
        """
        Forget answered C{stream} once the read under way is processed;
        with C{reset}, tell the client to stop sending its body.
        """
        self._dropping[stream] = self._dropping.get(stream, False) or reset
        if not self._reading:
            self._drop_now()
