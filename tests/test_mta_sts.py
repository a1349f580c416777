"""MTA-STS and TLS-RPT of mail domains: the pure parsers, then whole checks against real servers.

The real setup: nsd and a validating unbound serve the test zones (as for the
DNS layer), and an HTTPS server on a spare 127.x.y.z address, port 443, serves
the policy hosts with certificates from a test CA. Every name the exporter
looks up resolves inside the test zones; the resolver refuses all others.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from exporter.cli.check import main as check_main
from exporter.dns.mail_domain import expand_domain
from exporter.dns.resolver import DnsResolver
from exporter.mta_sts.discovery import discover_mta_sts
from exporter.mta_sts.fetch import MAX_BODY_OCTETS, policy_context
from exporter.mta_sts.policy import PolicyProblem, StsMode, StsPolicy, mx_pattern_matches, parse_policy
from exporter.mta_sts.records import parse_sts_records, parse_tlsrpt_records
from exporter.mta_sts.result import KnownPolicy, MtaStsResult, MxCoverage, StsFailure
from tests.support.dns_servers import DnsServers, Zone, ZoneKind, start_dns_servers, unavailable_reason
from tests.support.environment import require
from tests.support.pki import Pki, self_signed
from tests.support.policy_server import (
    PolicyResponse,
    PolicyServer,
    https_port_unavailable_reason,
    spare_loopback_address,
)


def policy_text(mode: str, *mx: str, max_age: int = 86400, newline: str = "\n") -> bytes:
    lines = ["version: STSv1", f"mode: {mode}", *(f"mx: {pattern}" for pattern in mx), f"max_age: {max_age}"]
    return newline.join(lines).encode() + newline.encode()


# The pure parts


def test_sts_record_with_id() -> None:
    record = parse_sts_records(["v=spf1 -all", "v=STSv1; id=20261202T1200"])
    assert (record.present, record.valid, record.policy_id) == (True, True, "20261202T1200")
    assert parse_sts_records(["v=STSv1;id=abc;ext=1;"]).policy_id == "abc"


@pytest.mark.parametrize(
    ("texts", "problem"),
    [
        (["v=STSv1; id=1", "v=STSv1; id=2"], "2 TXT records begin with v=STSv1"),
        (["v=STSv1"], "no fields"),
        (["v=STSv1; ext=1"], "no id field"),
        (["v=STSv1; id=1; id=2"], "more than one id"),
        (["v=STSv1; id=" + "a" * 33], "not 1 to 32 letters and digits"),
        (["v=STSv1; id=2026-12-02"], "not 1 to 32 letters and digits"),
        (["v=STSv1; id"], "malformed field"),
    ],
)
def test_invalid_sts_records(texts: list[str], problem: str) -> None:
    record = parse_sts_records(texts)
    assert (record.present, record.valid) == (True, False)
    assert problem in record.problem


def test_no_sts_record_among_other_txt_records() -> None:
    assert parse_sts_records(["v=spf1 -all", "v=STSv10; id=1", "x v=STSv1; id=1"]).present is False
    assert parse_sts_records([]).present is False


def test_tlsrpt_record() -> None:
    record = parse_tlsrpt_records(["v=TLSRPTv1; rua=mailto:tls@example.com,https://report.example.com/v1"])
    assert (record.present, record.valid) == (True, True)
    assert record.rua == ("mailto:tls@example.com", "https://report.example.com/v1")


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("v=TLSRPTv1;", "no fields"),
        ("v=TLSRPTv1; ext=1", "no rua"),
        ("v=TLSRPTv1; rua=", "not a mailto: or https: URI"),
        ("v=TLSRPTv1; rua=http://report.example.com/", "not a mailto: or https: URI"),
        ("v=TLSRPTv1; rua=mailto:nobody", "not a mailto: or https: URI"),
        ("rua=mailto:a@example.com; v=TLSRPTv1", ""),
    ],
)
def test_invalid_tlsrpt_records(text: str, problem: str) -> None:
    record = parse_tlsrpt_records([text])
    if not problem:
        # The version must come first; a record that does not begin with it is not a TLS-RPT record.
        assert record.present is False
        return
    assert (record.present, record.valid, record.rua) == (True, False, ())
    assert problem in record.problem


def test_policy_with_crlf_lf_and_unknown_keys() -> None:
    body = (
        b"version: STSv1\r\nmode: enforce\nmx: MX1.example.com\r\nmx: *.example.net\n"
        b"future_key: anything goes\r\nmax_age: 604800\r\n"
    )
    assert parse_policy(body) == StsPolicy(StsMode.ENFORCE, ("mx1.example.com", "*.example.net"), 604800)


def test_policy_mode_none_needs_no_mx() -> None:
    assert parse_policy(policy_text("none", max_age=0)) == StsPolicy(StsMode.NONE, (), 0)


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        (policy_text("enforce", max_age=60), "no mx pattern"),
        (policy_text("strict", "mx.example.com"), "mode 'strict'"),
        (policy_text("enforce", "mx.example.com", max_age=31557601), "max_age"),
        (b"version: STSv1\nmode: enforce\nmx: mx.example.com\nmax_age: -1\n", "max_age"),
        (b"version: STSv2\nmode: enforce\nmx: mx.example.com\nmax_age: 1\n", "version 'STSv2'"),
        (b"mode: enforce\nmx: mx.example.com\nmax_age: 1\n", "version missing"),
        (b"version: STSv1\nmode: enforce\nmode: testing\nmx: a.example\nmax_age: 1\n", "mode given 2 times"),
        (b"version: STSv1\n\nmode: enforce\nmx: a.example\nmax_age: 1\n", "line 2"),
        (b"version: STSv1\rmode: enforce\rmx: a.example\rmax_age: 1\r", "line 1"),
        (b"version : STSv1\nmode: enforce\nmx: a.example\nmax_age: 1\n", "line 1"),
        (b"version: STSv1\nmode: enforce\nmx: a..example\nmax_age: 1\n", "mx 'a..example'"),
        (b"version: STSv1\nmode: enforce\nmx: *.*.example\nmax_age: 1\n", "mx '*.*.example'"),
        (b"<html>moved</html>\n", "line 1"),
        (b"version: STSv1\nmode: enforce\nmx: \xff\nmax_age: 1\n", "not UTF-8"),
        (b"", "empty policy"),
    ],
)
def test_invalid_policies(body: bytes, problem: str) -> None:
    parsed = parse_policy(body)
    assert isinstance(parsed, PolicyProblem)
    assert problem in parsed.detail


@pytest.mark.parametrize(
    ("pattern", "host", "matches"),
    [
        ("mx1.example.com", "mx1.example.com", True),
        ("MX1.Example.com", "mx1.example.com.", True),
        ("mx1.example.com", "mx2.example.com", False),
        ("*.example.com", "mx1.example.com", True),
        ("*.example.com", "example.com", False),
        ("*.example.com", "a.b.example.com", False),
        ("*.example.com", "mx1.example.com.evil", False),
        ("example.com", "mx.example.com", False),
    ],
)
def test_mx_patterns(pattern: str, host: str, matches: bool) -> None:
    assert mx_pattern_matches(pattern, host) is matches


_LABELS = st.from_regex(r"[a-z0-9]([a-z0-9-]{0,8}[a-z0-9])?", fullmatch=True)


@given(first=_LABELS, rest=st.lists(_LABELS, min_size=1, max_size=4), extra=_LABELS)
def test_a_wildcard_matches_exactly_one_label(first: str, rest: list[str], extra: str) -> None:
    domain = ".".join(rest)
    assert mx_pattern_matches(f"*.{domain}", f"{first}.{domain}")
    assert not mx_pattern_matches(f"*.{domain}", domain)
    assert not mx_pattern_matches(f"*.{domain}", f"{extra}.{first}.{domain}")


# Against real DNS and HTTPS servers

ZONE = "sts.test"
POLICY_HOSTS = [
    f"mta-sts.{name}.{ZONE}"
    for name in ("enforce", "partial", "testing", "redirect", "missing", "bad", "rotate", "expiring", "texthtml")
]
UNTRUSTED_HOST = f"mta-sts.untrusted.{ZONE}"
TLSRPT = '"v=TLSRPTv1; rua=mailto:tls-reports@sts.test,https://reports.sts.test/v1"'


def zone_records(https: str, nowhere: str) -> str:
    hosts = "".join(f"{host.removesuffix('.' + ZONE)} A {https}\n" for host in [*POLICY_HOSTS, UNTRUSTED_HOST])
    mx = "".join(
        f"{name} MX 10 mx1.{name}\n{name} MX 20 mx2.{name}\nmx1.{name} A 127.0.0.2\nmx2.{name} A 127.0.0.3\n"
        for name in ("enforce", "partial", "testing", "redirect", "missing", "silent", "untrusted", "twice", "bad")
    )
    sts = "".join(
        f'_mta-sts.{name} TXT "v=STSv1; id=20261202"\n'
        for name in ("enforce", "partial", "testing", "redirect", "missing", "silent", "untrusted", "bad")
    )
    return f"""
{hosts}{mx}{sts}
mta-sts.silent A {nowhere}
_mta-sts.twice TXT "v=STSv1; id=1"
_mta-sts.twice TXT "v=STSv1; id=2"
mta-sts.twice A {https}
_mta-sts.texthtml TXT "v=STSv1; " "id=1"
_mta-sts.expiring TXT "v=STSv1; id=1"
_smtp._tls.enforce TXT {TLSRPT}
_smtp._tls.partial TXT "v=TLSRPTv1;"
plain MX 10 mx1.plain
mx1.plain A 127.0.0.2
"""


ROTATE_ZONE = Zone("rotate.test", '@ MX 10 mx1\nmx1 A 127.0.0.2\n_mta-sts TXT "v=STSv1; id=1"\n')
BROKEN_ZONE = Zone("broken.test", kind=ZoneKind.BROKEN)


@dataclass
class Setup:
    dns: DnsServers
    https: PolicyServer
    ca_file: Path
    https_address: str

    def check(self, domain: str, previous: KnownPolicy | None = None) -> MtaStsResult:
        async def run() -> MtaStsResult:
            resolver = DnsResolver(self.dns.settings())
            expansion = await expand_domain(resolver, domain)
            deadline = asyncio.get_running_loop().time() + 5
            return await discover_mta_sts(
                resolver,
                domain,
                [host.name for host in expansion.mx_hosts],
                previous=previous,
                context=policy_context(self.ca_file),
                deadline=deadline,
            )

        return asyncio.run(run())


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Setup]:
    require(unavailable_reason(), "the MTA-STS tests with real nsd and unbound")
    require(https_port_unavailable_reason(), "the MTA-STS tests' HTTPS policy server")
    directory = tmp_path_factory.mktemp("mta-sts")
    https_address, nowhere = spare_loopback_address(), spare_loopback_address()
    pki = Pki(directory)
    rotate_host = "mta-sts.rotate.test"
    server = PolicyServer.start(
        https_address,
        pki.leaf(*POLICY_HOSTS, rotate_host, f"mta-sts.twice.{ZONE}"),
        directory,
        {UNTRUSTED_HOST: self_signed(UNTRUSTED_HOST)},
    )
    rotate = Zone(ROTATE_ZONE.name, ROTATE_ZONE.records + f"mta-sts A {https_address}\n")
    try:
        dns = start_dns_servers([Zone(ZONE, zone_records(https_address, nowhere)), rotate, BROKEN_ZONE], directory)
    except BaseException:
        server.stop()
        raise
    serve_defaults(server)
    yield Setup(dns, server, pki.ca_file, https_address)
    dns.stop()
    server.stop()


def serve_defaults(server: PolicyServer) -> None:
    def host(name: str) -> str:
        return f"mta-sts.{name}.{ZONE}"

    server.serve(
        host("enforce"), PolicyResponse(body=policy_text("enforce", f"mx1.enforce.{ZONE}", f"*.enforce.{ZONE}"))
    )
    server.serve(host("partial"), PolicyResponse(body=policy_text("enforce", f"mx1.partial.{ZONE}", newline="\r\n")))
    server.serve(host("testing"), PolicyResponse(body=policy_text("testing", f"*.testing.{ZONE}", max_age=604800)))
    server.serve(
        host("redirect"),
        PolicyResponse(301, b"", (("Location", f"https://{host('enforce')}/.well-known/mta-sts.txt"),)),
    )
    server.serve(host("bad"), PolicyResponse(body=b"version: STSv1\nmode: enforce\nmax_age: 86400\n"))
    server.serve(UNTRUSTED_HOST, PolicyResponse(body=policy_text("enforce", f"*.untrusted.{ZONE}")))
    server.serve(f"mta-sts.twice.{ZONE}", PolicyResponse(body=policy_text("enforce", f"*.twice.{ZONE}")))
    server.serve(
        host("texthtml"),
        PolicyResponse(body=policy_text("testing", f"*.texthtml.{ZONE}"), headers=(("Content-Type", "text/html"),)),
    )
    # "missing" is served nothing: the server's 404.


def coverage(result: MtaStsResult) -> dict[str, bool]:
    return {entry.mx: entry.covered for entry in result.mx_coverage}


def test_valid_enforce_policy(setup: Setup) -> None:
    result = setup.check(f"enforce.{ZONE}")
    assert (result.record_present, result.policy_valid, result.failure) == (True, True, None)
    assert result.record is not None
    assert result.record.policy_id == "20261202"
    assert result.known_policy is not None
    assert (result.known_policy.policy_id, result.mode, result.known_policy.policy.max_age_seconds) == (
        "20261202",
        StsMode.ENFORCE,
        86400,
    )
    assert result.known_policy.fetched_at == result.timestamp_seconds
    assert result.policy_kept is False
    assert coverage(result) == {f"mx1.enforce.{ZONE}": True, f"mx2.enforce.{ZONE}": True}
    assert result.fetch is not None
    assert result.fetch.address == setup.https_address
    assert result.tlsrpt is not None
    assert (result.tlsrpt.present, result.tlsrpt.valid, len(result.tlsrpt.rua)) == (True, True, 2)


def test_policy_missing_one_mx(setup: Setup) -> None:
    result = setup.check(f"partial.{ZONE}")
    assert (result.policy_valid, result.failure, result.mode) == (True, None, StsMode.ENFORCE)
    assert coverage(result) == {f"mx1.partial.{ZONE}": True, f"mx2.partial.{ZONE}": False}


def test_testing_mode(setup: Setup) -> None:
    result = setup.check(f"testing.{ZONE}")
    assert (result.policy_valid, result.failure, result.mode) == (True, None, StsMode.TESTING)
    assert result.known_policy is not None
    assert result.known_policy.policy.max_age_seconds == 604800
    assert coverage(result) == {f"mx1.testing.{ZONE}": True, f"mx2.testing.{ZONE}": True}
    # No _smtp._tls record at all.
    assert result.tlsrpt is not None
    assert (result.tlsrpt.present, result.tlsrpt.valid) == (False, False)


def test_a_redirect_is_not_followed(setup: Setup) -> None:
    enforce_requests = setup.https.requests_for(f"mta-sts.enforce.{ZONE}")
    result = setup.check(f"redirect.{ZONE}")
    assert (result.record_present, result.policy_valid, result.failure) == (
        True,
        False,
        StsFailure.STS_POLICY_FETCH_ERROR,
    )
    assert "HTTP 301" in result.detail
    assert "not followed" in result.detail
    assert result.known_policy is None
    assert result.mx_coverage == ()
    # The Location pointed at a host that serves a valid policy; nobody asked it.
    assert setup.https.requests_for(f"mta-sts.enforce.{ZONE}") == enforce_requests


def test_404(setup: Setup) -> None:
    result = setup.check(f"missing.{ZONE}")
    assert (result.policy_valid, result.failure) == (False, StsFailure.STS_POLICY_FETCH_ERROR)
    assert "HTTP 404" in result.detail


def test_nothing_listening(setup: Setup) -> None:
    result = setup.check(f"silent.{ZONE}")
    assert (result.record_present, result.policy_valid, result.failure) == (
        True,
        False,
        StsFailure.STS_POLICY_FETCH_ERROR,
    )
    assert "ConnectionRefusedError" in result.detail


def test_an_untrusted_certificate_on_the_policy_host(setup: Setup) -> None:
    result = setup.check(f"untrusted.{ZONE}")
    assert (result.policy_valid, result.failure) == (False, StsFailure.STS_WEBPKI_INVALID)
    assert "self-signed certificate" in result.detail
    # The policy behind the certificate was never read.
    assert setup.https.requests_for(UNTRUSTED_HOST) == 0


def test_two_sts_records(setup: Setup) -> None:
    result = setup.check(f"twice.{ZONE}")
    assert (result.record_present, result.policy_valid, result.failure) == (True, False, StsFailure.STS_RECORD_INVALID)
    assert "2 TXT records" in result.detail
    # Senders assume no policy (RFC 8461 section 3.1) and so fetch none; nor do we.
    assert result.fetch is None
    assert setup.https.requests_for(f"mta-sts.twice.{ZONE}") == 0


def test_a_malformed_policy(setup: Setup) -> None:
    result = setup.check(f"bad.{ZONE}")
    assert (result.policy_valid, result.failure) == (False, StsFailure.STS_POLICY_INVALID)
    assert "no mx pattern" in result.detail


def test_a_policy_served_as_html(setup: Setup) -> None:
    result = setup.check(f"texthtml.{ZONE}")
    assert (result.record_present, result.policy_valid, result.failure) == (True, False, StsFailure.STS_POLICY_INVALID)
    assert "text/html" in result.detail


def test_no_mta_sts_and_no_tlsrpt(setup: Setup) -> None:
    result = setup.check(f"plain.{ZONE}")
    assert (result.record_present, result.policy_valid, result.failure, result.known_policy) == (
        False,
        None,
        None,
        None,
    )
    assert result.fetch is None
    assert result.mx_coverage == ()
    assert result.tlsrpt is not None
    assert result.tlsrpt.present is False


def test_tlsrpt_without_rua(setup: Setup) -> None:
    result = setup.check(f"partial.{ZONE}")
    assert result.tlsrpt is not None
    assert (result.tlsrpt.present, result.tlsrpt.valid, result.tlsrpt.rua) == (True, False, ())
    assert "no fields" in result.tlsrpt_detail


def test_a_failing_txt_lookup(setup: Setup) -> None:
    result = setup.check("broken.test")
    assert (result.record, result.record_present, result.policy_valid) == (None, None, None)
    assert result.failure is StsFailure.STS_POLICY_FETCH_ERROR
    assert "SERVFAIL" in result.detail
    assert result.tlsrpt is None
    assert "SERVFAIL" in result.tlsrpt_detail


def test_a_policy_that_changes_with_its_id_and_the_last_good_one_kept(setup: Setup) -> None:
    host = "mta-sts.rotate.test"
    setup.https.serve(host, PolicyResponse(body=policy_text("testing", "mx1.rotate.test")))
    first = setup.check("rotate.test")
    assert first.known_policy is not None
    assert (first.known_policy.policy_id, first.mode) == ("1", StsMode.TESTING)

    # The admin moves to enforce and bumps the id, as RFC 8461 section 3.1 asks.
    setup.https.serve(host, PolicyResponse(body=policy_text("enforce", "mx1.rotate.test", "mx2.rotate.test")))
    setup.dns.replace_zone(
        "rotate.test", ROTATE_ZONE.records.replace("id=1", "id=2") + f"mta-sts A {setup.https_address}\n"
    )
    second = setup.check("rotate.test", first.known_policy)
    assert second.known_policy is not None
    assert (second.known_policy.policy_id, second.mode, second.policy_kept, second.failure) == (
        "2",
        StsMode.ENFORCE,
        False,
        None,
    )
    assert second.known_policy.policy.mx_patterns == ("mx1.rotate.test", "mx2.rotate.test")
    assert second.known_policy.changed_without_new_id is False

    # The next change forgets the id: senders keep the cached policy, and we say so.
    setup.https.serve(host, PolicyResponse(body=policy_text("enforce", "mx1.rotate.test")))
    third = setup.check("rotate.test", second.known_policy)
    assert third.known_policy is not None
    assert third.known_policy.changed_without_new_id is True
    assert "id stayed 2" in third.detail

    # The policy host breaks: the last good policy stays in effect, and the failure is reported.
    setup.https.serve(host, PolicyResponse(500, b"oops\n"))
    fourth = setup.check("rotate.test", third.known_policy)
    assert (fourth.policy_valid, fourth.failure, fourth.policy_kept) == (False, StsFailure.STS_POLICY_FETCH_ERROR, True)
    assert fourth.known_policy == third.known_policy
    assert coverage(fourth) == {"mx1.rotate.test": True}
    assert "last good policy (id 2)" in fourth.detail


def test_a_kept_policy_expires_with_its_max_age(setup: Setup) -> None:
    host = f"mta-sts.expiring.{ZONE}"
    # max_age 0: no sender may cache it, so a failure leaves no policy in effect.
    setup.https.serve(host, PolicyResponse(body=policy_text("enforce", f"*.expiring.{ZONE}", max_age=0)))
    first = setup.check(f"expiring.{ZONE}")
    assert first.policy_valid is True
    assert first.known_policy is not None
    setup.https.serve(host, PolicyResponse(404))
    second = setup.check(f"expiring.{ZONE}", first.known_policy)
    assert (second.policy_valid, second.known_policy, second.policy_kept) == (False, None, False)


@pytest.mark.parametrize("framing", ["chunked", "close"])
def test_bodies_without_content_length(setup: Setup, framing: Literal["chunked", "close"]) -> None:
    host = f"mta-sts.expiring.{ZONE}"
    body = policy_text("testing", f"*.expiring.{ZONE}", "mx.example.com", max_age=3600)
    setup.https.serve(host, PolicyResponse(body=body, framing=framing))
    result = setup.check(f"expiring.{ZONE}")
    assert (result.policy_valid, result.failure) == (True, None)
    assert result.known_policy is not None
    assert result.known_policy.policy == StsPolicy(StsMode.TESTING, (f"*.expiring.{ZONE}", "mx.example.com"), 3600)


@pytest.mark.parametrize("framing", ["length", "chunked", "close"])
def test_an_oversized_policy_is_a_fetch_error(setup: Setup, framing: Literal["length", "chunked", "close"]) -> None:
    host = f"mta-sts.expiring.{ZONE}"
    padding = b"".join(b"x%d: %s\n" % (index, b"y" * 100) for index in range(MAX_BODY_OCTETS // 100))
    setup.https.serve(
        host, PolicyResponse(body=policy_text("enforce", f"*.expiring.{ZONE}") + padding, framing=framing)
    )
    result = setup.check(f"expiring.{ZONE}")
    assert (result.policy_valid, result.failure) == (False, StsFailure.STS_POLICY_FETCH_ERROR)
    assert f"than {MAX_BODY_OCTETS}" in result.detail


def test_coverage_follows_the_mx_hosts_given() -> None:
    known = KnownPolicy("1", StsPolicy(StsMode.ENFORCE, ("*.example.com",), 60), 0.0)
    result = MtaStsResult("example.com", None, None, None, known, False, None, "", (), None, "", 0.0, 0.0).covering(
        ["mx.example.com", "mx.example.net"]
    )
    assert result.mx_coverage == (MxCoverage("mx.example.com", True), MxCoverage("mx.example.net", False))


def test_check_mx_shows_the_policy_its_mode_and_coverage(setup: Setup, capsys: pytest.CaptureFixture[str]) -> None:
    host, port = setup.dns.resolver_address
    arguments = [f"partial.{ZONE}", "--mx", "--nameserver", f"{host}:{port}", "--timeout", "3s"]
    check_main([*arguments, "--mta-sts-ca-file", str(setup.ca_file)])
    report = capsys.readouterr().out
    assert f"MTA-STS policy: id 20261202, mode enforce, max_age 86400s, mx mx1.partial.{ZONE}" in report
    assert f"  mx1.partial.{ZONE}: covered" in report
    assert f"  mx2.partial.{ZONE}: NOT covered: senders refuse it" in report
    assert "TLS-RPT invalid: no fields after v=TLSRPTv1" in report
    # Without the test CA, the policy host is not WebPKI-valid.
    check_main(arguments)
    assert "MTA-STS FAILED: sts_webpki_invalid" in capsys.readouterr().out
