"""
Writing at once when nothing is waiting to be written.

Twisted's socket transports buffer every write until the next reactor pass,
which costs two extra C{epoll_ctl} calls per message (start writing, stop
writing) on the echo hot path.  When the transport has nothing buffered,
L{write_now} hands the bytes to the kernel straight away and buffers only
what the kernel did not take; anything unusual (TLS, a closing connection,
data already queued, a pull producer, a socket error) goes through
Twisted's own C{write},
so ordering, producers, half-close and error handling stay Twisted's.

L{send_datagram} does the same for UDP replies: Twisted's C{Port.write}
checks that the address is an IP address of the port's family before each
C{sendto} in Python, a tenth of the time of a UDP echo; one C{inet_pton}
does that here.
"""

from __future__ import annotations

from socket import inet_pton
from typing import Any

from netlab.core._twisted import tcp_direct_socket, udp_direct_socket


def write_now(transport: Any, data: bytes) -> None:
    """Send C{data} on C{transport}, skipping the buffer when it is empty."""
    # Whether the kernel may have the bytes now (a plain, open TCP connection
    # with nothing buffered and no pull producer) is Twisted's private state:
    # see netlab.core._twisted.
    sock = tcp_direct_socket(transport)
    if sock is not None:
        try:
            # The socket itself, not writeSomeData: its memoryview slice and
            # retry wrapper were a tenth of the Python time of an echo.
            sent = sock.send(data)
        except OSError:
            # A full buffer or a lost connection: Twisted's buffer and
            # doWrite deal with both, as they would have.
            pass
        else:
            if sent == len(data):
                return
            data = data[sent:]
    transport.write(data)


def send_datagram(transport: Any, data: bytes, addr: Any) -> None:
    """
    Send C{data} to C{addr}, which came from C{recvfrom} on this same port;
    on any error, Twisted's own C{write} tries again and retries, raises or
    ignores as it always does.
    """
    # A connected port may send only to its peer: Twisted's write checks.
    sock = udp_direct_socket(transport)
    if sock is not None:
        try:
            # An address of the port's family, never a name: sendto would
            # look a name up, blocking. One C call, unlike Twisted's check.
            inet_pton(transport.addressFamily, addr[0])
            sock.sendto(data, addr)
            return
        except Exception:  # Twisted's write says what was wrong
            pass
    transport.write(data, addr)
