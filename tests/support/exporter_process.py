"""The exporter as users run it: a real process, its log, and its scraped /metrics."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from pathlib import Path
from types import TracebackType

from prometheus_client.parser import text_string_to_metric_families

Labels = dict[str, str]


class Scrape:
    """Parsed samples of one /metrics response."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.samples: list[tuple[str, Labels, float]] = []
        self.types: dict[str, str] = {}
        self.help: dict[str, str] = {}
        for family in text_string_to_metric_families(text):
            self.types[family.name] = family.type
            self.help[family.name] = family.documentation
            self.samples.extend((sample.name, dict(sample.labels), sample.value) for sample in family.samples)

    def find(self, name: str, **labels: str) -> list[tuple[Labels, float]]:
        return [
            (sample_labels, value)
            for sample_name, sample_labels, value in self.samples
            if sample_name == name and all(sample_labels.get(key) == wanted for key, wanted in labels.items())
        ]

    def value(self, name: str, **labels: str) -> float | None:
        """The value of the one sample matching; None when absent."""
        matches = self.find(name, **labels)
        assert len(matches) <= 1, f"{name}{labels} matches {len(matches)} samples: {matches}"
        return matches[0][1] if matches else None

    def series_of(self, target: str) -> set[str]:
        """Names of every sample carrying ``target=...``."""
        return {name for name, labels, _ in self.samples if labels.get("target") == target}


class ExporterProcess:
    """``smtp-tls-exporter`` started with a config file, on a free loopback port."""

    def __init__(
        self,
        config_file: Path,
        log_file: Path,
        *,
        extra_args: Sequence[str] = (),
        command_prefix: Sequence[str] = (),
        cwd: Path | None = None,
        state_beside_log: bool = True,
    ) -> None:
        self.config_file = config_file
        self.log_file = log_file
        # Each exporter keeps its state beside its log (never in the shared working
        # directory), written often so that every test exercises the writer.
        self.state_file = log_file.with_name(f"{log_file.stem}.state.json")
        if "--storage.path" in extra_args:
            self.state_file = Path(extra_args[list(extra_args).index("--storage.path") + 1])
        storage: list[str] = []
        if state_beside_log and "--storage.path" not in extra_args:
            storage += ["--storage.path", str(self.state_file)]
        if "--storage.write-interval" not in extra_args:
            storage += ["--storage.write-interval", "1s"]
        command = [
            *command_prefix,
            sys.executable, "-m", "exporter",
            "--config.file", str(config_file),
            "--web.listen-address", "127.0.0.1:0",
            "--log.level", "debug",
            *storage,
            *extra_args,
        ]  # fmt: skip
        self._log = log_file.open("wb")
        self.process = subprocess.Popen(command, stdout=self._log, stderr=subprocess.STDOUT, cwd=cwd)
        self.base_url = self._wait_for_listening()

    def _wait_for_listening(self, timeout: float = 20) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            # logfmt, or --log.format json
            match = re.search(r'msg=listening address=(\S+)|"msg": "listening", "address": "([^"]+)"', self.log_text())
            if match:
                return f"http://{match.group(1) or match.group(2)}"
            if self.process.poll() is not None:
                raise AssertionError(f"exporter exited with {self.process.returncode}:\n{self.log_text()}")
            time.sleep(0.05)
        raise AssertionError(f"exporter did not start listening:\n{self.log_text()}")

    def state_text(self) -> str:
        """The state file as it is now; "" when none was written."""
        try:
            return self.state_file.read_text(encoding="utf-8")
        except FileNotFoundError:
            return ""

    def wait_for_state_file(self, condition: Callable[[str], bool] = bool, timeout: float = 30) -> str:
        """The state file's text once ``condition`` holds for it (by default: once it exists)."""
        deadline = time.monotonic() + timeout
        while not condition(text := self.state_text()):
            if time.monotonic() > deadline:
                raise AssertionError(f"state file condition not met within {timeout}s:\n{text[:2000]}")
            time.sleep(0.1)
        return text

    def log_text(self) -> str:
        return self.log_file.read_text(encoding="utf-8", errors="replace")

    def get(self, path: str) -> tuple[int, dict[str, str], str]:
        return http_request("GET", self.base_url + path)

    def post(self, path: str) -> tuple[int, dict[str, str], str]:
        return http_request("POST", self.base_url + path)

    def scrape(self) -> Scrape:
        status, _, body = self.get("/metrics")
        assert status == 200, body
        return Scrape(body)

    def wait_for(self, condition: Callable[[Scrape], bool], timeout: float = 30) -> Scrape:
        deadline = time.monotonic() + timeout
        while True:
            scrape = self.scrape()
            if condition(scrape):
                return scrape
            if time.monotonic() > deadline:
                raise AssertionError(f"condition not met within {timeout}s; last scrape:\n{scrape.text}")
            time.sleep(0.1)

    def wait_for_probes(self, targets: Sequence[str], timeout: float = 30) -> Scrape:
        """Wait until every target has finished at least one probe."""
        return self.wait_for(
            lambda scrape: all(scrape.value("smtp_probe_timestamp_seconds", target=t) is not None for t in targets),
            timeout,
        )

    def wait_for_scans(self, targets: Sequence[str], timeout: float = 60) -> Scrape:
        """Wait until every target has finished at least one TLS capability scan."""
        return self.wait_for(
            lambda scrape: all(scrape.value("smtp_tls_scan_timestamp_seconds", target=t) is not None for t in targets),
            timeout,
        )

    def send_signal(self, signum: signal.Signals) -> None:
        self.process.send_signal(signum)

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._log.close()
        return self.process.returncode

    def __enter__(self) -> ExporterProcess:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.stop()


def http_request(method: str, url: str) -> tuple[int, dict[str, str], str]:
    request = urllib.request.Request(url, method=method)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, dict(response.headers), response.read().decode("utf-8")
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read().decode("utf-8")
