"""Tests for netlab.protocols.http.forms and .multipart: /post, form bodies and uploads."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest
import pytest_twisted
from hypothesis import given
from hypothesis import strategies as st

from daemon import running_daemon
from httptest import curl_sync, http_config
from netlab.protocols.http.forms import body_as_json
from netlab.protocols.http.multipart import (
    MultipartParser,
    ParseError,
    Part,
    boundary_from_content_type,
    parse_multipart,
    parse_parameters,
)
from test_http_inspect import curl, make_site

CONTENT_TYPE = "multipart/form-data; boundary=XyZ"


def body(*parts: bytes, boundary: bytes = b"XyZ") -> bytes:
    """A multipart body with C{parts} (each headers, blank line, content) and a close."""
    out = b"".join(b"--" + boundary + b"\r\n" + part + b"\r\n" for part in parts)
    return out + b"--" + boundary + b"--\r\n"


FIELD = b'Content-Disposition: form-data; name="greeting"\r\n\r\nhello\r\nworld'
UPLOAD = (
    b'Content-Disposition: form-data; name="datafile"; filename="notes.txt"\r\n'
    b"Content-Type: text/plain\r\n\r\n--XyZ is not a boundary here\r\n-- nor this\r\n"
)


def summary(parts: list[Part]) -> list[tuple[Any, ...]]:
    return [
        (p.name, p.filename, p.content_type, p.size, p.sha256, bytes(p.value)) for p in parts
    ]


def test_fields_and_files() -> None:
    """A field keeps its value; a file keeps name, type, size and hash but not its bytes."""
    field, upload = parse_multipart(body(FIELD, UPLOAD), CONTENT_TYPE)
    assert (field.name, field.filename, bytes(field.value)) == ("greeting", None, b"hello\r\nworld")
    content = b"--XyZ is not a boundary here\r\n-- nor this\r\n"
    assert upload.name == "datafile"
    assert upload.filename == "notes.txt"
    assert upload.content_type == "text/plain"
    assert upload.size == len(content)
    assert upload.sha256 == hashlib.sha256(content).hexdigest()
    assert upload.value == b""


def test_fed_byte_by_byte() -> None:
    """Feeding one byte at a time gives the same parts as the whole body at once."""
    whole = body(FIELD, UPLOAD)
    parser = MultipartParser(b"XyZ")
    for i in range(len(whole)):
        parser.feed(whole[i:i + 1])
    assert summary(parser.close()) == summary(parse_multipart(whole, CONTENT_TYPE))


def test_preamble_epilogue_and_padding() -> None:
    """A preamble, padding after a boundary and an epilogue are allowed and ignored."""
    data = b"preamble\r\n--XyZ  \t\r\n" + FIELD + b"\r\n--XyZ--\r\nepilogue --XyZ junk"
    (part,) = parse_multipart(data, CONTENT_TYPE)
    assert bytes(part.value) == b"hello\r\nworld"


def test_quoted_and_extended_filenames() -> None:
    """Quoted strings undo backslash escapes; filename*= (RFC 8187) wins over filename."""
    escaped = b'Content-Disposition: form-data; name="a b"; filename="say \\"hi\\".txt"\r\n\r\nx'
    windows = b'Content-Disposition: form-data; name=w; filename="C:\\dir\\f.txt"\r\n\r\nx'
    extended = (
        b"Content-Disposition: form-data; name=\"e\"; filename=\"plain.txt\"; "
        b"filename*=UTF-8''%C3%BCber%20all.txt\r\n\r\nx"
    )
    utf8 = 'Content-Disposition: form-data; name="u"; filename="café.txt"\r\n\r\nx'.encode()
    parts = parse_multipart(body(escaped, windows, extended, utf8), CONTENT_TYPE)
    assert [(p.name, p.filename) for p in parts] == [
        ("a b", 'say "hi".txt'),
        ("w", "C:\\dir\\f.txt"),
        ("e", "über all.txt"),
        ("u", "café.txt"),
    ]


@pytest.mark.parametrize(
    ("data", "why"),
    [
        (b"--XyZ\r\n" + FIELD, "ends before its closing boundary"),
        (b"no boundary at all", "ends before its closing boundary"),
        (b"", "ends before its closing boundary"),
        (body(b"Content-Type: text/plain\r\n\r\nx"), "one Content-Disposition"),
        (body(b"Content-Disposition: form-data\r\n\r\nx"), "has no name"),
        (body(b"Content-Disposition: attachment; name=a\r\n\r\nx"), "not form-data"),
        (body(b'Content-Disposition: form-data; name="a\r\n\r\nx'), "unterminated"),
        (body(b"Content-Disposition: form-data; name=a; name=b\r\n\r\nx"), "given twice"),
        (body(b"Content-Disposition: form-data; name=a; filename*=zz'%ff\r\n\r\nx"), "8187"),
        (body(b"Content-Disposition: form-data;\r\n name=a\r\n\r\nx"), "folded"),
        (body(b"Content-Disposition form-data\r\n\r\nx"), "malformed"),
        (b"--XyZ\nContent-Disposition: form-data; name=a\n\nx\n--XyZ--\n", "CRLF"),
        (b"--XyZjunk\r\n" + FIELD + b"\r\n--XyZ--", "CRLF or '--'"),
        (b"--XyZ\r\n" + b"X-Long: " + b"a" * 20_000, "headers too long"),
    ],
)
def test_malformed(data: bytes, why: str) -> None:
    """Malformed bodies raise ParseError with a one-line reason."""
    with pytest.raises(ParseError, match=why) as raised:
        parse_multipart(data, CONTENT_TYPE)
    assert "\n" not in str(raised.value)


def test_part_cap() -> None:
    """More parts than max_parts is an error, not unbounded work."""
    many = body(*[b"Content-Disposition: form-data; name=f\r\n\r\nx"] * 4)
    assert len(parse_multipart(many, CONTENT_TYPE, max_parts=4)) == 4
    with pytest.raises(ParseError, match="more than 3 multipart parts"):
        parse_multipart(many, CONTENT_TYPE, max_parts=3)


@pytest.mark.parametrize(
    ("content_type", "boundary"),
    [
        ("multipart/form-data; boundary=XyZ", b"XyZ"),
        ('Multipart/Form-Data; charset=utf-8; BOUNDARY="a b:c?"', b"a b:c?"),
        ("multipart/form-data; boundary=------------------------d74496d66958873e",
         b"------------------------d74496d66958873e"),
    ],
)
def test_boundary_from_content_type(content_type: str, boundary: bytes) -> None:
    """The boundary comes from the Content-Type, quoted or not."""
    assert boundary_from_content_type(content_type) == boundary


@pytest.mark.parametrize(
    "content_type",
    [
        "multipart/form-data",
        "multipart/form-data; boundary=",
        "multipart/form-data; boundary=" + "x" * 71,
        'multipart/form-data; boundary="ends in space "',
        'multipart/form-data; boundary="bad\\"quote"',
        "multipart/mixed; boundary=abc",
        "multipart/form-data; boundary=abc; junk",
    ],
)
def test_bad_boundary(content_type: str) -> None:
    """A missing, empty, long or illegal boundary is a ParseError."""
    with pytest.raises(ParseError):
        boundary_from_content_type(content_type)


def test_parse_parameters() -> None:
    """Header parameters: lower-cased names, tokens and quoted strings, odd spacing."""
    assert parse_parameters('Form-Data ;Name = "x;y" ;  filename=a.txt;') == (
        "form-data", {"name": "x;y", "filename": "a.txt"}
    )


def parse_in_chunks(data: bytes, chunk: int) -> None:
    """Feed C{data} to a parser C{chunk} bytes at a time and close it; ParseError is fine."""
    parser = MultipartParser(b"XyZ", max_parts=5)
    try:
        for i in range(0, len(data), chunk):
            parser.feed(data[i:i + chunk])
        parser.close()
    except ParseError:
        pass


@given(st.binary(max_size=2000), st.integers(min_value=1, max_value=64))
def test_arbitrary_bytes_only_raise_parse_error(data: bytes, chunk: int) -> None:
    """Whatever the bytes and however they are split, the parser raises only ParseError."""
    parse_in_chunks(data, chunk)


_FRAGMENTS = [
    b"--XyZ", b"--", b"\r\n", b"\r", b"\n", b" ", b"Content-Disposition: ", b"form-data",
    b"; name=", b"; filename=", b"; filename*=", b"UTF-8''%C3%BC", b"%ff", b'"', b"\\",
    b"a", b":", b";", b"=", b"Content-Type: text/plain", b"\x00\xff",
]


@given(
    st.lists(st.sampled_from(_FRAGMENTS), max_size=80),
    st.integers(min_value=1, max_value=16),
)
def test_structured_garbage_only_raises_parse_error(pieces: list[bytes], chunk: int) -> None:
    """Near-miss bodies built from multipart fragments raise nothing but ParseError."""
    parse_in_chunks(b"".join(pieces), chunk)


_token = st.text(alphabet="abcXYZ019-_. ", min_size=1, max_size=12)
_part = st.tuples(
    _token, st.one_of(st.none(), _token), st.binary(max_size=200)
)


@given(st.lists(_part, min_size=1, max_size=6), st.integers(min_value=1, max_value=50))
def test_generated_bodies_round_trip(parts: list[tuple[str, str | None, bytes]],
                                     chunk: int) -> None:
    """Generated bodies parse back to their parts, however the bytes are split."""
    chunks = []
    for name, filename, content in parts:
        disposition = f'form-data; name="{name}"'
        if filename is not None:
            disposition += f'; filename="{filename}"'
        chunks.append(f"Content-Disposition: {disposition}\r\n\r\n".encode() + content)
    boundary = b"b0undary-" + hashlib.sha256(repr(parts).encode()).hexdigest()[:20].encode()
    data = body(*chunks, boundary=boundary)
    parser = MultipartParser(boundary)
    for i in range(0, len(data), chunk):
        parser.feed(data[i:i + chunk])
    got = parser.close()
    assert [(p.name, p.filename, p.size, p.sha256) for p in got] == [
        (name, filename, len(content), hashlib.sha256(content).hexdigest())
        for name, filename, content in parts
    ]
    assert [bytes(p.value) for p in got if p.filename is None] == [
        content for _, filename, content in parts if filename is None
    ]


@pytest.mark.parametrize(
    ("data", "value"),
    [(b'{"a": [1, 2]}', {"a": [1, 2]}), (b"NaN", None), (b"[" * 100_000, None),
     (b"\xff", None), (b"not json", None)],
)
def test_body_as_json(data: bytes, value: Any) -> None:
    """Only strict JSON bodies become C{json}; anything else, however deep, is None."""
    assert body_as_json(data) == value


SECRET = b"file bytes that must never be echoed \x00\x01\xfe " * 50


@pytest_twisted.inlineCallbacks
def test_curl_multipart_upload(events: Any, clock: Any, tmp_path: Path) -> Any:
    """curl -F fields and a file: form fields, and the file's name, type, size, sha256."""
    upload = tmp_path / "report.bin"
    upload.write_bytes(SECRET)
    answer = yield curl(
        make_site(events, clock), "/post?via=curl",
        "-F", "name=x", "-F", "foo=bar", "-F", "foo=baz",
        "-F", f"datafile=@{upload};type=application/x-lab",
    )
    assert answer.status == 200
    assert SECRET[:30] not in answer.body
    seen = answer.json()
    assert seen["method"] == "POST"
    assert seen["args"] == {"via": "curl"}
    assert seen["form"] == {"name": "x", "foo": ["bar", "baz"]}
    assert seen["files"] == {
        "datafile": {
            "field": "datafile",
            "filename": "report.bin",
            "content_type": "application/x-lab",
            "size": len(SECRET),
            "sha256": hashlib.sha256(SECRET).hexdigest(),
        }
    }
    assert seen["data"] == ""
    assert seen["json"] is None
    assert seen["headers"]["Content-Type"].startswith("multipart/form-data; boundary=")


@pytest_twisted.inlineCallbacks
def test_curl_multipart_as_text(events: Any, clock: Any, tmp_path: Path) -> Any:
    """The text report lists form fields and file summaries, not file bytes."""
    upload = tmp_path / "a.txt"
    upload.write_bytes(b"secret-text-content\n")
    answer = yield curl(
        make_site(events, clock), "/anything?format=text", "-F", "k=v", "-F", f"f=@{upload}"
    )
    report = answer.text()
    assert "form k=v\n" in report
    assert "file f: filename=a.txt content_type=text/plain size=20 sha256=" in report
    assert "secret-text-content" not in report


@pytest_twisted.inlineCallbacks
def test_curl_urlencoded(events: Any, clock: Any) -> Any:
    """A urlencoded body becomes form, repeated fields as lists, percent-escapes undone."""
    answer = yield curl(
        make_site(events, clock), "/post",
        "-d", "a=1", "-d", "a=2", "--data-urlencode", "msg=hello & bye=ü", "-d", "blank=",
    )
    seen = answer.json()
    assert seen["form"] == {"a": ["1", "2"], "msg": "hello & bye=ü", "blank": ""}
    assert seen["files"] == {}
    assert seen["data"] == ""


@pytest_twisted.inlineCallbacks
def test_anything_parses_forms_too(events: Any, clock: Any) -> Any:
    """/anything with a form body parses it the way /post does, whatever the method."""
    answer = yield curl(make_site(events, clock), "/anything/form", "-X", "PUT", "-F", "x=1")
    seen = answer.json()
    assert (seen["method"], seen["form"]) == ("PUT", {"x": "1"})


@pytest_twisted.inlineCallbacks
def test_post_json(events: Any, clock: Any) -> Any:
    """A JSON body comes back as data and parsed json."""
    answer = yield curl(
        make_site(events, clock), "/post", "-H", "Content-Type: application/json",
        "--data-binary", '{"n": 1}',
    )
    seen = answer.json()
    assert (seen["data"], seen["json"], seen["form"]) == ('{"n": 1}', {"n": 1}, {})


@pytest_twisted.inlineCallbacks
def test_post_needs_post(events: Any, clock: Any) -> Any:
    """GET and HEAD /post are 405 Method Not Allowed, naming POST."""
    site = make_site(events, clock)
    answer = yield curl(site, "/post")
    assert answer.status == 405
    assert answer.headers["allow"] == "OPTIONS, POST"
    head = yield curl(site, "/post", "-I")
    assert head.status == 405


@pytest_twisted.inlineCallbacks
def test_malformed_multipart_is_400(events: Any, clock: Any) -> Any:
    """A broken multipart body gets 400 and one plain line saying why."""
    site = make_site(events, clock)
    truncated = yield curl(
        site, "/post", "-H", "Content-Type: multipart/form-data; boundary=XyZ",
        "--data-binary", "--XyZ\r\nContent-Disposition: form-data; name=a\r\n\r\nx",
    )
    assert truncated.status == 400
    assert truncated.text() == (
        "400 Bad Request: multipart body ends before its closing boundary\n"
    )
    no_boundary = yield curl(
        site, "/post", "-H", "Content-Type: multipart/form-data", "--data-binary", "x",
    )
    assert no_boundary.status == 400
    assert no_boundary.text() == (
        "400 Bad Request: multipart/form-data Content-Type has no boundary\n"
    )


def test_daemon_upload_with_curl(tmp_path: Path) -> None:
    """The real daemon answers curl -F on /post with the fields and the file's sha256."""
    upload = tmp_path / "upload.dat"
    upload.write_bytes(SECRET)
    with running_daemon(tmp_path, http_config()) as running:
        port = running.port("http")
        result = curl_sync(
            "-F", "name=x", "-F", "foo=bar", "-F", f"datafile=@{upload}",
            "-w", "\\n%{http_code} %{content_type}", f"http://127.0.0.1:{port}/post",
        )
        assert result.returncode == 0, result.stderr
        text, _, status = result.stdout.decode().rpartition("\n")
        assert status == "200 application/json"
        seen = json.loads(text)
        assert seen["form"] == {"name": "x", "foo": "bar"}
        datafile = seen["files"]["datafile"]
        assert datafile["filename"] == "upload.dat"
        assert datafile["size"] == len(SECRET)
        assert datafile["sha256"] == hashlib.sha256(SECRET).hexdigest()
        assert SECRET[:30] not in result.stdout
        running.wait_for_log(r'http: 127\.0\.0\.1:\d+ "POST /post" 200 \d+ bytes')
