"""
The dictionary service: the pure translation, the file format, the
protocol in memory (course clients without newlines, line clients, telnet,
limits), its config errors, and the real daemon with a course-style client.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from twisted.internet.task import Clock

from daemon import Daemon, running_daemon
from memory import serve
from netlab.app import registry
from netlab.core.config import ConfigError
from netlab.core.events import DROPPED
from netlab.protocols.dictionary import (
    DictionaryFactory,
    DictionarySettings,
    parse_dictionary,
    translate,
)

TABLE = {"qwe": "hello", "asd": "world", "zxc": "bye", "шифр": "текст"}
WORDS = tuple(TABLE.items())


# -- translate -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("line", "answer"),
    [
        ("qwe,asd,zxc", "hello,world,bye"),
        ("qwe asd zxc", "hello world bye"),
        ("qwe, asd ,  zxc", "hello, world ,  bye"),
        (",qwe,,asd, ", ",hello,,world, "),
        ("qwe\tasd", "hello\tworld"),
        ("qwe,nope,QWE", "hello,?nope?,?QWE?"),
        ("шифр", "текст"),
        ("", ""),
        (" , ", " , "),
    ],
    ids=[
        "commas", "spaces", "mixed", "empty-items", "tab", "unknown", "utf8", "empty",
        "only-separators",
    ],
)
def test_translate(line: str, answer: str) -> None:
    """Each word decrypted in order, every separator kept as it came."""
    assert translate(line, TABLE, "?") == answer


def test_translate_marker() -> None:
    """The unknown marker is configurable, and may be empty."""
    assert translate("qwe nope", TABLE, "**") == "hello **nope**"
    assert translate("qwe nope", TABLE, "") == "hello nope"


def test_parse_dictionary() -> None:
    """C{a = b} and tab-separated lines, comments and blank lines skipped."""
    text = "# the course's words\n\nqwe = hello\nasd\tworld wide\n zxc=bye \nnil =\n"
    assert parse_dictionary(text) == {
        "qwe": "hello", "asd": "world wide", "zxc": "bye", "nil": "",
    }


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("qwe = hello\njust words\n", "line 2: want 'encrypted = plain'"),
        ("= hello\n", "line 1: '' is empty"),
        ("q w = hello\n", "line 1: 'q w' has a comma or white space"),
        ("a,b\thello\n", "line 1: 'a,b' has a comma"),
    ],
    ids=["no-separator", "empty-word", "space-in-word", "comma-in-word"],
)
def test_parse_dictionary_refuses(text: str, why: str) -> None:
    with pytest.raises(ValueError, match=why):
        parse_dictionary(text)


# -- the protocol, in memory ---------------------------------------------------


def factory_of(events: Any, clock: Clock, **settings: Any) -> DictionaryFactory:
    return DictionaryFactory(
        DictionarySettings(name="dictionary", words=WORDS, **settings), events, clock
    )


def test_course_client_answered_at_once(events: Any, clock: Clock) -> None:
    """A read without a newline is answered at once, with no newline added."""
    _, transport = serve(factory_of(events, clock), clock)
    transport.peer_write(b"qwe,asd,zxc")
    assert transport.peer_read() == b"hello,world,bye"
    transport.peer_write("шифр nope".encode())
    assert transport.peer_read() == "текст ?nope?".encode()


def test_line_client_waits_for_its_newline(events: Any, clock: Clock) -> None:
    """After its first newline, a client's split line is answered whole, with its ending."""
    protocol, transport = serve(factory_of(events, clock), clock)
    transport.peer_write(b"qwe asd\n")
    assert transport.peer_read() == b"hello world\n"
    for chunk in (b"q", b"we,a", b"sd"):
        transport.peer_write(chunk)
        assert transport.peer_read() == b""
    transport.peer_write(b",zxc\r\nasd")
    assert transport.peer_read() == b"hello,world,bye\r\n"
    # The rest is answered when the client half-closes (nc -N).
    protocol.readConnectionLost()
    assert transport.peer_read() == b"world"
    clock.advance(0)
    assert transport.lost_reason is not None


def test_telnet(events: Any, clock: Clock) -> None:
    """Telnet negotiation is removed, and the line answered with telnet's own ending."""
    _, transport = serve(factory_of(events, clock), clock)
    transport.peer_write(b"\xff\xfb\x18qwe zxc\r\n")
    assert transport.peer_read() == b"hello bye\r\n"


def test_over_long_line(events: Any, clock: Clock) -> None:
    """An over-long line gets one error line and one logged drop; the session goes on."""
    factory = factory_of(events, clock, max_line=16)
    protocol, transport = serve(factory, clock)
    transport.peer_write(b"qwe," * 5)
    assert transport.peer_read() == b"ERROR line longer than 16 bytes, not translated\r\n"
    transport.peer_write(b"qwe\n" + b"asd," * 5 + b"\n" + b"zxc\n")
    assert transport.peer_read() == (
        b"hello\nERROR line longer than 16 bytes, not translated\nbye\n"
    )
    assert factory.counters.dropped == 2
    assert [e["what"] for e in events.kinds(DROPPED)] == ["a line", "a line"]
    assert protocol.close_reason is None
    transport.peer_close()
    clock.advance(0)


def test_reload_changes_the_words(events: Any, clock: Clock, tmp_path: Path) -> None:
    """configure() (a reload) takes new words and reads the file again."""
    factory = factory_of(events, clock)
    path = tmp_path / "words.txt"
    path.write_text("qwe = hi\n")
    factory.configure(DictionarySettings(name="dictionary", file=str(path)))
    _, transport = serve(factory, clock)
    transport.peer_write(b"qwe asd")
    assert transport.peer_read() == b"hi ?asd?"


# -- config --------------------------------------------------------------------


def refused(tmp_path: Path, text: str) -> tuple[str, str]:
    path = tmp_path / "netlab.toml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as e:
        registry.load(path)
    return str(path), str(e.value)


@pytest.mark.parametrize(
    ("lines", "key", "shown", "why"),
    [
        (["words = 'qwe=hello'"], "words", '"qwe=hello"', "must be a table of strings"),
        (["words = { qwe = 1 }"], "words.qwe", "1", "must be a string"),
        (['words = { "q w" = "x" }'], 'words."q w"', '"x"', "has a comma or white space"),
        (['words = { "" = "x" }'], 'words.""', '"x"', "the word '' is empty"),
        (['words = { qwe = "a\\nb" }'], "words.qwe", '"a\\nb"', "single line"),
        ([], "words", "{}", "the dictionary is empty"),
        (["file = 'missing.txt'"], "file", '"missing.txt"', "No such file"),
        (
            ["words = { a = 'b' }", "unknown = '12345678901234567'"], "unknown",
            '"12345678901234567"', "at most 16 characters",
        ),
        (["words = { a = 'b' }", "max_line = 8"], "max_line", "8", "from 16 to 1048576"),
    ],
    ids=[
        "words-not-a-table", "word-not-a-string", "space-in-word", "empty-word",
        "multi-line-plain", "empty", "missing-file", "long-marker", "small-max-line",
    ],
)
def test_config_errors(
    tmp_path: Path, lines: list[str], key: str, shown: str, why: str
) -> None:
    """Each refusal names the file, the key and the value, and says why."""
    path, message = refused(tmp_path, "[[dictionary]]\n" + "\n".join(lines) + "\n")
    assert message.startswith(f"{path}: [dictionary][0].{key} = {shown}: "), message
    assert why in message, message
    assert "\n" not in message


def test_config_bad_file_line(tmp_path: Path) -> None:
    """A dictionary file line that is not a word is refused by file and line."""
    words = tmp_path / "words.txt"
    words.write_text("qwe = hello\noops\n")
    path, message = refused(tmp_path, f"[[dictionary]]\nfile = '{words}'\n")
    assert message == (
        f'{path}: [dictionary][0].file = "{words}": '
        "line 2: want 'encrypted = plain' or 'encrypted<TAB>plain'"
    )
    words.write_bytes(b"qwe = \xff\n")
    _, message = refused(tmp_path, f"[[dictionary]]\nfile = '{words}'\n")
    assert message.endswith("not UTF-8 (byte 6 is 0xff)")


def test_config_defaults_and_tables(tmp_path: Path, events: Any, clock: Clock) -> None:
    """Off unless configured; words in a sub-table and a file add up, words winning."""
    assert registry.parse({}).dictionary == ()
    words = tmp_path / "words.txt"
    words.write_text("qwe = from the file\nasd\tworld\n")
    path = tmp_path / "netlab.toml"
    path.write_text(
        f"[[dictionary]]\nfile = '{words}'\n[dictionary.words]\nqwe = 'hello'\n"
    )
    (loaded,) = registry.load(path).dictionary
    assert (loaded.name, loaded.listen, loaded.unknown, loaded.max_line) == (
        "dictionary", ("tcp:7034:interface=127.0.0.1",), "?", 4096,
    )
    assert loaded.words == (("qwe", "hello"),)
    factory = DictionaryFactory(loaded, events, clock)
    assert factory.table == {"qwe": "hello", "asd": "world"}


# -- the real daemon, a course client ------------------------------------------


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    """A daemon with one dictionary, its words from the config and a file."""
    where = tmp_path_factory.mktemp("dictionary")
    (where / "words.txt").write_text("# more words\nrty\tcourse\n", encoding="utf-8")
    config = """
udp_echo = []
echo = []
[chat]
enabled = false
[http]
enabled = false
[[dictionary]]
listen = ["tcp:0:interface=127.0.0.1"]
file = "words.txt"
words = { qwe = "hello", asd = "world", zxc = "bye" }
"""
    with running_daemon(where, config) as running:
        yield running


def test_course_client(daemon: Daemon) -> None:
    """One send without a newline, one recv(1024): the list comes back decrypted."""
    port = daemon.port("dictionary")
    with socket.create_connection(("127.0.0.1", port), timeout=20) as s:
        s.sendall(b"qwe,asd,rty,nope")
        assert s.recv(1024) == b"hello,world,course,?nope?"
    with socket.create_connection(("127.0.0.1", port), timeout=20) as s:
        s.sendall(b"zxc qwe")
        assert s.recv(1024) == b"bye hello"


def test_line_client(daemon: Daemon) -> None:
    """A client reading lines (makefile) gets one line per line it sent."""
    with socket.create_connection(("127.0.0.1", daemon.port("dictionary")), timeout=20) as s:
        reader = s.makefile("rb")
        s.sendall(b"qwe asd\nzxc, rty\n")
        assert reader.readline() == b"hello world\n"
        assert reader.readline() == b"bye, course\n"
