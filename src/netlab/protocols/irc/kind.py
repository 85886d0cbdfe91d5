"""
The IRC front-end's service kind, C{[irc]}: built after the chat, into
whose hub its users come.
"""

from __future__ import annotations

from netlab.core.kinds import BuildContext, BuiltService, InWorkers, ServiceKind
from netlab.core.settings import LOOPBACK
from netlab.protocols.chat.hub import ChatHub
from netlab.protocols.irc.server import IrcFactory
from netlab.protocols.irc.settings import IrcSettings, check_irc


def build_irc(settings: IrcSettings, context: BuildContext) -> BuiltService:
    """The IRC listener's factory, on the chat's hub."""
    hub = context.lookup(ChatHub)
    assert hub is not None, "the config check makes [irc] need [chat]"
    return BuiltService(stream=IrcFactory(settings, context.events, context.reactor, hub))


KIND = ServiceKind(
    section="irc",
    settings=IrcSettings,
    default_listen=(f"tcp:6667:interface={LOOPBACK}",),
    build=build_irc,
    check=check_irc,
    try_with="irssi -c {host} -p {port} -n YOURNICK",
    in_workers=InWorkers.CLUSTER,
)
