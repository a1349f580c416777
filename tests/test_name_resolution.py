"""Names: one that does not resolve, and one with an IPv6 and an IPv4 address.

The exporter runs with its own /etc/hosts and a loopback resolver (see
tests/support/dns.py); nothing is looked up beyond this machine.
"""

from __future__ import annotations

from pathlib import Path

from tests.support.dns import private_resolver_available, start_nxdomain_server, with_private_resolver
from tests.support.environment import require
from tests.support.exporter_process import ExporterProcess
from tests.support.servers import ScenarioServers


def test_names_resolve_through_the_system_resolver(tmp_path: Path, servers: ScenarioServers) -> None:
    require(private_resolver_available(), "the private-resolver name tests")
    dns = servers.run(start_nxdomain_server())
    try:
        resolv_conf = tmp_path / "resolv.conf"
        resolv_conf.write_text("nameserver 127.0.0.1\noptions attempts:1 timeout:1\n")
        hosts = tmp_path / "hosts"
        # ::1 first: nothing listens there on the IPv4 server's port, so the
        # probe must move on to the next resolved address.
        hosts.write_text("::1 dual.test\n127.0.0.1 dual.test\n::1 six.test\n")
        healthy = servers.smtp()
        six = servers.smtp(host="::1")
        config = tmp_path / "config.yml"
        config.write_text(
            "defaults: {interval: 1h, timeout: 5s, tls: none, ehlo_name: probe.test}\n"
            "targets:\n"
            "  - {name: nowhere, host: no-such-host.invalid, port: 25}\n"
            f"  - {{name: dual, host: dual.test, port: {healthy}}}\n"
            f"  - {{name: six, host: six.test, port: {six}}}\n"
            f"  - {{name: six-literal, host: '::1', port: {six}}}\n"
        )
        prefix = with_private_resolver(resolv_conf, hosts)
        with ExporterProcess(config, tmp_path / "exporter.log", command_prefix=prefix) as exporter:
            scrape = exporter.wait_for_probes(["nowhere", "dual", "six", "six-literal"])
    finally:
        servers.loop.call_soon_threadsafe(dns.close)
    assert scrape.value("smtp_probe_success", target="nowhere") == 0
    assert scrape.value("smtp_probe_error_info", target="nowhere", phase="connect", reason="dns_error") == 1
    assert "Name or service not known" in exporter.log_text()
    for target in ("dual", "six", "six-literal"):
        assert scrape.value("smtp_probe_success", target=target) == 1, target
    log = exporter.log_text()
    assert "target=dual peer=127.0.0.1 success=True" in log
    assert "target=six peer=::1 success=True" in log
