"""Config errors of the chat, UDP chat, web, access and systemd-udp settings: file, key, value."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from netlab.app.registry import parse
from netlab.core.config import ConfigError


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"chat": {"default_room": "lobby"}},
         'x.toml: [chat].default_room = "lobby": must be # and 1 to 16 of letters'),
        ({"chat": {"timezone": "Mars/Olympus"}},
         'x.toml: [chat].timezone = "Mars/Olympus": unknown time zone'),
        ({"chat": {"motd": "hi\x1b[2J"}},
         'x.toml: [chat].motd = "hi\\u001b[2J": must not contain control characters'),
        ({"chat": {"oper_password_hash": "plaintext"}},
         'x.toml: [chat].oper_password_hash = "plaintext": must be a hash from'),
        ({"chat": {"reserved_nicks": ["ok", "not ok"]}},
         'x.toml: [chat].reserved_nicks = ["ok", "not ok"]: "not ok" is not a nick'),
        ({"chat": {"idle_timeout": 60, "idle_warning": 60}},
         "x.toml: [chat].idle_warning = 60.0: must be less than idle_timeout"),
        ({"chat": {"enabled": False}, "udp_chat": {"enabled": True}},
         "x.toml: [udp_chat].enabled = true: the UDP chat joins the [chat] rooms"),
        ({"udp_chat": {"max_members_per_host": 0}},
         "x.toml: [udp_chat].max_members_per_host = 0: must be from 1 to 100000"),
        ({"udp_chat": {"open_to": ["everyone"]}},
         'x.toml: [udp_chat].open_to[0] = "everyone": not a CIDR network'),
        ({"echo": [{"log_payload": "yes"}]},
         'x.toml: [echo][0].log_payload = "yes": must be true or false'),
        ({"discard": {"log_payload": 1}},
         "x.toml: [discard].log_payload = 1: must be true or false"),
        ({"chat": {"log_payload": True}},
         "x.toml: [chat].log_payload = true: unknown key"),
        ({"access": {"deny": ["not-a-network"]}},
         'x.toml: [access].deny[0] = "not-a-network": not a CIDR network'),
        ({"echo": [{"allow": ["10.0.0.0/33"]}]},
         'x.toml: [echo][0].allow[0] = "10.0.0.0/33": not a CIDR network'),
        ({"udp_echo": [{"listen": ["systemd-udp:port=7"]}]},
         "systemd-udp needs exactly one of name=NAME or index=N"),
        ({"udp_echo": [{"listen": ["systemd-udp:index=x"]}]}, "index \"x\" is not a number"),
        ({"udp_echo": [{"listen": ["systemd-udp:name=nowhere"]}]},
         "no inherited socket named \"nowhere\""),
        ({"http": {"max_body": -1}},
         "x.toml: [http].max_body = -1: must be from 0 to 1073741824"),
        ({"http": {"max_ranges": 0}},
         "x.toml: [http].max_ranges = 0: must be from 1 to 1000"),
        ({"http": {"cors": "everything"}},
         'x.toml: [http].cors = "everything": must be one of inspection, all, off'),
    ],
)
def test_section_errors(data: dict[str, Any], message: str) -> None:
    """Each refused value stops the load with one line naming file, key and value."""
    with pytest.raises(ConfigError) as caught:
        parse(data, "x.toml")
    assert message in str(caught.value)
    assert "\n" not in str(caught.value)


def test_static_dir_must_exist(tmp_path: Path) -> None:
    """A static_dir that is not a directory is refused."""
    missing = tmp_path / "nowhere"
    with pytest.raises(ConfigError) as caught:
        parse({"http": {"static_dir": str(missing)}}, "x.toml")
    assert str(caught.value) == f'x.toml: [http].static_dir = "{missing}": is not a directory'


def test_systemd_udp_form_only_outside_systemd() -> None:
    """check-config (environment=False) accepts a well-formed systemd-udp name."""
    config = parse({"udp_echo": [{"listen": ["systemd-udp:name=echo-udp"]}]}, "x.toml",
                   environment=False)
    assert config.udp_echo[0].listen == ("systemd-udp:name=echo-udp",)
