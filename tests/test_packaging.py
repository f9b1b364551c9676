"""The wheel installs the product only; without the repository the sandbox commands say so."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from tests.conftest import REPO

PRODUCT = {"deployments", "flows", "state", "tasks", "webhooks"}

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wheel ``pip wheel .`` builds from this checkout."""
    out = tmp_path_factory.mktemp("dist")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", str(REPO), "--no-deps", "-q", "-w", str(out)],
        check=True,
        capture_output=True,
        timeout=280,
    )
    [built] = out.glob("shopsync-*.whl")
    return built


def test_the_wheel_holds_the_product_packages_only(wheel: Path) -> None:
    names = zipfile.ZipFile(wheel).namelist()
    top = {
        name.split("/", 1)[0] for name in names if not name.split("/", 1)[0].endswith(".dist-info")
    }
    assert top == PRODUCT
    assert "state/migrations/versions/0001_initial_schema.py" in names  # package data ships
    entry_points = next(n for n in names if n.endswith(".dist-info/entry_points.txt"))
    assert "shopsync = deployments.cli:main" in zipfile.ZipFile(wheel).read(entry_points).decode()


def run_installed(wheel: Path, home: Path, *command: str) -> subprocess.CompletedProcess[str]:
    """Run ``python <command>`` with the wheel's packages (unpacked in ``home``) and no
    repository on the path, as after ``pip install shopsync-*.whl`` elsewhere."""
    installed = home / "site"
    if not installed.exists():
        zipfile.ZipFile(wheel).extractall(installed)
    return subprocess.run(
        [sys.executable, *command],
        cwd=home,
        env={**os.environ, "PYTHONPATH": str(installed)},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize(
    ("args", "command"),
    [
        (["demo"], "shopsync demo"),
        (["serve", "--sandbox"], "shopsync serve --sandbox"),
        (["sandbox", "all"], "shopsync sandbox"),
    ],
)
def test_sandbox_commands_say_the_sandbox_is_absent_outside_a_clone(
    wheel: Path, tmp_path: Path, args: list[str], command: str
) -> None:
    result = run_installed(wheel, tmp_path, "-m", "deployments.cli", *args)
    assert result.returncode == 2, result.stdout + result.stderr
    assert result.stderr.strip().splitlines() == [
        f"{command} needs the local sandboxes, which ship with the shopsync repository, not with "
        f"the installed package: run it from a clone (`make .venv/.installed`, then "
        f"`.venv/bin/{command}`)"
    ]
    assert "Traceback" not in result.stdout + result.stderr


def test_the_product_from_the_wheel_runs_without_the_sandbox(wheel: Path, tmp_path: Path) -> None:
    result = run_installed(wheel, tmp_path, "-m", "deployments.cli", "--help")
    assert result.returncode == 0, result.stderr
    assert "demo" in result.stdout
    probe = "import deployments.cli, sys; print(deployments.cli.__file__, 'sandbox' in sys.modules)"
    imported = run_installed(wheel, tmp_path, "-c", probe)
    assert imported.returncode == 0, imported.stderr
    path, sandbox_loaded = imported.stdout.split()
    assert Path(path).is_relative_to(tmp_path / "site")
    assert sandbox_loaded == "False"
