"""
The layers contract (pyproject.toml, run by scripts/test as lint-imports)
holds for the tree, and fails on a wrong-way import: a copy of the
package in which core/ imports a protocol is refused.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
LINT_IMPORTS = Path(sys.executable).parent / "lint-imports"


def lint_imports(src: Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    """Run the contract of C{cwd}/pyproject.toml against the package in C{src}."""
    env = {**os.environ, "PYTHONPATH": str(src)}
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache"], cwd=cwd, env=env,
        capture_output=True, text=True, timeout=120,
    )


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """A copy of the package and its pyproject.toml."""
    if not LINT_IMPORTS.exists():
        pytest.skip("lint-imports is not installed (pip install -e '.[test]')")
    shutil.copytree(ROOT / "src" / "netlab", tmp_path / "src" / "netlab",
                    ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    return tmp_path


def test_contract_kept(tree: Path) -> None:
    """The tree as it is keeps the contract."""
    result = lint_imports(tree / "src", tree)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 kept, 0 broken" in result.stdout


@pytest.mark.parametrize(
    ("module", "wrong"),
    [
        ("core/limits.py", "import netlab.protocols.echo"),
        ("core/events.py", "from netlab.app import registry"),
        ("protocols/echo.py", "from netlab.app.service import NetlabService"),
    ],
)
def test_wrong_way_import_breaks_it(tree: Path, module: str, wrong: str) -> None:
    """An import from a lower layer up into a higher one fails the check."""
    path = tree / "src" / "netlab" / module
    path.write_text(path.read_text() + f"\n{wrong}  # noqa\n")
    result = lint_imports(tree / "src", tree)
    assert result.returncode != 0, result.stdout
    assert "BROKEN" in result.stdout
