"""
The README's quick tour, run: each C{$} command of it against the real
daemon with the example config (on free ports, substituted into the
command), with OpenBSD netcat as written, and where the tour says
C{nc -N} also with nmap's C{ncat} and with the README's own C{pync} shell
function; each must print what the README shows.  And no link of the
project's documents points outside the repository.
"""

from __future__ import annotations

import re
import subprocess
import tomllib
from collections.abc import Iterator
from pathlib import Path

import pytest

import course
from course import Course
from helpers import require_tool
from netlab.app.registry import load
from netlab.core.endpoints import split_endpoint

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")
_START = README.index("## A quick tour")
TOUR = README[_START:README.index("\n## ", _START + 1)]

# The daytime answer is the time now: its shape is checked, not its text.
DAYTIME = re.compile(r"\w+, \w+ \d{1,2}, \d{4} \d\d:\d\d:\d\d-UTC")
ADDRESS = re.compile(r"(127\.0\.0\.1|::1)(\"?,?\s+)(\d{4,5})")


def transcripts() -> list[tuple[str, list[str]]]:
    """Each C{$} command of the tour (continuation lines joined) and the lines it shows."""
    lines = TOUR.splitlines()
    found: list[tuple[str, list[str]]] = []
    i = 0
    while i < len(lines):
        if not lines[i].startswith("    $ "):
            i += 1
            continue
        command = [lines[i][6:]]
        while command[-1].endswith("\\"):
            i += 1
            command.append(lines[i][4:])
        i += 1
        shown = []
        while i < len(lines) and lines[i].startswith("    ") and not lines[i].startswith("    $ "):
            shown.append(lines[i][4:])
            i += 1
        found.append(("\n".join(command), shown))
    return found


def pync() -> str:
    """The README's pync shell function, as a shell would read it."""
    start = TOUR.index("    pync() {")
    end = TOUR.index("}\n", TOUR.index('"$@";', start)) + 1
    return "\n".join(line[4:] for line in TOUR[start:end].splitlines())


COMMANDS = [(command, shown) for command, shown in transcripts() if "telnet" not in command]


def test_the_tour_has_its_transcripts() -> None:
    assert len(COMMANDS) >= 11
    assert "pync() {" in pync()


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Course]:
    yield from course.start(tmp_path_factory.mktemp("tour"))


def on_free_ports(command: str, lab: Course) -> str:
    """C{command} with each documented address's port replaced by the one the daemon bound."""
    config = load(course.EXAMPLE, environment=False)
    ports: dict[tuple[str, str, str], int] = {}
    for _, settings in config.services():
        if not settings.enabled:
            continue
        seen: dict[str, int] = {}
        for description in settings.listen:
            kind, args, kwargs = split_endpoint(description)
            kind = "udp" if kind == "udp" else "tcp"
            host = kwargs.get("interface", "127.0.0.1")
            index = seen[kind] = seen.get(kind, -1) + 1
            ports[(host, args[0], kind)] = lab.daemon.ports[(settings.name, kind)][index]
    kind = "udp" if " -u " in command or "SOCK_DGRAM" in command else "tcp"
    return ADDRESS.sub(lambda m: f"{m[1]}{m[2]}{ports[(m[1], m[3], kind)]}", command)


def variants(command: str) -> list[tuple[str, str]]:
    """The command as written, and with ncat and pync where it says nc -N."""
    forms = [("nc", command)]
    if "nc -N" in command:
        forms.append(("ncat", command.replace("nc -N", require_tool("ncat"))))
        forms.append(("pync", pync() + "\n" + command.replace("nc -N", "pync")))
    return forms


@pytest.mark.parametrize(("command", "shown"), COMMANDS, ids=[c for c, _ in COMMANDS])
def test_tour_command(lab: Course, command: str, shown: list[str]) -> None:
    """The command prints what the README shows, with every netcat the tour names."""
    if "nc " in command:
        require_tool("nc")
    for form, text in variants(on_free_ports(command, lab)):
        result = subprocess.run(
            ["bash", "-c", text], capture_output=True, timeout=60, cwd=lab.daemon.cwd,
        )
        printed = result.stdout.decode("utf-8").splitlines()
        assert result.returncode == 0, (form, text, result)
        if "7013" in command:
            assert len(printed) == 1 and DAYTIME.fullmatch(printed[0]), (form, printed)
        elif "7017" in command:  # one of the example's quotes, the shown one among them
            quotes = tomllib.loads(course.EXAMPLE.read_text(encoding="utf-8"))["qotd"]["quotes"]
            assert shown[0] in quotes and len(printed) == 1 and printed[0] in quotes, printed
        else:
            assert printed == shown, (form, text, result.stderr)


def test_links_stay_in_the_repository() -> None:
    """Every relative link of README.md and docs/ names a file of this repository."""
    for document in [ROOT / "README.md", *(ROOT / "docs").glob("*.md")]:
        for target in re.findall(r"\]\(([^)#]+)(?:#[^)]*)?\)", document.read_text()):
            if re.match(r"[a-z]+:", target):
                continue
            path = (document.parent / target).resolve()
            assert path.is_relative_to(ROOT) and path.exists(), (document.name, target)
