"""
What every connection of one login service shares, with no transport code:
the accounts (the config's C{users} and the database's), the failure limits
per address and per user, the bound on concurrent hashing, tokens, and the
service's events and counters.
"""

from __future__ import annotations

import hashlib
import math
import secrets
from collections.abc import Callable
from typing import Any
from zoneinfo import ZoneInfo

from twisted.internet.defer import Deferred, DeferredSemaphore
from twisted.internet.interfaces import IReactorTime
from twisted.logger import LogLevel

from netlab.core.events import LOGIN, EventLog
from netlab.core.limits import FailureLimit
from netlab.protocols.login.settings import LoginSettings, parse_users, user_key
from netlab.protocols.login.store import LoginStore

# Checked when the name is unknown, so that a wrong name costs the same
# time as a wrong password and the timing does not tell which names exist.
# The hash of a random password nobody kept.
DUMMY_HASH = "scrypt$16384$8$1$TQ7etzSU3kxvKo9RQOHMTQ$bZZFNPUiZzwdLmoIxBjERUHzRURkYYbX9cqwKhMSJwI"

TOKEN_BYTES = 16


def token_digest(token: str) -> str:
    """What is stored of a token: its sha256 (a random token needs no salt)."""
    return hashlib.sha256(token.encode("ascii", "replace")).hexdigest()


def looks_like_token(text: str) -> bool:
    """Whether C{text} has the form of a token this service issues."""
    return len(text) == 2 * TOKEN_BYTES and all(c in "0123456789abcdef" for c in text)


class LoginService:
    """
    The accounts and limits of one C{[login]} service.

    @param verify: checks a password against a hash, off the event loop
        (L{netlab.core.passwords.verify_later}; tests pass their own).
    @param make_hash: hashes a new password, off the event loop.
    """

    def __init__(
        self,
        settings: LoginSettings,
        events: EventLog,
        clock: IReactorTime,
        store: LoginStore,
        verify: Callable[[str, str], Deferred[bool]],
        make_hash: Callable[[str], Deferred[str]],
    ) -> None:
        self.events = events
        self.clock = clock
        self.store = store
        self.verify = verify
        self.make_hash = make_hash
        self.counters = events.counters_for(settings.name)
        self.by_address = FailureLimit(
            settings.address_failures, settings.failure_window, clock.seconds
        )
        self.by_user = FailureLimit(settings.user_failures, settings.failure_window, clock.seconds)
        self.configure(settings)

    def configure(self, settings: LoginSettings) -> None:
        """New settings (a reload): accounts, limits and the zone apply at once."""
        self.settings = settings
        self.name = settings.name
        self.users = parse_users(settings.users)
        self.zone = ZoneInfo(settings.timezone)
        self.by_address.configure(settings.address_failures, settings.failure_window)
        self.by_user.configure(settings.user_failures, settings.failure_window)
        # Checks under way finish on the semaphore they started on.
        self.hashing = DeferredSemaphore(settings.max_hashing)

    # -- accounts -------------------------------------------------------------

    def account(self, name: str) -> tuple[str, str] | None:
        """C{(name as registered, hash)}: the config's users first, then the database's."""
        return self.users.get(user_key(name)) or self.store.user(name)

    def can_register(self) -> bool:
        """Whether one more user may register here."""
        return (
            self.settings.registration == "open"
            and self.store.user_count() < self.settings.max_users
        )

    def check_password(self, password: str, encoded: str) -> Deferred[bool]:
        """Verify in a thread, at most C{max_hashing} at once (the rest wait)."""
        return self.hashing.run(self.verify, password, encoded)

    def new_hash(self, password: str) -> Deferred[str]:
        """Hash a new password in a thread, under the same bound."""
        return self.hashing.run(self.make_hash, password)

    def register(self, name: str, encoded: str) -> None:
        """Keep a new user's hash."""
        self.store.add_user(name, encoded, self.clock.seconds())

    # -- failures ---------------------------------------------------------------

    def wait(self, host: str, name: str) -> int:
        """Whole seconds before C{name} may try from C{host} again (0: now)."""
        left = max(self.by_address.wait(host), self.by_user.wait(user_key(name)))
        return math.ceil(left)

    def failed(self, host: str, name: str) -> bool:
        """Count a failed login in both limits; whether either is now locked."""
        by_address = self.by_address.failed(host)
        by_user = self.by_user.failed(user_key(name))
        return by_address or by_user

    # -- tokens -----------------------------------------------------------------

    def issue_token(self, name: str) -> str | None:
        """A new token for C{name}, valid C{token_ttl} seconds (None: tokens are off)."""
        ttl = self.settings.token_ttl
        if not ttl:
            return None
        token = secrets.token_hex(TOKEN_BYTES)
        now = self.clock.seconds()
        self.store.add_token(token_digest(token), name, now + ttl, now)
        return token

    def token_left(self, name: str, text: str) -> float | None:
        """Seconds left of C{name}'s token C{text}, or None if it is none (or expired)."""
        if not looks_like_token(text):
            return None
        now = self.clock.seconds()
        expires = self.store.token_expires(token_digest(text), name, now)
        return None if expires is None else expires - now

    # -- events -------------------------------------------------------------------

    def count(self, what: str) -> None:
        """Bump one of the service's own counters (logins, failures...)."""
        extra = self.counters.extra
        extra[what] = extra.get(what, 0) + 1

    def event(
        self, action: str, peer: str, user: str | None,
        level: LogLevel = LogLevel.info, detail: str = "", **fields: Any,
    ) -> None:
        """Log one login event; never pass a password or a token."""
        what = f"{action}: {detail}" if detail else action
        self.events.emit(
            LOGIN, self.name, peer, level, action=action, user=user or "-", what=what, **fields
        )
