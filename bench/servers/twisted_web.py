"""
The bare-twisted.web reference for HTTP GET: a Site whose one resource
answers every GET with a fixed JSON body, with Site's default access log
(combined log format through twisted.logger, to stdout).

Usage: twisted_web.py --tcp PORT
"""

from __future__ import annotations

import argparse
import sys

from twisted.internet import reactor
from twisted.python import log
from twisted.web import resource, server

BODY = b'{"args": {}, "headers": {"Host": "127.0.0.1"}, "origin": "127.0.0.1", "url": "/get"}\n'


class Fixed(resource.Resource):
    isLeaf = True

    def render_GET(self, request: server.Request) -> bytes:
        request.setHeader(b"content-type", b"application/json")
        return BODY


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--tcp", type=int, required=True)
    args = parser.parse_args()
    log.startLogging(sys.stdout)
    site = server.Site(Fixed())
    reactor.listenTCP(args.tcp, site, backlog=1024, interface="127.0.0.1")  # type: ignore[attr-defined]
    reactor.run()  # type: ignore[attr-defined]


if __name__ == "__main__":
    main()
