"""
Limits every service shares: connection caps per service and per peer, and
the reflection guards and per-source rate limit of every UDP service.

All of it is plain Python driven by an explicit clock, so tests use
L{twisted.internet.task.Clock} and no sockets.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Iterator, Sequence
from typing import Generic, TypeVar

from twisted.internet.defer import Deferred, succeed
from twisted.logger import LogLevel

from netlab.core.events import DROPPED, EventLog, format_peer
from netlab.core.settings import DatagramGuardSettings, StreamSettings

T = TypeVar("T")


class OpenConnections(Generic[T]):
    """
    The connections a listener has open, and whoever waits for the last one
    to close (a shutdown, a test): a set that fires L{when_empty} waiters.
    """

    def __init__(self) -> None:
        self._open: set[T] = set()
        self._waiting: list[Deferred[None]] = []

    def add(self, connection: T) -> None:
        self._open.add(connection)

    def discard(self, connection: T) -> None:
        """Forget C{connection}; if it was the last, fire the waiters."""
        self._open.discard(connection)
        if not self._open:
            waiting, self._waiting = self._waiting, []
            for d in waiting:
                d.callback(None)

    def when_empty(self) -> Deferred[None]:
        """Fires once no connection is open (at once if none is)."""
        if not self._open:
            return succeed(None)
        d: Deferred[None] = Deferred()
        self._waiting.append(d)
        return d

    def __len__(self) -> int:
        return len(self._open)

    def __contains__(self, connection: object) -> bool:
        return connection in self._open

    def __iter__(self) -> Iterator[T]:
        return iter(self._open)


class ConnectionLimits:
    """
    Caps on open connections, in total and per peer host.

    Twisted's own C{LimitConnectionsByPeer} keys its count by C{addr[0]} and
    crashes on current address objects; this one keys by host and says why it
    refused, so the client can be told.
    """

    def __init__(self, max_connections: int, max_per_peer: int) -> None:
        self.max_connections = max_connections
        self.max_per_peer = max_per_peer
        self.open = 0
        self.by_peer: dict[str, int] = {}

    @classmethod
    def for_settings(cls, settings: StreamSettings) -> ConnectionLimits:
        """The caps a stream service's settings ask for."""
        return cls(settings.max_connections, settings.max_connections_per_peer)

    def configure(self, settings: StreamSettings) -> None:
        """Take new caps (a reload); connections already open keep their slots."""
        self.max_connections = settings.max_connections
        self.max_per_peer = settings.max_connections_per_peer

    def acquire(self, host: str) -> str | None:
        """Take a slot for C{host}; or return why not (and take nothing)."""
        if self.open >= self.max_connections:
            return f"too many connections (limit {self.max_connections})"
        count = self.by_peer.get(host, 0)
        if count >= self.max_per_peer:
            return f"too many connections from {host} (limit {self.max_per_peer})"
        self.by_peer[host] = count + 1
        self.open += 1
        return None

    def release(self, host: str) -> None:
        """Give back a slot taken by L{acquire}."""
        self.open -= 1
        count = self.by_peer[host] - 1
        if count:
            self.by_peer[host] = count
        else:
            del self.by_peer[host]


class AccessList:
    """
    Who may use a service: refused if the address is in a C{deny} network,
    or if there is an C{allow} list and the address is in none of it.
    """

    def __init__(self, allow: Sequence[str], deny: Sequence[str]) -> None:
        self.allow = [ipaddress.ip_network(n, strict=False) for n in allow]
        self.deny = [ipaddress.ip_network(n, strict=False) for n in deny]
        self._verdicts: dict[str, str | None] = {}

    def refusal(self, host: str) -> str | None:
        """Why C{host} may not connect or send, or C{None} if it may."""
        if not self.allow and not self.deny:
            return None
        verdict = self._verdicts.get(host, "")
        if verdict != "":
            return verdict
        verdict = self._judge(host)
        if len(self._verdicts) >= 65_536:
            self._verdicts.clear()
        self._verdicts[host] = verdict
        return verdict

    def _judge(self, host: str) -> str | None:
        address = peer_address(host)
        if address is None:
            # Unix-socket peers have no address; only an allow list can refuse them.
            return "not in the allow list" if self.allow else None
        if any(address.version == n.version and address in n for n in self.deny):
            return f"address {address} is denied"
        if self.allow and not any(
            address.version == n.version and address in n for n in self.allow
        ):
            return f"address {address} is not in the allow list"
        return None


def peer_address(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """
    The address of a peer's C{host}, its zone id dropped and an IPv4-mapped
    IPv6 address folded to IPv4, so one client is one address; C{None} when
    C{host} is no address (a Unix-socket peer).
    """
    try:
        address = ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        return address.ipv4_mapped
    return address


def access_for(settings: object) -> AccessList:
    """A new access list from a service's C{allow} and C{deny} settings."""
    return AccessList(getattr(settings, "allow", ()), getattr(settings, "deny", ()))


class SettingsAccess:
    """
    A service's access list, rebuilt only when a reload has handed the
    service new settings (settings are frozen, so identity says it all).
    """

    def __init__(self) -> None:
        self._settings: object = None
        self._list = AccessList((), ())

    def refusal(self, settings: object, host: str) -> str | None:
        """Why C{host} may not use the service configured by C{settings}, or C{None}."""
        if settings is not self._settings:
            self._list = access_for(settings)
            self._settings = settings
        return self._list.refusal(host)


class RateLimiter:
    """
    A token bucket per source host: C{rate} tokens a second, up to C{burst}.

    At most C{max_sources} buckets are kept; the oldest is forgotten first,
    which can only ever give a source more tokens, never lock it out.
    """

    def __init__(
        self,
        rate: float,
        burst: int,
        max_sources: int,
        now: Callable[[], float],
    ) -> None:
        self.rate = rate
        self.burst = float(burst)
        self.max_sources = max_sources
        self._now = now
        self._buckets: dict[str, list[float]] = {}

    def allow(self, host: str) -> bool:
        """Take one token from C{host}'s bucket if it has one."""
        now = self._now()
        bucket = self._buckets.get(host)
        if bucket is None:
            if len(self._buckets) >= self.max_sources:
                del self._buckets[next(iter(self._buckets))]
            self._buckets[host] = [self.burst - 1.0, now]
            return True
        tokens = min(self.burst, bucket[0] + (now - bucket[1]) * self.rate)
        bucket[1] = now
        if tokens >= 1.0:
            bucket[0] = tokens - 1.0
            return True
        bucket[0] = tokens
        return False

    def __len__(self) -> int:
        return len(self._buckets)


# Keys a failure limit remembers at most; the oldest is forgotten first.
MAX_FAILURE_KEYS = 65_536


class FailureLimit:
    """
    Failed password checks per key (an address, a user name, a nick),
    through the token bucket of L{RateLimiter}: C{failures} failures at
    once, refilled evenly over C{window} seconds.  A failure that finds the bucket empty locks the
    key for the time one failure takes to refill; a locked key is not even
    checked, so guessing stays slow however many connections guess.
    """

    def __init__(self, failures: int, window: float, now: Callable[[], float]) -> None:
        self._now = now
        self._reset(failures, window)

    def _reset(self, failures: int, window: float) -> None:
        self.failures, self.window = failures, window
        self._locked: dict[str, float] = {}
        self._bucket = RateLimiter(failures / window, failures, MAX_FAILURE_KEYS, self._now)

    def configure(self, failures: int, window: float) -> None:
        """New limits (a reload); the counts so far are kept if they are unchanged."""
        if (failures, window) != (self.failures, self.window):
            self._reset(failures, window)

    @property
    def pause(self) -> float:
        """Seconds a locked key waits: the time one failure takes to refill."""
        return self.window / self.failures

    def failed(self, key: str) -> bool:
        """Count one failure of C{key}; whether that locked it."""
        if self._bucket.allow(key):
            return False
        now = self._now()
        if len(self._locked) >= MAX_FAILURE_KEYS:
            self._locked = {k: t for k, t in self._locked.items() if t > now}
        self._locked[key] = now + self.pause
        return True

    def wait(self, key: str) -> float:
        """Seconds before C{key} may try again (0: now)."""
        until = self._locked.get(key)
        if until is None:
            return 0.0
        left = until - self._now()
        if left <= 0:
            del self._locked[key]
            return 0.0
        return left


class DropReporter:
    """
    Logs dropped datagrams at a bounded rate: the first drop of each reason,
    then at most one summary every C{interval} seconds with how many were
    suppressed.  Counting is the caller's job and is never skipped.
    """

    def __init__(
        self,
        events: EventLog,
        service: str,
        now: Callable[[], float],
        interval: float = 10.0,
    ) -> None:
        self.events = events
        self.service = service
        self.interval = interval
        self._now = now
        self._last: dict[str, float] = {}
        self._suppressed: dict[str, int] = {}

    def report(self, reason: str, host: str, port: int, size: int) -> None:
        now = self._now()
        last = self._last.get(reason)
        if last is not None and now - last < self.interval:
            self._suppressed[reason] = self._suppressed.get(reason, 0) + 1
            return
        self._last[reason] = now
        suppressed = self._suppressed.pop(reason, 0)
        self.events.emit(
            DROPPED,
            self.service,
            format_peer(host, port),
            LogLevel.warn,
            what=f"a {size}-byte datagram",
            reason=reason,
            suppressed=f" ({suppressed} more since the last report)" if suppressed else "",
        )


def _never_answer(host: str) -> str | None:
    """Why datagrams from C{host} must never be answered, if they must not."""
    try:
        address = ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return "unparseable source address"
    if address.is_multicast:
        return "multicast source"
    if address.is_unspecified:
        return "unspecified source"
    if isinstance(address, ipaddress.IPv4Address) and address.packed[3] == 255:
        # 255.255.255.255 and the common /24 subnet broadcast: a lab server
        # never has a legitimate client whose address ends in .255.
        return "broadcast source"
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        return _never_answer(str(address.ipv4_mapped))
    return None


class DatagramGuard:
    """
    The reflection guards of a UDP service, checked for every datagram:
    size, source port, broadcast and multicast sources, and rate.
    """

    def __init__(
        self,
        settings: DatagramGuardSettings,
        events: EventLog,
        service: str,
        now: Callable[[], float],
        service_ports: set[int] | None = None,
    ) -> None:
        """
        @param service_ports: the daemon's own UDP ports, shared by every
            guard and filled in as listeners bind.  A datagram from one of
            them is never answered: with spoofed sources, two echo-like
            services (here or on another netlab) would otherwise bounce
            datagrams between each other for ever.
        """
        self.service_ports = service_ports if service_ports is not None else set()
        self.settings = settings
        self.counters = events.counters_for(service)
        self.rates = RateLimiter(settings.rate, settings.burst, settings.max_sources, now)
        self.access = access_for(settings)
        self.reporter = DropReporter(events, service, now)
        self._exempt = [ipaddress.ip_network(n, strict=False) for n in settings.rate_exempt]
        # Verdicts on source hosts, which never change; bounded like the buckets.
        self._hosts: dict[str, tuple[str | None, bool]] = {}

    def configure(self, settings: DatagramGuardSettings) -> None:
        """Apply new guard settings (a reload) without forgetting per-source rates."""
        self.settings = settings
        self.rates.rate = settings.rate
        self.rates.burst = float(settings.burst)
        self.rates.max_sources = settings.max_sources
        self._exempt = [ipaddress.ip_network(n, strict=False) for n in settings.rate_exempt]
        self._hosts.clear()
        self.access = access_for(settings)

    def _verdict(self, host: str) -> tuple[str | None, bool]:
        verdict = self._hosts.get(host)
        if verdict is None:
            never = _never_answer(host)
            exempt = False
            if never is None and self._exempt:
                address = ipaddress.ip_address(host.split("%", 1)[0])
                exempt = any(address in net for net in self._exempt)
            if len(self._hosts) >= self.settings.max_sources:
                self._hosts.clear()
            verdict = self._hosts[host] = (never, exempt)
        return verdict

    def admit(self, data: bytes, host: str, port: int) -> bool:
        """
        Count an incoming datagram and say whether it may be answered;
        a refused one is counted as dropped and reported at a bounded rate.
        """
        counters = self.counters
        size = len(data)
        counters.datagrams_in += 1
        counters.bytes_in += size
        never, exempt = self._verdict(host)
        reason: str
        if size > self.settings.max_datagram:
            reason = f"larger than max_datagram ({self.settings.max_datagram})"
        elif never is not None:
            reason = never
        elif (refusal := self.access.refusal(host)) is not None:
            self.counters.refused += 1
            reason = refusal
        elif port < self.settings.min_source_port:
            reason = f"source port {port} below min_source_port"
        elif port in self.service_ports:
            reason = f"source port {port} is a netlab UDP service port (loop guard)"
        elif not exempt and not self.rates.allow(host):
            reason = "rate limit"
        else:
            return True
        counters.dropped += 1
        self.reporter.report(reason, host, port, size)
        return False
