"""
End-to-end tests of the web site on the real daemon: raw HTTP typed by
hand, HTTPS with a certificate the test makes, and curl against both.
"""

from __future__ import annotations

import socket
import subprocess
from pathlib import Path

from daemon import running_daemon
from helpers import require_tool
from httptest import http_config
from test_e2e import _self_signed


def test_raw_requests_typed_by_hand(tmp_path: Path) -> None:
    """GET / HTTP/1.0 with a blank line, and HTTP/1.1 with Host, both get valid responses."""
    with running_daemon(tmp_path, http_config()) as running:
        port = running.port("http")
        with socket.create_connection(("127.0.0.1", port), timeout=20) as s:
            s.sendall(b"GET / HTTP/1.0\r\n\r\n")
            data = s.makefile("rb").read()
        assert data.startswith(b"HTTP/1.0 200 OK\r\n")
        with socket.create_connection(("127.0.0.1", port), timeout=20) as s:
            s.sendall(b"GET /time.html HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
            data = s.makefile("rb").read()
        head, _, body = data.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200 OK\r\n")
        assert b"text/html" in head
        assert b"<html" in body.lower()
        running.wait_for_log(r'http: 127\.0\.0\.1:\d+ "GET /time\.html" 200 \d+ bytes')


def test_https_with_curl(tmp_path: Path) -> None:
    """The same site on an ssl: endpoint answers curl, which verifies the certificate."""
    curl = require_tool("curl")
    key, cert = _self_signed(tmp_path)
    listen = f"ssl:0:interface=127.0.0.1:privateKey={key}:certKey={cert}"
    with running_daemon(tmp_path, http_config(listen=listen)) as running:
        port = running.port("http")
        result = subprocess.run(
            [curl, "-sS", "--cacert", str(cert), "--resolve", f"localhost:{port}:127.0.0.1",
             "-o", "-", "-w", "\\n%{http_code}", f"https://localhost:{port}/time.html"],
            capture_output=True, text=True, timeout=60,
        )
        assert result.returncode == 0, result.stderr
        body, _, code = result.stdout.rpartition("\n")
        assert code == "200"
        assert "<html" in body.lower()
        plain = subprocess.run(
            [curl, "-sS", f"http://127.0.0.1:{port}/time.html"],
            capture_output=True, text=True, timeout=60,
        )
        assert plain.returncode != 0, "plain HTTP must not be served on a TLS port"
