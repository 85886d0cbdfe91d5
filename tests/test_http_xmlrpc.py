"""Tests for netlab.protocols.http.xmlrpc: /RPC2 procedures, introspection and DTD refusal."""

from __future__ import annotations

import time
import xmlrpc.client
from pathlib import Path
from typing import Any

import pytest
import pytest_twisted
from twisted.internet.defer import Deferred, inlineCallbacks
from twisted.internet.task import Clock
from twisted.internet.threads import deferToThread

from daemon import running_daemon
from helpers import close_all, connect
from httptest import Served, build_site, http_config
from netlab.protocols.http import routes
from netlab.protocols.http import xmlrpc as rpc

EXPANDED = "EXPANDED-ENTITY-TEXT"

ENTITY_ECHO = f"""<?xml version="1.0"?>
<!DOCTYPE methodCall [<!ENTITY e "{EXPANDED}">]>
<methodCall><methodName>echo</methodName>
<params><param><value><string>&e;</string></value></param></params></methodCall>
"""

BILLION_LAUGHS = (
    '<?xml version="1.0"?>\n<!DOCTYPE methodCall [\n<!ENTITY lol0 "lol">\n'
    + "".join(f'<!ENTITY lol{i} "{f"&lol{i - 1};" * 10}">\n' for i in range(1, 10))
    + "]>\n<methodCall><methodName>echo</methodName><params><param><value>"
    "<string>&lol9;</string></value></param></params></methodCall>\n"
)

EXTERNAL_ENTITY = """<?xml version="1.0"?>
<!DOCTYPE methodCall [<!ENTITY secret SYSTEM "file:///etc/passwd">]>
<methodCall><methodName>echo</methodName>
<params><param><value><string>&secret;</string></value></param></params></methodCall>
"""


class RpcServer(Served):
    """The /RPC2 resource alone on a real loopback socket, with a Clock for its time."""

    def __init__(self, events: Any, clock: Clock) -> None:
        super().__init__(build_site(events, clock, routes.of(rpc)))
        self.rpc_url = self.url("/RPC2")

    def call(self, method: str, *args: Any) -> Deferred[Any]:
        """Call C{method} with a real blocking ServerProxy, in a thread."""

        def blocking() -> Any:
            with xmlrpc.client.ServerProxy(self.rpc_url, allow_none=True) as proxy:
                return getattr(proxy, method)(*args)

        return deferToThread(blocking)


@inlineCallbacks
def calls(events: Any, clock: Clock, *wanted: tuple[Any, ...]) -> Any:
    """The results (or Faults) of several calls, each C{(method, *args)}, on one server."""
    server = RpcServer(events, clock)
    results: list[Any] = []
    try:
        for method, *args in wanted:
            try:
                results.append((yield server.call(method, *args)))
            except xmlrpc.client.Fault as fault:
                results.append(fault)
    finally:
        yield server.close()
    return results


@inlineCallbacks
def raw_post(body: bytes, events: Any, clock: Clock) -> Any:
    """POST C{body} to /RPC2 on a raw socket; the status line and body that came back."""
    status, _, payload = yield raw(
        b"POST /RPC2 HTTP/1.1\r\nHost: localhost\r\nContent-Type: text/xml\r\n"
        b"Connection: close\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body),
        events, clock,
    )
    return status, payload


@inlineCallbacks
def raw(request: bytes, events: Any, clock: Clock) -> Any:
    """Send C{request} on a raw socket; the status line, header block and body."""
    server = RpcServer(events, clock)
    try:
        client = yield connect(server.port)
        client.send(request)
        yield client.closed
        yield close_all(client)
    finally:
        yield server.close()
    head, _, payload = client.data.partition(b"\r\n\r\n")
    status, _, headers = head.partition(b"\r\n")
    return status, headers, payload


@pytest_twisted.inlineCallbacks
def test_get_explains_the_endpoint(events: Any, clock: Clock) -> Any:
    """A browser's GET /RPC2 gets a plain-text note naming the procedures, not a 405."""
    status, headers, body = yield raw(
        b"GET /RPC2 HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n", events, clock
    )
    assert status == b"HTTP/1.1 200 OK"
    assert b"Content-Type: text/plain; charset=utf-8" in headers
    assert b"XML-RPC endpoint" in body and b"is_even" in body


@pytest_twisted.inlineCallbacks
def test_is_even(events: Any, clock: Clock) -> Any:
    """is_even answers for ints, odd and even, negative and zero, and for doubles as the
    course's n % 2 == 0 does: 4.0 is even, 3.0 and 2.5 are not."""
    results = yield calls(events, clock, ("is_even", 3), ("is_even", 4), ("is_even", -2),
                          ("is_even", 0), ("is_even", 3.0), ("is_even", 4.0), ("is_even", 2.5),
                          ("is_even", -6.0), ("is_even", 2**31 - 1))
    assert results == [False, True, True, True, False, True, False, True, False]
    assert results == [n % 2 == 0 for n in (3, 4, -2, 0, 3.0, 4.0, 2.5, -6.0, 2**31 - 1)]


@pytest_twisted.inlineCallbacks
def test_is_even_refuses_non_numbers(events: Any, clock: Clock) -> Any:
    """A string or a boolean is a Fault that names the type it got."""
    results = yield calls(events, clock, ("is_even", "3"), ("is_even", True), ("is_even", None))
    assert all(isinstance(r, xmlrpc.client.Fault) for r in results)
    assert [r.faultCode for r in results] == [rpc.BAD_ARGUMENTS] * 3
    assert [r.faultString for r in results] == [
        "is_even(n) needs a number (int or double), not a string",
        "is_even(n) needs a number (int or double), not a boolean",
        "is_even(n) needs a number (int or double), not a nil",
    ]


@pytest_twisted.inlineCallbacks
def test_wrong_argument_count_is_a_clear_fault(events: Any, clock: Clock) -> Any:
    """Too many or too few arguments give a Fault naming the parameters."""
    results = yield calls(events, clock, ("is_even", 1, 2), ("add", 1), ("time", 1))
    assert [r.faultString for r in results] == [
        "is_even(int|double n) takes 1 argument, not 2",
        "add(double a, double b) takes 2 arguments, not 1",
        "time() takes 0 arguments, not 1",
    ]


@pytest_twisted.inlineCallbacks
def test_add(events: Any, clock: Clock) -> Any:
    """add sums ints to an int and mixes in doubles; non-numbers and overflow are Faults."""
    results = yield calls(
        events, clock, ("add", 2, 3), ("add", 1.5, 2), ("add", "1", 2), ("add", 2**31 - 1, 1),
        ("add", 2.0**31, 1),
    )
    assert results[:2] == [5, 3.5]
    assert isinstance(results[0], int)
    assert results[2].faultString == "add(a, b) needs numbers, but a is a string"
    assert "does not fit an XML-RPC int" in results[3].faultString
    assert results[4] == 2.0**31 + 1


@pytest_twisted.inlineCallbacks
def test_echo_returns_any_value(events: Any, clock: Clock) -> Any:
    """echo gives back strings, structs, arrays, binary, dates and nil as sent."""
    when = xmlrpc.client.DateTime("20250301T12:34:56")
    values: list[Any] = [
        "héllo <&>", {"a": [1, 2.5, True]}, xmlrpc.client.Binary(b"\x00\xff"), when, None,
    ]
    results = yield calls(events, clock, *(("echo", v) for v in values))
    assert results == values


@pytest_twisted.inlineCallbacks
def test_time_is_iso8601_utc(events: Any, clock: Clock) -> Any:
    """time() is the server clock as an ISO-8601 UTC string."""
    clock.advance(1_740_832_496)
    [now] = yield calls(events, clock, ("time",))
    assert now == "2025-03-01T12:34:56+00:00"


@pytest_twisted.inlineCallbacks
def test_introspection(events: Any, clock: Clock) -> Any:
    """system.listMethods, methodHelp (the docstring) and methodSignature describe the API."""
    methods, help_text, add_help, signature, even_signature, unknown = yield calls(
        events, clock, ("system.listMethods",), ("system.methodHelp", "is_even"),
        ("system.methodHelp", "add"), ("system.methodSignature", "add"),
        ("system.methodSignature", "is_even"), ("nope",),
    )
    assert {"is_even", "add", "echo", "time", "system.listMethods", "system.methodHelp",
            "system.methodSignature"} <= set(methods)
    assert help_text.startswith("is_even(n): whether the number n is even, n % 2 == 0")
    assert add_help.startswith("add(a, b): the sum a + b of two numbers (int or double). Two")
    assert "\n    " not in add_help
    assert signature == [["double", "double", "double"]]
    assert even_signature == [["boolean", "int"], ["boolean", "double"]]
    assert unknown.faultString == "procedure nope not found"


@pytest_twisted.inlineCallbacks
def test_entity_is_refused_not_expanded(events: Any, clock: Clock) -> Any:
    """An internal entity that echo would send back is refused, not expanded."""
    status, body = yield raw_post(ENTITY_ECHO.encode(), events, clock)
    assert status == b"HTTP/1.1 200 OK"
    assert EXPANDED.encode() not in body
    with pytest.raises(xmlrpc.client.Fault) as caught:
        xmlrpc.client.loads(body)
    assert caught.value.faultCode == rpc.REFUSED_DOCUMENT
    assert "DOCTYPE or ENTITY declaration" in caught.value.faultString
    [refused] = events.kinds("refused")
    assert "DOCTYPE" in refused["limit"]


@pytest_twisted.inlineCallbacks
def test_billion_laughs_is_refused_quickly(events: Any, clock: Clock) -> Any:
    """The billion-laughs bomb (3 GB expanded) is refused at once, before any expansion."""
    started = time.monotonic()
    _, body = yield raw_post(BILLION_LAUGHS.encode(), events, clock)
    assert time.monotonic() - started < 2
    assert len(body) < 1000
    assert b"lollol" not in body
    assert b"DOCTYPE or ENTITY declaration" in body


@pytest_twisted.inlineCallbacks
def test_external_entity_is_refused(events: Any, clock: Clock) -> Any:
    """A SYSTEM entity naming a local file is refused; nothing of the file comes back."""
    _, body = yield raw_post(EXTERNAL_ENTITY.encode(), events, clock)
    assert b"root:" not in body
    assert b"DOCTYPE or ENTITY declaration" in body


def test_refusal_sees_through_encodings() -> None:
    """A DOCTYPE in UTF-16 is found too: the check parses, it does not search bytes."""
    assert rpc.refusal_reason(ENTITY_ECHO.replace('"1.0"?', '"1.0" encoding="utf-16"?')
                              .encode("utf-16")) is not None
    assert rpc.refusal_reason(xmlrpc.client.dumps((1,), "is_even").encode("utf-16")) is None
    assert rpc.refusal_reason(b"<methodCall>&undeclared;</methodCall>") is not None


@pytest_twisted.inlineCallbacks
def test_malformed_xml_is_a_fault(events: Any, clock: Clock) -> Any:
    """A body that is not XML is answered with a Fault, not a server error."""
    status, body = yield raw_post(b"<methodCall><oops>", events, clock)
    assert status == b"HTTP/1.1 200 OK"
    assert b"not well-formed XML" in body


def test_daemon_serves_xmlrpc(tmp_path: Path) -> None:
    """The real daemon answers a plain xmlrpc.client at /RPC2 and at /, where the course's
    client points it, and refuses a DTD."""
    with running_daemon(tmp_path, http_config()) as running:
        for path in ("/RPC2", "/"):
            url = f"http://127.0.0.1:{running.port('http')}{path}"
            with xmlrpc.client.ServerProxy(url) as proxy:
                assert proxy.is_even(3) is False
                assert proxy.is_even(4.0) is True
                assert proxy.add(2, 3) == 5
                assert proxy.echo({"x": [1, "two"]}) == {"x": [1, "two"]}
                assert "is_even" in proxy.system.listMethods()
                with pytest.raises(xmlrpc.client.Fault, match="needs a number"):
                    proxy.is_even("three")
        transport = xmlrpc.client.Transport()
        with pytest.raises(xmlrpc.client.Fault, match="DOCTYPE"):
            transport.request(f"127.0.0.1:{running.port('http')}", "/RPC2",
                              BILLION_LAUGHS.encode())
        transport.close()
