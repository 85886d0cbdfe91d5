"""Tests for the netlab operator command, run as a real subprocess."""

from __future__ import annotations

import json
import re
import socket
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from daemon import TWISTD, Daemon, echo_only
from netlab import DISTRIBUTION, __version__
from netlab.app.registry import parse
from netlab.core.passwords import verify_password

NETLAB = str(Path(sys.executable).with_name("netlab"))


def free_port() -> int:
    """A loopback TCP port nothing listens on now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])

ROOT = Path(__file__).resolve().parents[1]


def run(*args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [NETLAB, *args], input=stdin, capture_output=True, text=True, timeout=60
    )


def test_check_config_prints_effective_config() -> None:
    """check-config on the example prints the effective config as JSON and exits 0."""
    result = run("check-config", str(ROOT / "examples" / "netlab.toml"))
    assert result.returncode == 0, result.stderr
    config = json.loads(result.stdout)
    assert config["chat"]["default_room"] == "#lobby"
    assert config["echo"][0]["listen"][0] == "tcp:7007:interface=127.0.0.1"
    assert result.stderr.strip().endswith(": OK")


def test_check_config_error(tmp_path: Path) -> None:
    """check-config names file, key and value of an error and exits 1."""
    bad = tmp_path / "bad.toml"
    bad.write_text('[http]\nmax_body = -1\n')
    result = run("check-config", str(bad))
    assert result.returncode == 1
    assert f"{bad}: [http].max_body = -1: must be from 0 to 1073741824" in result.stderr
    assert result.stdout == ""


def test_check_config_systemd_names_not_resolved(tmp_path: Path) -> None:
    """A systemd: listen string is checked for form only, outside systemd."""
    config = tmp_path / "unit.toml"
    config.write_text('[[echo]]\nlisten = ["systemd:domain=INET:name=echo"]\n')
    assert run("check-config", str(config)).returncode == 0


def test_example_config_prints_the_example(monkeypatch: pytest.MonkeyPatch) -> None:
    """example-config prints examples/netlab.toml as installed, and it is a valid config."""
    result = run("example-config")
    assert result.returncode == 0, result.stderr
    assert result.stdout == (ROOT / "examples" / "netlab.toml").read_text()
    # Read as text, with no file: its relative paths (static/, tls/) are the folder's.
    monkeypatch.chdir(ROOT / "examples")
    parse(tomllib.loads(result.stdout), environment=False)


def test_example_config_into_a_folder_runs_as_is(tmp_path: Path) -> None:
    """example-config DIR writes netlab.toml and the static/ and tls/ it names; never
    overwrites."""
    lab = tmp_path / "lab"
    result = run("example-config", str(lab))
    assert result.returncode == 0, result.stderr
    assert (lab / "netlab.toml").read_text() == (ROOT / "examples" / "netlab.toml").read_text()
    for folder in ("static", "tls"):
        assert sorted(p.name for p in (lab / folder).iterdir()) == sorted(
            p.name for p in (ROOT / "examples" / folder).iterdir()
        )
    assert run("check-config", str(lab / "netlab.toml")).returncode == 0
    again = run("example-config", str(lab))
    assert again.returncode == 1
    assert again.stderr == f"{lab / 'netlab.toml'}: already exists; not overwritten\n"


def test_hash_password() -> None:
    """hash-password prints a salted hash of the password read from stdin."""
    result = run("hash-password", stdin="sesame\n")
    assert result.returncode == 0
    encoded = result.stdout.strip()
    assert verify_password("sesame", encoded)
    assert "sesame" not in encoded


def test_version() -> None:
    """version names netlab, the name it is installed under, and Twisted."""
    result = run("version")
    assert result.returncode == 0
    assert result.stdout.startswith(f"netlab {__version__} (netlab-daemon on PyPI)\nTwisted ")


def test_twistd_version_names_netlab() -> None:
    """twistd netlab --version says netlab's version too, not only Twisted's."""
    result = subprocess.run(
        [TWISTD, "netlab", "--version"], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == run("version").stdout


def test_distribution_name_is_used_everywhere() -> None:
    """
    The project installs as netlab-daemon (PyPI's netlab is another
    project): pyproject says so, and nothing tells anyone to pip install
    netlab, which would install that other project.
    """
    import importlib.metadata
    import tomllib

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["name"] == DISTRIBUTION == "netlab-daemon"
    assert importlib.metadata.version(DISTRIBUTION) == __version__
    documents = [ROOT / "README.md", ROOT / "docs" / "ARCHITECTURE.md"]
    documents += [path for path in (ROOT / "contrib").rglob("*") if path.is_file()]
    for document in documents:
        text = document.read_text()
        assert not re.search(r"pip install netlab\b(?!-)", text), document


# A config error, whichever kind, is one line on standard error naming the
# file (and the key and value when there is one), nothing on standard
# output, and status 1: from twistd and from check-config alike.
CONFIG_ERRORS = {
    "typo-key": (
        "[[echo]]\nmod = 'upper'\n",
        '[echo][0].mod = "upper": unknown key (known: ',
    ),
    "bad-toml": ("[[echo]\n", ": not valid TOML: "),
    "bad-endpoint": (
        '[[echo]]\nlisten = ["tcp:25001:interfce=127.0.0.1"]\n',
        '[echo][0].listen[0] = "tcp:25001:interfce=127.0.0.1": '
        'unknown parameter "interfce" for tcp (known: port, interface, backlog)',
    ),
    "missing-file": (None, ": cannot read: No such file or directory"),
}


@pytest.mark.parametrize("command", ["twistd", "check-config"])
@pytest.mark.parametrize("case", sorted(CONFIG_ERRORS))
def test_config_error_is_one_line(tmp_path: Path, command: str, case: str) -> None:
    text, expected = CONFIG_ERRORS[case]
    path = tmp_path / "netlab.toml"
    if text is not None:
        path.write_text(text)
    argv = (
        [TWISTD, "-n", "netlab", "--config", str(path)] if command == "twistd"
        else [NETLAB, "check-config", str(path)]
    )
    result = subprocess.run(argv, capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert result.returncode == 1, result
    assert result.stdout == ""
    assert result.stderr.count("\n") == 1, result.stderr
    assert result.stderr.startswith(f"{path}{expected}" if expected.startswith(":")
                                    else f"{path}: {expected}"), result.stderr


def test_foreground_writes_no_pidfile(tmp_path: Path) -> None:
    """
    twistd -n netlab, run twice in one folder without --pidfile, writes no
    twistd.pid, so the second run says why it cannot start (the port is
    taken), not "Another twistd server is running"; a named pid file is
    still written.
    """
    port = free_port()
    config = tmp_path / "netlab.toml"
    config.write_text(echo_only(listen=f"tcp:{port}:interface=127.0.0.1"))
    first = Daemon(tmp_path, "--config", str(config), pidfile=None)
    try:
        assert not (tmp_path / "twistd.pid").exists()
        second = subprocess.run(
            [TWISTD, "-n", "netlab", "--config", str(config)],
            cwd=tmp_path, capture_output=True, text=True, timeout=60,
        )
        assert second.returncode == 1
        assert "Another twistd server" not in second.stdout + second.stderr
        assert (
            f"echo: cannot listen on tcp:{port}:interface=127.0.0.1: Address already in use"
            in second.stdout
        ), second.stdout
        assert first.stop() == 0, first.log()
    finally:
        first.kill()
    named = Daemon(tmp_path, "--config", str(config), pidfile="./netlab.pid")
    try:
        assert (tmp_path / "netlab.pid").read_text().strip() == str(named.process.pid)
        assert named.stop() == 0, named.log()
    finally:
        named.kill()
