"""
The config loader's table-of-strings field type (C{STRING_TABLE}: a field
annotated C{tuple[tuple[str, str], ...]}), on a
kind declared here, so it is tested as the general type any kind may use,
not through the one service that uses it today.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from netlab.app import registry
from netlab.core.config import ConfigError
from netlab.core.kinds import BuildContext, BuiltService, ServiceKind
from netlab.core.settings import StreamSettings, setting


@dataclass(frozen=True, kw_only=True)
class LabelSettings(StreamSettings):
    labels: tuple[tuple[str, str], ...] = setting(())


def build_nothing(settings: LabelSettings, context: BuildContext) -> BuiltService:
    return BuiltService()  # pragma: no cover (never built)


LABELS = ServiceKind(
    section="labels", settings=LabelSettings, many=True,
    default_listen=("tcp:0:interface=127.0.0.1",), build=build_nothing,
)
KINDS = (*registry.KINDS, LABELS)


def load(tmp_path: Path, text: str) -> Any:
    path = tmp_path / "netlab.toml"
    path.write_text(text, encoding="utf-8")
    return registry.load(path, kinds=KINDS)


def test_table_loads_in_file_order(tmp_path: Path) -> None:
    """Inline tables and sub-tables alike, as frozen, hashable pairs in file order."""
    (inline,) = load(tmp_path, '[[labels]]\nlabels = { b = "2", a = "1", "x y" = "" }\n').labels
    assert inline.labels == (("b", "2"), ("a", "1"), ("x y", ""))
    hash(inline)
    (sub,) = load(tmp_path, '[[labels]]\n[labels.labels]\nb = "2"\na = "1"\n').labels
    assert sub.labels == (("b", "2"), ("a", "1"))
    (empty,) = load(tmp_path, "[[labels]]\nlabels = {}\n").labels
    assert empty.labels == ()


NOT_A_TABLE = 'must be a table of strings, e.g. { key = "value" }'


@pytest.mark.parametrize(
    ("value", "key", "shown", "why"),
    [
        ('"a=1"', "labels", '"a=1"', NOT_A_TABLE),
        ('["a", "1"]', "labels", '["a", "1"]', NOT_A_TABLE),
        ("{ a = 1 }", "labels.a", "1", "must be a string"),
        ('{ "a b" = true }', 'labels."a b"', "true", "must be a string"),
        ('{ a = { b = "c" } }', "labels.a", '{ b = "c" }', "must be a string"),
    ],
    ids=["string", "list", "number", "quoted-key", "nested-table"],
)
def test_refused(tmp_path: Path, value: str, key: str, shown: str, why: str) -> None:
    """The message names the file, the entry's own key and its value, on one line."""
    with pytest.raises(ConfigError) as e:
        load(tmp_path, f"[[labels]]\nlabels = {value}\n")
    assert str(e.value) == f"{tmp_path / 'netlab.toml'}: [labels][0].{key} = {shown}: {why}"
