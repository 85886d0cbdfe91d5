"""The web site's settings: C{[http]}."""

from __future__ import annotations

from dataclasses import dataclass

from netlab.core.settings import StreamSettings, setting
from netlab.protocols.http import cors as cors_modes


@dataclass(frozen=True, kw_only=True)
class HttpSettings(StreamSettings):
    """The web site: C{[http]}."""

    listen: tuple[str, ...] = setting((), endpoints="stream")
    idle_timeout: float = setting(60.0, lo=0, hi=86_400)
    header_timeout: float = setting(10.0, lo=1, hi=600)
    # A request body gets body_timeout seconds, and one more for every
    # body_min_rate bytes that have come (Apache's mod_reqtimeout default,
    # body=20,MinRate=500): a slow but steady upload goes on, a trickle is 408.
    body_timeout: float = setting(20.0, lo=1, hi=3600)
    body_min_rate: int = setting(500, lo=0, hi=1_073_741_824)
    max_body: int = setting(1_048_576, lo=0, hi=1_073_741_824)
    max_delay: float = setting(10.0, lo=0, hi=300)
    max_bytes: int = setting(102_400, lo=1, hi=104_857_600)
    max_stream: int = setting(100, lo=1, hi=10_000)
    max_redirects: int = setting(20, lo=1, hi=1000)
    redirect_hosts: tuple[str, ...] = setting(())
    trusted_proxies: tuple[str, ...] = setting((), cidrs=True)
    static_dir: str = setting("", beside_config=True)
    static_listing: bool = setting(False)
    max_ranges: int = setting(16, lo=1, hi=1000)
    instructor_token: str = setting("")
    allowed_origins: tuple[str, ...] = setting(("localhost", "127.0.0.1", "[::1]"))
    # permessage-deflate (RFC 7692) on the WebSocket endpoints, when a client offers it.
    websocket_deflate: bool = setting(True)
    # Which routes send CORS headers: see netlab.protocols.http.cors.
    cors: str = setting("inspection", choices=cors_modes.MODES)
    access_log: bool = setting(True)
    timezone: str = setting("UTC")
