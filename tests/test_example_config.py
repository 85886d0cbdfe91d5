"""
The documented example, examples/netlab.toml, stays valid, documents every
key config.py accepts, and stays runnable on a developer's machine.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import re
import tomllib
from pathlib import Path
from typing import Any

import pytest

from netlab.app import registry as config
from netlab.core.config import Config
from netlab.core.endpoints import endpoint_kind, split_endpoint
from netlab.core.settings import AccessSettings, LogSettings
from netlab.protocols import classic

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "netlab.toml"

# Each settings dataclass and the sections of the file that use it: the
# shared ones, then every kind of the registry.
SECTIONS: dict[type[Any], tuple[str, ...]] = {LogSettings: ("log",), AccessSettings: ("access",)}
for _kind in config.KINDS:
    SECTIONS[_kind.settings] = (*SECTIONS.get(_kind.settings, ()), _kind.section)


def keys_of(cls: type[Any]) -> list[str]:
    """The keys a section accepts: its dataclass fields."""
    return [f.name for f in dataclasses.fields(cls)]


def all_listen(loaded: Config) -> list[str]:
    """Every listen string of every enabled service in C{loaded}."""
    return [d for _, s in loaded.services() if s.enabled for d in s.listen]


def test_example_loads() -> None:
    """The example passes the same validation twistd runs, environment included."""
    loaded = config.load(EXAMPLE, environment=True)
    assert loaded.source == str(EXAMPLE)
    assert loaded.log.file == ""
    assert [e.mode for e in loaded.echo][:3] == ["plain", "upper", "ok"]
    # Then the course's one-shot servers (tests/test_echo_course.py runs them)
    # and the short-timeout echo of the "Timeouts" exercise.
    assert [(e.name, e.mode, e.close_after) for e in loaded.echo[3:]] == [
        ("course-your-data", "plain", 1),
        ("course-ok-once", "ok", 1),
        ("course-echo-once", "plain", 1),
        ("course-thanks", "plain", 0),
        ("course-timeout", "plain", -1),
    ]
    assert loaded.echo[7].idle_timeout == 5
    assert loaded.echo[2].quit == "exit"
    assert loaded.echo[2].banner
    assert [f.framing for f in loaded.framed_echo] == ["int32", "netstring", "binary", "digits"]
    assert (loaded.framed_echo[2].length_bytes, loaded.framed_echo[2].byte_order) == (2, "little")
    assert all(getattr(loaded, name).enabled for name in classic.NAMES)


@pytest.mark.parametrize("cls", list(SECTIONS), ids=lambda cls: cls.__name__)
def test_every_key_is_written(cls: type[Any]) -> None:
    """Every key of every section appears as C{key =} on a line, not in a comment."""
    text = EXAMPLE.read_text(encoding="utf-8")
    missing = [
        key for key in keys_of(cls)
        if not re.search(rf"^\s*{re.escape(key)}\s*=", text, re.MULTILINE)
    ]
    assert not missing, f"{EXAMPLE} does not document {cls.__name__} keys {missing}"


@pytest.mark.parametrize("cls", list(SECTIONS), ids=lambda cls: cls.__name__)
def test_every_key_is_in_its_own_section(cls: type[Any]) -> None:
    """Every key is set in a section of its own kind, not just somewhere in the file."""
    with EXAMPLE.open("rb") as f:
        data = tomllib.load(f)
    written: set[str] = set()
    for section in SECTIONS[cls]:
        tables = data.get(section, [])
        for table in tables if isinstance(tables, list) else [tables]:
            written.update(table)
    missing = sorted(set(keys_of(cls)) - written)
    assert not missing, f"no [{'/'.join(SECTIONS[cls])}] in {EXAMPLE} sets {missing}"


def test_every_section_is_written() -> None:
    """Every section the Config has appears in the example."""
    with EXAMPLE.open("rb") as f:
        data = tomllib.load(f)
    sections = ["log", "access", *(kind.section for kind in config.KINDS)]
    assert sorted(sections) == sorted(data)


def test_listens_on_ipv4_and_ipv6_loopback() -> None:
    """The example listens on 127.0.0.1 and ::1, over TCP and over UDP."""
    loaded = config.load(EXAMPLE)
    interfaces: dict[str, set[str]] = {"stream": set(), "datagram": set()}
    for description in all_listen(loaded):
        _, _, kwargs = split_endpoint(description)
        interfaces[endpoint_kind(description)].add(kwargs.get("interface", ""))
    assert {"127.0.0.1", "::1"} <= interfaces["stream"]
    assert {"127.0.0.1", "::1"} <= interfaces["datagram"]


def test_runs_unprivileged_on_loopback_only() -> None:
    """Every address is loopback on a port above 1023, so it runs as is on a laptop."""
    loaded = config.load(EXAMPLE)
    for description in all_listen(loaded):
        _, args, kwargs = split_endpoint(description)
        assert ipaddress.ip_address(kwargs["interface"]).is_loopback, description
        assert int(args[0]) >= 1024, description


def test_no_two_services_share_an_address() -> None:
    """Each enabled service listens on addresses of its own: the example starts as written."""
    loaded = config.load(EXAMPLE)
    seen: dict[tuple[str, str, str], str] = {}
    for _, settings in loaded.services():
        if not settings.enabled:
            continue
        for description in settings.listen:
            _, args, kwargs = split_endpoint(description)
            family = "udp" if endpoint_kind(description) == "datagram" else "tcp"
            key = (family, args[0] if args else kwargs.get("port", ""), kwargs.get("interface", ""))
            assert key not in seen, f"{settings.name} and {seen[key]} both listen on {key}"
            seen[key] = settings.name
