"""The DNS layer against real servers: nsd serving the test zones, unbound validating them.

Plus the pure parts (nameserver strings, MX ordering, null MX) on their own.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Iterator

import pytest
from dns.rdatatype import RdataType
from dns.rdtypes.ANY.TLSA import TLSA
from dns.rdtypes.ANY.TXT import TXT
from hypothesis import given
from hypothesis import strategies as st

from exporter.config.model import AddressFamily
from exporter.dns.mail_domain import (
    DomainExpansion,
    LookupFailure,
    MxNote,
    MxRecord,
    expand_domain,
    is_null_mx,
    lookup_failure,
    mx_by_preference,
    mx_name_notes,
)
from exporter.dns.resolver import DnsAnswer, DnsResolver, DnsSettings, DnsStatus, parse_nameserver
from tests.support.dns_servers import (
    DnsServers,
    Zone,
    ZoneKind,
    silent_nameserver,
    start_dns_servers,
    unavailable_reason,
)
from tests.support.environment import require

TLSA_DIGEST = "0c" * 32
# Twelve MX hosts, listed highest preference first.
MANY_MX = "".join(f"many MX {preference} host{preference:02}.mail.test.\n" for preference in range(12, 0, -1))

MAIL_ZONE = Zone(
    "mail.test",
    f"""
two-mx      MX 20 mx2.mail.test.
two-mx      MX 10 MX1.mail.test.
mx1         A 127.0.0.2
mx1         AAAA ::1
mx2         A 127.0.0.10
mx2         A 127.0.0.9
implicit    A 127.0.0.5
implicit    AAAA ::1
implicit-alias CNAME implicit
null        MX 0 .
no-address  MX 10 nothing.mail.test.
nothing     TXT "a name without addresses"
dangling    MX 10 gone.mail.test.
cname       MX 10 alias.mail.test.
alias       CNAME mx1.mail.test.
literal     MX 10 127.0.0.7.
local       MX 10 localhost.
sick        MX 10 mx.broken.test.
sick        MX 20 mx1.mail.test.
{MANY_MX}""",
)
SIGNED_ZONE = Zone(
    "signed.test",
    f"""
@           MX 10 mx
mx          A 127.0.0.8
mx          AAAA ::1
_25._tcp.mx TLSA 3 1 1 {TLSA_DIGEST}
@           TXT "v=STSv1; id=20261202"
""",
    ZoneKind.SECURE,
)
BOGUS_ZONE = Zone("bogus.test", "@ MX 10 mx\nmx A 127.0.0.11\n", ZoneKind.BOGUS)
BROKEN_ZONE = Zone("broken.test", kind=ZoneKind.BROKEN)
CHANGING_ZONE = Zone("changing.test", "@ MX 10 mx1\nmx1 A 127.0.0.2\n")


@pytest.fixture(scope="module")
def dns_servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DnsServers]:
    require(unavailable_reason(), "the DNS tests with real nsd and unbound")
    zones = [MAIL_ZONE, SIGNED_ZONE, BOGUS_ZONE, BROKEN_ZONE, CHANGING_ZONE]
    servers = start_dns_servers(zones, tmp_path_factory.mktemp("dns"))
    yield servers
    servers.stop()


def expand(
    servers: DnsServers, domain: str, *, max_mx: int = 10, family: AddressFamily = AddressFamily.ANY
) -> DomainExpansion:
    resolver = DnsResolver(servers.settings())
    return asyncio.run(expand_domain(resolver, domain, max_mx=max_mx, family=family))


def lookup(servers: DnsServers, name: str, rdtype: RdataType) -> DnsAnswer:
    return asyncio.run(DnsResolver(servers.settings()).lookup(name, rdtype))


def hosts(expansion: DomainExpansion) -> list[tuple[str, int, tuple[str, ...]]]:
    return [(host.name, host.preference, host.addresses) for host in expansion.mx_hosts]


# Against the real servers


def test_two_mx_hosts_with_two_addresses_each(dns_servers: DnsServers) -> None:
    expansion = expand(dns_servers, "Two-MX.mail.test.")
    assert expansion.domain == "two-mx.mail.test"
    assert (expansion.success, expansion.reason, expansion.implicit_mx, expansion.null_mx) == (True, None, False, False)
    assert hosts(expansion) == [
        ("mx1.mail.test", 10, ("127.0.0.2", "::1")),
        ("mx2.mail.test", 20, ("127.0.0.9", "127.0.0.10")),
    ]
    assert all(host.notes == () and host.problems == () for host in expansion.mx_hosts)
    assert expansion.mx_record_count == 2
    assert expansion.timestamp_seconds > 0


def test_address_family_picks_the_records_asked_for(dns_servers: DnsServers) -> None:
    ipv4 = expand(dns_servers, "two-mx.mail.test", family=AddressFamily.IPV4)
    ipv6 = expand(dns_servers, "two-mx.mail.test", family=AddressFamily.IPV6)
    assert hosts(ipv4) == [("mx1.mail.test", 10, ("127.0.0.2",)), ("mx2.mail.test", 20, ("127.0.0.9", "127.0.0.10"))]
    # An MX without an address of the family stays in the result: it is the family's unreachable MX.
    assert hosts(ipv6) == [("mx1.mail.test", 10, ("::1",)), ("mx2.mail.test", 20, ())]


def test_no_mx_records_mean_the_domain_is_its_own_mx(dns_servers: DnsServers) -> None:
    expansion = expand(dns_servers, "implicit.mail.test")
    assert (expansion.success, expansion.implicit_mx) == (True, True)
    assert hosts(expansion) == [("implicit.mail.test", 0, ("127.0.0.5", "::1"))]


def test_an_aliased_domain_without_mx_is_its_canonical_name(dns_servers: DnsServers) -> None:
    # RFC 5321 section 5.1: the name a CNAME leads to is processed as if it were the initial name.
    expansion = expand(dns_servers, "implicit-alias.mail.test")
    assert (expansion.domain, expansion.implicit_mx) == ("implicit-alias.mail.test", True)
    assert hosts(expansion) == [("implicit.mail.test", 0, ("127.0.0.5", "::1"))]


def test_null_mx_accepts_no_mail_and_is_not_a_failure(dns_servers: DnsServers) -> None:
    expansion = expand(dns_servers, "null.mail.test")
    assert (expansion.success, expansion.null_mx, expansion.implicit_mx, expansion.mx_hosts) == (True, True, False, ())


def test_nxdomain(dns_servers: DnsServers) -> None:
    expansion = expand(dns_servers, "missing.mail.test")
    assert (expansion.success, expansion.reason, expansion.mx_hosts) == (False, LookupFailure.DNS_NXDOMAIN, ())


def test_servfail_from_a_broken_zone(dns_servers: DnsServers) -> None:
    expansion = expand(dns_servers, "broken.test")
    assert (expansion.success, expansion.reason, expansion.mx_hosts) == (False, LookupFailure.DNS_SERVFAIL, ())


def test_a_nameserver_that_never_answers_times_out() -> None:
    with silent_nameserver() as nameserver:
        resolver = DnsResolver(DnsSettings(nameservers=(nameserver,), timeout=0.5))
        expansion = asyncio.run(expand_domain(resolver, "two-mx.mail.test"))
    assert (expansion.success, expansion.reason, expansion.mx_hosts) == (False, LookupFailure.DNS_TIMEOUT, ())


def test_a_refused_name_is_a_dns_error(dns_servers: DnsServers) -> None:
    # unbound refuses every name outside test.; it never asks the internet.
    expansion = expand(dns_servers, "example.com")
    assert (expansion.success, expansion.reason) == (False, LookupFailure.DNS_ERROR)
    assert "REFUSED" in expansion.detail


def test_an_mx_without_addresses_is_a_result_not_a_failure(dns_servers: DnsServers) -> None:
    no_address = expand(dns_servers, "no-address.mail.test")
    assert no_address.success
    assert hosts(no_address) == [("nothing.mail.test", 10, ())]
    assert no_address.mx_hosts[0].problems == ()
    dangling = expand(dns_servers, "dangling.mail.test")
    assert dangling.success
    assert hosts(dangling) == [("gone.mail.test", 10, ())]
    assert {problem.reason for problem in dangling.mx_hosts[0].problems} == {LookupFailure.DNS_NXDOMAIN}


def test_an_mx_host_that_fails_to_resolve_leaves_the_others(dns_servers: DnsServers) -> None:
    expansion = expand(dns_servers, "sick.mail.test")
    assert expansion.success
    assert hosts(expansion) == [("mx.broken.test", 10, ()), ("mx1.mail.test", 20, ("127.0.0.2", "::1"))]
    problems = expansion.mx_hosts[0].problems
    assert [(problem.rdtype, problem.reason) for problem in problems] == [
        (RdataType.A, LookupFailure.DNS_SERVFAIL),
        (RdataType.AAAA, LookupFailure.DNS_SERVFAIL),
    ]


def test_a_cname_mx_is_noted_and_followed(dns_servers: DnsServers) -> None:
    expansion = expand(dns_servers, "cname.mail.test")
    (host,) = expansion.mx_hosts
    assert (host.name, host.addresses, host.notes) == ("alias.mail.test", ("127.0.0.2", "::1"), (MxNote.CNAME,))
    assert host.canonical_name == "mx1.mail.test"


def test_an_ip_literal_mx_is_noted_and_used_as_its_address(dns_servers: DnsServers) -> None:
    expansion = expand(dns_servers, "literal.mail.test")
    (host,) = expansion.mx_hosts
    assert (host.name, host.addresses, host.notes) == ("127.0.0.7", ("127.0.0.7",), (MxNote.IP_LITERAL,))
    assert expand(dns_servers, "literal.mail.test", family=AddressFamily.IPV6).mx_hosts[0].addresses == ()


def test_a_localhost_mx_is_noted_and_resolved(dns_servers: DnsServers) -> None:
    (host,) = expand(dns_servers, "local.mail.test").mx_hosts
    assert (host.name, host.notes) == ("localhost", (MxNote.LOCALHOST,))
    # unbound answers localhost itself (RFC 6761), as most resolvers do.
    assert "127.0.0.1" in host.addresses


def test_max_mx_keeps_the_lowest_preferences(dns_servers: DnsServers) -> None:
    capped = expand(dns_servers, "many.mail.test")
    assert capped.mx_record_count == 12
    assert [host.name for host in capped.mx_hosts] == [f"host{number:02}.mail.test" for number in range(1, 11)]
    assert [host.preference for host in expand(dns_servers, "many.mail.test", max_mx=2).mx_hosts] == [1, 2]


def test_a_dns_change_is_seen_by_the_next_lookup(dns_servers: DnsServers) -> None:
    assert hosts(expand(dns_servers, "changing.test")) == [("mx1.changing.test", 10, ("127.0.0.2",))]
    dns_servers.replace_zone(
        "changing.test", "@ MX 10 mx1\n@ MX 20 mx2\nmx1 A 127.0.0.2\nmx1 A 127.0.0.3\nmx2 A 127.0.0.4\n"
    )
    assert hosts(expand(dns_servers, "changing.test")) == [
        ("mx1.changing.test", 10, ("127.0.0.2", "127.0.0.3")),
        ("mx2.changing.test", 20, ("127.0.0.4",)),
    ]
    dns_servers.replace_zone("changing.test", "@ MX 20 mx2\nmx2 A 127.0.0.4\n")
    assert hosts(expand(dns_servers, "changing.test")) == [("mx2.changing.test", 20, ("127.0.0.4",))]
    dns_servers.replace_zone("changing.test", "mx2 A 127.0.0.4\n")
    assert expand(dns_servers, "changing.test").implicit_mx


def test_answers_from_the_signed_zone_are_authenticated(dns_servers: DnsServers) -> None:
    expansion = expand(dns_servers, "signed.test")
    assert expansion.mx_dnssec_secure
    assert [host.addresses_dnssec_secure for host in expansion.mx_hosts] == [True]
    tlsa = lookup(dns_servers, "_25._tcp.mx.signed.test", RdataType.TLSA)
    assert (tlsa.status, tlsa.authenticated) == (DnsStatus.OK, True)
    (record,) = tlsa.records
    assert isinstance(record, TLSA)
    assert (record.usage, record.selector, record.mtype, record.cert.hex()) == (3, 1, 1, TLSA_DIGEST)
    txt = lookup(dns_servers, "signed.test", RdataType.TXT)
    assert [record.strings for record in txt.records if isinstance(record, TXT)] == [(b"v=STSv1; id=20261202",)]
    # A secure denial is authenticated too: DANE tells "no TLSA" from "cannot know".
    denial = lookup(dns_servers, "_25._tcp.nothing.signed.test", RdataType.TLSA)
    assert (denial.status, denial.authenticated) == (DnsStatus.NXDOMAIN, True)


def test_answers_from_the_unsigned_zone_are_not_authenticated(dns_servers: DnsServers) -> None:
    expansion = expand(dns_servers, "two-mx.mail.test")
    assert not expansion.mx_dnssec_secure
    assert [host.addresses_dnssec_secure for host in expansion.mx_hosts] == [False, False]
    assert lookup(dns_servers, "mx1.mail.test", RdataType.A).authenticated is False
    assert lookup(dns_servers, "mx1.mail.test", RdataType.TLSA).status is DnsStatus.NODATA


def test_a_bogus_zone_is_servfail_with_the_validators_reason(dns_servers: DnsServers) -> None:
    answer = lookup(dns_servers, "mx.bogus.test", RdataType.A)
    assert (answer.status, answer.authenticated, answer.records) == (DnsStatus.SERVFAIL, False, ())
    assert "Signature Expired" in (answer.extended_error or "")
    expansion = expand(dns_servers, "bogus.test")
    assert (expansion.success, expansion.reason) == (False, LookupFailure.DNS_SERVFAIL)
    assert "Signature Expired" in (expansion.extended_error or "")


def test_a_cname_chain_is_reported(dns_servers: DnsServers) -> None:
    answer = lookup(dns_servers, "alias.mail.test", RdataType.AAAA)
    assert (answer.status, answer.cname_chain, answer.canonical_name) == (
        DnsStatus.OK,
        ("mx1.mail.test",),
        "mx1.mail.test",
    )


def test_an_invalid_name_is_an_error_value(dns_servers: DnsServers) -> None:
    answer = lookup(dns_servers, "a..b.test", RdataType.A)
    assert answer.status is DnsStatus.ERROR
    assert "invalid name" in answer.detail


# Pure logic


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("127.0.0.1", ("127.0.0.1", 53)),
        ("127.0.0.1:5353", ("127.0.0.1", 5353)),
        ("[::1]:5353", ("::1", 5353)),
        ("[::1]", ("::1", 53)),
        ("::1", ("::1", 53)),
        (" 127.0.0.2 ", ("127.0.0.2", 53)),
    ],
)
def test_parse_nameserver(text: str, expected: tuple[str, int]) -> None:
    assert parse_nameserver(text) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "no host"),
        (":53", "no host"),
        ("ns.example.net", "is not an IP address"),
        ("ns.example.net:53", "is not an IP address"),
        ("127.0.0.1:0", "invalid port"),
        ("127.0.0.1:65536", "invalid port"),
        ("127.0.0.1:dns", "invalid port"),
        ("[::1", "IPv6 address in brackets"),
        ("[127.0.0.1]:53", "IPv6 address in brackets"),
        ("[::1]53", "IPv6 address in brackets"),
    ],
)
def test_parse_nameserver_rejects(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message) as raised:
        parse_nameserver(text)
    assert repr(text) in str(raised.value)


def test_mx_order_is_by_preference_then_name_and_each_host_once() -> None:
    records = [
        MxRecord(20, "b.example"),
        MxRecord(10, "z.example"),
        MxRecord(20, "a.example"),
        MxRecord(5, "b.example"),
        MxRecord(30, "."),
    ]
    assert mx_by_preference(records) == (MxRecord(5, "b.example"), MxRecord(10, "z.example"), MxRecord(20, "a.example"))
    assert mx_by_preference(records, max_mx=1) == (MxRecord(5, "b.example"),)
    with pytest.raises(ValueError, match="max_mx"):
        mx_by_preference(records, max_mx=0)


_mx_records = st.lists(
    st.builds(
        MxRecord, st.integers(0, 65535), st.sampled_from(["a.example", "b.example", "c.example", "d.example", "."])
    )
)


@given(_mx_records, st.integers(1, 12), st.randoms())
def test_mx_order_does_not_depend_on_the_answer_order(
    records: list[MxRecord], max_mx: int, shuffler: random.Random
) -> None:
    ordered = mx_by_preference(records, max_mx)
    shuffled = list(records)
    shuffler.shuffle(shuffled)
    assert mx_by_preference(shuffled, max_mx) == ordered
    assert len(ordered) <= max_mx
    assert [record.preference for record in ordered] == sorted(record.preference for record in ordered)
    assert "." not in {record.exchange for record in ordered}


def test_null_mx_is_a_lone_root_target() -> None:
    assert is_null_mx([MxRecord(0, ".")])
    assert not is_null_mx([MxRecord(0, "."), MxRecord(10, "mx.example")])
    assert not is_null_mx([MxRecord(0, "mx.example")])
    assert not is_null_mx([])


def test_mx_name_notes() -> None:
    assert mx_name_notes("192.0.2.1") == (MxNote.IP_LITERAL,)
    assert mx_name_notes("[192.0.2.1]") == (MxNote.IP_LITERAL,)
    assert mx_name_notes("localhost") == (MxNote.LOCALHOST,)
    assert mx_name_notes("mx.localhost") == (MxNote.LOCALHOST,)
    assert mx_name_notes("mx.example.net") == ()


def test_every_failed_status_has_a_reason() -> None:
    assert {status: lookup_failure(status) for status in DnsStatus} == {
        DnsStatus.OK: None,
        DnsStatus.NODATA: None,
        DnsStatus.NXDOMAIN: LookupFailure.DNS_NXDOMAIN,
        DnsStatus.SERVFAIL: LookupFailure.DNS_SERVFAIL,
        DnsStatus.TIMEOUT: LookupFailure.DNS_TIMEOUT,
        DnsStatus.ERROR: LookupFailure.DNS_ERROR,
    }
