"""
Salted scrypt password hashes, for the chat's operator password and
registered nicks: the password itself is never stored.

    python -m netlab.core.passwords

asks for a password twice and prints the hash to paste into the config.
Hashing is deliberately slow, so the daemon verifies in a thread.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import sys
from collections.abc import Callable
from typing import Any

from twisted.internet.defer import Deferred, DeferredSemaphore
from twisted.internet.threads import deferToThreadPool

SCHEME = "scrypt"
N, R, P = 2**14, 8, 1
SALT_BYTES = 16
KEY_BYTES = 32
# scrypt needs 128 * N * R bytes; allow twice the default cost, no more, so a
# hostile hash in a database cannot make verification eat the machine.
MAX_MEMORY = 2 * 128 * N * R + 1024 * 1024


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii").rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.b64decode(text + "=" * (-len(text) % 4), validate=True)


def hash_password(password: str, n: int = N, r: int = R, p: int = P) -> str:
    """A new salted hash of C{password}: C{scrypt$N$R$P$SALT$KEY}."""
    salt = os.urandom(SALT_BYTES)
    key = hashlib.scrypt(
        password.encode("utf-8"), salt=salt, n=n, r=r, p=p, dklen=KEY_BYTES,
        maxmem=MAX_MEMORY,
    )
    return f"{SCHEME}${n}${r}${p}${_b64(salt)}${_b64(key)}"


def _parse(encoded: str) -> tuple[int, int, int, bytes, bytes]:
    scheme, n, r, p, salt, key = encoded.split("$")
    if scheme != SCHEME:
        raise ValueError(f"unknown scheme {scheme!r}")
    values = int(n), int(r), int(p)
    if values[0] < 2 or values[0] & (values[0] - 1) or values[1] < 1 or values[2] < 1:
        raise ValueError("bad scrypt parameters")
    if 128 * values[0] * values[1] * values[2] > MAX_MEMORY:
        raise ValueError("scrypt parameters too costly")
    salt_bytes, key_bytes = _unb64(salt), _unb64(key)
    # A short key would make every password match a truncated hash.
    if len(salt_bytes) < 8 or len(key_bytes) < 16:
        raise ValueError("salt or key too short")
    return (*values, salt_bytes, key_bytes)


def hash_problem(encoded: str) -> str | None:
    """Why C{encoded} is not a hash this module can check, or C{None}."""
    try:
        _parse(encoded)
    except (ValueError, TypeError):
        return (
            "must be a hash from `python -m netlab.core.passwords` "
            "(scrypt$N$R$P$SALT$KEY)"
        )
    return None


def verify_password(password: str, encoded: str) -> bool:
    """Whether C{password} matches C{encoded}; compared in constant time."""
    try:
        n, r, p, salt, key = _parse(encoded)
    except (ValueError, TypeError):
        return False
    candidate = hashlib.scrypt(
        password.encode("utf-8"), salt=salt, n=n, r=r, p=p, dklen=len(key),
        maxmem=MAX_MEMORY,
    )
    return hmac.compare_digest(candidate, key)


def verify_later(reactor: Any, password: str, encoded: str) -> Deferred[bool]:
    """L{verify_password} in the reactor's thread pool, off the event loop."""
    return deferToThreadPool(
        reactor, reactor.getThreadPool(), verify_password, password, encoded
    )


def hash_later(reactor: Any, password: str) -> Deferred[str]:
    """L{hash_password} in the reactor's thread pool, off the event loop."""
    return deferToThreadPool(reactor, reactor.getThreadPool(), hash_password, password)


class HashingQueue:
    """
    A bound on the hashing under way, and so on its memory: each scrypt run
    holds 128 * N * R bytes (16 MiB) while it runs.  At most C{running}
    hashes run at once; at most C{waiting} more wait their turn, and one
    more is refused (L{run} returns C{None}) so the caller can say so
    rather than pile up work and memory without end.
    """

    def __init__(self, running: int, waiting: int) -> None:
        self.running = running
        self.waiting = waiting
        self._semaphore = DeferredSemaphore(running)

    def configure(self, running: int, waiting: int) -> None:
        """New bounds (a reload); hashes under way finish under the old ones."""
        if running != self.running:
            self._semaphore = DeferredSemaphore(running)
        self.running, self.waiting = running, waiting

    def run(self, hash_later: Callable[..., Deferred[Any]], *args: Any) -> Deferred[Any] | None:
        """C{hash_later(*args)} when a slot is free; C{None} if too many already wait."""
        semaphore = self._semaphore
        if semaphore.tokens == 0 and len(semaphore.waiting) >= self.waiting:
            return None
        return semaphore.run(hash_later, *args)


def main(argv: list[str] | None = None) -> int:
    """Ask for a password (twice) and print its hash for the config."""
    import getpass

    if sys.stdin.isatty():
        first = getpass.getpass("Password: ")
        if getpass.getpass("Again: ") != first:
            print("The two passwords differ.", file=sys.stderr)
            return 1
    else:
        first = sys.stdin.readline().rstrip("\r\n")
    if not first:
        print("An empty password is not a password.", file=sys.stderr)
        return 1
    print(hash_password(first))
    return 0


if __name__ == "__main__":
    sys.exit(main())
