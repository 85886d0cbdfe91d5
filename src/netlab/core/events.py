"""
The shared logging service: one C{EventLog} per daemon narrates every
connection, datagram and message, counts them, and keeps the recent ones.

Protocols call L{EventLog.emit} for lifecycle events and bump the fields of
their L{ServiceCounters} directly on the hot path; per-chunk events are only
built when C{debug_enabled} says an observer wants them.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import IO, Any, cast

from twisted.application.service import Service
from twisted.logger import (
    ILogObserver,
    LogLevel,
    globalLogPublisher,
    jsonFileLogObserver,
)

from netlab.core.settings import LogSettings
from netlab.core.textlog import text_observer

LEVELS = {
    "debug": LogLevel.debug,
    "info": LogLevel.info,
    "warn": LogLevel.warn,
    "error": LogLevel.error,
    "critical": LogLevel.critical,
}

# Event kinds, and how each reads in a text log.
DAEMON_START = "daemon_start"
LISTENING = "listening"
CANNOT_LISTEN = "cannot_listen"
READY = "ready"
CHAT = "chat"
LOGIN = "login"
MAIL = "mail"
HTTP_REQUEST = "http_request"
FILE_LIMIT = "file_limit"
RELOAD = "reload"
CONNECTED = "connected"
RECEIVED = "received"
SENT = "sent"
DISCONNECTED = "disconnected"
REFUSED = "refused"
DROPPED = "dropped"
ERROR = "error"
SHUTDOWN = "shutdown"
WORKER = "worker"
DAEMON_STOP = "daemon_stop"

# What twisted.internet.tcp logs when it closes a client it could not keep.
EMFILE_CLOSED = "EMFILE recovery: Closed socket from {address}"

FORMATS: dict[str, str] = {
    DAEMON_START: "netlab {version} starting with {config}",
    LISTENING: "{service}: listening on {address}",
    CANNOT_LISTEN: "{service}: cannot listen on {description}: {error}",
    READY: "netlab ready: {count} listeners: {summary}",
    CHAT: "{service}: {nick} ({peer}) {what}",
    LOGIN: "{service}: {user} ({peer}) {what}",
    MAIL: "{service}: {peer} {what}",
    HTTP_REQUEST: '{service}: {peer} "{method} {path}" {status} {nbytes} bytes {duration}s',
    FILE_LIMIT: "open files limit: {soft} (hard limit {hard})",
    RELOAD: "reload: {outcome}",
    CONNECTED: "{service}: {peer} connected ({open} open)",
    RECEIVED: "{service}: received {nbytes} bytes from {peer}{sample}",
    SENT: "{service}: sent {nbytes} bytes to {peer}{sample}",
    DISCONNECTED: (
        "{service}: {peer} disconnected ({reason}) after {duration}s, "
        "{bytes_in} bytes in, {bytes_out} bytes out"
    ),
    REFUSED: "{service}: refused {peer}: {limit}",
    DROPPED: "{service}: dropped {what} from {peer}: {reason}{suppressed}",
    ERROR: "{service}: {peer}: {error}",
    SHUTDOWN: "{service}: closing {count} open connections: {reason}",
    WORKER: "worker {worker} (pid {pid}) {what}",
    DAEMON_STOP: "netlab stopped",
}


@dataclass(slots=True)
class ServiceCounters:
    """Running totals for one service, read by the dashboard and /metrics."""

    connections_open: int = 0
    connections_total: int = 0
    bytes_in: int = 0
    bytes_out: int = 0
    datagrams_in: int = 0
    datagrams_out: int = 0
    refused: int = 0
    dropped: int = 0
    errors: int = 0
    # Counts of a service's own (chat joins, messages, kicks...), by name.
    extra: dict[str, int] = field(default_factory=dict)

    def snapshot(self) -> dict[str, int]:
        """A plain, flat copy, for reports: C{extra} counts come in as they are."""
        values = asdict(self)
        values.update(values.pop("extra"))
        return values


def format_peer(host: str | None, port: int | None = None) -> str:
    """C{host:port}, bracketing IPv6 hosts the way URLs do."""
    if host is None:
        return "-"
    if port is None:
        return host
    if ":" in host:
        return f"[{host}]:{port}"
    return f"{host}:{port}"


def describe_address(address: Any) -> str:
    """Readable text for any Twisted address object."""
    host = getattr(address, "host", None)
    port = getattr(address, "port", None)
    if host is not None:
        return format_peer(host, port)
    if hasattr(address, "name"):
        name = address.name
        text = name.decode(errors="replace") if isinstance(name, bytes) else str(name or "")
        # Unix-socket clients rarely bind a name of their own.
        return text or "unix-client"
    return str(address)


_SHOWN_CONTROLS = {"\r": "\\r", "\n": "\\n", "\t": "\\t", "\\": "\\\\"}


def _escaped(c: str) -> str:
    shown = _SHOWN_CONTROLS.get(c)
    if shown is not None:
        return shown
    if c.isprintable():
        return c
    # Controls, bidi overrides, line separators, lone surrogates: by number.
    code = ord(c)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def sample(data: bytes, limit: int = 64) -> str:
    """
    A short, printable view of a payload for the log: UTF-8 shown as text
    (a student's Cyrillic reads as Cyrillic), control characters (CR, LF,
    ESC...) and bytes that are not UTF-8 (telnet's IAC) escaped as C{\\r},
    C{\\xff}, and a backslash as C{\\\\}, so a sample is one line that cannot
    drive the reader's terminal and reads back unambiguously.
    """
    head = data[:limit]
    text = head.decode("utf-8", "surrogateescape")
    if len(data) > limit:
        # A character cut in two by the limit is left out, not shown as bytes.
        text = _drop_cut_character(head, text)
    shown = "".join(
        f"\\x{ord(c) - 0xDC00:02x}" if "\udc80" <= c <= "\udcff" else _escaped(c)
        for c in text
    )
    return f": {shown}{'...' if len(data) > limit else ''}"


def _drop_cut_character(head: bytes, text: str) -> str:
    """C{text} less the start of a UTF-8 character that the limit cut off."""
    for back in range(1, min(4, len(head)) + 1):
        lead = head[-back]
        if lead & 0xC0 != 0x80:
            # The lead byte of the last character: is it complete?
            needed = 2 if lead >> 5 == 0b110 else 3 if lead >> 4 == 0b1110 else (
                4 if lead >> 3 == 0b11110 else 1)
            if needed > back:
                return head[:-back].decode("utf-8", "surrogateescape")
            break
    return text


class EventLog(Service):
    """
    The daemon's narrator: logs, counts and remembers every event.

    @ivar counters: L{ServiceCounters} by service name.
    @ivar recent: the last events (as dicts), newest last.
    @ivar debug_enabled: whether per-chunk events are wanted at all.
    """

    name = "events"

    def __init__(
        self,
        settings: LogSettings,
        observer: ILogObserver | None = None,
        now: Callable[[], float] = time.time,
    ) -> None:
        self.settings = settings
        # Where the events come from: "netlab", or in a worker process of
        # [daemon] workers "netlab.w1", so the shared log tells the workers apart.
        self.namespace = "netlab"
        self.level = LEVELS[settings.level]
        self.debug_enabled = self.level <= LogLevel.debug
        self.counters: dict[str, ServiceCounters] = {}
        self.recent: deque[dict[str, Any]] = deque(maxlen=settings.recent_events)
        self.listening: dict[str, list[str]] = {}
        self._now = now
        self._file: IO[str] | None = None
        self._observer: ILogObserver | None = observer
        self._subscribers: list[Callable[[dict[str, Any]], None]] = []

    def privilegedStartService(self) -> None:
        # Open the log before any listener binds, so "listening" is recorded.
        if self._observer is None:
            self._observer = self._open()
        globalLogPublisher.addObserver(cast(ILogObserver, self._watch_twisted))
        super().privilegedStartService()

    def _watch_twisted(self, event: dict[str, Any]) -> None:
        """
        Turn Twisted's own word that it ran out of file descriptors (it then
        accepts and closes waiting clients, and recovers when descriptors
        free up) into a counted, warning-level refusal of ours.
        """
        if event.get("log_format") != EMFILE_CLOSED:
            return
        address = event.get("address")
        peer = format_peer(*address[:2]) if isinstance(address, tuple) else str(address)
        self.counters_for("netlab").refused += 1
        self.emit(REFUSED, "netlab", peer, LogLevel.warn,
                  limit="out of file descriptors (open files limit reached)")

    def startService(self) -> None:
        if self._observer is None:
            self._observer = self._open()
        super().startService()

    def stopService(self) -> None:
        super().stopService()
        globalLogPublisher.removeObserver(cast(ILogObserver, self._watch_twisted))
        if self._file is not None:
            self._file.close()
            self._file = None
            self._observer = None

    def reopen(self) -> None:
        """Reopen the log file (after logrotate moved it); nothing to do for the console."""
        if self._file is None:
            return
        self._file.close()
        self._file = None
        self._observer = self._open()

    def set_level(self, level: str) -> None:
        """Change the lowest level recorded (a reload may do this)."""
        self.level = LEVELS[level]
        self.debug_enabled = self.level <= LogLevel.debug

    def _open(self) -> ILogObserver:
        """The observer the settings ask for: twistd's log, or a file of our own."""
        if not self.settings.file:
            return globalLogPublisher
        # Open for the service's lifetime; stopService closes it.
        self._file = open(self.settings.file, "a", encoding="utf-8", buffering=1)  # noqa: SIM115
        if self.settings.format == "json":
            return jsonFileLogObserver(self._file, recordSeparator="")
        return text_observer(self._file)

    def counters_for(self, service: str) -> ServiceCounters:
        """The counters of C{service}, created on first use."""
        counters = self.counters.get(service)
        if counters is None:
            counters = self.counters[service] = ServiceCounters()
        return counters

    def subscribe(self, callback: Callable[[dict[str, Any]], None]) -> Callable[[], None]:
        """Call C{callback} with each recorded event; returns an unsubscriber."""
        self._subscribers.append(callback)
        return lambda: self._subscribers.remove(callback)

    def enabled(self, level: LogLevel) -> bool:
        """Whether an event at C{level} would be recorded."""
        return level >= self.level

    def emit(
        self,
        kind: str,
        service: str,
        peer: str | None = None,
        level: LogLevel = LogLevel.info,
        **fields: Any,
    ) -> None:
        """
        Record one event: log it, keep it in C{recent}, tell subscribers.

        Events below the configured level are not even built.
        """
        if level < self.level:
            return
        event: dict[str, Any] = {
            "log_format": "{log_text}",
            "log_level": level,
            "log_namespace": (
                self.namespace if service == "netlab" else f"{self.namespace}.{service}"
            ),
            "log_source": None,
            "log_time": self._now(),
            "netlab_event": kind,
            "service": service,
            "peer": peer if peer is not None else "-",
            **fields,
        }
        # The text is made here with str.format: Twisted's own formatter
        # looks up each field through a Python-level Formatter, 15 µs more
        # per event, and the access log makes one event per request.
        try:
            event["log_text"] = FORMATS[kind].format_map(event)
        except (KeyError, IndexError, ValueError):
            event["log_format"] = FORMATS[kind]  # Twisted says what failed
        self.recent.append(event)
        if self._observer is not None:
            self._observer(event)
        for subscriber in list(self._subscribers):
            subscriber(event)


__all__ = ["EventLog", "ServiceCounters", "describe_address", "format_peer"]
