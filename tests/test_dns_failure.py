"""A target whose name does not resolve fails with dns_error, and nothing else breaks."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.dns import private_resolver_available, start_nxdomain_server, with_private_resolver
from tests.support.exporter_process import ExporterProcess
from tests.support.servers import ScenarioServers

why_not = private_resolver_available()


@pytest.mark.skipif(why_not is not None, reason=f"private resolver setup: {why_not}")
def test_unresolvable_name_is_a_dns_error(tmp_path: Path, servers: ScenarioServers) -> None:
    dns = servers.run(start_nxdomain_server())
    try:
        resolv_conf = tmp_path / "resolv.conf"
        resolv_conf.write_text("nameserver 127.0.0.1\noptions attempts:1 timeout:1\n")
        healthy = servers.smtp()
        config = tmp_path / "config.yml"
        config.write_text(
            "defaults: {interval: 1h, timeout: 5s, tls: none, ehlo_name: probe.test}\n"
            "targets:\n"
            "  - {name: nowhere, host: no-such-host.invalid, port: 25}\n"
            f"  - {{name: healthy, host: 127.0.0.1, port: {healthy}}}\n"
        )
        with ExporterProcess(
            config, tmp_path / "exporter.log", command_prefix=with_private_resolver(resolv_conf)
        ) as exporter:
            scrape = exporter.wait_for_probes(["nowhere", "healthy"])
    finally:
        servers.loop.call_soon_threadsafe(dns.close)
    assert scrape.value("smtp_probe_success", target="nowhere") == 0
    assert scrape.value("smtp_probe_error_info", target="nowhere", phase="connect", reason="dns_error") == 1
    assert scrape.value("smtp_probe_success", target="healthy") == 1
    assert "Name or service not known" in exporter.log_text()
