"""``smtp-tls-exporter demo`` as a newcomer runs it: a real process, scraped like the daemon."""

from __future__ import annotations

import re
import subprocess
import sys
import time
from pathlib import Path

from exporter.demo.main import POSTURES
from tests.support.exporter_process import ExporterProcess

POSTURE_NAMES = tuple(posture.name for posture in POSTURES)


class DemoProcess(ExporterProcess):
    """The demo on a free loopback port; ``config_file`` is the config it wrote."""

    def __init__(self, log_file: Path) -> None:  # the parent's __init__ starts the daemon, not the demo
        self.log_file = log_file
        command = [
            sys.executable, "-m", "exporter", "demo",
            "--web.listen-address", "127.0.0.1:0",
            "--log.level", "debug",
        ]  # fmt: skip
        self._log = log_file.open("wb")
        self.process = subprocess.Popen(command, stdout=self._log, stderr=subprocess.STDOUT)
        self.base_url = self._wait_for_listening()
        self.config_file = self._config_file()

    def _config_file(self, timeout: float = 20) -> Path:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            match = re.search(r"^  Config: +(\S+)$", self.log_text(), re.MULTILINE)
            if match:
                return Path(match.group(1))
            time.sleep(0.05)
        raise AssertionError(f"the demo did not say where its config is:\n{self.log_text()}")

    @property
    def address(self) -> str:
        """host:port of its /metrics, as Prometheus's static_configs want it."""
        return self.base_url.removeprefix("http://")
