"""
The daemon as one service: the shared L{EventLog}, then one listener
service per endpoint string of every enabled service in the config.
"""

from __future__ import annotations

import contextlib
import os
import signal
from collections.abc import Mapping
from functools import partial
from signal import SIGINT, SIGTERM
from typing import Any, NoReturn

from twisted.application.service import MultiService, Service
from twisted.internet.defer import Deferred, DeferredList, maybeDeferred
from twisted.internet.error import CannotListenError
from twisted.logger import LogLevel

from netlab import __version__
from netlab.app.reload import reload
from netlab.core.config import Config, endpoint_kind
from netlab.core.events import (
    CANNOT_LISTEN,
    DAEMON_START,
    DAEMON_STOP,
    ERROR,
    FILE_LIMIT,
    READY,
    EventLog,
)
from netlab.core.limits import DatagramGuard
from netlab.core.listen import DatagramListener, bound_port, listener
from netlab.core.passwords import hash_later, verify_later
from netlab.core.systemd import Notifier
from netlab.protocols import classic
from netlab.protocols.base import StreamFactory
from netlab.protocols.chat.hub import ChatHub
from netlab.protocols.chat.line import ChatFactory
from netlab.protocols.chat.store import ChatStore, ChatStoreError
from netlab.protocols.chat.udp import UdpChat
from netlab.protocols.echo import EchoFactory
from netlab.protocols.framed import FramedEchoFactory
from netlab.protocols.http.context import HttpContext
from netlab.protocols.http.routes import make_site
from netlab.protocols.http.site import NetlabSite
from netlab.protocols.udp import GuardedDatagramProtocol, UdpEcho


def raise_open_file_limit() -> tuple[int, int]:
    """
    Raise the soft limit on open files to the hard one: every connection is
    a file descriptor, and the usual soft default (1024) is far too low for
    a class.  The limits now in force.
    """
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        # An infinite hard limit cannot be a soft one on some kernels: keep what is.
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    return soft, hard


class NetlabService(MultiService):
    """
    Everything one netlab daemon runs.

    @ivar events: the shared event log, handed to every factory.
    @ivar factories: the stream factories, which shutdown asks to say goodbye.
    @ivar listeners: the listener services, in config order.
    """

    def __init__(
        self,
        config: Config,
        reactor: Any,
        events: EventLog | None = None,
        environ: Mapping[str, str] | None = None,
        config_path: str | None = None,
    ) -> None:
        super().__init__()
        self.notifier = Notifier(reactor, os.environ if environ is None else environ)
        self.config = config
        self.reactor = reactor
        self.events = events if events is not None else EventLog(config.log)
        self.events.setServiceParent(self)
        self.factories: list[StreamFactory] = []
        self.udp_ports: set[int] = set()
        self.guards: list[DatagramGuard] = []
        self.config_path: str | None = config_path
        self._previous_hup: Any = None
        self.chat_store: ChatStore | None = None
        self.chat_hub: ChatHub | None = None
        self.http_site: NetlabSite | None = None
        self.listeners: list[Service] = []
        self._build()

    def _stream(self, factory: StreamFactory, listen: tuple[str, ...]) -> None:
        self.factories.append(factory)
        for description in listen:
            self._add(listener(description, factory, self.events, factory.name, self.reactor))

    def _datagram(
        self, name: str, make: Any, settings: Any, listen: tuple[str, ...]
    ) -> None:
        guard = DatagramGuard(
            settings, self.events, name, self.reactor.seconds, self.udp_ports
        )
        self.guards.append(guard)
        for description in listen:
            protocol: GuardedDatagramProtocol = make(guard)
            self._add(listener(description, protocol, self.events, name, self.reactor))

    def _add(self, service: Service) -> None:
        self.listeners.append(service)
        service.setServiceParent(self)

    def _build(self) -> None:
        config, events, reactor = self.config, self.events, self.reactor
        for echo in config.echo:
            if echo.enabled:
                self._stream(EchoFactory(echo, events, reactor), echo.listen)
        for udp in config.udp_echo:
            if udp.enabled:
                self._datagram(
                    udp.name, lambda g, n=udp.name: UdpEcho(n, g, events), udp, udp.listen
                )
        for framed in config.framed_echo:
            if framed.enabled:
                self._stream(FramedEchoFactory(framed, events, reactor), framed.listen)
        chat = config.chat
        if chat.enabled:
            self.chat_store = ChatStore(
                chat.database, chat.history_lines, reactor,
                on_error=lambda message: events.emit(
                    ERROR, chat.name, None, LogLevel.error, error=message
                ),
            )
            self.chat_hub = ChatHub(
                chat, events, reactor, self.chat_store,
                verify=partial(verify_later, reactor),
                make_hash=partial(hash_later, reactor),
            )
            self._stream(ChatFactory(chat, events, reactor, self.chat_hub), chat.listen)
            udp_chat, hub = config.udp_chat, self.chat_hub
            if udp_chat.enabled:
                self._datagram(
                    udp_chat.name,
                    lambda g: UdpChat(udp_chat, g, events, hub, reactor),
                    udp_chat,
                    udp_chat.listen,
                )
        if config.http.enabled:
            context = HttpContext(
                settings=config.http, events=events, reactor=reactor,
                hub=self.chat_hub, service=self, started=reactor.seconds(),
            )
            self.http_site = make_site(context)
            for description in config.http.listen:
                self._add(listener(description, self.http_site, events, config.http.name, reactor))
        for kind, settings in config.classic().items():
            if not settings.enabled:
                continue
            stream = tuple(d for d in settings.listen if endpoint_kind(d) == "stream")
            datagram = tuple(d for d in settings.listen if endpoint_kind(d) == "datagram")
            if stream:
                self._stream(classic.stream_factory(kind, settings, events, reactor), stream)
            if datagram:
                self._datagram(
                    settings.name,
                    lambda g, k=kind, s=settings: classic.datagram_protocol(
                        k, s, g, events, reactor
                    ),
                    settings,
                    datagram,
                )

    def privilegedStartService(self) -> None:
        """
        Bind every listener now, before twistd drops privileges; a listener
        that cannot bind stops the daemon with one clear line and status 1.
        """
        self.events.privilegedStartService()
        self.events.emit(DAEMON_START, "netlab", version=__version__, config=self.config.source)
        soft, hard = raise_open_file_limit()
        self.events.emit(FILE_LIMIT, "netlab", soft=soft, hard=hard)
        Service.privilegedStartService(self)
        if self.chat_store is not None:
            try:
                self.chat_store.open()
            except ChatStoreError as e:
                self.events.emit(
                    CANNOT_LISTEN, self.config.chat.name, None, LogLevel.critical,
                    description=f"database {self.config.chat.database}", error=str(e),
                )
                raise SystemExit(1) from None
        for listener_service in self.listeners:
            try:
                listener_service.privilegedStartService()
            except (CannotListenError, OSError, KeyError, ValueError) as e:
                self._cannot_listen(listener_service, e)
            if isinstance(listener_service, DatagramListener):
                port = bound_port(listener_service)
                if port is not None:
                    self.udp_ports.add(port)

    def startService(self) -> None:
        super().startService()
        # Ready once the reactor runs: every listener is bound by now, and
        # twistd's signal handlers are installed, so a stop request is clean.
        self.reactor.callWhenRunning(self._ready)

    def _ready(self) -> None:
        if self.running:
            self._handle_sighup()
            self.events.emit(READY, "netlab", count=len(self.listeners))
            listening = "; ".join(
                f"{service} {', '.join(addresses)}"
                for service, addresses in self.events.listening.items()
            )
            self.notifier.ready(f"listening: {listening}")

    def _handle_sighup(self) -> None:
        """SIGHUP (systemctl reload, logrotate) reloads; twistd leaves it unhandled."""

        def hup(signum: int, frame: object) -> None:
            self.reactor.callFromThread(reload, self)

        self._previous_hup = signal.signal(signal.SIGHUP, hup)

    def _cannot_listen(self, listener_service: Service, error: Exception) -> NoReturn:
        if isinstance(error, CannotListenError) and error.socketError is not None:
            reason = getattr(error.socketError, "strerror", None) or str(error.socketError)
        else:
            reason = str(error) or type(error).__name__
        self.events.emit(
            CANNOT_LISTEN, getattr(listener_service, "service", "netlab"), None,
            LogLevel.critical,
            description=getattr(listener_service, "description", "?"),
            error=reason,
        )
        for started in self.listeners:
            port = getattr(started, "port", None)
            if port is not None:
                port.stopListening()
        raise SystemExit(1)

    def stopService(self) -> Deferred[None]:
        """
        Stop listening, say goodbye to every open connection, then log the
        stop and close the log.
        """
        Service.stopService(self)
        self.notifier.stopping()
        if self._previous_hup is not None:
            signal.signal(signal.SIGHUP, self._previous_hup)
            self._previous_hup = None
        stopping = [maybeDeferred(s.stopService) for s in reversed(self.listeners)]
        d = DeferredList(stopping, consumeErrors=True)
        d.addCallback(lambda _: DeferredList(
            [f.shutdown("server shutdown") for f in self.factories], consumeErrors=True
        ))

        def closed(_: object) -> object:
            # History is flushed once every user has been told and closed.
            if self.chat_store is not None:
                return self.chat_store.close()
            return None

        d.addCallback(closed)

        def stopped(_: object) -> None:
            self.events.emit(DAEMON_STOP, "netlab")
            self.events.stopService()
            # twistd re-raises SIGTERM/SIGINT after the reactor stops, so the
            # process would die "killed by signal".  A requested stop that
            # closed everything cleanly is a success: exit status 0.
            if getattr(self.reactor, "_exitSignal", None) in (SIGTERM, SIGINT):
                self.reactor._exitSignal = None

        d.addCallback(stopped)
        return d  # type: ignore[return-value]
