"""
The web site's service kind, C{[http]}: one Site for every HTTP resource,
sharing the chat hub (for the browser chat) when the chat runs.
"""

from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import Any

from netlab.core.kinds import BuildContext, BuiltService, Fail, ServiceKind
from netlab.core.settings import LOOPBACK
from netlab.protocols.chat.hub import ChatHub
from netlab.protocols.http.context import HttpContext
from netlab.protocols.http.routes import make_site
from netlab.protocols.http.settings import HttpSettings
from netlab.protocols.http.timepage import zone_problem
from netlab.protocols.mail.kind import MailShared


def check_http(settings: HttpSettings, config: Any, fail: Fail) -> None:
    """A static folder must exist when the daemon starts; the time zone must be known."""
    if settings.static_dir and not Path(settings.static_dir).is_dir():
        raise fail("static_dir", settings.static_dir, "is not a directory")
    problem = zone_problem(settings.timezone)
    if problem:
        raise fail("timezone", settings.timezone, problem)


def configured_services(context: BuildContext) -> list[tuple[str, str]]:
    """Every enabled service of the daemon's config, with its kind's section."""
    if context.config is None:
        return []
    return [
        (settings.name, where.split("]", 1)[0])
        for where, settings in context.config.services()
        if settings.enabled
    ]


def build_http(settings: HttpSettings, context: BuildContext) -> BuiltService:
    """The Site, with every resource installed."""
    reactor = context.reactor
    services = configured_services(context)
    # [smtp] is built after the site (see the registry): its store is
    # looked up when a request needs it, not now.
    runs_smtp = any(kind == "smtp" for _, kind in services)
    mail = partial(context.lookup, MailShared) if runs_smtp else None
    site_context = HttpContext(
        settings=settings, events=context.events, reactor=reactor,
        hub=context.lookup(ChatHub), service=context.daemon, started=reactor.seconds(),
        services=services, kinds={k.section: k for k in context.kinds}, mail=mail,
    )
    return BuiltService(stream=make_site(site_context))


KIND = ServiceKind(
    section="http",
    settings=HttpSettings,
    default_listen=(f"tcp:8080:interface={LOOPBACK}",),
    build=build_http,
    check=check_http,
    counters=("websocket_connections_open", "websocket_messages_in", "websocket_messages_out"),
    try_with="curl http://{host}:{port}/get",
)
