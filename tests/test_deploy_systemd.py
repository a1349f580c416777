"""deploy/systemd/: the hardened unit and the config it is meant to run with.

`systemd-analyze verify` insists that ExecStart's binary exists, and the
unit's is where an installation puts it (/opt/smtp-tls-exporter/bin/...),
not where the tests have it. So the checks run on a copy of the unit whose
ExecStart names this venv's installed script instead; that one line is the
only difference, and a test asserts as much.
"""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.support.environment import require
from tests.support.namespaces import EXPORTER_SCRIPT, private_run_unavailable, run_with_private_run
from tests.support.prometheus import REPOSITORY

UNIT_NAME = "smtp-tls-exporter.service"
UNIT = REPOSITORY / "deploy" / "systemd" / UNIT_NAME
CONFIG = REPOSITORY / "deploy" / "systemd" / "config.yml"
INSTALLED_BINARY = "/opt/smtp-tls-exporter/bin/smtp-tls-exporter"
# Under DynamicUser every file is somebody else's, so there is room for a
# score above the best; "OK" in systemd-analyze's words ends below 2.0.
MAX_EXPOSURE = 2.0

Directive = tuple[str, str, str]  # section, key, value


def _directives(text: str) -> list[Directive]:
    """Every (section, key, value) in order, continuation lines joined; repeated keys stay repeated."""
    directives: list[Directive] = []
    section = ""
    for raw_line in re.sub(r"\\\n\s*", " ", text).splitlines():
        line = raw_line.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            section = line.strip("[]")
            continue
        key, _, value = line.partition("=")
        directives.append((section, key.strip(), value.strip()))
    return directives


def _service(key: str) -> list[str]:
    return [value for section, name, value in _directives(UNIT.read_text()) if section == "Service" and name == key]


def _one(key: str) -> str:
    [value] = _service(key)
    return value


def _unit_for_this_machine(directory: Path) -> Path:
    text = UNIT.read_text()
    assert text.count(INSTALLED_BINARY) == 1, "ExecStart should be the only place naming the binary"
    assert EXPORTER_SCRIPT.exists(), f"{EXPORTER_SCRIPT}: the tests' venv has no console script"
    copy = directory / UNIT_NAME
    copy.write_text(text.replace(INSTALLED_BINARY, str(EXPORTER_SCRIPT)))
    return copy


def _systemd_analyze(*arguments: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["systemd-analyze", *arguments], capture_output=True, text=True, timeout=120, check=False)


def _missing_systemd_analyze() -> str | None:
    return None if shutil.which("systemd-analyze") else "systemd-analyze is not installed (Debian package systemd)"


def test_unit_has_the_hardening_the_issue_asks_for() -> None:
    assert _one("DynamicUser") == "yes"
    assert _one("ProtectSystem") == "strict"
    assert _one("NoNewPrivileges") == "yes"
    assert _one("CapabilityBoundingSet") == ""
    assert _one("AmbientCapabilities") == ""
    assert set(_one("RestrictAddressFamilies").split()) == {"AF_INET", "AF_INET6", "AF_UNIX"}
    assert _one("ExecReload") == "kill -HUP $MAINPID"
    assert _one("StateDirectory") == "smtp-tls-exporter"
    executable, *arguments = shlex.split(_one("ExecStart"))
    assert executable == INSTALLED_BINARY
    assert arguments == ["--config.file", "/etc/smtp-tls-exporter/config.yml", "--web.listen-address", ":10587"]


def test_the_credential_is_where_the_config_reads_the_password() -> None:
    name, _, source = _one("LoadCredential").partition(":")
    assert source == "/etc/smtp-tls-exporter/smtp-password"
    # systemd.exec(5): $CREDENTIALS_DIRECTORY is /run/credentials/<unit name>.
    assert f"password_file: /run/credentials/{UNIT_NAME}/{name}\n" in CONFIG.read_text()


def test_systemd_analyze_verify_accepts_the_unit(tmp_path: Path) -> None:
    require(_missing_systemd_analyze(), "systemd-analyze verify")
    completed = _systemd_analyze("verify", str(_unit_for_this_machine(tmp_path)))
    assert completed.returncode == 0, completed.stdout + completed.stderr
    # Warnings (an unknown key, a misspelt section) do not change the status.
    assert completed.stderr == "", completed.stderr


def test_systemd_analyze_verify_catches_a_broken_unit(tmp_path: Path) -> None:
    """The check above can fail: a misspelt directive is reported."""
    require(_missing_systemd_analyze(), "systemd-analyze verify")
    unit = _unit_for_this_machine(tmp_path)
    unit.write_text(unit.read_text().replace("NoNewPrivileges=yes", "NoNewPrivilege=yes"))
    completed = _systemd_analyze("verify", str(unit))
    assert "'NoNewPrivilege'" in completed.stderr, completed.stderr


def test_exposure_score_is_ok(tmp_path: Path) -> None:
    require(_missing_systemd_analyze(), "systemd-analyze security")
    completed = _systemd_analyze("security", "--offline=yes", "--no-pager", str(_unit_for_this_machine(tmp_path)))
    assert completed.returncode == 0, completed.stdout + completed.stderr
    match = re.search(r"Overall exposure level for \S+: (\d+\.\d+)", completed.stdout)
    assert match, completed.stdout
    assert float(match.group(1)) < MAX_EXPOSURE, completed.stdout


@pytest.mark.parametrize("credential_present", [True, False])
def test_the_units_command_line_accepts_the_config_with_its_credential(credential_present: bool) -> None:
    require(private_run_unavailable(), "the systemd credential check")
    _, *arguments = shlex.split(_one("ExecStart"))
    arguments[arguments.index("--config.file") + 1] = str(CONFIG)
    password = "credential-test-password-8417"
    name = _one("LoadCredential").partition(":")[0]
    files = {f"/run/credentials/{UNIT_NAME}/{name}": password.encode()} if credential_present else {}
    completed = run_with_private_run(files, [str(EXPORTER_SCRIPT), *arguments, "--config.check"])
    output = completed.stdout + completed.stderr
    assert password not in output
    if credential_present:
        assert completed.returncode == 0, output
        assert "configuration is valid (2 targets)" in completed.stdout
    else:
        assert completed.returncode == 1, output
        assert "targets[0].auth.password_file" in output
