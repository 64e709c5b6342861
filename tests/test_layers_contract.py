"""The package's import contract (pyproject.toml, checked by lint-imports in CI): it holds for
the package as it is, and an import that runs upwards breaks it."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest

from tests.conftest import SUBPROCESS_TIMEOUT

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LINT_IMPORTS = shutil.which("lint-imports", path=os.path.dirname(sys.executable))

pytestmark = pytest.mark.skipif(LINT_IMPORTS is None, reason="import-linter is not installed")


def lint(package_root: str) -> subprocess.CompletedProcess:
    environment = {**os.environ, "PYTHONPATH": package_root}
    return subprocess.run(
        [LINT_IMPORTS, "--config", os.path.join(REPO, "pyproject.toml"), "--no-cache"],
        capture_output=True,
        text=True,
        env=environment,
        cwd=package_root,
        timeout=SUBPROCESS_TIMEOUT,
    )


def test_the_package_keeps_its_layers():
    done = lint(os.path.join(REPO, "src"))
    assert done.returncode == 0, done.stdout + done.stderr


def test_an_import_from_a_lower_layer_up_breaks_the_contract(tmp_path):
    shutil.copytree(os.path.join(REPO, "src", "mnistlab"), tmp_path / "mnistlab")
    config = tmp_path / "mnistlab" / "core" / "config.py"
    config.write_text(config.read_text() + "\nfrom mnistlab.training import train  # noqa\n")
    done = lint(str(tmp_path))
    assert done.returncode != 0
    assert "mnistlab.core is not allowed to import mnistlab.training" in done.stdout
