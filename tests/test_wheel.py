"""The wheel users install: `python -m build`, a fresh venv, and the command it provides.

Built once per test session (about 20 s with the venv): from a copy of the
working tree, so the build's own egg-info never lands in the checkout; as
sdist and then a wheel from that sdist, which is how `python -m build` works
by default and how a release would be made, so a file missing from the sdist
fails here too.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import venv
import zipfile
from dataclasses import dataclass
from pathlib import Path

import pytest

from exporter import __version__
from tests.support.prometheus import REPOSITORY

# What a checkout holds but a build must not see: caches, venvs, earlier builds.
_NOT_SOURCES = (".git", ".venv", "build", "dist", "*.egg-info", "__pycache__", ".*_cache", ".hypothesis")


@dataclass(frozen=True)
class Installed:
    wheel: Path
    bin: Path


@pytest.fixture(scope="session")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Installed:
    work = tmp_path_factory.mktemp("wheel")
    source = work / "source"
    shutil.copytree(REPOSITORY, source, ignore=shutil.ignore_patterns(*_NOT_SOURCES))
    built = subprocess.run(
        [sys.executable, "-m", "build", "--outdir", str(work / "dist"), str(source)],
        capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    assert built.returncode == 0, built.stdout[-4000:] + built.stderr[-4000:]
    [wheel] = (work / "dist").glob("*.whl")
    environment = work / "venv"
    venv.create(environment, with_pip=True)
    pip = subprocess.run(
        [str(environment / "bin" / "python"), "-m", "pip", "install", "--disable-pip-version-check", str(wheel)],
        capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    assert pip.returncode == 0, pip.stdout[-4000:] + pip.stderr[-4000:]
    return Installed(wheel, environment / "bin")


def _run(installed: Installed, *arguments: str) -> subprocess.CompletedProcess[str]:
    # Run outside the checkout so `exporter` can only come from the venv's site-packages.
    return subprocess.run(
        [str(installed.bin / "smtp-tls-exporter"), *arguments],
        capture_output=True, text=True, timeout=120, check=False, cwd=installed.bin,
    )  # fmt: skip


def test_wheel_holds_every_module_of_the_package(installed: Installed) -> None:
    with zipfile.ZipFile(installed.wheel) as wheel:
        in_wheel = {name for name in wheel.namelist() if name.endswith(".py")}
    in_source = {path.relative_to(REPOSITORY).as_posix() for path in (REPOSITORY / "exporter").rglob("*.py")}
    assert in_source - in_wheel == set()
    assert installed.wheel.name.startswith(f"smtp_tls_exporter-{__version__}-")


def test_installed_command_prints_its_version(installed: Installed) -> None:
    completed = _run(installed, "--version")
    assert completed.returncode == 0, completed.stdout + completed.stderr
    assert completed.stdout.strip() == f"smtp-tls-exporter {__version__}"


def test_installed_command_checks_a_config_and_has_its_subcommands(installed: Installed) -> None:
    completed = _run(installed, "--config.file", str(REPOSITORY / "config.example.yml"), "--config.check")
    assert completed.returncode == 0, completed.stdout + completed.stderr
    assert "configuration is valid" in completed.stdout
    for subcommand in ("check", "demo"):
        completed = _run(installed, subcommand, "--help")
        assert completed.returncode == 0, completed.stdout + completed.stderr
        assert f"smtp-tls-exporter {subcommand}" in completed.stdout
