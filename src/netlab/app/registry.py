"""
The one list of service kinds, and the config loader bound to it.

Each kind declares itself beside its protocol (a C{KIND}, or a list of
them); this is the only place that names them all.  The order is the
build order: the chat is built before the kinds that share its hub (the UDP
chat, the web site's browser chat).  Adding a kind is one module and one
line here.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from netlab.app.workers import check_workers
from netlab.core import config as loader
from netlab.core.config import Config
from netlab.core.kinds import ServiceKind
from netlab.protocols import classic, dictionary, echo, framed, udp
from netlab.protocols.chat import kind as chat
from netlab.protocols.http import kind as http
from netlab.protocols.irc import kind as irc
from netlab.protocols.login import kind as login
from netlab.protocols.mail import kind as mail

KINDS: tuple[ServiceKind[Any], ...] = (
    echo.KIND,
    udp.KIND,
    framed.KIND,
    dictionary.KIND,
    chat.CHAT,
    chat.UDP_CHAT,
    chat.CLUSTER,
    irc.KIND,
    http.KIND,
    login.KIND,
    *mail.KINDS,
    *classic.SERVICE_KINDS,
)


def parse(
    data: Mapping[str, Any],
    source: str = "<config>",
    environment: bool = True,
    kinds: Sequence[ServiceKind[Any]] = KINDS,
) -> Config:
    """Validate a parsed TOML document against the registry's kinds."""
    return check_workers(loader.parse(data, source, environment, kinds=kinds), kinds)


def load(
    path: str | Path | None,
    environment: bool = True,
    kinds: Sequence[ServiceKind[Any]] = KINDS,
) -> Config:
    """Read and validate a config file (None: the built-in defaults)."""
    return check_workers(loader.load(path, environment, kinds=kinds), kinds)


def kind_of(kinds: Sequence[ServiceKind[Any]], where: str) -> ServiceKind[Any]:
    """The kind of the service at C{where} (C{echo][1}, C{chat})."""
    section = where.split("]", 1)[0]
    return next(kind for kind in kinds if kind.section == section)


__all__ = ["KINDS", "kind_of", "load", "parse"]
