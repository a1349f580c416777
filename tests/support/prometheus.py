"""Debian's Prometheus and promtool, run for real on loopback.

The server scrapes only the loopback addresses it is given, keeps its TSDB in
a temporary directory, has no Alertmanager and no remote write: it never
sends anything beyond this machine.
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import time
import urllib.parse
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

import yaml

from tests.support.exporter_process import http_request

REPOSITORY = Path(__file__).resolve().parents[2]
RULES_FILE = REPOSITORY / "prometheus" / "alerts.yml"
_T = TypeVar("_T")


def missing_tool(name: str) -> str | None:
    """Why ``name`` cannot run here (for require()), or None."""
    if shutil.which(name) is None:
        return f"{name} is not installed (Debian package prometheus)"
    return None


def promtool(*arguments: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["promtool", *arguments], input=stdin, capture_output=True, text=True, timeout=300, check=False
    )


def _free_loopback_port() -> int:
    # Prometheus cannot report the port it got for :0, so pick one and hand
    # it over; the window for another process to take it is tiny.
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


class PrometheusServer:
    def __init__(
        self,
        directory: Path,
        scrape_targets: Mapping[str, str],
        *,
        rule_files: Sequence[Path] = (RULES_FILE,),
        interval: str = "1s",
        job_settings: Mapping[str, Mapping[str, Any]] | None = None,
    ) -> None:
        """Start Prometheus scraping ``scrape_targets`` (job name -> host:port on loopback).

        ``job_settings`` adds scrape_config keys per job (scheme, tls_config, basic_auth...).
        """
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)
        config = {
            "global": {"scrape_interval": interval, "scrape_timeout": interval, "evaluation_interval": interval},
            "rule_files": [str(path) for path in rule_files],
            "scrape_configs": [
                {"job_name": job, "static_configs": [{"targets": [address]}], **(job_settings or {}).get(job, {})}
                for job, address in scrape_targets.items()
            ],
        }
        config_file = directory / "prometheus.yml"
        config_file.write_text(yaml.safe_dump(config))
        port = _free_loopback_port()
        self.base_url = f"http://127.0.0.1:{port}"
        self.log_file = directory / "prometheus.log"
        self._log = self.log_file.open("wb")
        self.process = subprocess.Popen(
            [
                "prometheus",
                f"--config.file={config_file}",
                f"--storage.tsdb.path={directory / 'data'}",
                f"--web.listen-address=127.0.0.1:{port}",
                "--log.level=info",
            ],
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        self._wait_until_ready()

    def _wait_until_ready(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"prometheus exited with {self.process.returncode}:\n{self.log_text()}")
            try:
                if http_request("GET", self.base_url + "/-/ready")[0] == 200:
                    return
            except OSError:
                pass
            time.sleep(0.1)
        raise AssertionError(f"prometheus did not become ready:\n{self.log_text()}")

    def log_text(self) -> str:
        return self.log_file.read_text(encoding="utf-8", errors="replace")

    def api(self, path: str, **parameters: str) -> Any:
        url = f"{self.base_url}/api/v1/{path}"
        if parameters:
            url += "?" + urllib.parse.urlencode(parameters)
        status, _, body = http_request("GET", url)
        assert status == 200, f"{url}: {status} {body}"
        answer = json.loads(body)
        assert answer["status"] == "success", f"{url}: {body}"
        return answer["data"]

    def query(self, expression: str) -> list[dict[str, Any]]:
        """An instant query's result: [{"metric": {...}, "value": [time, "text"]}, ...]."""
        data = self.api("query", query=expression)
        assert data["resultType"] == "vector", data
        result: list[dict[str, Any]] = data["result"]
        return result

    def alerts(self) -> list[dict[str, Any]]:
        """Pending and firing alerts, with labels, state and rendered annotations."""
        alerts: list[dict[str, Any]] = self.api("alerts")["alerts"]
        return alerts

    def wait_for(self, produce: Callable[[], _T | None], what: str | Callable[[], str], timeout: float = 60) -> _T:
        """Poll ``produce`` until it returns something other than None.

        ``what`` may be a function, to describe the state at the moment of giving up.
        """
        deadline = time.monotonic() + timeout
        while True:
            value = produce()
            if value is not None:
                return value
            if time.monotonic() > deadline:
                description = what() if callable(what) else what
                raise AssertionError(
                    f"{description}: not within {timeout}s; prometheus log:\n{self.log_text()[-4000:]}"
                )
            time.sleep(0.25)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._log.close()

    def __enter__(self) -> PrometheusServer:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.stop()
