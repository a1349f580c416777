"""DANE (RFC 7672): TLSA lookups against real nsd + unbound, verdicts on real chains, and Postfix's opinion.

Every posture of tests/dane_scenarios.py is judged by our code and, where
posttls-finger runs, by Postfix's reference client on the same server and zone.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from cryptography.hazmat.primitives import serialization
from hypothesis import given
from hypothesis import strategies as st

from exporter.dane.tlsa import TlsaLookup, TlsaLookupStatus, TlsaRecord, lookup_tlsa
from exporter.dane.verdict import DaneMatch, DaneStatus, DaneVerdict, association_data, dane_verdict
from exporter.dns.resolver import DnsResolver
from tests.dane_scenarios import (
    PORT_53_ADDRESS,
    SECURE,
    DaneWorld,
    certificates,
    chain_der,
    start_dane_world,
    tlsa,
)
from tests.support.dns import private_resolver_available, with_private_resolver
from tests.support.dns_servers import unavailable_reason
from tests.support.environment import require
from tests.support.exporter_process import ExporterProcess, Scrape
from tests.support.pki import Pki, self_signed
from tests.support.posttls_finger import posttls_finger, write_resolv_conf
from tests.support.posttls_finger import unavailable_reason as finger_unavailable
from tests.support.servers import ScenarioServers

RESULT_SCHEMA = json.loads((Path(__file__).resolve().parent.parent / "docs" / "check-result.schema.json").read_text())

# label -> (status, the reported match as (usage, selector, matching type, depth) or None)
EXPECTED: dict[str, tuple[DaneStatus, tuple[int, int, int, int] | None]] = {
    "ee": (DaneStatus.PASS, (3, 1, 1, 0)),
    "ee-mismatch": (DaneStatus.FAIL, None),
    # DANE-EE ignores names and dates (RFC 7672 section 3.1.1).
    "ee-expired": (DaneStatus.PASS, (3, 1, 1, 0)),
    "ee-misnamed": (DaneStatus.PASS, (3, 1, 1, 0)),
    "ee-sha512": (DaneStatus.PASS, (3, 1, 2, 0)),
    "ta-intermediate": (DaneStatus.PASS, (2, 1, 1, 1)),
    # A digest of a key the server never sends cannot be checked against anything.
    "ta-root": (DaneStatus.FAIL, None),
    # DANE-TA asks the leaf to name the server (RFC 7672 section 3.2.2).
    "ta-misnamed": (DaneStatus.FAIL, None),
    "usage1": (DaneStatus.UNUSABLE, None),
    "rollover": (DaneStatus.PASS, (3, 1, 1, 0)),
    "cert-only": (DaneStatus.PASS, (3, 0, 1, 0)),
    "no-tlsa": (DaneStatus.NO_TLSA, None),
    "unsigned": (DaneStatus.INSECURE, None),
    "bogus": (DaneStatus.DNS_ERROR, None),
}


@pytest.fixture(scope="module")
def world(pki: Pki, servers: ScenarioServers, tmp_path_factory: pytest.TempPathFactory) -> Iterator[DaneWorld]:
    require(unavailable_reason(), "the DANE tests with real nsd and unbound")
    yield from start_dane_world(pki, servers, tmp_path_factory.mktemp("dane"))


def judge(world: DaneWorld, host: str, port: int, chain: list[bytes] | None) -> DaneVerdict:
    lookup = asyncio.run(lookup_tlsa(DnsResolver(world.dns.settings()), host, port))
    return dane_verdict(lookup, chain, reference_names=(host, lookup.base_name), now=time.time())


def judge_posture(world: DaneWorld, label: str) -> DaneVerdict:
    posture, port = world.postures[label]
    return judge(world, posture.host, port, chain_der(posture.server) if posture.starttls else None)


def reported(verdict: DaneVerdict) -> tuple[int, int, int, int] | None:
    match = verdict.match
    return None if match is None else (*match.kind, match.depth)


# Against the real DNS servers


@pytest.mark.parametrize("label", sorted(EXPECTED))
def test_verdict_of_each_posture(world: DaneWorld, label: str) -> None:
    verdict = judge_posture(world, label)
    assert (verdict.status, reported(verdict)) == EXPECTED[label], verdict.detail


def test_records_are_counted_by_kind_when_the_lookup_is_secure(world: DaneWorld) -> None:
    assert judge_posture(world, "rollover").records_by_kind() == {(3, 1, 1): 2}
    assert judge_posture(world, "usage1").records_by_kind() == {(1, 1, 1): 1}
    assert judge_posture(world, "no-tlsa").lookup.secure
    # An unsigned zone's records are not DANE's to count.
    unsigned = judge_posture(world, "unsigned")
    assert (unsigned.lookup.secure, unsigned.records_by_kind()) == (False, {})


def test_rollover_needs_two_usable_records(world: DaneWorld) -> None:
    assert judge_posture(world, "rollover").rollover_ready
    assert not judge_posture(world, "ee").rollover_ready


def test_only_full_certificate_matches_break_on_renewal(world: DaneWorld) -> None:
    assert not judge_posture(world, "cert-only").renewal_safe
    assert judge_posture(world, "ee").renewal_safe
    assert judge_posture(world, "ta-intermediate").renewal_safe


def test_a_host_without_starttls_fails_where_tlsa_makes_tls_mandatory(world: DaneWorld) -> None:
    verdict = judge_posture(world, "no-starttls")
    assert (verdict.status, verdict.applies, verdict.matches) == (DaneStatus.FAIL, True, ())


def test_the_tlsa_base_name_follows_a_secure_cname(world: DaneWorld) -> None:
    good = world.posture("ee")
    verdict = judge(world, f"alias.{SECURE}", world.port("ee"), chain_der(good.server))
    assert verdict.lookup.base_name == f"ee.{SECURE}"
    assert (verdict.status, reported(verdict)) == (DaneStatus.PASS, (3, 1, 1, 0))


def test_no_tlsa_lookup_for_a_host_whose_addresses_are_insecure(world: DaneWorld) -> None:
    good = world.posture("ee")
    verdict = judge(world, f"outside.{SECURE}", world.port("ee"), chain_der(good.server))
    assert verdict.status is DaneStatus.INSECURE
    assert "address" in verdict.detail


def test_bogus_answers_say_why(world: DaneWorld) -> None:
    verdict = judge_posture(world, "bogus")
    assert verdict.status is DaneStatus.DNS_ERROR
    assert "servfail" in verdict.detail.lower()


def test_match_is_described_in_posttls_fingers_words(world: DaneWorld) -> None:
    ee, ta = judge_posture(world, "ee").match, judge_posture(world, "ta-intermediate").match
    assert ee is not None
    assert ee.describe().startswith("Matched DANE EE certificate at depth 0: 3 1 1")
    assert ta is not None
    assert ta.describe().startswith("Matched DANE TA certificate at depth 1: 2 1 1")


# Postfix's reference client on the same servers and zones


@pytest.fixture(scope="module")
def resolv_conf(world: DaneWorld, tmp_path_factory: pytest.TempPathFactory) -> Path:
    require(finger_unavailable(), "the posttls-finger comparison")
    return write_resolv_conf(tmp_path_factory.mktemp("finger") / "resolv.conf", PORT_53_ADDRESS)


# posttls-finger's verdict for a DANE pass is a "Verified" TLS connection.
FINGER_LABELS = sorted(label for label in EXPECTED if label not in ("no-tlsa", "unsigned"))


@pytest.mark.parametrize("label", FINGER_LABELS)
def test_posttls_finger_agrees(world: DaneWorld, resolv_conf: Path, label: str) -> None:
    posture, port = world.postures[label]
    finger = posttls_finger(resolv_conf, posture.host, port)
    ours = judge_posture(world, label)
    assert (finger.connection == "Verified") == (ours.status is DaneStatus.PASS), finger.output
    if ours.match is not None:
        assert finger.matched is not None, finger.output
        assert finger.matched.startswith(ours.match.describe()), finger.output


# Pure


def test_association_data_agrees_with_an_independent_digest(pki: Pki) -> None:
    leaf = certificates(self_signed())[0]
    der = leaf.public_bytes(serialization.Encoding.DER)
    for selector in (0, 1):
        for matching_type in (0, 1, 2):
            data = association_data(der, selector, matching_type)
            assert data is not None
            assert f"3 {selector} {matching_type} {data.hex()}" == tlsa(3, selector, matching_type, leaf)


@given(
    usage=st.integers(0, 255),
    selector=st.integers(0, 255),
    matching_type=st.integers(0, 255),
    length=st.integers(0, 80),
)
def test_only_dane_ta_and_ee_with_known_parameters_and_digest_lengths_are_usable(
    usage: int, selector: int, matching_type: int, length: int
) -> None:
    record = TlsaRecord(usage, selector, matching_type, b"\x01" * length)
    wanted_length = {0: length > 0, 1: length == 32, 2: length == 64}.get(matching_type, False)
    assert record.usable == (usage in (2, 3) and selector in (0, 1) and wanted_length)


def secure(*records: TlsaRecord) -> TlsaLookup:
    return TlsaLookup(TlsaLookupStatus.RECORDS, "_25._tcp.mx.test", "mx.test", records)


def test_dane_ee_matches_a_self_signed_leaf_and_ignores_names() -> None:
    server = self_signed("not-the-host.example")
    chain = chain_der(server)
    record = TlsaRecord(3, 1, 1, association_data(chain[0], 1, 1) or b"")
    verdict = dane_verdict(secure(record), chain, reference_names=("mx.test",), now=time.time())
    assert (verdict.status, verdict.matches) == (DaneStatus.PASS, (DaneMatch(3, 1, 1, 0),))


def test_dane_ta_on_the_leaf_itself_does_not_count() -> None:
    # OpenSSL (so Postfix) looks for a DANE-TA match above the leaf only.
    chain = chain_der(self_signed("mx.test"))
    record = TlsaRecord(2, 1, 1, association_data(chain[0], 1, 1) or b"")
    verdict = dane_verdict(secure(record), chain, reference_names=("mx.test",), now=time.time())
    assert verdict.status is DaneStatus.FAIL


def test_unusable_only_and_denials_carry_no_match() -> None:
    unusable = dane_verdict(secure(TlsaRecord(1, 1, 1, b"\x00" * 32)), [b""], reference_names=(), now=0)
    assert (unusable.status, unusable.applies, unusable.rollover_ready) == (DaneStatus.UNUSABLE, False, False)
    denial = TlsaLookup(TlsaLookupStatus.NO_TLSA, "_25._tcp.mx.test", "mx.test")
    assert dane_verdict(denial, None, reference_names=(), now=0).status is DaneStatus.NO_TLSA


def test_posttls_finger_does_not_pull_an_unsent_dane_ta_root_from_its_ca_file(
    world: DaneWorld, resolv_conf: Path, pki: Pki
) -> None:
    # Why "2 1 1 on a root the server does not send" is a failure for us too:
    # Postfix does not complete the chain from local CAs to find the TLSA's anchor.
    posture, port = world.postures["ta-root"]
    finger = posttls_finger(resolv_conf, posture.host, port, ca_file=pki.ca_file)
    assert finger.connection == "Untrusted", finger.output
    assert "no matching DANE TLSA records" in finger.output
    assert judge_posture(world, "ta-root").status is DaneStatus.FAIL


def test_posttls_finger_also_gives_up_on_a_bogus_zone(world: DaneWorld, resolv_conf: Path) -> None:
    posture, port = world.postures["bogus"]
    finger = posttls_finger(resolv_conf, posture.host, port)
    assert finger.connection is None, finger.output
    assert "lookup failed" in finger.output


# Through a running exporter's /metrics

E2E_TARGETS = (
    "ee", "ee-mismatch", "ee-expired", "ee-misnamed", "ta-intermediate", "ta-root", "ta-misnamed", "usage1",
    "rollover", "cert-only", "no-tlsa", "unsigned", "bogus", "no-starttls",
)  # fmt: skip


@pytest.fixture(scope="module")
def scrape(world: DaneWorld, pki: Pki, tmp_path_factory: pytest.TempPathFactory) -> Scrape:
    # The exporter connects through the system resolver: in its own mount
    # namespace that is unbound too, so names and TLSA come from the same zones.
    require(private_resolver_available(), "the exporter's DANE tests")
    base = tmp_path_factory.mktemp("dane-exporter")
    resolver_host, resolver_port = world.dns.resolver_address
    lines = [
        f"  - {{name: {label}, host: {world.posture(label).host}, port: {world.port(label)}}}" for label in E2E_TARGETS
    ]
    lines.append(f"  - {{name: required, host: no-tlsa.{SECURE}, port: {world.port('no-tlsa')}, dane: required}}")
    lines.append(f"  - {{name: dane-off, host: ee-mismatch.{SECURE}, port: {world.port('ee-mismatch')}, dane: 'off'}}")
    config = base / "config.yml"
    config.write_text(
        f"dns: {{nameservers: ['{resolver_host}:{resolver_port}'], timeout: 3s}}\n"
        f"defaults: {{interval: 1h, timeout: 10s, ehlo_name: probe.test, ca_file: {pki.ca_file}}}\n"
        "targets:\n" + "\n".join(lines) + "\n"
    )
    resolv_conf = write_resolv_conf(base / "resolv.conf", PORT_53_ADDRESS)
    prefix = with_private_resolver(resolv_conf, world.hosts_file(base / "hosts"))
    with ExporterProcess(config, base / "exporter.log", command_prefix=prefix) as exporter:
        return exporter.wait_for_probes([*E2E_TARGETS, "required", "dane-off"])


def reasons(scrape: Scrape, target: str) -> set[str]:
    return {labels["reason"] for labels, _ in scrape.find("smtp_probe_error_info", target=target)}


def dane_status(scrape: Scrape, target: str) -> str | None:
    statuses = [labels["status"] for labels, _ in scrape.find("smtp_dane_status_info", target=target)]
    assert len(statuses) <= 1
    return statuses[0] if statuses else None


def match_info(scrape: Scrape, target: str) -> set[tuple[str, str, str, str]]:
    return {
        (labels["usage"], labels["selector"], labels["matching_type"], labels["depth"])
        for labels, _ in scrape.find("smtp_dane_match_info", target=target)
    }


@pytest.mark.parametrize("label", E2E_TARGETS)
def test_exporter_status_and_match_of_each_posture(scrape: Scrape, label: str) -> None:
    status, match = EXPECTED.get(label, (DaneStatus.FAIL, None))
    assert dane_status(scrape, label) == status.value
    assert match_info(scrape, label) == ({tuple(str(part) for part in match)} if match else set())
    expected_match = {DaneStatus.PASS: 1.0, DaneStatus.FAIL: 0.0}.get(status)
    assert scrape.value("smtp_dane_match", target=label) == expected_match


def test_dane_pass_replaces_trust_and_hostname_in_probe_success(scrape: Scrape) -> None:
    # A DANE-EE deployment with an expired or misnamed certificate is correct: nobody is paged.
    for label in ("ee-expired", "ee-misnamed"):
        assert scrape.value("smtp_probe_success", target=label) == 1, reasons(scrape, label)
    assert scrape.value("smtp_cert_hostname_match", target="ee-misnamed") == 0
    assert scrape.value("smtp_cert_trusted", target="ee-expired") == 0
    assert scrape.value("smtp_cert_expiry_days", target="ee-expired") < 0  # type: ignore[operator]
    for label in ("ee", "ta-intermediate", "rollover", "cert-only"):
        assert scrape.value("smtp_probe_success", target=label) == 1, reasons(scrape, label)


def test_dane_failures_fail_the_probe_even_with_a_trusted_chain(scrape: Scrape) -> None:
    for label in ("ee-mismatch", "ta-root", "ta-misnamed"):
        assert scrape.value("smtp_probe_success", target=label) == 0
        assert "dane_mismatch" in reasons(scrape, label), label
    assert scrape.value("smtp_cert_trusted", target="ee-mismatch") == 1
    assert reasons(scrape, "ee-mismatch") == {"dane_mismatch"}


def test_no_starttls_where_tlsa_makes_tls_mandatory(scrape: Scrape) -> None:
    assert reasons(scrape, "no-starttls") == {"starttls_not_offered"}
    assert scrape.value("smtp_dane_match", target="no-starttls") == 0


def test_no_dane_leaves_the_pkix_verdict_alone(scrape: Scrape) -> None:
    for label in ("no-tlsa", "usage1"):
        assert scrape.value("smtp_probe_success", target=label) == 1, reasons(scrape, label)
    # The unsigned zone's host presents ee.dane.test's certificate: without DANE, PKIX's name check counts.
    assert reasons(scrape, "unsigned") == {"hostname_mismatch"}
    assert scrape.value("smtp_dane_match", target="usage1") is None
    # The mismatched TLSA is not looked at when DANE is off.
    assert scrape.value("smtp_probe_success", target="dane-off") == 1
    assert dane_status(scrape, "dane-off") is None


def test_a_bogus_zone_is_a_lookup_failure(scrape: Scrape) -> None:
    assert scrape.value("smtp_probe_success", target="bogus") == 0
    assert "dane_lookup_failed" in reasons(scrape, "bogus")
    assert scrape.find("smtp_dane_tlsa_records", target="bogus") == []


def test_dane_required_without_tlsa_fails(scrape: Scrape) -> None:
    assert dane_status(scrape, "required") == "no_tlsa"
    assert reasons(scrape, "required") == {"dane_required"}


def test_record_counts_rollover_and_renewal(scrape: Scrape) -> None:
    records = {
        (labels["usage"], labels["selector"], labels["matching_type"]): value
        for labels, value in scrape.find("smtp_dane_tlsa_records", target="rollover")
    }
    assert records == {("3", "1", "1"): 2}
    assert scrape.value("smtp_dane_tlsa_records", target="usage1", usage="1", selector="1", matching_type="1") == 1
    assert scrape.find("smtp_dane_tlsa_records", target="unsigned") == []
    assert scrape.value("smtp_dane_rollover_ready", target="rollover") == 1
    assert scrape.value("smtp_dane_rollover_ready", target="ee") == 0
    assert scrape.value("smtp_dane_renewal_safe", target="cert-only") == 0
    assert scrape.value("smtp_dane_renewal_safe", target="ee") == 1
    assert scrape.value("smtp_dane_renewal_safe", target="ee-mismatch") is None


def test_check_shows_the_match_and_the_records_to_publish(world: DaneWorld, pki: Pki, tmp_path: Path) -> None:
    require(private_resolver_available(), "the check command's DANE test")
    resolv_conf = write_resolv_conf(tmp_path / "resolv.conf", PORT_53_ADDRESS)
    prefix = with_private_resolver(resolv_conf, world.hosts_file(tmp_path / "hosts"))

    def check(label: str) -> str:
        endpoint = f"{world.posture(label).host}:{world.port(label)}"
        command = [*prefix, sys.executable, "-m", "exporter", "check", endpoint, "--ca-file", str(pki.ca_file)]
        return subprocess.run(command, capture_output=True, text=True, timeout=60, check=False).stdout

    good = check("ee")
    assert "DANE (RFC 7672): pass" in good
    assert "Matched DANE EE certificate at depth 0: 3 1 1" in good
    mismatch = check("ee-mismatch")
    assert "DANE (RFC 7672): fail" in mismatch
    # The record that would match the new key, ready to paste into the zone.
    leaf_der = chain_der(world.posture("ee-mismatch").server)[0]
    assert f"3 1 1 {association_data(leaf_der, 1, 1).hex()}" in mismatch  # type: ignore[union-attr]


def test_check_json_has_the_dane_section(world: DaneWorld, pki: Pki, tmp_path: Path) -> None:
    require(private_resolver_available(), "the check command's DANE test")
    resolv_conf = write_resolv_conf(tmp_path / "resolv.conf", PORT_53_ADDRESS)
    prefix = with_private_resolver(resolv_conf, world.hosts_file(tmp_path / "hosts"))

    def check_json(label: str) -> dict[str, Any]:
        endpoint = f"{world.posture(label).host}:{world.port(label)}"
        command = [*prefix, sys.executable, "-m", "exporter", "check", endpoint, "--json", f"--ca-file={pki.ca_file}"]
        completed = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)
        document: dict[str, Any] = json.loads(completed.stdout)
        jsonschema.validate(document, RESULT_SCHEMA)
        return document

    intermediate = check_json("ta-intermediate")["dane"]
    assert intermediate["status"] == "pass"
    assert [(m["usage"], m["selector"], m["matching_type"], m["depth"]) for m in intermediate["matches"]] == [
        (2, 1, 1, 1)
    ]
    assert intermediate["matches"][0]["description"].startswith("Matched DANE TA certificate at depth 1: 2 1 1")
    pinned = check_json("cert-only")["dane"]
    assert (pinned["status"], pinned["renewal_safe"]) == ("pass", False)
    usage1 = check_json("usage1")["dane"]
    assert (usage1["status"], usage1["rollover_ready"], usage1["matches"]) == ("unusable", None, [])
    assert [record["usable"] for record in usage1["records"]] == [False]
    unsigned = check_json("unsigned")["dane"]
    assert unsigned["status"] == "insecure"
    assert unsigned["dnssec"]["secure"] is False
    assert unsigned["records"] == []
    bogus = check_json("bogus")["dane"]
    assert (bogus["status"], bogus["dnssec"]["status"]) == ("dns_error", "dns_error")
    assert "servfail" in bogus["detail"].lower()
