"""
The dictionary service: the course's practice task "the client sends a list
of encrypted words; the server decrypts them by a dictionary and returns
the list".

Wire format: one line in, the words separated by commas and/or spaces
(C{qwe,asd,zxc} or C{qwe asd zxc}); one line out, each word replaced by
its plain text, in order, with every separator kept as it was sent, so the
student's own C{split} reads the answer.  A word the dictionary lacks comes
back between two C{unknown} markers (C{?qwe?}).  Words match exactly
(case and all).

The course's clients send one message without a newline and then block in
C{recv}, so a connection that has never sent a newline has each read
answered at once, with no line ending added.  Once a connection has sent a
newline it is a line client (netcat, telnet, a client using C{makefile}),
and an unfinished line waits for its newline, or for the end of input, so
a line split across reads is not translated in halves.

The dictionary is a C{words} table in the config and/or a C{file} of
C{encrypted = plain} (or tab-separated) lines; C{words} entries override
the file's.  Both are checked when the config is loaded.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from twisted.internet.interfaces import IReactorTime

from netlab.core.events import EventLog
from netlab.core.kinds import BuildContext, BuiltService, Fail, ServiceKind
from netlab.core.settings import LOOPBACK, PayloadLogging, StreamSettings, setting
from netlab.core.tomltext import toml_key
from netlab.protocols.base import StreamFactory, StreamProtocol
from netlab.protocols.lines import LineSplitter, TelnetFilter

# Runs of separators, kept in the answer as they came.
SEPARATORS = re.compile(r"([,\s]+)")
# What a dictionary word may not contain: it could never be matched.
_NOT_IN_WORD = re.compile(r"[,\s]")


@dataclass(frozen=True, kw_only=True)
class DictionarySettings(StreamSettings, PayloadLogging):
    """One C{[[dictionary]]} listener."""

    words: tuple[tuple[str, str], ...] = setting(())
    file: str = setting("")
    unknown: str = setting("?")
    max_line: int = setting(4096, lo=16, hi=1_048_576)


def translate(line: str, table: Mapping[str, str], unknown: str) -> str:
    """
    C{line} with each word replaced from C{table}, separators kept; a word
    not in it comes back as C{unknown + word + unknown}.
    """
    parts = SEPARATORS.split(line)
    # split() with a group alternates: word, separator, word, ... word.
    for i in range(0, len(parts), 2):
        word = parts[i]
        if word:
            plain = table.get(word)
            parts[i] = plain if plain is not None else f"{unknown}{word}{unknown}"
    return "".join(parts)


def parse_dictionary(text: str) -> dict[str, str]:
    """
    The words of a dictionary file: C{encrypted = plain} or
    C{encrypted<TAB>plain} per line; blank lines and C{#} comments skipped.

    @raise ValueError: naming the line that is not one.
    """
    table: dict[str, str] = {}
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        separator = "\t" if "\t" in line else "="
        encrypted, found, plain = line.partition(separator)
        encrypted, plain = encrypted.strip(), plain.strip()
        if not found:
            raise ValueError(f"line {number}: want 'encrypted = plain' or 'encrypted<TAB>plain'")
        why = word_problem(encrypted)
        if why:
            raise ValueError(f"line {number}: {encrypted!r} {why}")
        table[encrypted] = plain
    return table


def word_problem(word: str) -> str | None:
    """Why C{word} cannot be an encrypted word (None if it can)."""
    if not word:
        return "is empty"
    if _NOT_IN_WORD.search(word):
        return "has a comma or white space in it: it could never be matched"
    return None


def read_dictionary(path: str) -> dict[str, str]:
    """
    The words of the dictionary file at C{path}.

    @raise ValueError: why it cannot be read, or which line is not a word.
    """
    try:
        data = Path(path).read_bytes()
    except OSError as e:
        raise ValueError(e.strerror or str(e)) from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise ValueError(f"not UTF-8 (byte {e.start} is {data[e.start]:#04x})") from None
    return parse_dictionary(text)


def dictionary_of(settings: DictionarySettings) -> dict[str, str]:
    """The whole dictionary: the file's words, then C{words} over them."""
    table = read_dictionary(settings.file) if settings.file else {}
    table.update(settings.words)
    return table


class Dictionary(StreamProtocol):
    """Answers each line (or, for the course's clients, each read) decrypted."""

    factory: DictionaryFactory

    def connectionMade(self) -> None:
        super().connectionMade()
        self.telnet = TelnetFilter()
        self.lines = LineSplitter(self.factory.settings.max_line)
        self.line_client = False

    def dataReceived(self, data: bytes) -> None:
        self.resetTimeout()
        self.received(data)
        data = self.telnet.feed(data)
        if not self.line_client and b"\n" not in data:
            if data:
                self._answer([(data if len(data) <= self.lines.max_line else None, b"")])
            return
        self.line_client = True
        self._answer(self.lines.feed(data))

    def end_of_input(self) -> None:
        line = self.lines.flush()
        if line is not None:
            self._answer([(line, b"")])

    def _answer(self, lines: Iterable[tuple[bytes | None, bytes]]) -> None:
        factory = self.factory
        answers = []
        for line, ending in lines:
            if line is None:
                limit = factory.settings.max_line
                error = f"ERROR line longer than {limit} bytes, not translated"
                answers.append(error.encode() + (ending or b"\r\n"))
                self.reject("a line", f"longer than max_line ({limit})")
                continue
            text = line.decode("utf-8", "surrogateescape")
            plain = translate(text, factory.table, factory.settings.unknown)
            answers.append(plain.encode("utf-8", "surrogateescape") + ending)
        if answers:
            self.send(b"".join(answers))


class DictionaryFactory(StreamFactory):
    """One C{[[dictionary]]} listener's factory, holding its dictionary."""

    protocol = Dictionary
    settings: DictionarySettings

    def __init__(
        self, settings: DictionarySettings, events: EventLog, clock: IReactorTime
    ) -> None:
        super().__init__(settings, events, clock)
        self.table = dictionary_of(settings)

    def configure(self, settings: StreamSettings) -> None:
        """A reload: new words (and the file read again) from now on."""
        assert isinstance(settings, DictionarySettings)
        self.table = dictionary_of(settings)
        super().configure(settings)


def check_dictionary(settings: DictionarySettings, config: object, fail: Fail) -> None:
    """Every word can be matched, the file reads, and there is something to look up."""
    for encrypted, plain in settings.words:
        key = f"words.{toml_key(encrypted)}"
        why = word_problem(encrypted)
        if why:
            raise fail(key, plain, f"the word {encrypted!r} {why}")
        if "\n" in plain or "\r" in plain:
            raise fail(key, plain, "must be a single line")
    if "\n" in settings.unknown or "\r" in settings.unknown or len(settings.unknown) > 16:
        raise fail("unknown", settings.unknown, "must be one line of at most 16 characters")
    if settings.file:
        try:
            read_dictionary(settings.file)
        except ValueError as e:
            raise fail("file", settings.file, str(e)) from None
    if settings.enabled and not settings.words and not settings.file:
        raise fail("words", {}, "the dictionary is empty: give words = { ... } and/or file")


def build_dictionary(settings: DictionarySettings, context: BuildContext) -> BuiltService:
    """A dictionary listener's factory."""
    return BuiltService(stream=DictionaryFactory(settings, context.events, context.reactor))


KIND = ServiceKind(
    section="dictionary",
    settings=DictionarySettings,
    many=True,
    default_listen=(f"tcp:7034:interface={LOOPBACK}",),
    build=build_dictionary,
    check=check_dictionary,
)
