from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.demo_process import POSTURE_NAMES, DemoProcess
from tests.support.mail_domain import MailDomainWorld, start_mail_domain_world
from tests.support.pki import Pki
from tests.support.servers import ScenarioServers


@pytest.fixture(scope="session")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return Pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="session")
def servers() -> Iterator[ScenarioServers]:
    running = ScenarioServers()
    yield running
    running.close()


@pytest.fixture(scope="session")
def cert_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("server-certs")


@pytest.fixture(scope="session")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DemoProcess]:
    """One ``smtp-tls-exporter demo`` for every test that scrapes it, each posture probed and scanned once."""
    process = DemoProcess(tmp_path_factory.mktemp("demo") / "demo.log")
    try:
        process.wait_for_probes(POSTURE_NAMES)
        process.wait_for_scans(POSTURE_NAMES)
        yield process
    finally:
        process.stop()


@pytest.fixture(scope="session")
def mail_domain(
    pki: Pki, servers: ScenarioServers, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[MailDomainWorld]:
    """A signed mail domain over real nsd + unbound and an exporter following it (tests/support/mail_domain.py)."""
    yield from start_mail_domain_world(pki, servers, tmp_path_factory.mktemp("mail-domain"))
