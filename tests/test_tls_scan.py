"""The TLS capability scan against real servers of known postures, checked with `openssl s_client`.

One Postfix with a STARTTLS listener per posture (tests/support/postfix_postures.py)
and aiosmtpd servers whose Python contexts the test sets. Every answer the scan
gives is asked again with OpenSSL's own client, which completes real
handshakes, so a wrong parser cannot agree with itself.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Iterator
from pathlib import Path

import pytest
import trustme
from hypothesis import given, settings
from hypothesis import strategies as st

from exporter.config.model import ProbeSpec, TlsMode
from exporter.scan.engine import scan
from exporter.scan.hello import FlightReader, HelloOffer, ProtocolVersion, ReplyKind, client_hello
from exporter.scan.result import ScanError, ScanResult
from exporter.scan.suites import EC_GROUPS, LEGACY_SUITES
from exporter.tls.ratings import Rating, cipher_rating
from tests.support import openssl_reference as reference
from tests.support.environment import require
from tests.support.pki import Pki
from tests.support.postfix_postures import PostureServer, start_posture_server, stop_posture_server, unavailable_reason
from tests.support.servers import ScenarioServers, closed_port

LEGACY_VERSIONS = ("TLSv1", "TLSv1.1", "TLSv1.2")
POSTURES = ("default", "legacy", "tls13_only", "dhe_only", "ordered")


def _spec(port: int, tls: TlsMode = TlsMode.STARTTLS) -> ProbeSpec:
    return ProbeSpec("127.0.0.1", port, tls, "mail.test", "scanner.test", timeout=10)


@pytest.fixture(scope="module")
def postures(pki: Pki) -> Iterator[PostureServer]:
    require(unavailable_reason(), "the Postfix posture servers")
    # RSA: DHE-RSA and RSA key exchange need an RSA key on the server.
    leaf = pki.leaf("mail.test", key_type=trustme.KeyType.RSA)
    server = start_posture_server(leaf.key_pem + leaf.chain_pem)
    yield server
    stop_posture_server(server)


@pytest.fixture(scope="module")
def scans(postures: PostureServer) -> dict[str, ScanResult]:
    async def scan_all() -> dict[str, ScanResult]:
        return {name: await scan(_spec(postures.ports[name])) for name in POSTURES}

    return asyncio.run(scan_all())


def test_alike_servers_share_their_version_findings(postures: PostureServer, scans: dict[str, ScanResult]) -> None:
    # 10,000 scans held 74 MiB while each kept its own copies; equal findings are one object.
    again = asyncio.run(scan(_spec(postures.ports["default"])))
    first = scans["default"]
    assert again.versions == first.versions
    assert all(mine is theirs for mine, theirs in zip(again.versions, first.versions, strict=True))
    # Across the postures: one object per distinct finding, and per accepted suite.
    findings = [scanned for result in scans.values() for scanned in result.versions]
    assert len({id(scanned) for scanned in findings}) == len(set(findings)) > len(ProtocolVersion)
    legacy = scans["legacy"]
    suites = {suite.code: suite for scanned in first.versions for suite in scanned.suites}
    shared = [suite for scanned in legacy.versions for suite in scanned.suites if suite.code in suites]
    assert shared
    assert all(suite is suites[suite.code] for suite in shared)


@pytest.mark.parametrize("posture", POSTURES)
def test_versions_agree_with_openssl(posture: str, postures: PostureServer, scans: dict[str, ScanResult]) -> None:
    result = scans[posture]
    assert result.success, result.error_detail
    port = postures.ports[posture]
    for version in (*LEGACY_VERSIONS, "TLSv1.3"):
        scanned = result.version(ProtocolVersion(version))
        assert scanned is not None
        assert scanned.accepted == reference.version_accepted(port, version), version
    # Neither side can do SSLv3: Postfix's OpenSSL 3.0 is built without it.
    sslv3 = result.version(ProtocolVersion.SSLV3)
    assert sslv3 is not None
    assert not sslv3.accepted


@pytest.mark.parametrize("posture", POSTURES)
def test_cipher_suites_agree_with_openssl(posture: str, postures: PostureServer, scans: dict[str, ScanResult]) -> None:
    result = scans[posture]
    for scanned in result.versions:
        if scanned.version is ProtocolVersion.SSLV3:
            continue
        local = set(reference.local_suites(scanned.version))
        ours = {suite.name for suite in scanned.suites}
        expected = reference.accepted_suites(postures.ports[posture], scanned.version) if scanned.accepted else set()
        # Only what OpenSSL's client can offer can be compared; nothing else may appear.
        assert ours & local == expected, scanned.version
        assert ours <= local | {suite.name for suite in LEGACY_SUITES}


@pytest.mark.parametrize("posture", POSTURES)
def test_groups_agree_with_openssl(posture: str, postures: PostureServer, scans: dict[str, ScanResult]) -> None:
    port = postures.ports[posture]
    for scanned in scans[posture].versions:
        if not scanned.accepted or scanned.version not in (ProtocolVersion.TLSV1_2, ProtocolVersion.TLSV1_3):
            continue
        names = reference.OPENSSL_GROUPS if scanned.version is ProtocolVersion.TLSV1_3 else {g.name for g in EC_GROUPS}
        expected = {name for name in names if reference.group_accepted(port, scanned.version, name)}
        assert set(scanned.groups) - {"X25519MLKEM768"} == expected, scanned.version
        # Debian 12's OpenSSL 3.0 has no ML-KEM, so Postfix cannot accept it.
        assert "X25519MLKEM768" not in scanned.groups


@pytest.mark.parametrize("posture", POSTURES)
def test_session_extensions_agree_with_openssl(
    posture: str, postures: PostureServer, scans: dict[str, ScanResult]
) -> None:
    result = scans[posture]
    legacy = [v for v in result.versions if v.accepted and v.version is not ProtocolVersion.TLSV1_3]
    if not legacy:
        # TLS 1.3 only: no renegotiation, EMS built in, no compression (RFC 8446).
        assert (result.secure_renegotiation, result.extended_master_secret) == (None, None)
        assert result.compression is False
        return
    renegotiation, ems, compression = reference.session_facts(postures.ports[posture], legacy[-1].version)
    assert result.secure_renegotiation == renegotiation
    assert result.extended_master_secret == ems
    assert result.compression == compression


def test_known_postures(scans: dict[str, ScanResult]) -> None:
    # What each Postfix listener was configured to do, independent of any tool.
    assert scans["tls13_only"].accepted_versions == (ProtocolVersion.TLSV1_3,)
    assert scans["legacy"].version(ProtocolVersion.TLSV1) is not None
    assert ProtocolVersion.TLSV1 in scans["legacy"].accepted_versions
    dhe = scans["dhe_only"]
    assert dhe.accepted_versions == (ProtocolVersion.TLSV1_2,)
    tls12 = dhe.version(ProtocolVersion.TLSV1_2)
    assert tls12 is not None
    assert all(suite.name.startswith("DHE-") and suite.forward_secret for suite in tls12.suites)
    # Postfix's built-in 2048-bit prime is RFC 3526 group 14, not an RFC 7919 group.
    assert (tls12.dhe_bits, tls12.groups) == (2048, ())
    ordered = scans["ordered"].version(ProtocolVersion.TLSV1_2)
    assert ordered is not None
    assert [(s.name, s.rating) for s in ordered.suites] == [
        ("ECDHE-RSA-AES128-GCM-SHA256", Rating.SUFFICIENT),
        ("AES128-SHA", Rating.INSUFFICIENT),
    ]


def test_cipher_order_agrees_with_openssl(postures: PostureServer, scans: dict[str, ScanResult]) -> None:
    # internet.nl's test: the phase-out or insufficient suite offered first.
    for posture, enforced in (("ordered", True), ("default", False)):
        picked = reference.picks(postures.ports[posture], "TLSv1.2", ["AES128-SHA", "ECDHE-RSA-AES128-GCM-SHA256"])
        assert (cipher_rating(picked) is Rating.SUFFICIENT) is enforced
        assert scans[posture].server_cipher_order is enforced
    # Only phase-out and insufficient suites: the test does not apply.
    assert scans["dhe_only"].server_cipher_order is None


def test_python_context_posture(servers: ScenarioServers, pki: Pki, tmp_path: Path) -> None:
    """aiosmtpd with a context set here: TLS 1.2 and 1.3, two suites, one curve."""
    context = pki.leaf("mail.test", key_type=trustme.KeyType.RSA).server_context(tmp_path, "scan-context")
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.set_ciphers("ECDHE-RSA-AES256-GCM-SHA384:ECDHE-RSA-AES128-SHA")
    context.set_ecdh_curve("secp384r1")  # also the only TLS 1.3 group (SSL_CTX_set1_groups)
    port = servers.smtp(tls_context=context)
    result = asyncio.run(scan(_spec(port)))
    assert result.success, result.error_detail
    assert result.accepted_versions == (ProtocolVersion.TLSV1_2, ProtocolVersion.TLSV1_3)
    tls12 = result.version(ProtocolVersion.TLSV1_2)
    assert tls12 is not None
    assert {s.name for s in tls12.suites} == reference.accepted_suites(port, "TLSv1.2")
    assert {s.name for s in tls12.suites} == {"ECDHE-RSA-AES256-GCM-SHA384", "ECDHE-RSA-AES128-SHA"}
    assert tls12.groups == ("secp384r1",)
    assert reference.group_accepted(port, "TLSv1.2", "secp384r1")
    assert not reference.group_accepted(port, "TLSv1.2", "x25519")
    tls13 = result.version(ProtocolVersion.TLSV1_3)
    assert tls13 is not None
    assert tls13.groups == ("secp384r1",)


def test_implicit_tls(servers: ScenarioServers, pki: Pki, tmp_path: Path) -> None:
    context = pki.leaf("mail.test").server_context(tmp_path, "scan-implicit")
    context.minimum_version = ssl.TLSVersion.TLSv1_3
    port = servers.smtp(tls_context=context, implicit_tls=True)
    result = asyncio.run(scan(_spec(port, TlsMode.IMPLICIT)))
    assert result.success, result.error_detail
    assert result.accepted_versions == (ProtocolVersion.TLSV1_3,)
    assert reference.version_accepted(port, "TLSv1.3", starttls=False)
    assert not reference.version_accepted(port, "TLSv1.2", starttls=False)


def test_failures_are_results(servers: ScenarioServers) -> None:
    refused = asyncio.run(scan(_spec(closed_port())))
    assert (refused.success, refused.error) == (False, ScanError.CONNECT_REFUSED)
    no_starttls = asyncio.run(scan(_spec(servers.smtp())))
    assert (no_starttls.success, no_starttls.error) == (False, ScanError.STARTTLS_NOT_OFFERED)
    assert no_starttls.versions == ()


def test_cancelled_scan_ends_promptly(postures: PostureServer) -> None:
    async def cancel_midway() -> bool:
        task = asyncio.create_task(scan(_spec(postures.ports["default"])))
        await asyncio.sleep(0.05)
        task.cancel()
        try:
            await task
        except asyncio.CancelledError:
            return True
        return False

    assert asyncio.run(cancel_midway())


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=600), st.integers(min_value=1, max_value=64))
def test_flight_reader_never_raises(data: bytes, chunk: int) -> None:
    reader = FlightReader()
    for start in range(0, len(data), chunk):
        reader.feed(data[start : start + chunk])
    assert reader.end_of_stream().kind in ReplyKind


@given(st.sampled_from(list(ProtocolVersion)), st.booleans())
def test_client_hello_is_one_well_formed_record(version: ProtocolVersion, compression: bool) -> None:
    suites = tuple(suite.code for suite in LEGACY_SUITES)
    record = client_hello(HelloOffer(version, suites, (0x001D,), "mail.test", compression), bytes(32))
    assert record[0] == 22
    assert int.from_bytes(record[3:5], "big") == len(record) - 5
    assert int.from_bytes(record[6:9], "big") == len(record) - 9
