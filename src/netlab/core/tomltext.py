"""
Values written as TOML writes them, for error messages about a TOML file:
a refused value is quoted the way the user typed it (C{"tcp:7007"},
C{["a", "b"]}, C{true}), never as a Python repr (C{'tcp:7007'}, C{True}).
"""

from __future__ import annotations

import re
from collections.abc import Mapping

_ESCAPES = {"\\": "\\\\", '"': '\\"', "\n": "\\n", "\r": "\\r", "\t": "\\t"}

_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")


def _control(c: str) -> str:
    return f"\\u{ord(c):04x}" if ord(c) < 32 or ord(c) == 127 else c


def toml_value(value: object) -> str:
    """C{value} as TOML would write it, on one line."""
    if isinstance(value, str):
        return '"' + "".join(_ESCAPES.get(c) or _control(c) for c in value) + '"'
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Mapping):
        if not value:
            return "{}"
        return "{ " + ", ".join(f"{toml_key(k)} = {toml_value(v)}" for k, v in value.items()) + " }"
    if isinstance(value, list | tuple):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    return repr(value)


def toml_key(key: str) -> str:
    """A table key as TOML would write it: bare if it can be, else quoted."""
    return key if _BARE_KEY.fullmatch(key) else toml_value(key)


__all__ = ["toml_key", "toml_value"]
