"""
A small, strict C{multipart/form-data} parser (RFC 7578 on RFC 2046).

Twisted's own parser (C{cgi}-style, behind C{request.args}) drops file
names and keeps every upload in memory, and an inspection service must
report exactly what a client sent. This one is fed bytes as they come and
keeps only the last few bytes of a file (plus its size and SHA-256), so an
upload costs no more memory than the read buffer.

Anything malformed raises L{ParseError}, whose text is one line fit to
send back to the client; nothing else escapes the parser.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from urllib.parse import unquote

MAX_PARTS = 1000
MAX_PART_HEADER_BYTES = 16 * 1024
MAX_PADDING = 256

# RFC 2046 section 5.1.1: a boundary is 1 to 70 of these, not ending in a space.
_BOUNDARY = re.compile(r"[0-9A-Za-z'()+_,\-./:=? ]{0,69}[0-9A-Za-z'()+_,\-./:=?]")
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")


class ParseError(ValueError):
    """The body is not well-formed C{multipart/form-data}; the text says why."""


@dataclass
class Part:
    """
    One body part: a form field, or a file when it has a C{filename}.

    A field keeps its value; a file keeps only its size and SHA-256, since
    that is all the inspection answer reports.
    """

    name: str
    filename: str | None
    content_type: str | None
    headers: list[tuple[str, str]]
    size: int = 0
    value: bytearray = field(default_factory=bytearray)
    _hash: hashlib._Hash = field(default_factory=hashlib.sha256, repr=False)

    @property
    def is_file(self) -> bool:
        return self.filename is not None

    @property
    def sha256(self) -> str:
        return self._hash.hexdigest()

    def feed(self, data: bytes) -> None:
        if not data:
            return
        self.size += len(data)
        self._hash.update(data)
        if not self.is_file:
            self.value += data


def parse_parameters(value: str) -> tuple[str, dict[str, str]]:
    """
    A header value such as C{form-data; name="a"; filename*=UTF-8''b} as its
    lower-cased main value and its parameters (names lower-cased).

    Quoted strings undo C{\\"} and C{\\\\}; any other backslash is kept, so
    an old browser's C{C:\\dir\\file} name survives. RFC 8187 C{name*}
    values are decoded and win over the plain ones.
    """
    main, _, rest = value.partition(";")
    main = main.strip().lower()
    params: dict[str, str] = {}
    extended: dict[str, str] = {}
    pos, end = 0, len(rest)
    while True:
        while pos < end and rest[pos] in " \t;":
            pos += 1
        if pos >= end:
            break
        match = _TOKEN.match(rest, pos)
        if match is None:
            raise ParseError(f"bad parameter name in {main or 'header'} header")
        name = match.group().lower()
        pos = match.end()
        while pos < end and rest[pos] in " \t":
            pos += 1
        if pos >= end or rest[pos] != "=":
            raise ParseError(f"parameter {name!r} has no value")
        pos += 1
        while pos < end and rest[pos] in " \t":
            pos += 1
        if pos < end and rest[pos] == '"':
            text, pos = _quoted_string(rest, pos + 1)
        else:
            match = _TOKEN.match(rest, pos)
            if match is None:
                raise ParseError(f"parameter {name!r} has a bad value")
            text, pos = match.group(), match.end()
        while pos < end and rest[pos] in " \t":
            pos += 1
        if pos < end and rest[pos] != ";":
            raise ParseError(f"unexpected text after parameter {name!r}")
        target = extended if name.endswith("*") else params
        key = name.rstrip("*")
        if key in target:
            raise ParseError(f"parameter {name!r} given twice")
        target[key] = _extended_value(name, text) if name.endswith("*") else text
    params.update(extended)
    return main, params


def _quoted_string(text: str, pos: int) -> tuple[str, int]:
    """The quoted string starting after the quote at C{pos - 1}, and where it ends."""
    out: list[str] = []
    end = len(text)
    while pos < end:
        char = text[pos]
        if char == '"':
            return "".join(out), pos + 1
        if char == "\\" and pos + 1 < end and text[pos + 1] in '"\\':
            out.append(text[pos + 1])
            pos += 2
            continue
        out.append(char)
        pos += 1
    raise ParseError("unterminated quoted string in header")


def _extended_value(name: str, text: str) -> str:
    """An RFC 8187 C{charset'language'percent-encoded} value, decoded."""
    try:
        charset, _language, encoded = text.split("'", 2)
        return unquote(encoded, encoding=charset or "utf-8", errors="strict")
    except (ValueError, LookupError, UnicodeDecodeError):
        raise ParseError(f"parameter {name!r} is not a valid RFC 8187 value") from None


def boundary_from_content_type(content_type: str) -> bytes:
    """The boundary of a C{multipart/form-data} Content-Type header value."""
    media_type, params = parse_parameters(content_type)
    if media_type != "multipart/form-data":
        raise ParseError("Content-Type is not multipart/form-data")
    boundary = params.get("boundary")
    if boundary is None:
        raise ParseError("multipart/form-data Content-Type has no boundary")
    if not _BOUNDARY.fullmatch(boundary):
        raise ParseError("multipart boundary must be 1-70 allowed characters (RFC 2046)")
    return boundary.encode("ascii")


class MultipartParser:
    """
    Parses one C{multipart/form-data} body fed in chunks of any size.

    Call L{feed} with the bytes as they come, then L{close} for the parts.
    """

    def __init__(
        self,
        boundary: bytes,
        max_parts: int = MAX_PARTS,
        max_header_bytes: int = MAX_PART_HEADER_BYTES,
    ) -> None:
        self.max_parts = max_parts
        self.max_header_bytes = max_header_bytes
        self.parts: list[Part] = []
        self._dash_boundary = b"--" + boundary
        self._delimiter = b"\r\n" + self._dash_boundary
        # The first boundary may open the body, with no CRLF before it.
        self._buffer = b"\r\n"
        self._state = self._preamble
        self._part: Part | None = None

    def feed(self, data: bytes) -> None:
        """Parse C{data}; raises L{ParseError} as soon as the body is malformed."""
        self._buffer += data
        while self._state():
            pass

    def close(self) -> list[Part]:
        """The parts, once the whole body was fed and ended properly."""
        if self._state != self._epilogue:
            raise ParseError("multipart body ends before its closing boundary")
        return self.parts

    # Each state consumes what it can and says whether to run the next one.

    def _preamble(self) -> bool:
        index = self._buffer.find(self._delimiter)
        if index < 0:
            self._buffer = self._buffer[-(len(self._delimiter) - 1):]
            return False
        self._buffer = self._buffer[index + len(self._delimiter):]
        self._state = self._after_boundary
        return True

    def _after_boundary(self) -> bool:
        buffer = self._buffer
        if buffer[:2] == b"--":
            self._state = self._epilogue
            return True
        padding = len(buffer) - len(buffer.lstrip(b" \t"))
        if padding > MAX_PADDING:
            raise ParseError("too much padding after a multipart boundary")
        rest = buffer[padding:]
        if rest[:2] == b"\r\n":
            self._buffer = rest[2:]
            self._state = self._headers
            return True
        if rest in (b"", b"\r") or buffer == b"-":
            return False  # wait for more
        raise ParseError("multipart boundary not followed by CRLF or '--'")

    def _headers(self) -> bool:
        if self._buffer.startswith(b"\r\n"):
            block, self._buffer = b"", self._buffer[2:]
        else:
            end = self._buffer.find(b"\r\n\r\n")
            if end < 0:
                if len(self._buffer) > self.max_header_bytes:
                    raise ParseError("multipart part headers too long")
                return False
            if end > self.max_header_bytes:
                raise ParseError("multipart part headers too long")
            block, self._buffer = self._buffer[:end], self._buffer[end + 4:]
        if len(self.parts) >= self.max_parts:
            raise ParseError(f"more than {self.max_parts} multipart parts")
        self._part = _make_part(block)
        self.parts.append(self._part)
        self._state = self._body
        return True

    def _body(self) -> bool:
        assert self._part is not None
        index = self._buffer.find(self._delimiter)
        if index < 0:
            keep = len(self._delimiter) - 1
            if len(self._buffer) > keep:
                self._part.feed(self._buffer[:-keep])
                self._buffer = self._buffer[-keep:]
            return False
        self._part.feed(self._buffer[:index])
        self._buffer = self._buffer[index + len(self._delimiter):]
        self._part = None
        self._state = self._after_boundary
        return True

    def _epilogue(self) -> bool:
        self._buffer = b""  # RFC 2046: whatever follows the close delimiter is ignored
        return False


def _make_part(block: bytes) -> Part:
    """A part from its header block (CRLF-separated lines, no final blank line)."""
    headers: list[tuple[str, str]] = []
    for raw in block.split(b"\r\n") if block else []:
        if b"\r" in raw or b"\n" in raw:
            raise ParseError("bare CR or LF in multipart part headers")
        if raw[:1] in (b" ", b"\t"):
            raise ParseError("folded multipart part header")
        name, colon, value = raw.partition(b":")
        text_name = name.decode("latin-1")
        if not colon or not _TOKEN.fullmatch(text_name):
            raise ParseError("malformed multipart part header line")
        headers.append((text_name, value.strip(b" \t").decode("utf-8", "replace")))
    dispositions = [v for n, v in headers if n.lower() == "content-disposition"]
    if len(dispositions) != 1:
        raise ParseError("each multipart part needs one Content-Disposition header")
    kind, params = parse_parameters(dispositions[0])
    if kind != "form-data":
        raise ParseError("multipart part Content-Disposition is not form-data")
    if "name" not in params:
        raise ParseError("multipart part Content-Disposition has no name")
    types = [v for n, v in headers if n.lower() == "content-type"]
    if len(types) > 1:
        raise ParseError("multipart part has more than one Content-Type")
    return Part(
        name=params["name"],
        filename=params.get("filename"),
        content_type=types[0] if types else None,
        headers=headers,
    )


def parse_multipart(body: bytes, content_type: str, max_parts: int = MAX_PARTS) -> list[Part]:
    """The parts of a whole C{multipart/form-data} body."""
    parser = MultipartParser(boundary_from_content_type(content_type), max_parts=max_parts)
    parser.feed(body)
    return parser.close()
