"""Tests for netlab.core.passwords: salted scrypt hashes and their command line."""

from __future__ import annotations

import subprocess
import sys
import threading
from typing import Any

import pytest
import pytest_twisted
from twisted.internet import reactor

from netlab.core import passwords
from netlab.core.passwords import (
    MAX_MEMORY,
    hash_later,
    hash_password,
    hash_problem,
    verify_later,
    verify_password,
)

FAST = 2**10  # a cost low enough for many hashes per test, still a valid scrypt


def fast_hash(password: str) -> str:
    return hash_password(password, n=FAST)


@pytest.mark.parametrize(
    "password", ["hunter2", "correct horse battery staple", "pässwörd ✓ 密码", "x" * 500]
)
def test_round_trip(password: str) -> None:
    """A password verifies against its own hash, which is a well-formed one."""
    encoded = fast_hash(password)
    assert verify_password(password, encoded)
    assert hash_problem(encoded) is None
    assert encoded.startswith(f"scrypt${FAST}$")


def test_default_cost_round_trip() -> None:
    """The default cost, the one the daemon uses, hashes and verifies."""
    encoded = hash_password("hunter2")
    assert encoded.startswith(f"scrypt${passwords.N}${passwords.R}${passwords.P}$")
    assert verify_password("hunter2", encoded)
    assert not verify_password("hunter3", encoded)


def test_salted() -> None:
    """Two hashes of one password differ, and each verifies it."""
    first, second = fast_hash("hunter2"), fast_hash("hunter2")
    assert first != second
    assert first.split("$")[4] != second.split("$")[4]
    assert verify_password("hunter2", first)
    assert verify_password("hunter2", second)


@pytest.mark.parametrize("wrong", ["hunter3", "Hunter2", "hunter2 ", "", "hunter"])
def test_wrong_password(wrong: str) -> None:
    """Any other password, even a near miss, does not verify."""
    assert not verify_password(wrong, fast_hash("hunter2"))


def test_hash_never_contains_password() -> None:
    """The stored form holds neither the password nor its plain encodings."""
    password = "SecretPassphrase"
    encoded = fast_hash(password)
    assert password not in encoded
    assert password.lower() not in encoded.lower()
    assert passwords._b64(password.encode()) not in encoded


def _good_fields() -> list[str]:
    return fast_hash("hunter2").split("$")


def _with(index: int, value: str) -> str:
    fields = _good_fields()
    fields[index] = value
    return "$".join(fields)


def _absurd_n() -> str:
    n = 2**20
    assert 128 * n * passwords.R > MAX_MEMORY
    return _with(1, str(n))


MALFORMED = {
    "empty": "",
    "plain text": "hunter2",
    "wrong scheme": "bcrypt" + fast_hash("hunter2")[len("scrypt"):],
    "too few fields": "$".join(_good_fields()[:5]),
    "too many fields": fast_hash("hunter2") + "$extra",
    "bad base64 salt": _with(4, "not*base64!"),
    "bad base64 key": _with(5, "@@@@"),
    "impossible base64 length": _with(5, "A"),
    "non-numeric N": _with(1, "many"),
    "N not a power of two": _with(1, "1000"),
    "N too small": _with(1, "1"),
    "negative N": _with(1, "-1024"),
    "zero r": _with(2, "0"),
    "zero p": _with(3, "0"),
    "N beyond MAX_MEMORY": _absurd_n(),
    "p beyond MAX_MEMORY": _with(3, str(10**9)),
}

# A key too short to be a real scrypt output: an empty one would make
# hashlib.scrypt fail, and a truncated one would still match (scrypt output
# prefixes are stable), so both are refused as malformed.
MALFORMED_KEYS = {
    "empty key": _with(5, ""),
    "truncated key": _with(5, _good_fields()[5][:8]),
}


@pytest.mark.parametrize(
    "encoded",
    [pytest.param(value, id=name) for name, value in MALFORMED.items()]
    + [pytest.param(value, id=name) for name, value in MALFORMED_KEYS.items()],
)
def test_malformed_hash(encoded: str) -> None:
    """A malformed hash fails verification and has a problem; neither raises."""
    assert verify_password("hunter2", encoded) is False
    problem = hash_problem(encoded)
    assert problem is not None
    assert "python -m netlab.core.passwords" in problem


def run_cli(stdin: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "netlab.core.passwords"],
        input=stdin, capture_output=True, text=True, timeout=60,
    )


def test_command_line_prints_hash() -> None:
    """`python -m netlab.core.passwords` hashes one line of piped stdin."""
    result = run_cli("correct horse\n")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == 1
    assert hash_problem(lines[0]) is None
    assert verify_password("correct horse", lines[0])
    assert "correct horse" not in result.stdout + result.stderr


@pytest.mark.parametrize("stdin", ["\n", "\r\n", ""], ids=["newline", "crlf", "eof"])
def test_command_line_refuses_empty(stdin: str) -> None:
    """An empty password (or none at all) exits 1 with a message and prints no hash."""
    result = run_cli(stdin)
    assert result.returncode == 1
    assert result.stdout == ""
    assert "empty password" in result.stderr


@pytest_twisted.inlineCallbacks
def test_verify_later_off_reactor_thread(monkeypatch: pytest.MonkeyPatch) -> Any:
    """verify_later runs the check in a pool thread and fires True or False."""
    threads: list[int] = []
    original = passwords.verify_password

    def recording(password: str, encoded: str) -> bool:
        threads.append(threading.get_ident())
        return original(password, encoded)

    monkeypatch.setattr(passwords, "verify_password", recording)
    encoded = fast_hash("hunter2")
    right = yield verify_later(reactor, "hunter2", encoded)
    wrong = yield verify_later(reactor, "hunter3", encoded)
    malformed = yield verify_later(reactor, "hunter2", "scrypt$junk")
    assert (right, wrong, malformed) == (True, False, False)
    assert len(threads) == 3
    assert threading.get_ident() not in threads


@pytest_twisted.inlineCallbacks
def test_hash_later() -> Any:
    """hash_later fires with a default-cost hash that verifies."""
    encoded = yield hash_later(reactor, "hunter2")
    assert encoded.startswith(f"scrypt${passwords.N}$")
    assert verify_password("hunter2", encoded)
