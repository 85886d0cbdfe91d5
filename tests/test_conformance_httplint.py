"""
conformance/httplint_check.py's reading of httplint's output and its
comparison of two servers' notes, on canned output (no httplint needed).
"""

from __future__ import annotations

import httplint_check as check
from httplint_check import Note

# What `httplint -n` prints (httplint 2026.10), a sub-note included.
OUTPUT = """
### Caching

* [INFO] This response allows all caches to store it.
* [WARN] This response allows caches to assign their own freshness lifetimes to it.

### General

* [GOOD] The Content-Length header is correct.
* [BAD] The Content-Length header is wrong.
  * [WARN] The ETag field value doesn't conform to its specified syntax.
* [INFO] The resource last changed 7 minutes ago.
"""


def test_notes_and_sub_notes_are_read_with_their_levels():
    assert check.parse_notes(OUTPUT) == [
        Note("INFO", "This response allows all caches to store it."),
        Note("WARN", "This response allows caches to assign their own freshness lifetimes to it."),
        Note("GOOD", "The Content-Length header is correct."),
        Note("BAD", "The Content-Length header is wrong."),
        Note("WARN", "The ETag field value doesn't conform to its specified syntax."),
        Note("INFO", "The resource last changed 7 minutes ago."),
    ]
    assert check.parse_notes("### Caching\n\nno notes\n") == []


def test_only_warnings_and_worse_that_httpbin_lacks_count():
    ours = check.parse_notes(OUTPUT)
    theirs = [Note("WARN", "This response allows caches to assign their own freshness "
                           "lifetimes to it.")]
    assert check.beyond(ours, theirs) == [
        Note("BAD", "The Content-Length header is wrong."),
        Note("WARN", "The ETag field value doesn't conform to its specified syntax."),
    ]
    assert check.beyond(ours, ours) == []
    assert check.beyond([Note("INFO", "x"), Note("GOOD", "y")], []) == []


def test_notes_differing_only_in_numbers_are_alike():
    ours = [Note("WARN", "This response has been cached for 3 seconds.")]
    theirs = [Note("WARN", "This response has been cached for 1 second.")]
    assert check.beyond(ours, theirs) == ours
    assert check.beyond(ours, [Note("WARN", "This response has been cached for 10 seconds.")]) == []


def test_the_inspection_routes_of_the_brief_are_all_linted():
    paths = {path for _, path in check.ROUTES}
    for path in ("/get", "/headers", "/ip", "/user-agent", "/anything", "/post", "/json",
                 "/html", "/xml", "/gzip", "/deflate", "/bytes/10", "/stream/2", "/delay/0",
                 "/cache", "/etag/x", "/range/10", "/static/favicon.ico"):
        assert path in paths
