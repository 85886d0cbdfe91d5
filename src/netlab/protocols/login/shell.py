"""
The tiny shell a logged-in user gets: a few commands with fixed answers,
plain Python with no transport code, so its answers are tested directly.

It is a prop for the course's telnetlib exercise (log in, C{ls},
C{exit}), not a way into the machine: nothing here reads a file, runs a
program or learns anything of the server beyond the time.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

FILES = ("README", "lab1.py", "notes.txt")

HELP = (
    "Commands: ls, whoami, date, pwd, help, exit (or logout).",
)


@dataclass(frozen=True)
class Reply:
    """What a command line gets: lines of output, and whether the session ends."""

    lines: tuple[str, ...] = ()
    done: bool = False


def prompt(user: str) -> str:
    """The shell prompt, Unix-style: C{alice@netlab:~$ }."""
    return f"{user}@netlab:~$ "


def date_line(now: float, zone: ZoneInfo) -> str:
    """C{date}'s answer: C{Sat Nov 21 10:56:31 UTC 2026}, in the configured zone."""
    moment = datetime.fromtimestamp(now, zone)
    return moment.strftime("%a %b %e %H:%M:%S %Z %Y")


def run(line: str, user: str, now: float, zone: ZoneInfo) -> Reply:
    """The answer to one command line typed by C{user} at time C{now}."""
    words = line.split()
    if not words:
        return Reply()
    command, args = words[0], words[1:]
    if command in ("exit", "logout"):
        return Reply(("logout",), done=True)
    if command == "ls":
        return Reply(_ls([a for a in args if not a.startswith("-")]))
    if command == "whoami":
        return Reply((user,))
    if command == "pwd":
        return Reply((f"/home/{user}",))
    if command == "date":
        return Reply((date_line(now, zone),))
    if command == "help":
        return Reply(HELP)
    return Reply((f"-sh: {command}: command not found",))


def _ls(names: list[str]) -> tuple[str, ...]:
    if not names:
        return ("  ".join(FILES),)
    return tuple(
        name if name in FILES else f"ls: cannot access '{name}': No such file or directory"
        for name in names
    )
