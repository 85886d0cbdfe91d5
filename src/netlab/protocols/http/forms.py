"""
Forms and uploads, httpbin style: C{/post} (and C{/anything} with a body)
answers with the parsed C{form} fields, a summary of each uploaded file,
the body as C{data} and C{json}.

Form bodies are parsed here rather than through C{request.args}: Twisted's
parser drops upload file names. An upload is reported by name, file name,
content type, size and SHA-256, never by its bytes, so that a student can
check an upload arrived intact without the server echoing arbitrary files.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator, Sequence
from typing import IO, Any
from urllib.parse import parse_qsl

from twisted.web import server

from netlab.protocols.http.context import HttpContext
from netlab.protocols.http.inspect import (
    AnythingResource,
    InspectionResource,
    Inspector,
    bad_request,
    collapse,
    header_text,
)
from netlab.protocols.http.multipart import (
    MAX_PARTS,
    MultipartParser,
    ParseError,
    Part,
    boundary_from_content_type,
)

READ_SIZE = 64 * 1024
FORM_URLENCODED = "application/x-www-form-urlencoded"
FORM_DATA = "multipart/form-data"


def chunks(content: IO[bytes]) -> Iterator[bytes]:
    """The request body from its start, a buffer at a time."""
    content.seek(0)
    while chunk := content.read(READ_SIZE):
        yield chunk


def body_as_data(body: bytes) -> str:
    """The body as text when it is UTF-8, else an httpbin-style base64 data: URI."""
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError:
        return "data:application/octet-stream;base64," + base64.b64encode(body).decode("ascii")


def body_as_json(body: bytes) -> Any:
    """The body parsed as strict JSON (no NaN or Infinity), or None when it is not JSON."""
    try:
        return json.loads(body, parse_constant=_reject_constant)
    except (ValueError, RecursionError):  # includes UnicodeDecodeError, JSONDecodeError
        return None


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def parse_urlencoded(body: bytes, max_fields: int = MAX_PARTS) -> list[tuple[str, str]]:
    """The fields of an C{application/x-www-form-urlencoded} body."""
    try:
        return parse_qsl(
            body.decode("utf-8", "replace"), keep_blank_values=True, max_num_fields=max_fields
        )
    except ValueError:
        raise ParseError(f"more than {max_fields} form fields") from None


def form_parts(content_type: str, content: IO[bytes], max_parts: int = MAX_PARTS) -> list[Part]:
    """The parts of a C{multipart/form-data} body, in the order they came."""
    parser = MultipartParser(boundary_from_content_type(content_type), max_parts=max_parts)
    for chunk in chunks(content):
        parser.feed(chunk)
    return parser.close()


def parse_form_data(
    content_type: str, content: IO[bytes], max_parts: int = MAX_PARTS
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The C{form} fields and C{files} summaries of a C{multipart/form-data} body."""
    parts = form_parts(content_type, content, max_parts)
    form = collapse(
        (part.name, bytes(part.value).decode("utf-8", "replace"))
        for part in parts if not part.is_file
    )
    files = collapse(
        (
            part.name,
            {
                "field": part.name,
                "filename": part.filename,
                "content_type": part.content_type or "text/plain",
                "size": part.size,
                "sha256": part.sha256,
            },
        )
        for part in parts if part.is_file
    )
    return form, files


def describe_body(request: server.Request) -> dict[str, Any]:
    """
    httpbin's C{data}, C{files}, C{form} and C{json} for the request body;
    raises L{ParseError} when a form body is malformed.

    As in httpbin, a form body's C{data} is empty: its content is in
    C{form} and C{files}.
    """
    raw_type = request.getHeader(b"content-type")
    content_type = header_text(raw_type) if raw_type is not None else ""
    media_type = content_type.partition(";")[0].strip().lower()
    answer: dict[str, Any] = {"data": "", "files": {}, "form": {}, "json": None}
    content = request.content
    if content is None:
        return answer
    if media_type == FORM_DATA:
        answer["form"], answer["files"] = parse_form_data(content_type, content)
        return answer
    body = b"".join(chunks(content))
    if media_type == FORM_URLENCODED:
        answer["form"] = collapse(parse_urlencoded(body))
    else:
        answer["data"] = body_as_data(body)
        answer["json"] = body_as_json(body) if body else None
    return answer


def answer_with_body(
    inspector: Inspector, request: server.Request, fields: Sequence[str] | None = None
) -> bytes:
    """
    The request described with its parsed body, as C{/post}, C{/put}...
    answer it (only C{fields}, when given); a body that cannot be parsed is
    one plain-text 400.
    """
    description = inspector.describe(request)
    try:
        description.update(describe_body(request))
    except ParseError as error:
        return bad_request(request, str(error))
    if fields is not None:
        description = {name: description[name] for name in fields}
    return inspector.answer(request, description)


class PostResource(InspectionResource):
    """C{/post}: the request and its parsed body; only POST (GET is 405)."""

    allowedMethods = (b"POST",)

    def __init__(self, context: HttpContext) -> None:
        super().__init__()
        self.inspector = Inspector(context)

    def render_POST(self, request: server.Request) -> bytes:
        return answer_with_body(self.inspector, request)


def anything(context: HttpContext) -> AnythingResource:
    """C{/anything}: inspection's any-method page, describing bodies as C{/post} does."""
    return AnythingResource(Inspector(context), describe_body)
