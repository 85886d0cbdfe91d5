"""
The mail store (quotas oldest first, the total cap, surviving a reopen, the
query API a web page lists and shows messages with) and the mail config's
checks (auth = "any" only on loopback, accounts, TLS files, [pop3] needs
[smtp]).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import pytest_twisted
from twisted.internet import reactor

import selfsigned
from netlab.app.registry import parse
from netlab.core.config import ConfigError
from netlab.core.kinds import StartError
from netlab.protocols.mail.kind import MailDatabase
from netlab.protocols.mail.settings import on_loopback
from netlab.protocols.mail.store import Dropped, Envelope, MailStore, Quotas, owns

Stores = Callable[..., tuple[MailStore, list[Dropped]]]
QUOTAS = Quotas(mailbox_messages=3, mailbox_bytes=10_000, max_stored_bytes=20_000)


def envelope(*recipients: str, sender: str = "a@x.test", user: str = "") -> Envelope:
    return Envelope(sender, recipients, user, "127.0.0.1:4000", "pc", False)


@pytest.fixture
def stores() -> Iterator[Stores]:
    made: list[MailStore] = []

    def make(path: str = ":memory:", quotas: Quotas = QUOTAS) -> tuple[MailStore, list[Dropped]]:
        dropped: list[Dropped] = []
        store = MailStore(path, quotas, reactor, on_drop=dropped.append)
        store.open()
        made.append(store)
        return store, dropped

    yield make
    for store in made:
        pytest_twisted.blockon(store.close())


def test_mailbox_quota_drops_the_oldest_first(stores: Stores) -> None:
    """The fourth message to bob drops bob's oldest, not carol's copy of it."""
    store, dropped = stores()
    first = store.deliver("u1", envelope("bob@x.test", "carol@x.test"), b"1" * 100, 1.0)
    for n in range(2, 5):
        store.deliver(f"u{n}", envelope("bob@x.test"), b"n" * 100, float(n))
    assert [m.uid for m in store.mailbox("bob")] == ["u2", "u3", "u4"]
    assert [m.uid for m in store.mailbox("carol")] == ["u1"]
    assert [(d.mailbox, d.message.id, d.why) for d in dropped] == [
        ("bob@x.test", first.id, "over its quota of 3 messages")
    ]


def test_mailbox_bytes_and_total_cap(stores: Stores) -> None:
    store, dropped = stores()
    store.deliver("big1", envelope("bob@x.test"), b"x" * 6000, 1.0)
    store.deliver("big2", envelope("bob@x.test"), b"x" * 6000, 2.0)
    assert [m.uid for m in store.mailbox("bob")] == ["big2"]
    assert dropped[-1].why == "over its quota of 10000 bytes"
    for n in range(3):
        store.deliver(f"c{n}", envelope(f"c{n}@x.test"), b"y" * 6000, 3.0 + n)
    assert store.total_bytes <= 20_000
    assert "big2" not in [m.uid for m in store.messages_for(None)]
    assert dropped[-1].why == "the store is over 20000 bytes"
    assert store.counts() == (3, 18_000, 3)


@pytest_twisted.inlineCallbacks
def test_survives_a_reopen(
    tmp_path: Path, stores: Stores
) -> Iterator[object]:
    """Messages, their envelope and what POP3 removed are all as they were."""
    path = str(tmp_path / "mail.sqlite3")
    store, _ = stores(path)
    kept = store.deliver("k", envelope("bob@x.test", "eve@x.test", user="alice"),
                         b"Subject: k\r\n\r\nk\r\n", 5.0, "k")
    store.deliver("gone", envelope("bob@x.test"), b"g", 6.0)
    store.remove("bob", [m.id for m in store.mailbox("bob") if m.uid == "gone"])
    store.remove("eve", [kept.id])
    yield store.close()
    again, _ = stores(path)
    assert again.messages_for(None) == [kept]
    assert again.data(kept.id) == b"Subject: k\r\n\r\nk\r\n"
    assert [m.uid for m in again.mailbox("bob")] == ["k"]
    assert again.mailbox("eve") == []
    assert again.deliver("next", envelope("z@x.test"), b"z", 7.0).id == kept.id + 2


def test_the_web_query_api(stores: Stores) -> None:
    """A login sees what it sent (as sender or logged-in user) or was sent; None sees all."""
    store, _ = stores()
    one = store.deliver("1", envelope("bob@x.test", sender="alice@x.test"), b"1", 1.0)
    two = store.deliver("2", envelope("carol@y.test", sender="x@z.test", user="alice"), b"2", 2.0)
    three = store.deliver("3", envelope("dave@x.test"), b"3", 3.0)
    assert store.messages_for(None) == [three, two, one]
    assert store.messages_for("alice") == [two, one]
    assert store.messages_for("bob@x.test") == [one]
    assert store.messages_for("nobody") == []
    assert store.message(two.id) == two
    assert store.data(three.id) == b"3"
    assert store.message(99) is None


@pytest.mark.parametrize(
    ("login", "address", "expected"),
    [("bob", "bob@x.test", True), ("BOB", "bob@Y.test", True), ("bob@x.test", "bob@y.test", False),
     ("bob", "bobby@x.test", False), ("bob", "bob", True)],
)
def test_owns(login: str, address: str, expected: bool) -> None:
    assert owns(login, address) is expected


def test_a_bad_path_stops_the_start(tmp_path: Path) -> None:
    store = MailStore(str(tmp_path / "no" / "such" / "dir.sqlite3"), QUOTAS, reactor)
    with pytest.raises(StartError, match=r"mail store .*dir\.sqlite3: cannot open"):
        MailDatabase(store, "smtp").open()


@pytest.mark.parametrize(
    ("description", "loopback"),
    [("tcp:25:interface=127.0.0.1", True), ("tcp6:25:interface=\\:\\:1", True),
     ("tcp:25", False), ("tcp:25:interface=0.0.0.0", False), ("unix:/tmp/s", True),
     ("ssl:465:interface=10.0.0.1:privateKey=k.pem", False),
     ("systemd:domain=INET:index=0", False)],
)
def test_on_loopback(description: str, loopback: bool) -> None:
    assert on_loopback(description) is loopback


@pytest.mark.parametrize(
    ("toml", "message"),
    [
        ('[smtp]\nenabled = true\nlisten = ["tcp:2525"]\n',
         r'\[smtp\]\.listen = \["tcp:2525"\]: "tcp:2525" is reachable from other machines'),
        ('[smtp]\nenabled = true\n[pop3]\nenabled = true\n'
         'listen = ["tcp:1110:interface=0.0.0.0"]\n',
         r"\[pop3\]\.listen = .*reachable from other machines"),
        ('[smtp]\nenabled = true\nauth = "users"\n',
         r'\[smtp\]\.auth = "users": needs at least one NAME:HASH in users'),
        ('[smtp]\nenabled = true\nusers = ["bob:nohash"]\n',
         r'\[smtp\]\.users = .*the hash of "bob"'),
        ('[smtp]\nenabled = true\ntls_certificate = "/no/such.pem"\n',
         r'\[smtp\]\.tls_certificate = "/no/such.pem": cannot read: No such file'),
        ('[pop3]\nenabled = true\n', r"\[pop3\]\.enabled = true: POP3 reads the mail \[smtp\]"),
        ('[smtp]\nenabled = true\nhostname = "a b"\n',
         r'\[smtp\]\.hostname = "a b": must be a host'),
        ('[smtp]\nenabled = true\nmailbox_bytes = 2048\n',
         r"mailbox_bytes = 2048: must be at least"),
        ('[smtp]\nenabled = true\nidle_timeout = 0\n', r"idle_timeout = 0: must be from 1"),
    ],
)
def test_config_errors(toml: str, message: str) -> None:
    import tomllib

    with pytest.raises(ConfigError, match=message):
        parse(tomllib.loads(toml), "netlab.toml")


def test_open_auth_off_loopback_when_confirmed() -> None:
    import tomllib

    config = parse(tomllib.loads(
        '[smtp]\nenabled = true\nlisten = ["tcp:2525"]\nauth_any_off_loopback = true\n'
    ))
    assert config.smtp.auth == "any"


def test_tls_key_that_is_not_the_certificates(tmp_path: Path) -> None:
    """A key that does not match names tls_key."""
    import tomllib

    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    _, cert = selfsigned.write_pem(tmp_path)
    other = tmp_path / "other.pem"
    other.write_bytes(ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()))
    with pytest.raises(ConfigError, match=r"tls_key = .*: the key does not belong"):
        parse(tomllib.loads(
            f'[smtp]\nenabled = true\ntls_certificate = "{cert}"\ntls_key = "{other}"\n'
        ))


@pytest_twisted.inlineCallbacks
def test_store_keeps_no_shared_memory_file(tmp_path: Path, stores: Stores) -> object:
    """As the chat's: no -shm file, which SQLite maps into memory (a fault writing it
    is a SIGBUS that kills the daemon, not an error)."""
    store, _ = stores(str(tmp_path / "mail.sqlite3"))
    store.deliver("u1", envelope("bob@x.test"), b"hello", 1.0)
    yield store.flush()
    assert not (tmp_path / "mail.sqlite3-shm").exists()
