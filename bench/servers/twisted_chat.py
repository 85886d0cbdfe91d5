"""
The bare-Twisted chat reference: a LineReceiver broadcast server.

The first line a client sends is its nick; every later line goes to every
other client as "<nick> line". TCP_NODELAY on every connection (netlab's chat
does not set it), default reactor. No rooms, history, flood control, logging or
output limits: the floor a Twisted chat can reach.

Usage: twisted_chat.py --tcp PORT
"""

from __future__ import annotations

import argparse

from twisted.internet import protocol, reactor
from twisted.protocols.basic import LineReceiver


class Member(LineReceiver):
    delimiter = b"\n"

    def __init__(self, members: set[Member]) -> None:
        self.members = members
        self.nick = b""

    def connectionMade(self) -> None:
        self.transport.setTcpNoDelay(True)  # type: ignore[union-attr]
        self.sendLine(b"Choose a nick:")

    def lineReceived(self, line: bytes) -> None:
        line = line.rstrip(b"\r")
        if not self.nick:
            self.nick = line or b"anon"
            self.members.add(self)
            self.sendLine(b"Hello " + self.nick)
            return
        out = b"<" + self.nick + b"> " + line + b"\r"
        for member in self.members:
            if member is not self:
                member.sendLine(out)

    def connectionLost(self, reason: object = None) -> None:
        self.members.discard(self)


class ChatFactory(protocol.ServerFactory):
    def __init__(self) -> None:
        self.members: set[Member] = set()

    def buildProtocol(self, addr: object) -> Member:
        return Member(self.members)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--tcp", type=int, required=True)
    args = parser.parse_args()
    reactor.listenTCP(args.tcp, ChatFactory(), backlog=1024, interface="127.0.0.1")  # type: ignore[attr-defined]
    reactor.run()  # type: ignore[attr-defined]


if __name__ == "__main__":
    main()
