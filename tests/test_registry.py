"""
The registry of service kinds: a kind declared here, in the test suite, is
configured, listens, is reloaded and is counted without any other module
knowing it; and the reload diff is a pure function of two configs.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import pytest_twisted
from twisted.internet import reactor

from helpers import close_all, connect
from netlab.app import registry
from netlab.app.reload import plan, reload
from netlab.app.service import NetlabService
from netlab.core.config import ConfigError
from netlab.core.kinds import BuildContext, BuiltService, Fail, ServiceKind
from netlab.core.settings import StreamSettings, setting
from netlab.protocols.base import StreamFactory, StreamProtocol


@dataclass(frozen=True, kw_only=True)
class ShoutSettings(StreamSettings):
    """A tiny kind: answers each chunk upper-cased, followed by C{suffix}."""

    suffix: str = setting("!")
    volume: int = setting(1, lo=1, hi=11)


class Shout(StreamProtocol):
    def dataReceived(self, data: bytes) -> None:
        self.received(data)
        self.send(data.strip().upper() + self.factory.settings.suffix.encode() + b"\n")


class ShoutFactory(StreamFactory):
    protocol = Shout


def check_shout(settings: ShoutSettings, config: Any, fail: Fail) -> None:
    if "\n" in settings.suffix:
        raise fail("suffix", settings.suffix, "must be a single line")


def build_shout(settings: ShoutSettings, context: BuildContext) -> BuiltService:
    return BuiltService(stream=ShoutFactory(settings, context.events, context.reactor))


SHOUT = ServiceKind(
    section="shout",
    settings=ShoutSettings,
    many=True,
    default_listen=("tcp:0:interface=127.0.0.1",),
    build=build_shout,
    check=check_shout,
    restart_keys=frozenset({"volume"}),
)

KINDS = (*registry.KINDS, SHOUT)

ONLY_SHOUT = """echo = []
udp_echo = []
[chat]
enabled = false
[http]
enabled = false
[[shout]]
suffix = "{suffix}"
volume = {volume}
max_connections_per_peer = {per_peer}
"""


def write(path: Path, suffix: str, volume: int = 1, per_peer: int = 5) -> Path:
    path.write_text(ONLY_SHOUT.format(suffix=suffix, volume=volume, per_peer=per_peer))
    return path


def test_new_kind_is_configured(tmp_path: Path) -> None:
    """The loader validates the new section with its own limits and check."""
    loaded = registry.load(write(tmp_path / "a.toml", "!!"), kinds=KINDS)
    (shout,) = loaded.shout
    assert (shout.name, shout.suffix, shout.listen) == (
        "shout", "!!", ("tcp:0:interface=127.0.0.1",)
    )
    with pytest.raises(ConfigError, match=r"\[shout\]\[0\]\.volume = 12: must be from 1 to 11"):
        registry.load(write(tmp_path / "b.toml", "!", volume=12), kinds=KINDS)
    with pytest.raises(ConfigError, match=r"\[shout\]\[0\]\.suffix = .*single line"):
        registry.parse({"shout": [{"suffix": "a\nb"}]}, kinds=KINDS)
    # Without the kind in the registry, the section is unknown.
    with pytest.raises(ConfigError, match=r"\[shout\]: unknown section"):
        registry.load(tmp_path / "a.toml")


@pytest_twisted.inlineCallbacks
def test_new_kind_listens_reloads_and_is_counted(tmp_path: Path, events: Any) -> Any:
    """Built by the service, it serves; a reload reconfigures it; its counters count."""
    path = write(tmp_path / "netlab.toml", "!", per_peer=5)
    service = NetlabService(
        registry.load(path, kinds=KINDS), reactor, events=events,
        config_path=str(path), kinds=KINDS,
    )
    service.privilegedStartService()
    service.startService()
    (listener,) = service.listeners
    port = listener.port  # type: ignore[attr-defined]
    first = yield connect(port)
    first.send(b"hello\n")
    yield first.wait_text(b"HELLO!\n")

    write(path, "?", volume=3, per_peer=9)
    reload(service)
    outcome = events.kinds("reload")[-1]["outcome"]
    assert "applied shout.max_connections_per_peer, shout.suffix" in outcome
    assert "needs a restart: shout.volume" in outcome
    (factory,) = service.factories
    assert factory.limits.max_per_peer == 9
    assert service.config.shout[0].volume == 1

    second = yield connect(port)
    second.send(b"again\n")
    yield second.wait_text(b"AGAIN?\n")
    counters = events.counters_for("shout")
    assert counters.connections_total == 2
    assert counters.bytes_in == len(b"hello\nagain\n")
    yield service.stopService()
    yield close_all(first, second)


# -- the reload diff, without a service ------------------------------------------


def test_plan_applies_safe_keys_and_keeps_restart_keys() -> None:
    """Safe keys are applied, restart keys keep their old value and are listed."""
    old = registry.parse({"echo": [{"banner": "one", "mode": "ok"}]})
    new = registry.parse({"echo": [{"banner": "two", "mode": "upper"}], "log": {"level": "warn"}})
    change = plan(old, new, registry.KINDS)
    assert change.applied == ["echo.banner", "log.level"]
    assert change.waiting == ["echo.mode"]
    assert change.running.echo[0].banner == "two"
    assert change.running.echo[0].mode == "ok"
    assert change.running.log.level == "warn"


def test_plan_added_and_removed_services_wait() -> None:
    """A service that appears or disappears waits for a restart; the old one runs on."""
    old = registry.parse({"echo": [{}, {"name": "second"}]})
    new = registry.parse({"echo": [{}], "framed_echo": [{}]})
    change = plan(old, new, registry.KINDS)
    assert change.applied == []
    assert change.waiting == [
        "service framed-echo added or removed", "service second added or removed",
    ]
    assert [e.name for e in change.running.echo] == ["echo", "second"]
    assert change.running.framed_echo == ()


def test_plan_no_change() -> None:
    """The same config twice changes nothing."""
    config = registry.parse({"chat": {"motd": "hi"}})
    change = plan(config, registry.parse({"chat": {"motd": "hi"}}), registry.KINDS)
    assert (change.applied, change.waiting) == ([], [])
    assert change.running == config


def test_plan_log_file_waits() -> None:
    """A new log file or format waits for a restart; the level does not."""
    old = registry.parse({})
    new = registry.parse({"log": {"format": "json"}})
    assert plan(old, new, registry.KINDS).waiting == ["log.file/format"]


def test_plan_kind_restart_keys() -> None:
    """Each kind names its own restart keys: the chat's database, framed_echo's framing."""
    old = registry.parse({"chat": {"database": ":memory:"}, "framed_echo": [{}]})
    new = registry.parse({
        "chat": {"database": "other.sqlite3", "motd": "new"},
        "framed_echo": [{"framing": "netstring", "max_frame": 10}],
    })
    change = plan(old, new, registry.KINDS)
    assert change.applied == ["chat.motd", "framed-echo.max_frame"]
    assert change.waiting == ["chat.database", "framed-echo.framing"]


def test_new_kind_on_dashboard_and_metrics(events: Any) -> None:
    """The web site lists the new kind's service, and /metrics exports it, from the start."""
    from prometheus_client.exposition import generate_latest

    from netlab.protocols.http import dashboard, metrics
    from netlab.protocols.http.site import NetlabSite

    config = registry.parse(
        {
            "echo": [], "udp_echo": [], "chat": {"enabled": False},
            "http": {"listen": ["tcp:0:interface=127.0.0.1"]},
            "shout": [{"name": "loud"}],
        },
        kinds=KINDS,
    )
    service = NetlabService(config, reactor, events=events, kinds=KINDS)
    (site,) = service.components["http"]
    assert isinstance(site, NetlabSite)
    listed = {s["name"]: s for s in dashboard.snapshot(site.context)["services"]}
    assert listed["loud"]["kind"] == "shout"
    assert listed["http"]["kind"] == "http"
    text = generate_latest(metrics.make_registry(site.context)).decode()
    assert 'netlab_service_info{kind="shout",service="loud"} 1.0' in text
    assert 'netlab_connections_open{service="loud"} 0.0' in text
