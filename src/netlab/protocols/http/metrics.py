"""
C{/metrics}: the EventLog's counters for every service (echo, UDP, chat,
classic, HTTP...) in Prometheus text format.

The values are read from the counters at scrape time by a custom
collector, so the hot path keeps bumping plain integers and nothing is
counted twice.  Each site has a registry of its own: the global one would
mix in whatever else the process registered, and tests build many sites.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.process_collector import ProcessCollector
from prometheus_client.registry import Collector, CollectorRegistry
from twisted.internet.interfaces import IReactorTime
from twisted.web.resource import Resource
from twisted.web.server import Request

from netlab.core.events import EventLog, ServiceCounters
from netlab.core.workertable import WorkerTable
from netlab.protocols.chat.hub import ChatHub
from netlab.protocols.http.context import HttpContext

# ServiceCounters field -> (metric name, help), for the counters proper.
COUNTERS: dict[str, tuple[str, str]] = {
    "connections_total": ("netlab_connections_total", "Connections accepted."),
    "bytes_in": ("netlab_bytes_received_total", "Bytes received from clients."),
    "bytes_out": ("netlab_bytes_sent_total", "Bytes sent to clients."),
    "datagrams_in": ("netlab_datagrams_received_total", "Datagrams received."),
    "datagrams_out": ("netlab_datagrams_sent_total", "Datagrams sent."),
    "refused": ("netlab_refused_total", "Connections or requests refused by a limit."),
    "dropped": ("netlab_dropped_total", "Datagrams or lines dropped by a guard."),
    "errors": ("netlab_errors_total", "Errors while serving clients."),
}


def _worker_name(metric: str) -> str:
    """A counter's per-worker name: C{netlab_worker_bytes_sent_total}."""
    return "netlab_worker_" + metric.removeprefix("netlab_")


class NetlabCollector(Collector):
    """
    Reads every service's L{ServiceCounters} (and the chat hub) at scrape
    time.  With C{[daemon] workers} > 1 the families without a C{worker}
    label are the whole daemon's (every worker's, summed), and the
    C{netlab_worker_*} families are each worker's, C{worker="0"}...
    """

    def __init__(
        self,
        events: EventLog,
        hub: ChatHub | None = None,
        reactor: IReactorTime | None = None,
        services: Sequence[tuple[str, str]] = (),
        workers: WorkerTable | None = None,
        levels: Mapping[str, frozenset[str]] | None = None,
    ) -> None:
        """
        @param services: the daemon's enabled services as C{(name, kind)},
            from the registry: each is exported from the first scrape, at
            zero until it counts, with a C{netlab_service_info} series.
        @param workers: in a worker process, every worker's counters.
        @param levels: by service name, its own counts that are levels
            (L{ServiceKind.levels}), exported as gauges.
        """
        self.events = events
        self.hub = hub
        self.reactor = reactor
        self.services = services
        self.workers = workers
        self.levels = levels or {}

    def describe(self) -> Iterable[Metric]:
        # Registering must not depend on which services have counted yet.
        return []

    def collect(self) -> Iterable[Metric]:
        opened = GaugeMetricFamily(
            "netlab_connections_open", "Connections open now.", labels=["service"]
        )
        totals = {
            field: CounterMetricFamily(name, text, labels=["service"])
            for field, (name, text) in COUNTERS.items()
        }
        # Every service's own counts (the chat's joins and messages, the
        # mail's messages stored...), named for the service, not for the chat.
        own = CounterMetricFamily(
            "netlab_service_events_total",
            "Each service's own counts (chat joins and messages, mail messages...).",
            labels=["service", "event"],
        )
        levels = GaugeMetricFamily(
            "netlab_service_level",
            "Each service's own levels, which go down as well as up (mail stored now...).",
            labels=["service", "level"],
        )
        info = GaugeMetricFamily(
            "netlab_service_info", "Each configured service and its kind.",
            labels=["service", "kind"],
        )
        for service, kind in self.services:
            info.add_metric([service, kind], 1)
        counted = dict(self.events.counters) if self.workers is None else self.workers.total()
        for service, _ in self.services:
            counted.setdefault(service, ServiceCounters())
        for service, counters in sorted(counted.items()):
            opened.add_metric([service], counters.connections_open)
            for field, family in totals.items():
                family.add_metric([service], getattr(counters, field))
            level_names = self.levels.get(service, frozenset())
            for event, count in sorted(counters.extra.items()):
                if event in level_names:
                    levels.add_metric([service, event], count)
                else:
                    own.add_metric([service, event], count)
        yield info
        yield opened
        yield from totals.values()
        yield own
        yield levels
        if self.workers is not None:
            yield from self._per_worker(self.workers)
        yield from self._chat_gauges()
        if self.reactor is not None:
            # Idle timers, deadlines, retries: one or two per open connection.
            # A count that grows while connections do not is a leak, which
            # is what bench/soak.py watches for.
            calls = GaugeMetricFamily(
                "netlab_reactor_delayed_calls", "Timed calls waiting in the reactor."
            )
            calls.add_metric([], len(self.reactor.getDelayedCalls()))
            yield calls

    def _per_worker(self, workers: WorkerTable) -> Iterable[Metric]:
        """Each worker's counters, labelled C{worker}; theirs as of their last report."""
        info = GaugeMetricFamily(
            "netlab_worker_info", "Each worker process and its pid.", labels=["worker", "pid"]
        )
        opened = GaugeMetricFamily(
            "netlab_worker_connections_open", "Connections open now, by worker.",
            labels=["service", "worker"],
        )
        totals = {
            field: CounterMetricFamily(_worker_name(name), f"{text[:-1]}, by worker.",
                                       labels=["service", "worker"])
            for field, (name, text) in COUNTERS.items()
        }
        for index, (pid, counters) in workers.by_worker().items():
            worker = str(index)
            info.add_metric([worker, str(pid)], 1)
            for service, values in sorted(counters.items()):
                opened.add_metric([service, worker], values.connections_open)
                for field, family in totals.items():
                    family.add_metric([service, worker], getattr(values, field))
        yield info
        yield opened
        yield from totals.values()

    def _chat_gauges(self) -> Iterable[Metric]:
        hub = self.hub
        if hub is None:
            return
        users = GaugeMetricFamily("netlab_chat_users", "Users connected to the chat.",
                                  labels=["service"])
        users.add_metric([hub.name], len(hub.sessions))
        rooms = GaugeMetricFamily("netlab_chat_rooms", "Chat rooms that exist.",
                                  labels=["service"])
        rooms.add_metric([hub.name], len(hub.rooms))
        yield users
        yield rooms
        cluster = hub.cluster
        if cluster is not None:
            labels = ["service", "node"]
            up = GaugeMetricFamily(
                "netlab_chat_cluster_up", "1 while this chat node is in touch with Redis.",
                labels=labels,
            )
            up.add_metric([hub.name, cluster.node], int(cluster.joined and not cluster.degraded))
            nodes = GaugeMetricFamily(
                "netlab_chat_cluster_nodes", "Chat nodes this one hears from, itself included.",
                labels=labels,
            )
            nodes.add_metric([hub.name, cluster.node], len(cluster.seen) + 1)
            yield up
            yield nodes


def make_registry(context: HttpContext) -> CollectorRegistry:
    """A private registry with netlab's collector and the process's own metrics."""
    registry = CollectorRegistry()
    # A worker's daemon service has every worker's counters (app.service).
    workers = getattr(context.service, "worker_table", None)
    levels = {
        name: context.kinds[kind].levels for name, kind in context.services
        if kind in context.kinds
    }
    registry.register(NetlabCollector(
        context.events, context.hub, context.reactor, context.services,
        workers if isinstance(workers, WorkerTable) else None, levels,
    ))
    ProcessCollector(registry=registry)
    return registry


class MetricsResource(Resource):
    """C{GET /metrics}: one scrape."""

    def __init__(self, registry: CollectorRegistry) -> None:
        super().__init__()
        self.registry = registry

    def render_GET(self, request: Request) -> bytes:
        request.setHeader(b"Content-Type", CONTENT_TYPE_LATEST.encode())
        request.setHeader(b"Cache-Control", b"no-store")
        return generate_latest(self.registry)


def scrape(context: HttpContext) -> MetricsResource:
    """C{/metrics}, on a registry of the site's own."""
    return MetricsResource(make_registry(context))
