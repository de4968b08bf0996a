"""The architecture is checked: the import-linter contracts in pyproject.toml hold, and they bite."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def lint_imports(cwd: Path) -> subprocess.CompletedProcess:
    """Run import-linter with the project's contracts on the packages found first on the path from `cwd`."""
    environment = {**os.environ, "PYTHONPATH": str(cwd)}
    return subprocess.run([sys.executable, "-c", "from importlinter.cli import lint_imports_command as run; run()",
                           "--no-cache", str(ROOT / "pyproject.toml")],
                          cwd=cwd, env=environment, capture_output=True, text=True, timeout=120)


def test_the_layers_hold():
    checked = lint_imports(ROOT)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "3 kept, 0 broken" in checked.stdout


def test_a_forbidden_import_is_caught(tmp_path):
    for package in ("bot", "core", "prompts", "migrations"):
        shutil.copytree(ROOT / package, tmp_path / package, ignore=shutil.ignore_patterns("__pycache__"))
    # The domain reaching up into the engine, and the engine into a chat library: both forbidden.
    (tmp_path / "core" / "domain" / "shortcut.py").write_text("from core.engine import pipeline\n")
    (tmp_path / "core" / "engine" / "chatty.py").write_text("import telegram\n")
    checked = lint_imports(tmp_path)
    assert checked.returncode == 1, checked.stdout + checked.stderr
    assert "core.domain.shortcut -> core.engine.pipeline" in checked.stdout
    assert "core.engine.chatty -> telegram" in checked.stdout
    assert "2 broken" in checked.stdout
