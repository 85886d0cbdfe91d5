"""
The C{netlab} command, for operators:

    netlab check-config FILE   validate a config and print the effective one
    netlab hash-password       make a hash for [chat] oper_password_hash
    netlab example-config [DIR]  print the documented example config, or
                               write it and its static/ and tls/ folders into DIR
    netlab version             print netlab's and Twisted's versions

The daemon itself runs under twistd (C{twistd -n netlab}); this command
never starts it.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path

from netlab import version_lines


def check_config(path: str) -> int:
    """Validate C{path}; print the effective config as JSON (0) or the error (1)."""
    from netlab.app.registry import load
    from netlab.core.config import ConfigError

    try:
        # systemd: names only resolve under systemd, so they are checked for
        # form here, not looked up.
        config = load(path, environment=False)
    except ConfigError as e:
        print(e, file=sys.stderr)
        return 1
    effective = {
        "source": config.source,
        "log": dataclasses.asdict(config.log),
        "daemon": dataclasses.asdict(config.daemon),
        "access": dataclasses.asdict(config.access),
        **{
            section: [dataclasses.asdict(s) for s in value] if isinstance(value, tuple)
            else dataclasses.asdict(value)
            for section, value in config.sections.items()
        },
    }
    print(json.dumps(effective, indent=2))
    print(f"{path}: OK", file=sys.stderr)
    return 0


# What the example config names beside itself: the files /static/ serves, and
# the mail services' loopback-only certificate.
EXAMPLE_FOLDERS = ("static", "tls")


def example_config(folder: str | None) -> int:
    """
    Print the example config (every section and key, documented), or write
    it into C{folder} with the C{static/} and C{tls/} folders it names, so that
    C{twistd -n netlab --config FOLDER/netlab.toml} runs as it is.
    """
    from importlib.resources import files

    example = files("netlab").joinpath("examples")
    text = example.joinpath("netlab.toml").read_text(encoding="utf-8")
    if folder is None:
        sys.stdout.write(text)
        return 0
    target = Path(folder)
    config = target / "netlab.toml"
    if config.exists():
        print(f"{config}: already exists; not overwritten", file=sys.stderr)
        return 1
    try:
        for folder_name in EXAMPLE_FOLDERS:
            (target / folder_name).mkdir(parents=True, exist_ok=True)
            for item in example.joinpath(folder_name).iterdir():
                if item.is_file():
                    (target / folder_name / item.name).write_bytes(item.read_bytes())
        config.write_text(text, encoding="utf-8")
    except OSError as e:
        print(f"{target}: cannot write: {e.strerror or e}", file=sys.stderr)
        return 1
    print(f"wrote {config}, {target / 'static'}/ and {target / 'tls'}/; run it with: "
          f"twistd -n netlab --config {config}", file=sys.stderr)
    return 0


def hash_password() -> int:
    """Ask for a password (twice at a terminal) and print its scrypt hash."""
    from netlab.core.passwords import main

    return main([])


def version() -> int:
    """Print the versions that matter for a bug report."""
    print("\n".join(version_lines()))
    return 0


def main(argv: list[str] | None = None) -> int:
    """Run one C{netlab} subcommand; its exit status."""
    parser = argparse.ArgumentParser(
        prog="netlab",
        description="Operator tools for the netlab daemon (run it with: twistd -n netlab).",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    check = commands.add_parser("check-config", help="validate a config file and print it")
    check.add_argument("file", help="the TOML config file")
    commands.add_parser(
        "hash-password", help="hash a password for [chat] oper_password_hash"
    )
    example = commands.add_parser(
        "example-config",
        help="print the documented example config, or write it (and static/, tls/) into DIR",
    )
    example.add_argument(
        "dir", nargs="?", help="a folder to write netlab.toml, static/ and tls/ into"
    )
    commands.add_parser("version", help="print the versions of netlab, Twisted and Python")
    args = parser.parse_args(argv)
    if args.command == "check-config":
        return check_config(args.file)
    if args.command == "hash-password":
        return hash_password()
    if args.command == "example-config":
        return example_config(args.dir)
    return version()


if __name__ == "__main__":
    sys.exit(main())
