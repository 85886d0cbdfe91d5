"""
Tests for C{/metrics}: every service's EventLog counters in Prometheus text
format, scraped with real curl in process and from the real daemon.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from typing import Any

import prometheus_client
import pytest
import pytest_twisted
from prometheus_client.parser import text_string_to_metric_families
from twisted.internet.task import Clock

from daemon import Daemon, running_daemon
from helpers import make_hub
from httptest import curl_sync, http_config, run_curl, serve
from netlab.protocols.http import metrics, routes
from netlab.protocols.http.context import HttpContext
from netlab.protocols.http.settings import HttpSettings


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of a scrape, by name and sorted labels; the text must parse."""
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def fill_counters(events: Any) -> None:
    """Give echo, UDP echo and the chat counters worth scraping."""
    echo = events.counters_for("echo")
    echo.connections_open, echo.connections_total = 1, 5
    echo.bytes_in, echo.bytes_out, echo.errors = 100, 90, 1
    udp = events.counters_for("udp-echo")
    udp.datagrams_in, udp.datagrams_out, udp.dropped = 7, 6, 1
    chat = events.counters_for("chat")
    chat.refused = 3
    chat.extra.update(joins=4, messages=12)
    smtp = events.counters_for("smtp")
    smtp.extra.update(messages_accepted=2)


@pytest_twisted.inlineCallbacks
def test_metrics_scrape_with_curl(events: Any, clock: Clock) -> Any:
    """curl gets /metrics in Prometheus text format with every service's counters."""
    fill_counters(events)
    served = serve(events, clock, routes.of(metrics))
    try:
        out, err, code = yield run_curl("-w", "\n%{content_type}", served.url("/metrics"))
    finally:
        yield served.close()
    assert code == 0, err
    body, _, content_type = out.decode().rpartition("\n")
    assert content_type == prometheus_client.CONTENT_TYPE_LATEST
    found = samples(body)
    assert found[("netlab_connections_open", (("service", "echo"),))] == 1
    assert found[("netlab_connections_total", (("service", "echo"),))] == 5
    assert found[("netlab_bytes_received_total", (("service", "echo"),))] == 100
    assert found[("netlab_bytes_sent_total", (("service", "echo"),))] == 90
    assert found[("netlab_errors_total", (("service", "echo"),))] == 1
    assert found[("netlab_datagrams_received_total", (("service", "udp-echo"),))] == 7
    assert found[("netlab_datagrams_sent_total", (("service", "udp-echo"),))] == 6
    assert found[("netlab_dropped_total", (("service", "udp-echo"),))] == 1
    assert found[("netlab_refused_total", (("service", "chat"),))] == 3
    # Each service's own counts, under a name that says whose: not "chat" for the mail.
    events_of = "netlab_service_events_total"
    assert found[(events_of, (("event", "joins"), ("service", "chat")))] == 4
    assert found[(events_of, (("event", "messages"), ("service", "chat")))] == 12
    assert found[(events_of, (("event", "messages_accepted"), ("service", "smtp")))] == 2
    assert not any(name.startswith("netlab_chat_events") for name, _ in found)
    # The HTTP site counts itself like every other service.
    assert found[("netlab_connections_total", (("service", "http"),))] == 1


def test_registry_is_private_and_live(events: Any, clock: Clock) -> None:
    """Each site's registry reads the counters at scrape time and stays out of the global one."""
    context = HttpContext(settings=HttpSettings(name="http"), events=events, reactor=clock)
    registry = metrics.make_registry(context)
    echo = events.counters_for("echo")
    assert registry.get_sample_value("netlab_connections_total", {"service": "echo"}) == 0
    echo.connections_total += 2
    assert registry.get_sample_value("netlab_connections_total", {"service": "echo"}) == 2
    assert prometheus_client.REGISTRY.get_sample_value(
        "netlab_connections_total", {"service": "echo"}
    ) is None
    # A second site (or test) gets a registry of its own without a clash.
    other = metrics.make_registry(context)
    assert other.get_sample_value("netlab_connections_total", {"service": "echo"}) == 2


def test_chat_gauges(events: Any, clock: Clock) -> None:
    """With a chat hub, its users and rooms are gauges."""
    hub = make_hub(events, clock)
    hub.room("#second")
    context = HttpContext(
        settings=HttpSettings(name="http"), events=events, reactor=clock, hub=hub
    )
    registry = metrics.make_registry(context)
    assert registry.get_sample_value("netlab_chat_rooms", {"service": "chat"}) == 2
    assert registry.get_sample_value("netlab_chat_users", {"service": "chat"}) == 0


def test_delayed_calls_gauge(events: Any, clock: Clock) -> None:
    """The reactor's waiting timed calls are a gauge, read at scrape time."""
    context = HttpContext(settings=HttpSettings(name="http"), events=events, reactor=clock)
    registry = metrics.make_registry(context)
    assert registry.get_sample_value("netlab_reactor_delayed_calls") == 0
    calls = [clock.callLater(seconds, lambda: None) for seconds in (1, 2, 3)]
    assert registry.get_sample_value("netlab_reactor_delayed_calls") == 3
    calls[0].cancel()
    clock.advance(2)
    assert registry.get_sample_value("netlab_reactor_delayed_calls") == 1
    clock.advance(1)


@pytest.fixture
def live_daemon(tmp_path: Any) -> Iterator[Daemon]:
    """The real daemon with a TCP echo service and the web site."""
    with running_daemon(tmp_path, http_config(echo=True)) as running:
        yield running


def test_daemon_metrics_count_echo_traffic(live_daemon: Daemon) -> None:
    """The real daemon's /metrics, scraped by curl, counts a real echo session."""
    with socket.create_connection(("127.0.0.1", live_daemon.port("echo")), timeout=10) as client:
        client.sendall(b"hello\n")
        assert client.recv(100) == b"hello\n"
        url = f"http://127.0.0.1:{live_daemon.port('http')}/metrics"
        scrape = curl_sync(url, check=True).stdout.decode()
    found = samples(scrape)
    assert found[("netlab_connections_open", (("service", "echo"),))] == 1
    assert found[("netlab_connections_total", (("service", "echo"),))] == 1
    assert found[("netlab_bytes_received_total", (("service", "echo"),))] == 6
    assert found[("netlab_bytes_sent_total", (("service", "echo"),))] == 6
    assert ("process_resident_memory_bytes", ()) in found
    # The echo connection's idle timer, at least.
    assert found[("netlab_reactor_delayed_calls", ())] >= 1


def test_levels_are_gauges_not_counters(events: Any, clock: Clock) -> None:
    """What the mail store holds now goes down as well as up: a gauge, not a *_total."""
    from netlab.app import registry as kinds_registry

    smtp = events.counters_for("smtp")
    smtp.extra.update(messages_accepted=2, messages_stored=5, bytes_stored=900, mailboxes=2)
    context = HttpContext(
        settings=HttpSettings(name="http"), events=events, reactor=clock,
        services=[("smtp", "smtp")],
        kinds={kind.section: kind for kind in kinds_registry.KINDS},
    )
    registry = metrics.make_registry(context)
    level = "netlab_service_level"
    assert registry.get_sample_value(level, {"service": "smtp", "level": "messages_stored"}) == 5
    assert registry.get_sample_value(level, {"service": "smtp", "level": "bytes_stored"}) == 900
    assert registry.get_sample_value(level, {"service": "smtp", "level": "mailboxes"}) == 2
    events_of = "netlab_service_events_total"
    assert registry.get_sample_value(
        events_of, {"service": "smtp", "event": "messages_accepted"}) == 2
    assert registry.get_sample_value(
        events_of, {"service": "smtp", "event": "messages_stored"}) is None


def test_chat_cluster_gauges(events: Any, clock: Clock) -> None:
    """With [cluster], whether the node is in touch with Redis, and how many nodes it sees."""
    from netlab.protocols.chat.bus import MemoryBroker
    from test_chat_bus import bus_of, node

    broker = MemoryBroker(clock)
    hub, _ = node(events, broker, "a"), node(events, broker, "b")
    context = HttpContext(
        settings=HttpSettings(name="http"), events=events, reactor=clock, hub=hub
    )
    registry = metrics.make_registry(context)
    labels = {"service": "chat", "node": "a"}
    assert registry.get_sample_value("netlab_chat_cluster_up", labels) == 1
    assert registry.get_sample_value("netlab_chat_cluster_nodes", labels) == 2
    bus_of(hub).cut()
    assert registry.get_sample_value("netlab_chat_cluster_up", labels) == 0
