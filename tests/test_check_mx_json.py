"""`check --mx --json` over the signed mail domain: the domain document and each pair's DANE section.

The domain (tests/support/mail_domain.py) lives in a DNSSEC-signed zone served by
real nsd and validated by real unbound; `check` asks that resolver (--nameserver),
so its TLSA lookups see the same zone the exporter does.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from referencing import Registry, Resource

from tests.support.mail_domain import ADDRESSES, DOMAIN, MX_MATCHING, MX_RENEWED, MailDomainWorld

DOCS = Path(__file__).resolve().parent.parent / "docs"
RESULT_SCHEMA = json.loads((DOCS / "check-result.schema.json").read_text())
DOMAIN_SCHEMA = json.loads((DOCS / "check-mx-result.schema.json").read_text())
# The domain schema refers to the result schema by its $id, as a published copy would.
REGISTRY = Registry().with_resources(
    (schema["$id"], Resource.from_contents(schema)) for schema in (RESULT_SCHEMA, DOMAIN_SCHEMA)
)


@pytest.fixture(scope="module")
def checked(mail_domain: MailDomainWorld) -> tuple[int, dict[str, Any]]:
    host, port = mail_domain.dns.resolver_address
    command = [
        sys.executable, "-m", "exporter", "check", "--mx", f"{DOMAIN}:{mail_domain.port}",
        "--nameserver", f"{host}:{port}", "--ca-file", str(mail_domain.ca_file), "--ehlo-name", "probe.test", "--json",
    ]  # fmt: skip
    completed = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)
    assert completed.stderr == ""
    document: dict[str, Any] = json.loads(completed.stdout)
    return completed.returncode, document


def _pair(document: dict[str, Any], mx: str) -> dict[str, Any]:
    [pair] = [pair for pair in document["pairs"] if pair["mx"] == mx]
    assert pair["address"] == ADDRESSES[mx]
    result: dict[str, Any] = pair["result"]
    return result


def test_the_domain_document_follows_its_schema(checked: tuple[int, dict[str, Any]]) -> None:
    returncode, document = checked
    validator = jsonschema.Draft202012Validator(DOMAIN_SCHEMA, registry=REGISTRY)
    validator.validate(document)
    # Each pair's result is a check document in its own right.
    for pair in document["pairs"]:
        jsonschema.validate(pair["result"], RESULT_SCHEMA)
    assert returncode == 1  # mx2 fails DANE
    assert (document["schema_version"], document["domain"], document["lookup_success"]) == (1, DOMAIN, True)
    assert document["mx_dnssec_secure"] is True
    assert [(host["name"], host["preference"], host["addresses"]) for host in document["mx"]] == [
        (MX_MATCHING, 10, [ADDRESSES[MX_MATCHING]]),
        (MX_RENEWED, 20, [ADDRESSES[MX_RENEWED]]),
    ]
    assert all(host["addresses_dnssec_secure"] and host["notes"] == [] for host in document["mx"])


def test_a_matching_pair_reports_the_records_the_match_and_the_leafs_records(
    checked: tuple[int, dict[str, Any]], mail_domain: MailDomainWorld
) -> None:
    result = _pair(checked[1], MX_MATCHING)
    assert result["success"] is True
    dane = result["dane"]
    assert dane["status"] == "pass"
    assert dane["tlsa_name"] == f"_{mail_domain.port}._tcp.{MX_MATCHING}"
    assert dane["dnssec"] == {"status": "records", "secure": True}
    assert [(r["usage"], r["selector"], r["matching_type"], r["usable"]) for r in dane["records"]] == [
        (3, 1, 1, True),
        (3, 1, 1, True),
    ]
    presented = mail_domain.presented_record.split()[3]
    assert presented in {record["data"] for record in dane["records"]}
    assert dane["matches"] == [
        {
            "usage": 3,
            "selector": 1,
            "matching_type": 1,
            "depth": 0,
            "description": "Matched DANE EE certificate at depth 0: 3 1 1",
        }
    ]
    assert (dane["rollover_ready"], dane["renewal_safe"]) == (True, True)
    records = [(r["usage"], r["selector"], r["matching_type"]) for r in dane["leaf_records"]]
    assert records == [(3, 1, 1), (3, 1, 2), (3, 0, 1), (3, 0, 2)]
    assert dane["leaf_records"][0]["data"] == presented


def test_a_renewed_pair_fails_and_shows_the_record_to_publish(
    checked: tuple[int, dict[str, Any]], mail_domain: MailDomainWorld
) -> None:
    result = _pair(checked[1], MX_RENEWED)
    assert result["success"] is False
    assert [failure["reason"] for failure in result["failures"]] == ["dane_mismatch"]
    dane = result["dane"]
    assert (dane["status"], dane["matches"], dane["rollover_ready"], dane["renewal_safe"]) == ("fail", [], True, None)
    published = {record["data"] for record in dane["records"]}
    presented = mail_domain.presented_record.split()[3]
    # The zone names two other keys; the record to publish is the presented key's.
    assert presented not in published
    assert dane["leaf_records"][0] == {"usage": 3, "selector": 1, "matching_type": 1, "data": presented}
