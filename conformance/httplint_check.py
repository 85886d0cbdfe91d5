#!/usr/bin/env python3
"""
httplint on netlab's inspection routes, next to httpbin's: fetch each route
from both servers (started as conformance/httpbin_parity.py starts them),
lint each raw response with httplint (from PyPI, in the same cached venv),
and print the warnings netlab gets beyond those httpbin gets for the same
route.

    .venv/bin/python conformance/httplint_check.py            # every route
    .venv/bin/python conformance/httplint_check.py --all      # every note, good ones too

Exit status 1 when netlab gets a warning (or worse) that httpbin does not.
"""

from __future__ import annotations

import argparse
import re
import socket
import subprocess
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from httpbin_parity import DEFAULT_VENV, HOST, REQUEST_TIMEOUT, Server, both_servers

# (method, path): the inspection routes and the other fixed and generated ones.
ROUTES: tuple[tuple[str, str], ...] = (
    ("GET", "/get"), ("GET", "/headers"), ("GET", "/ip"), ("GET", "/user-agent"),
    ("GET", "/anything"), ("POST", "/post"), ("PUT", "/put"), ("GET", "/uuid"),
    ("GET", "/json"), ("GET", "/html"), ("GET", "/xml"), ("GET", "/robots.txt"),
    ("GET", "/deny"), ("GET", "/encoding/utf8"), ("GET", "/base64/SFRUUEJJTiBpcyBhd2Vzb21l"),
    ("GET", "/response-headers?X-Foo=bar"), ("GET", "/gzip"), ("GET", "/deflate"),
    ("GET", "/bytes/10"), ("GET", "/stream/2"), ("GET", "/stream-bytes/10"),
    ("GET", "/delay/0"), ("GET", "/cache"), ("GET", "/cache/60"), ("GET", "/etag/x"),
    ("GET", "/range/10"), ("GET", "/links/3/0"), ("GET", "/cookies"),
    ("GET", "/static/favicon.ico"), ("GET", "/status/418"), ("GET", "/redirect/1"),
    ("GET", "/basic-auth/user/passwd"), ("GET", "/bearer"),
)
NOTE = re.compile(r"^(?P<indent>\s*)\* \[(?P<level>\w+)\] (?P<summary>.*)$")
# httplint prints its levels by their names: GOOD, INFO, WARN, BAD.
WORSE_THAN_GOOD = ("WARN", "BAD")


@dataclass(frozen=True)
class Note:
    """One of httplint's notes: its level (GOOD, INFO, WARN, BAD) and summary."""

    level: str
    summary: str

    @property
    def key(self) -> tuple[str, str]:
        """What two servers' notes are matched by: numbers (ages, sizes) left out."""
        return self.level, re.sub(r"\d+(\.\d+)?", "N", self.summary)

    def __str__(self) -> str:
        return f"[{self.level}] {self.summary}"


def parse_notes(output: str) -> list[Note]:
    """The notes (and sub-notes) in the output of C{httplint}."""
    notes = []
    for line in output.splitlines():
        match = NOTE.match(line)
        if match:
            notes.append(Note(match["level"].upper(), match["summary"].strip()))
    return notes


def beyond(ours: Iterable[Note], theirs: Iterable[Note],
           levels: Sequence[str] = WORSE_THAN_GOOD) -> list[Note]:
    """C{ours} at one of C{levels} that C{theirs} has no like of, in order."""
    seen = {note.key for note in theirs}
    extra: list[Note] = []
    for note in ours:
        if note.level in levels and note.key not in seen and note not in extra:
            extra.append(note)
    return extra


def raw_exchange(server: Server, method: str, path: str) -> bytes:
    """The response, as bytes off the socket, to one request that closes the connection."""
    body = b'{"a": 1}' if method in ("POST", "PUT") else b""
    head = (
        f"{method} {path} HTTP/1.1\r\nHost: {HOST}:{server.port}\r\n"
        "User-Agent: netlab-httplint\r\nAccept: */*\r\nAccept-Encoding: gzip, deflate, br\r\n"
        "Connection: close\r\n"
    )
    if body:
        head += f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
    chunks = []
    with socket.create_connection((HOST, server.port), timeout=REQUEST_TIMEOUT) as connection:
        connection.sendall(head.encode() + b"\r\n" + body)
        while chunk := connection.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def lint(python: Path, response: bytes) -> list[Note]:
    """httplint's notes on a raw response (its command line, in the httpbin venv)."""
    done = subprocess.run(
        [str(python.with_name("httplint")), "-n"], input=response, capture_output=True,
        timeout=60,
    )
    return parse_notes(done.stdout.decode("utf-8", "replace"))


def check(routes: Sequence[tuple[str, str]], netlab: Server, httpbin: Server, python: Path,
          every: bool = False, out: IO[str] = sys.stdout) -> int:
    """Lint every route on both servers and print netlab's extra notes; how many there were."""
    total = 0
    for method, path in routes:
        ours = lint(python, raw_exchange(netlab, method, path))
        theirs = lint(python, raw_exchange(httpbin, method, path))
        extra = beyond(ours, theirs)
        total += len(extra)
        verdict = "no warning beyond httpbin's" if not extra else f"{len(extra)} beyond httpbin's"
        print(f"{method} {path}: {verdict}", file=out)
        for note in extra:
            print(f"    netlab {note}", file=out)
        if every:
            for who, notes in (("netlab", ours), ("httpbin", theirs)):
                for note in notes:
                    print(f"      {who}: {note}", file=out)
    print(f"\nhttplint: {len(routes)} routes, {total} warnings netlab gets beyond httpbin's",
          file=out)
    return total


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--venv", type=Path, default=DEFAULT_VENV,
                        help=f"the venv with httpbin and httplint (default {DEFAULT_VENV})")
    parser.add_argument("--all", action="store_true", help="print every note of both")
    parser.add_argument("--only", default="", help="only the routes containing this text")
    args = parser.parse_args(argv)
    routes = [route for route in ROUTES if args.only in route[1]]
    with both_servers(args.venv) as (netlab, httpbin, python):
        extra = check(routes, netlab, httpbin, python, every=args.all)
    return 1 if extra else 0


if __name__ == "__main__":
    sys.exit(main())
