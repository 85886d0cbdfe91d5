"""Tests for the netlab operator command, run as a real subprocess."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from netlab.core.passwords import verify_password

NETLAB = str(Path(sys.executable).with_name("netlab"))
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


def test_hash_password() -> None:
    """hash-password prints a salted hash of the password read from stdin."""
    result = run("hash-password", stdin="sesame\n")
    assert result.returncode == 0
    encoded = result.stdout.strip()
    assert verify_password("sesame", encoded)
    assert "sesame" not in encoded


def test_version() -> None:
    """version names netlab and Twisted."""
    result = run("version")
    assert result.returncode == 0
    assert result.stdout.startswith("netlab 0.1.0\nTwisted ")
