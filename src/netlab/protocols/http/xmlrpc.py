"""
XML-RPC at C{/RPC2} (and at C{/}, where the course's clients call it: see
L{netlab.protocols.http.front}): a few small procedures for trying an XML-RPC client,
with the introspection API (C{system.listMethods}, C{system.methodHelp},
C{system.methodSignature}).

Twisted parses a call with C{xmlrpc.client.loads}, that is expat, which
would expand entities declared in a document's DTD ("billion laughs") and
see external entities. XML-RPC has no use for a DTD, so a request that
declares a DOCTYPE or an ENTITY is refused with a fault before that parser
ever sees it; the request body is already capped by the Site (C{max_body}).
"""

from __future__ import annotations

import datetime
import functools
import inspect
import itertools
import math
import xmlrpc.client
from collections.abc import Callable
from typing import Any, TypeVar
from xml.parsers import expat

from twisted.logger import LogLevel
from twisted.web import server
from twisted.web.xmlrpc import XMLRPC, Fault, addIntrospection

from netlab.core.events import REFUSED, describe_address
from netlab.protocols.http.context import HttpContext

REFUSED_DOCUMENT = 8003
"""Fault code: the request was not a plain XML-RPC document (a DTD, or not well-formed)."""
BAD_ARGUMENTS = 8004
"""Fault code: a procedure got the wrong number or types of arguments."""

XML_RPC_TYPES: dict[type, str] = {
    bool: "boolean",
    int: "int",
    float: "double",
    str: "string",
    bytes: "base64",
    xmlrpc.client.Binary: "base64",
    xmlrpc.client.DateTime: "dateTime.iso8601",
    datetime.datetime: "dateTime.iso8601",
    list: "array",
    tuple: "array",
    dict: "struct",
    type(None): "nil",
}

Procedure = TypeVar("Procedure", bound=Callable[..., Any])


def xml_rpc_type(value: object) -> str:
    """The XML-RPC name of C{value}'s type, for fault messages a client understands."""
    return XML_RPC_TYPES.get(type(value), type(value).__name__)


def is_number(value: object) -> bool:
    """An XML-RPC int or double; booleans arrive as Python C{bool}, an C{int} subclass."""
    return isinstance(value, int | float) and not isinstance(value, bool)


def procedure(returns: str, *params: str) -> Callable[[Procedure], Procedure]:
    """
    Publish a method's XML-RPC signatures (C{"type name"} per parameter,
    C{"int|double name"} for a parameter of either type: one signature per
    choice) and its docstring, unindented, for C{system.methodHelp}; answer a
    wrong argument count with a clear fault, instead of Twisted's logged
    traceback and a bare C{"error"}.
    """
    choices = [param.split()[0].split("|") for param in params]

    def decorate(method: Procedure) -> Procedure:
        name = method.__name__.removeprefix("xmlrpc_")

        @functools.wraps(method)
        def checked(self: Any, *args: Any) -> Any:
            if len(args) != len(params):
                raise Fault(
                    BAD_ARGUMENTS,
                    f"{name}({', '.join(params)}) takes {len(params)} argument"
                    f"{'' if len(params) == 1 else 's'}, not {len(args)}",
                )
            return method(self, *args)

        checked.signature = [  # type: ignore[attr-defined]
            [returns, *types] for types in itertools.product(*choices)
        ]
        checked.help = inspect.cleandoc(method.__doc__ or "")  # type: ignore[attr-defined]
        return checked  # type: ignore[return-value]

    return decorate


class _DeclarationError(Exception):
    """Raised from expat's handlers to stop at the first DTD declaration."""


def _refuse_declaration(*_: object) -> None:
    raise _DeclarationError()


def refusal_reason(body: bytes) -> str | None:
    """
    Why C{body} must not reach the XML-RPC parser, or C{None} if it may.

    A bare expat parser stops at the start of a DOCTYPE, before its internal
    subset (where entities are declared) is read, so nothing is ever
    expanded; parsing rather than searching the bytes also catches a DOCTYPE
    in UTF-16 or another encoding expat decodes.
    """
    parser = expat.ParserCreate()
    parser.StartDoctypeDeclHandler = _refuse_declaration
    parser.EntityDeclHandler = _refuse_declaration
    parser.ExternalEntityRefHandler = _refuse_declaration  # type: ignore[assignment]
    try:
        parser.Parse(body, True)
    except _DeclarationError:
        return "XML-RPC requests may not contain a DOCTYPE or ENTITY declaration"
    except expat.ExpatError as e:
        return f"not well-formed XML: {e}"
    return None


class LabXMLRPC(XMLRPC):
    """The lab's procedures; C{system.*} is added by L{endpoint}."""

    allowedMethods = (b"GET", b"HEAD", b"POST")  # type: ignore[assignment]

    def __init__(self, context: HttpContext) -> None:
        super().__init__(allowNone=True)
        self.context = context

    def render_GET(self, request: server.Request) -> bytes:
        """A browser visiting /RPC2 learns what it is instead of getting a 405."""
        request.setHeader(b"Content-Type", b"text/plain; charset=utf-8")
        names = ", ".join(self.listProcedures())
        return (
            "This is an XML-RPC endpoint: POST a methodCall here, e.g. with Python's\n"
            "xmlrpc.client.ServerProxy(\"http://host:port/RPC2\").is_even(4)\n"
            "(or at http://host:port/, as the course's clients do).\n"
            f"Procedures: {names}, and system.listMethods, system.methodHelp, "
            "system.methodSignature.\n"
        ).encode()

    def render_POST(self, request: server.Request) -> Any:
        assert request.content is not None
        request.content.seek(0, 0)
        why = refusal_reason(request.content.read())
        if why is None:
            return super().render_POST(request)
        self.context.events.counters_for(self.context.settings.name).refused += 1
        self.context.events.emit(
            REFUSED, self.context.settings.name,
            describe_address(request.getClientAddress()), LogLevel.warn,
            limit=f"XML-RPC: {why}",
        )
        request.setHeader(b"Content-Type", b"text/xml; charset=utf-8")
        fault = Fault(REFUSED_DOCUMENT, f"refused: {why}")
        return xmlrpc.client.dumps(fault, methodresponse=True).encode()

    @procedure("boolean", "int|double n")
    def xmlrpc_is_even(self, n: object) -> bool:
        """
        is_even(n): whether the number n is even, n % 2 == 0, as the course's
        server answers: for an int, or a double (4.0 is even; 3.0 and 2.5 are not).
        """
        if not is_number(n):
            raise Fault(
                BAD_ARGUMENTS, f"is_even(n) needs a number (int or double), not a {xml_rpc_type(n)}"
            )
        return bool(n % 2 == 0)  # type: ignore[operator]

    @procedure("double", "double a", "double b")
    def xmlrpc_add(self, a: object, b: object) -> int | float:
        """
        add(a, b): the sum a + b of two numbers (int or double). Two ints give
        an int, which must fit XML-RPC's 32 bits; send doubles for bigger sums.
        """
        for name, value in (("a", a), ("b", b)):
            if not is_number(value):
                raise Fault(
                    BAD_ARGUMENTS, f"add(a, b) needs numbers, but {name} is a {xml_rpc_type(value)}"
                )
        total: int | float = a + b  # type: ignore[operator]
        if isinstance(total, int) and not xmlrpc.client.MININT <= total <= xmlrpc.client.MAXINT:
            raise Fault(BAD_ARGUMENTS, f"add(a, b): {total} does not fit an XML-RPC int; "
                        "send doubles for bigger sums")
        if isinstance(total, float) and not math.isfinite(total):
            raise Fault(BAD_ARGUMENTS, "add(a, b): the sum is not a finite number")
        return total

    @procedure("any", "any value")
    def xmlrpc_echo(self, value: object) -> object:
        """echo(value): returns value unchanged, whatever its XML-RPC type."""
        return value

    @procedure("string")
    def xmlrpc_time(self) -> str:
        """
        time(): the server's current time as an ISO-8601 string in UTC, such as
        "2025-03-01T12:34:56+00:00" (a string, because XML-RPC's dateTime has no
        time zone).
        """
        now = datetime.datetime.fromtimestamp(self.context.reactor.seconds(), tz=datetime.UTC)
        return now.isoformat(timespec="seconds")


def endpoint(context: HttpContext) -> LabXMLRPC:
    """C{/RPC2}: the XML-RPC endpoint, with the C{system.*} introspection calls."""
    rpc = LabXMLRPC(context)
    addIntrospection(rpc)
    return rpc
