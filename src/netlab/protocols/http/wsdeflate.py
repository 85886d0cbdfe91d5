"""
permessage-deflate (RFC 7692) for netlab's WebSockets, with a cap on what a
message may inflate to.

wsproto's L{PerMessageDeflate} inflates every piece of a frame whole, so a
few kilobytes of deflated zeros become gigabytes before anything could
count them.  L{CappedDeflate} keeps wsproto's compressing side and does its
own inflating: at most C{max_message} bytes per message (and one more, to
know it is over), then the message is refused with 1009 (Message Too Big)
and the rest is never inflated.

Negotiation (RFC 7692 section 5.1 and 7.1): of the offers a client makes,
the first that netlab can honour is accepted, an offer with an unknown,
repeated or malformed parameter is declined, and the answer always has
C{server_no_context_takeover}, so that an idle connection holds no
compressor (zlib's deflate state is some 256 KiB).  The client's window is
never limited: the inflater's window is the largest, which inflates any.
"""

from __future__ import annotations

import zlib
from typing import Any

from wsproto.extensions import PerMessageDeflate
from wsproto.frame_protocol import CloseReason, Opcode, RsvBits

# What RFC 7692 section 7.2.1 removes from the end of every message.
TAIL = b"\x00\x00\xff\xff"
PARAMETERS = frozenset({
    "server_no_context_takeover", "client_no_context_takeover",
    "server_max_window_bits", "client_max_window_bits",
})
# zlib cannot compress with an 8-bit window (it silently uses 9), so an
# offer that asks the server for 8 is one netlab cannot honour.
SERVER_WINDOW_BITS = range(9, 16)
CLIENT_WINDOW_BITS = range(8, 16)
INFLATE_WINDOW_BITS = 15


def offer_parameters(offer: str) -> dict[str, int | None] | None:
    """
    The parameters of one offer (C{"permessage-deflate; a; b=1"}) by name,
    window sizes as numbers; None for an offer that must be declined (RFC
    7692 section 7.1: an unknown or repeated parameter, a bad value).
    """
    parameters: dict[str, int | None] = {}
    for part in offer.split(";")[1:]:
        name, has_value, raw = part.partition("=")
        name = name.strip().lower()
        if name not in PARAMETERS or name in parameters:
            return None
        value = raw.strip().strip('"') if has_value else None
        if name.endswith("_no_context_takeover"):
            if value is not None:
                return None
            parameters[name] = None
            continue
        if value is None:
            if name == "server_max_window_bits":  # a value is required
                return None
            parameters[name] = None
            continue
        if not value.isdigit() or int(value) not in CLIENT_WINDOW_BITS:
            return None
        parameters[name] = int(value)
    return parameters


class CappedDeflate(PerMessageDeflate):
    """
    A server's permessage-deflate whose inflater stops at C{max_message}
    bytes a message (see the module).

    @ivar agreed: whether an offer was accepted.
    @ivar inflated: bytes inflated so far of the message in progress.
    """

    def __init__(self, max_message: int) -> None:
        super().__init__(server_no_context_takeover=True)
        self.max_message = max_message
        self.agreed = False
        self.inflated = 0
        self._inflater: Any = None
        # Whether the frame in progress is a data frame, the message in
        # progress (a data frame without FIN, then continuations) started,
        # and whether it came compressed (RSV1 on its first frame).
        self._data_frame = False
        self._in_message = False
        self._compressed = False

    # -- negotiation ---------------------------------------------------------

    def enabled(self) -> bool:
        return self.agreed

    def accept(self, offer: str) -> str | None:
        if self.agreed:
            return None
        parameters = offer_parameters(offer)
        if parameters is None:
            return None
        answer = ["server_no_context_takeover"]
        if "server_max_window_bits" in parameters:
            bits = parameters["server_max_window_bits"]
            if bits is None or bits not in SERVER_WINDOW_BITS:
                return None
            self.server_max_window_bits = bits
            answer.append(f"server_max_window_bits={bits}")
        if "client_no_context_takeover" in parameters:
            self.client_no_context_takeover = True
            answer.append("client_no_context_takeover")
        self.agreed = True
        return "; ".join(answer)

    # -- inflating -------------------------------------------------------------

    def frame_inbound_header(self, proto: Any, opcode: Opcode, rsv: RsvBits,
                             payload_length: int) -> CloseReason | RsvBits:
        if opcode.iscontrol():
            if rsv.rsv1:
                return CloseReason.PROTOCOL_ERROR
            self._data_frame = False
            return RsvBits(True, False, False)
        self._data_frame = True
        if opcode is Opcode.CONTINUATION:
            if rsv.rsv1 or not self._in_message:
                # RSV1 belongs on a message's first frame only (RFC 7692 6.1).
                return CloseReason.PROTOCOL_ERROR
        elif self._in_message:
            # A new message before the last one ended.
            return CloseReason.PROTOCOL_ERROR
        else:
            self._in_message = True
            self._compressed = rsv.rsv1
            self.inflated = 0
            if rsv.rsv1 and self._inflater is None:
                self._inflater = zlib.decompressobj(-INFLATE_WINDOW_BITS)
        return RsvBits(True, False, False)

    def frame_inbound_payload_data(self, proto: Any, data: bytes) -> bytes | CloseReason:
        if not (self._data_frame and self._compressed):
            return data
        return self._inflate(data)

    def frame_inbound_complete(self, proto: Any, fin: bool) -> bytes | CloseReason | None:
        if not (self._data_frame and fin):
            return None
        self._in_message = False
        if not self._compressed:
            return None
        self._compressed = False
        rest = self._inflate(TAIL)
        if self.client_no_context_takeover or self._inflater.eof:
            # The client starts afresh (a final block ends zlib's stream too).
            self._inflater = None
        return rest

    def _inflate(self, data: bytes) -> bytes | CloseReason:
        """Inflate C{data}, the next of a message, to no more than its room (and one byte)."""
        room = self.max_message - self.inflated
        try:
            # max_length is at least 1 (0 would mean no limit at all).
            out: bytes = self._inflater.decompress(data, room + 1)
        except zlib.error:
            return CloseReason.INVALID_FRAME_PAYLOAD_DATA
        if len(out) > room:
            return CloseReason.MESSAGE_TOO_BIG
        self.inflated += len(out)
        return out
