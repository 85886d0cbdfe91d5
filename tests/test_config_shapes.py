"""
Config errors of the echo's unit and reply shapes, the UDP echo's
amplify_to and the discard sink's keys: one line naming file, key and value.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from netlab.app.registry import load, parse
from netlab.core.config import ConfigError


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"echo": [{"unit": "word"}]},
         'x.toml: [echo][0].unit = "word": must be one of chunk, line'),
        ({"echo": [{"close_after": -2}]},
         "x.toml: [echo][0].close_after = -2: must be from -1 to 1000000"),
        ({"echo": [{"close_after": 1.5}]},
         "x.toml: [echo][0].close_after = 1.5: must be a whole number"),
        ({"echo": [{}, {"mode": "ok", "prefix": "Your data: "}]},
         'x.toml: [echo][1].prefix = "Your data: ": mode "ok" already puts "OK..."'),
        ({"echo": [{"reply": 42}]},
         "x.toml: [echo][0].reply = 42: must be a string"),
        ({"udp_echo": [{"amplify_to": ["10.0.0.0/8", "lab"]}]},
         'x.toml: [udp_echo][0].amplify_to[1] = "lab": not a CIDR network'),
        ({"udp_echo": [{"prefix": ["a"]}]},
         'x.toml: [udp_echo][0].prefix = ["a"]: must be a string'),
        ({"discard": {"quit": "exit\n"}},
         'x.toml: [discard].quit = "exit\\n": must be a single line'),
        ({"discard": {"close_on_empty_line": "yes"}},
         'x.toml: [discard].close_on_empty_line = "yes": must be true or false'),
    ],
)
def test_shape_errors(data: dict[str, Any], message: str) -> None:
    """Each refused value stops the load with one line naming file, key and value."""
    with pytest.raises(ConfigError) as caught:
        parse(data, "x.toml")
    assert message in str(caught.value)
    assert "\n" not in str(caught.value)


def test_error_from_a_file_names_it(tmp_path: Path) -> None:
    """Read from a file, the message starts with the file's path."""
    path = tmp_path / "netlab.toml"
    path.write_text('[[echo]]\nunit = "paragraph"\n')
    with pytest.raises(ConfigError) as caught:
        load(path)
    assert str(caught.value) == (
        f'{path}: [echo][0].unit = "paragraph": must be one of chunk, line'
    )


def test_defaults() -> None:
    """Left out, the new keys keep today's behaviour, except that echo answers per chunk."""
    config = parse({"discard": {"enabled": True}}, "x.toml")
    echo, udp = config.echo[0], config.udp_echo[0]
    assert (echo.unit, echo.prefix, echo.reply, echo.close_after) == ("chunk", "", "", -1)
    assert (udp.prefix, udp.reply, udp.amplify_to) == ("", "", ("127.0.0.0/8", "::1/128"))
    assert (config.discard.quit, config.discard.close_on_empty_line) == ("", False)
