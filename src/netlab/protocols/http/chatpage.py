"""
The browser chat page, C{/chat}: one static HTML page with a little vanilla
JavaScript that talks to C{/ws/chat}.  No build step, readable on a phone.

Every line from the server is put on the page with C{textContent}, never
as HTML, and a Content-Security-Policy allows only this page's own inline
script and style (by hash), so a chat line can never run as code.
"""

from __future__ import annotations

import base64
import hashlib

from twisted.web.resource import Resource
from twisted.web.server import Request

STYLE = """
* { box-sizing: border-box; }
html, body { height: 100%; margin: 0; }
body { display: flex; flex-direction: column; font: 16px/1.4 system-ui, sans-serif;
       background: #fafafa; color: #111; }
header { display: flex; justify-content: space-between; align-items: baseline;
         padding: 0.4em 0.75em; background: #234; color: #fff; }
h1 { font-size: 1.1em; margin: 0; }
#status { font-size: 0.9em; }
#log { flex: 1; overflow-y: auto; padding: 0.5em 0.75em; font-family: ui-monospace, monospace;
       white-space: pre-wrap; overflow-wrap: anywhere; }
.line { margin: 0.1em 0; }
.mine { color: #555; }
.notice { color: #246; }
.error { color: #a00; }
form { display: flex; gap: 0.5em; padding: 0.5em; border-top: 1px solid #ccc; background: #fff; }
#line { flex: 1; min-width: 0; font-size: 16px; padding: 0.5em; }
button { font-size: 16px; padding: 0.5em 1em; }
"""

SCRIPT = """
"use strict";
(function () {
  const log = document.getElementById("log");
  const form = document.getElementById("say");
  const input = document.getElementById("line");
  const button = document.getElementById("send");
  const status = document.getElementById("status");
  let socket = null;

  function show(text, kind) {
    const line = document.createElement("div");
    line.className = "line" + (kind ? " " + kind : "");
    line.textContent = text;
    const atBottom = log.scrollHeight - log.scrollTop - log.clientHeight < 40;
    log.appendChild(line);
    while (log.childElementCount > 1000) {
      log.removeChild(log.firstElementChild);
    }
    if (atBottom) {
      log.scrollTop = log.scrollHeight;
    }
  }

  function kindOf(text) {
    if (text.startsWith("ERROR")) return "error";
    if (text.startsWith("*")) return "notice";
    return "";
  }

  function connect() {
    const scheme = location.protocol === "https:" ? "wss://" : "ws://";
    socket = new WebSocket(scheme + location.host + "/ws/chat");
    status.textContent = "connecting";
    button.textContent = "Send";
    socket.onopen = function () {
      status.textContent = "connected";
      input.focus();
    };
    socket.onmessage = function (event) {
      const text = String(event.data);
      show(text, kindOf(text));
      input.type = text.endsWith("Password:") ? "password" : "text";
    };
    socket.onclose = function (event) {
      socket = null;
      status.textContent = "disconnected";
      button.textContent = "Connect";
      input.type = "text";
      show("* Disconnected (code " + event.code + "). Press Connect to come back.", "notice");
    };
  }

  form.addEventListener("submit", function (event) {
    event.preventDefault();
    if (socket === null) {
      connect();
      return;
    }
    const text = input.value;
    if (socket.readyState !== WebSocket.OPEN || text === "") {
      return;
    }
    socket.send(text);
    show(input.type === "password" ? "> (password)" : "> " + text, "mine");
    input.value = "";
    input.type = "text";
  });

  // Leaving the page leaves the chat, even if the browser keeps the page
  // in its back-forward cache.
  window.addEventListener("pagehide", function () {
    if (socket !== null) {
      socket.close(1000);
    }
  });

  connect();
})();
"""

PAGE = f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>netlab chat</title>
<style>{STYLE}</style>
</head>
<body>
<header><h1>netlab chat</h1><span id="status">loading</span></header>
<main id="log" aria-live="polite"></main>
<form id="say" autocomplete="off">
<input id="line" name="line" autocomplete="off" autocapitalize="off" enterkeyhint="send"
 aria-label="Your nick or message" placeholder="Your nick, then messages; /help">
<button id="send" type="submit">Send</button>
</form>
<noscript><p>The chat needs JavaScript; or use telnet or nc.</p></noscript>
<script>{SCRIPT}</script>
</body>
</html>
""".encode()


def _digest(text: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode()).digest()).decode() + "'"


CONTENT_SECURITY_POLICY = (
    f"default-src 'none'; script-src {_digest(SCRIPT)}; style-src {_digest(STYLE)}; "
    "connect-src 'self' ws: wss:; base-uri 'none'; form-action 'none'; "
    "frame-ancestors 'none'"
)


class ChatPage(Resource):
    """The page: always the same bytes, nothing from the request in it."""

    isLeaf = True

    def render_GET(self, request: Request) -> bytes:
        request.setHeader(b"content-type", b"text/html; charset=utf-8")
        request.setHeader(b"content-security-policy", CONTENT_SECURITY_POLICY.encode())
        request.setHeader(b"x-content-type-options", b"nosniff")
        request.setHeader(b"referrer-policy", b"no-referrer")
        request.setHeader(b"cache-control", b"no-cache")
        return PAGE
