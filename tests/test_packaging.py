"""
Tests that netlab installs as a twistd plugin: the dropin is found from a
subprocess, after both a regular and an editable install in a fresh venv.
"""

from __future__ import annotations

import shutil
import subprocess
import sysconfig
import venv
from pathlib import Path

import pytest

from daemon import TWISTD

ROOT = Path(__file__).resolve().parents[1]
OPTIONS = ("--config", "--log-level", "--log-format", "--log-file")
PACKAGED_ASSETS = ("netlab.js", "image.png", "image.jpeg", "image.webp", "image.svg")


def test_twistd_lists_plugin() -> None:
    """`twistd --help` run as a subprocess lists the netlab plugin."""
    result = subprocess.run([TWISTD, "--help"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0
    assert any(line.split()[:1] == ["netlab"] for line in result.stdout.splitlines())


def test_plugin_help_documents_options() -> None:
    """`twistd netlab --help` documents every option."""
    result = subprocess.run(
        [TWISTD, "netlab", "--help"], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0
    for option in OPTIONS:
        assert option in result.stdout


def test_dropin_has_no_package_init() -> None:
    """src/twisted and src/twisted/plugins stay namespace folders, without __init__.py."""
    assert not (ROOT / "src" / "twisted" / "__init__.py").exists()
    assert not (ROOT / "src" / "twisted" / "plugins" / "__init__.py").exists()
    assert "dropin.cache" in (ROOT / ".gitignore").read_text().split()


@pytest.mark.parametrize("editable", [False, True], ids=["regular", "editable"])
def test_fresh_venv_install(tmp_path: Path, editable: bool) -> None:
    """After pip install (regular or -e) in a fresh venv, twistd finds netlab."""
    project = tmp_path / "project"
    project.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, project / name)
    # src/netlab/examples links to examples/: both, links kept as links.
    for folder in ("src", "examples"):
        shutil.copytree(
            ROOT / folder, project / folder, symlinks=True,
            ignore=shutil.ignore_patterns("__pycache__", "*.egg-info", "dropin.cache"),
        )
    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=False)
    python = env_dir / "bin" / "python"
    # The fresh venv borrows this environment's pip, Twisted and setuptools
    # (a .pth adds a path, not its .pth files, so netlab itself stays
    # invisible) instead of downloading them again.
    site = subprocess.run(
        [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True, text=True, check=True,
    ).stdout.strip()
    Path(site, "borrowed.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    before = subprocess.run(
        [python, "-c", "import netlab"], capture_output=True, text=True
    )
    assert before.returncode != 0, "netlab must not be importable before installing"
    install = [python, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation"]
    install += ["-e", str(project)] if editable else [str(project)]
    subprocess.run(install, check=True, capture_output=True, timeout=300)
    # twistd's script lives in the borrowed environment; run it with the
    # fresh venv's interpreter so that venv's sys.path is the one scanned.
    twistd_cmd = [str(python), "-c", "from twisted.scripts.twistd import run; run()"]
    listing = subprocess.run(
        [*twistd_cmd, "--help"], capture_output=True, text=True, timeout=60, cwd=tmp_path
    )
    assert "netlab" in listing.stdout, listing.stdout + listing.stderr
    help_text = subprocess.run(
        [*twistd_cmd, "netlab", "--help"], capture_output=True, text=True, timeout=60,
        cwd=tmp_path,
    )
    assert help_text.returncode == 0, help_text.stderr
    for option in OPTIONS:
        assert option in help_text.stdout
    where = subprocess.run(
        [python, "-c", "import netlab; print(netlab.__file__)"],
        capture_output=True, text=True, check=True, cwd=tmp_path,
    ).stdout
    assert (str(project) in where) == editable
    assets = subprocess.run(
        [python, "-c", "import importlib.resources as r; "
         "folder = r.files('netlab.protocols.http').joinpath('assets'); "
         f"print([folder.joinpath(name).is_file() for name in {PACKAGED_ASSETS!r}])"],
        capture_output=True, text=True, check=True, cwd=tmp_path,
    ).stdout.strip()
    assert assets == str([True] * len(PACKAGED_ASSETS)), (
        "the dashboard's script and httpbin's images must be installed with the package"
    )
    example = subprocess.run(
        [python, "-c", "from netlab.cli import main; main(['example-config'])"],
        capture_output=True, text=True, check=True, cwd=tmp_path,
    ).stdout
    assert example == (ROOT / "examples" / "netlab.toml").read_text(), (
        "the example config must be installed with the package"
    )
