"""Tests for netlab.protocols.http.static: /static/ files, ranges, caching, listing, no escapes."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import pytest
import pytest_twisted
from twisted.internet.defer import inlineCallbacks
from twisted.internet.task import Clock

from daemon import running_daemon
from httptest import curl_sync, http_config, parse_response, serve
from netlab.protocols.http import routes, static
from netlab.protocols.http.routes import Root

HELLO = b"0123456789abcdefghij\n"
SECRET = b"outside secret\n"

TRAVERSALS = [
    "/static/../outside/secret.txt",
    "/static/sub/../../outside/secret.txt",
    "/static/%2e%2e/outside/secret.txt",
    "/static/%2E%2E/outside/secret.txt",
    "/static/..%2foutside%2fsecret.txt",
    "/static/%2e%2e%2foutside%2fsecret.txt",
    "/static/sub%2f..%2f..%2foutside%2fsecret.txt",
    "/static/sub/%2e%2e/%2e%2e/outside/secret.txt",
    "/static/%2e%2e%5coutside%5csecret.txt",
    "/static//outside/secret.txt",
]


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    """A static folder with files, a subfolder, dotfiles and symlinks in and out."""
    outside = tmp_path / "outside"
    (outside / "dir").mkdir(parents=True)
    (outside / "secret.txt").write_bytes(SECRET)
    (outside / "dir" / "x.txt").write_bytes(SECRET)
    top = tmp_path / "site"
    (top / "sub").mkdir(parents=True)
    (top / "withindex").mkdir()
    (top / ".git").mkdir()
    (top / "hello.txt").write_bytes(HELLO)
    (top / "page.html").write_text("<h1>lab</h1>\n")
    (top / "blob.nolabtype").write_bytes(b"<script>alert(1)</script>")
    (top / "sub" / "inner.txt").write_text("inner\n")
    (top / "withindex" / "index.html").write_text("<p>index</p>\n")
    (top / ".secret").write_text("dot secret\n")
    (top / ".git" / "config").write_text("[core]\n")
    (top / "link-out.txt").symlink_to(outside / "secret.txt")
    (top / "dir-out").symlink_to(outside / "dir")
    (top / "link-in.txt").symlink_to(top / "hello.txt")
    (top / "link-dot").symlink_to(top / ".secret")
    return top


@inlineCallbacks
def fetch(
    folder: Path | str, events: Any, clock: Clock, paths: list[str], *options: str,
    listing: bool = False,
) -> Any:
    """curl each path on a site with only /static/ installed: (status, headers, body) each."""
    served = serve(events, clock, routes.of(static), root=Root(), static_dir=str(folder),
                   static_listing=listing)
    answers = []
    try:
        for path in paths:
            got = yield served.fetch(path, "--path-as-is", *options)
            answers.append((got.status, got.headers, got.body))
    finally:
        yield served.close()
    return answers


@pytest_twisted.inlineCallbacks
def test_serves_files_with_types(folder: Path, events: Any, clock: Clock) -> Any:
    """Files come with their content type, Last-Modified, Accept-Ranges, nosniff, and
    Cache-Control: no-cache (a cache may keep them, revalidating each use: the instructor
    may change a file at any time, and a guessed freshness lifetime would hide it)."""
    text, html, blob, inner = yield fetch(
        folder, events, clock,
        ["/static/hello.txt", "/static/page.html", "/static/blob.nolabtype",
         "/static/sub/inner.txt"],
    )
    assert text[0] == 200 and text[2] == HELLO
    assert text[1]["content-type"] == "text/plain; charset=utf-8"
    assert text[1]["accept-ranges"] == "bytes"
    assert text[1]["x-content-type-options"] == "nosniff"
    assert [answer[1].get("cache-control") for answer in (text, html, blob, inner)] == [
        "no-cache"] * 4
    assert "GMT" in text[1]["last-modified"]
    assert html[1]["content-type"].startswith("text/html")
    assert blob[1]["content-type"] == "application/octet-stream"
    assert inner[:3:2] == (200, b"inner\n")


@pytest_twisted.inlineCallbacks
def test_range(folder: Path, events: Any, clock: Clock) -> Any:
    """curl -r asks for a byte range and gets 206 with exactly those bytes."""
    [(status, headers, body)] = yield fetch(folder, events, clock, ["/static/hello.txt"],
                                            "-r", "2-5")
    assert status == 206
    assert body == HELLO[2:6]
    assert headers["content-range"] == f"bytes 2-5/{len(HELLO)}"


@pytest_twisted.inlineCallbacks
def test_if_modified_since_is_304(folder: Path, events: Any, clock: Clock) -> Any:
    """A request with the file's Last-Modified as If-Modified-Since gets 304 and no body."""
    [(_, headers, _)] = yield fetch(folder, events, clock, ["/static/hello.txt"])
    [(status, _, body)] = yield fetch(
        folder, events, clock, ["/static/hello.txt"],
        "-H", f"If-Modified-Since: {headers['last-modified']}",
    )
    assert (status, body) == (304, b"")


@pytest_twisted.inlineCallbacks
def test_head(folder: Path, events: Any, clock: Clock) -> Any:
    """HEAD gives the length and type without the body."""
    [(status, headers, body)] = yield fetch(folder, events, clock, ["/static/hello.txt"], "-I")
    assert (status, body) == (200, b"")
    assert headers["content-length"] == str(len(HELLO))


@pytest_twisted.inlineCallbacks
def test_folders_do_not_list_by_default(folder: Path, events: Any, clock: Clock) -> Any:
    """Without static_listing a folder is 403, but a folder's index.html is still served."""
    top, sub, indexed, bare = yield fetch(
        folder, events, clock, ["/static/", "/static/sub/", "/static/withindex/", "/static"],
    )
    assert top[0] == sub[0] == 403
    assert b"hello.txt" not in top[2]
    assert indexed[:3:2] == (200, b"<p>index</p>\n")
    assert bare[0] in (301, 302) and bare[1]["location"].endswith("/static/")


@pytest_twisted.inlineCallbacks
def test_listing_hides_dotfiles_and_escapes(folder: Path, events: Any, clock: Clock) -> Any:
    """With static_listing a folder lists its files, but no dotfile and no link out."""
    [(status, headers, body)] = yield fetch(folder, events, clock, ["/static/"], listing=True)
    assert status == 200
    assert headers["content-type"] == "text/html; charset=utf-8"
    for shown in (b"hello.txt", b"sub/", b"link-in.txt", b"withindex/"):
        assert shown in body
    for hidden in (b".secret", b".git", b"link-out", b"dir-out", b"link-dot"):
        assert hidden not in body


@pytest_twisted.inlineCallbacks
def test_traversal_never_escapes(folder: Path, events: Any, clock: Clock) -> Any:
    """.., %2e%2e, encoded slashes and backslashes, and empty segments all stay inside."""
    answers = yield fetch(folder, events, clock, TRAVERSALS, listing=True)
    for path, (status, _, body) in zip(TRAVERSALS, answers, strict=True):
        assert status in (403, 404), path
        assert SECRET not in body, path


@pytest_twisted.inlineCallbacks
def test_symlinks_out_are_refused(folder: Path, events: Any, clock: Clock) -> Any:
    """A link to a file or a folder outside is 404; a link to a file inside is served."""
    paths = ["/static/link-out.txt", "/static/dir-out/", "/static/dir-out/x.txt",
             "/static/dir-out", "/static/link-in.txt"]
    *out, inside = yield fetch(folder, events, clock, paths, listing=True)
    for path, (status, _, body) in zip(paths, out, strict=False):
        assert status == 404, path
        assert SECRET not in body, path
    assert inside[:3:2] == (200, HELLO)


@pytest_twisted.inlineCallbacks
def test_dotfiles_are_404(folder: Path, events: Any, clock: Clock) -> Any:
    """Dotfiles, dot folders and links to dotfiles are 404, however they are spelled."""
    paths = ["/static/.secret", "/static/%2esecret", "/static/.git/config", "/static/.git/",
             "/static/link-dot"]
    answers = yield fetch(folder, events, clock, paths, listing=True)
    for path, (status, _, body) in zip(paths, answers, strict=True):
        assert status == 404, path
        assert b"dot secret" not in body and b"[core]" not in body, path


@pytest_twisted.inlineCallbacks
def test_no_static_dir_is_404(events: Any, clock: Clock) -> Any:
    """With static_dir = "" nothing is served at /static/."""
    answers = yield fetch("", events, clock, ["/static/", "/static/hello.txt"])
    assert [status for status, _, _ in answers] == [404, 404]


def test_daemon_serves_static(folder: Path, tmp_path: Path) -> None:
    """The real daemon serves static_dir to curl: content, Range, 304 and no escape."""
    config = http_config(f'static_dir = "{folder}"')
    with running_daemon(tmp_path, config) as running:

        def get(path: str, *options: str) -> tuple[int, dict[str, str], bytes]:
            """curl -i C{path} on the daemon: (status, headers, body)."""
            url = f"http://127.0.0.1:{running.port('http')}{path}"
            got = parse_response(curl_sync("-i", "--path-as-is", *options, url, check=True).stdout)
            return got.status, got.headers, got.body

        status, headers, body = get("/static/hello.txt")
        assert (status, body) == (200, HELLO)
        assert get("/static/hello.txt", "-r", "-3")[::2] == (206, HELLO[-3:])
        since = get("/static/hello.txt", "-H", f"If-Modified-Since: {headers['last-modified']}")
        assert since[::2] == (304, b"")
        assert get("/static/")[0] == 403
        assert get("/static/%2e%2e/outside/secret.txt")[0] == 404
        assert get("/static/link-out.txt")[0] == 404


BIG = random.Random(12).randbytes(200_000)


def parts(response: Any) -> list[tuple[str, bytes]]:
    """The parts of a multipart/byteranges body: (Content-Range, bytes) each, checking that
    the body is framed exactly (boundaries, part headers, final boundary, Content-Length)."""
    kind, _, boundary = response.headers["content-type"].partition("; boundary=")
    assert kind == "multipart/byteranges"
    marker = b"--" + boundary.strip('"').encode()
    body = response.body
    assert int(response.headers["content-length"]) == len(body)
    assert body.endswith(b"\r\n" + marker + b"--\r\n")
    found = []
    for chunk in body[: -len(marker) - 6].split(b"\r\n" + marker + b"\r\n")[1:]:
        head, _, data = chunk.partition(b"\r\n\r\n")
        fields = dict(line.split(": ", 1) for line in head.decode("latin-1").split("\r\n"))
        found.append((fields["Content-Range"], data))
    assert body.startswith(b"\r\n" + marker + b"\r\n")
    return found


@pytest.fixture
def big(folder: Path) -> Path:
    """The static folder with a 200 KB file of fixed random bytes in it."""
    (folder / "big.bin").write_bytes(BIG)
    return folder


@pytest_twisted.inlineCallbacks
def test_multiple_ranges_of_a_big_file(big: Path, events: Any, clock: Clock) -> Any:
    """curl -r with two ranges of a 200 KB file gets both, exactly, as multipart/byteranges
    (Twisted's own producer raised ValueError here and left the connection hanging)."""
    served = serve(events, clock, routes.of(static), root=Root(), static_dir=str(big))
    try:
        got = yield served.fetch("/static/big.bin", "-m", "30", "-r", "0-65350,100000-100099")
        assert got.status == 206
        assert parts(got) == [
            ("bytes 0-65350/200000", BIG[:65351]),
            ("bytes 100000-100099/200000", BIG[100000:100100]),
        ]
        many = ",".join(f"{n * 12_000}-{n * 12_000 + 9_999}" for n in range(16))
        got = yield served.fetch("/static/big.bin", "-m", "30", "-r", many)
        assert parts(got) == [
            (f"bytes {n * 12_000}-{n * 12_000 + 9_999}/200000",
             BIG[n * 12_000: n * 12_000 + 10_000]) for n in range(16)
        ]
    finally:
        yield served.close()


RANGES = [
    # (Range header, status, Content-Range or None for multipart, body or parts)
    ("bytes=0-3,2-5,6-7", 206, "bytes 0-7/21", HELLO[:8]),          # overlapping, adjacent
    ("bytes=0-,0-,0-,0-", 206, "bytes 0-20/21", HELLO),              # the same range again
    ("bytes=15-,-3", 206, "bytes 15-20/21", HELLO[15:]),             # suffix inside an open end
    ("bytes=100-200,5-6", 206, "bytes 5-6/21", HELLO[5:7]),          # one of two out of bounds
    ("bytes=0-99999", 206, "bytes 0-20/21", HELLO),                  # end past the file
    ("bytes=10-12,0-1", 206, None, [("bytes 0-1/21", HELLO[:2]),     # reversed: sorted
                                    ("bytes 10-12/21", HELLO[10:13])]),
    ("bytes=0-1,3-4,20-", 206, None, [("bytes 0-1/21", HELLO[:2]), ("bytes 3-4/21", HELLO[3:5]),
                                      ("bytes 20-20/21", HELLO[20:])]),
    ("bytes=100-200", 416, "bytes */21", b""),                       # out of bounds
    ("bytes=21-,50-60", 416, "bytes */21", b""),                     # every range out of bounds
    ("bytes=5-2", 200, None, HELLO),                                 # malformed: ignored
    ("bytes=" + ",".join(["0-"] * 500), 200, None, HELLO),           # over max_ranges: whole file
    ("bytes=" + ",".join(f"{n}-{n}" for n in range(17)), 200, None, HELLO),
]


@pytest_twisted.inlineCallbacks
def test_range_headers(folder: Path, events: Any, clock: Clock) -> Any:
    """Raw Range headers: ranges are merged and sorted, one range left is a plain 206, none
    satisfiable is 416 with bytes */SIZE, a malformed header or more than max_ranges ranges
    is the whole file with 200."""
    served = serve(events, clock, routes.of(static), root=Root(), static_dir=str(folder),
                   max_ranges=16)
    try:
        for header, status, content_range, expected in RANGES:
            got = yield served.fetch("/static/hello.txt", "-m", "30", "-H", f"Range: {header}")
            assert got.status == status, header
            if status == 206 and content_range is None:
                assert parts(got) == expected, header
                continue
            assert got.body == expected, header
            assert got.headers["content-length"] == str(len(expected)), header
            assert got.headers.get("content-range") == content_range, header
    finally:
        yield served.close()


def test_daemon_multiple_ranges(big: Path, tmp_path: Path) -> None:
    """The real daemon answers curl's two ranges of a big file in full, without hanging."""
    config = http_config(f'static_dir = "{big}"', "max_ranges = 4")
    with running_daemon(tmp_path, config) as running:
        url = f"http://127.0.0.1:{running.port('http')}/static/big.bin"
        got = parse_response(
            curl_sync("-i", "-m", "20", "-r", "0-65350,100000-100099", url, check=True).stdout
        )
        assert parts(got) == [("bytes 0-65350/200000", BIG[:65351]),
                              ("bytes 100000-100099/200000", BIG[100000:100100])]
        five = ",".join(f"{n * 10}-{n * 10 + 1}" for n in range(5))
        got = parse_response(curl_sync("-i", "-m", "20", "-r", five, url, check=True).stdout)
        assert (got.status, got.body) == (200, BIG)


@pytest_twisted.inlineCallbacks
def test_etag_and_if_none_match(folder: Path, events: Any, clock: Clock) -> Any:
    """Files send a weak ETag (size and mtime); If-None-Match with it, in a list, or * is 304
    with the ETag; another tag is 200 even with a matching If-Modified-Since (RFC 9110 13.2.2);
    a changed file has a new tag."""
    [(status, headers, _)] = yield fetch(folder, events, clock, ["/static/hello.txt"])
    tag = headers["etag"]
    assert status == 200 and tag.startswith('W/"') and tag.endswith('"')
    matches = [tag, f'"other", {tag}', "*", tag.removeprefix("W/")]
    for match in matches:
        [(status, headers304, body)] = yield fetch(
            folder, events, clock, ["/static/hello.txt"], "-H", f"If-None-Match: {match}",
        )
        assert (status, body, headers304["etag"]) == (304, b"", tag), match
        assert headers304["cache-control"] == "no-cache"
    [(status, _, body)] = yield fetch(
        folder, events, clock, ["/static/hello.txt"], "-H", 'If-None-Match: W/"other"',
        "-H", f"If-Modified-Since: {headers['last-modified']}",
    )
    assert (status, body) == (200, HELLO)
    (folder / "hello.txt").write_bytes(HELLO * 2)
    [(status, changed, body)] = yield fetch(
        folder, events, clock, ["/static/hello.txt"], "-H", f"If-None-Match: {tag}",
    )
    assert (status, body) == (200, HELLO * 2)
    assert changed["etag"] != tag
