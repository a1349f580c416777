"""Hostname matching as OpenSSL's X509_check_host does it (Python's default flags)."""

from __future__ import annotations

import pytest

from exporter.tls.hostname import hostname_matches


@pytest.mark.parametrize(
    ("server_name", "dns_names", "expected"),
    [
        ("mail.example.com", ["mail.example.com"], True),
        ("MAIL.Example.COM", ["mail.example.com"], True),
        ("mail.example.com.", ["mail.example.com"], True),
        ("mail.example.com", ["*.example.com"], True),
        ("a.mail.example.com", ["*.example.com"], False),
        ("example.com", ["*.example.com"], False),
        ("mail.example.com", ["mail*.example.com"], False),
        ("mail.com", ["*.com"], False),
        ("mail.example.com", ["other.example.com", "mail.example.com"], True),
        ("mail.example.com", ["example.com"], False),
        ("bücher.example", ["xn--bcher-kva.example"], True),
    ],
)
def test_dns_names(server_name: str, dns_names: list[str], expected: bool) -> None:
    assert hostname_matches(server_name, dns_names=dns_names, ip_addresses=[], common_names=[]) is expected


def test_common_name_counts_only_without_dns_names() -> None:
    assert hostname_matches("mail.test", dns_names=[], ip_addresses=[], common_names=["mail.test"])
    assert not hostname_matches("mail.test", dns_names=["other.test"], ip_addresses=[], common_names=["mail.test"])


def test_ip_addresses_match_only_ip_entries() -> None:
    assert hostname_matches("192.0.2.1", dns_names=[], ip_addresses=["192.0.2.1"], common_names=[])
    assert not hostname_matches("192.0.2.1", dns_names=["192.0.2.1"], ip_addresses=[], common_names=["192.0.2.1"])
    assert hostname_matches("2001:db8::1", dns_names=[], ip_addresses=["2001:db8:0::1"], common_names=[])
