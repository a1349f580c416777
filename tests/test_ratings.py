"""The NCSC-NL 2025 ratings: the tables against the guideline's own sentences, suite by suite."""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from exporter.scan.suites import SUITES
from exporter.tls.ratings import (
    CIPHER_RATINGS,
    Rating,
    chain_weakest_rating,
    cipher_rating,
    key_rating,
    signature_hash_rating,
    weakest,
)

_ORDER = [Rating.GOOD, Rating.SUFFICIENT, Rating.PHASE_OUT, Rating.INSUFFICIENT]


def _every_suite_openssl_knows() -> list[dict[str, Any]]:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.set_ciphers("ALL:COMPLEMENTOFALL:@SECLEVEL=0")
    return [dict(suite) for suite in context.get_ciphers()]


def _as_the_issue_says(suite: dict[str, Any]) -> Rating:
    """Issue 16, written out once more as rules: "TLS 1.3 AES-256-GCM and ChaCha20 good,
    AES-128-GCM and ECDHE AEAD suites sufficient, ECDHE-CBC and DHE phase_out, RSA key
    exchange, SHA-1 CBC, 3DES, RC4, CCM_8 insufficient"; unlisted is insufficient.

    Camellia and ARIA follow NCSC-NL 2025's appendix B (issue 17: "rated by the
    NCSC-NL 2025 lists"), which puts them with ECDHE or DHE-RSA in phase-out, ARIA-GCM
    too, where the issue's shorthand "ECDHE AEAD sufficient" was written for AES-GCM
    and ChaCha20 (internet.nl's tls_constants.py rates them so as well)."""
    symmetric = suite["symmetric"] or ""
    if "CCM8" in suite["description"]:
        return Rating.INSUFFICIENT
    if suite["kea"] == "kx-any":  # TLS 1.3
        return Rating.GOOD if symmetric in ("aes-256-gcm", "chacha20-poly1305") else Rating.SUFFICIENT
    if suite["auth"] not in ("auth-rsa", "auth-ecdsa"):
        return Rating.INSUFFICIENT  # anonymous, PSK, SRP, DSS: not listed
    if not suite["aead"] and suite["digest"] == "sha1":
        return Rating.INSUFFICIENT  # CBC with SHA-1
    if symmetric.startswith(("camellia-", "aria-")):
        forward_secret = suite["kea"] == "kx-ecdhe" or (suite["kea"] == "kx-dhe" and suite["auth"] == "auth-rsa")
        return Rating.PHASE_OUT if forward_secret else Rating.INSUFFICIENT
    if not symmetric.startswith(("aes-", "chacha20")):
        return Rating.INSUFFICIENT  # SEED, NULL, 3DES, RC4 are not listed
    if suite["kea"] == "kx-ecdhe":
        return Rating.SUFFICIENT if suite["aead"] else Rating.PHASE_OUT
    if suite["kea"] == "kx-dhe" and suite["auth"] == "auth-rsa":
        return Rating.PHASE_OUT
    return Rating.INSUFFICIENT  # RSA key exchange among them


@pytest.mark.parametrize("suite", _every_suite_openssl_knows(), ids=lambda suite: suite["name"])
def test_every_suite_openssl_knows_is_rated_as_the_guideline_says(suite: dict[str, Any]) -> None:
    assert cipher_rating(suite["name"]) == _as_the_issue_says(suite)


def test_the_issues_examples() -> None:
    assert cipher_rating("TLS_AES_256_GCM_SHA384") == Rating.GOOD
    assert cipher_rating("TLS_CHACHA20_POLY1305_SHA256") == Rating.GOOD
    assert cipher_rating("TLS_AES_128_GCM_SHA256") == Rating.SUFFICIENT
    assert cipher_rating("ECDHE-RSA-AES256-GCM-SHA384") == Rating.SUFFICIENT
    assert cipher_rating("ECDHE-ECDSA-AES128-SHA256") == Rating.PHASE_OUT
    assert cipher_rating("DHE-RSA-AES256-GCM-SHA384") == Rating.PHASE_OUT
    for insufficient in ("AES256-GCM-SHA384", "ECDHE-RSA-AES128-SHA", "DES-CBC3-SHA", "RC4-SHA"):
        assert cipher_rating(insufficient) == Rating.INSUFFICIENT
    # TLS 1.3's CCM suites are off in OpenSSL's default list, so the rule test above never meets them.
    assert cipher_rating("TLS_AES_128_CCM_8_SHA256") == Rating.INSUFFICIENT
    assert cipher_rating("a suite from the future") == Rating.INSUFFICIENT


def test_camellia_and_aria_as_ncsc_nl_lists_them() -> None:
    # The probe and the scan once had a table each and disagreed here (the
    # probe's said insufficient); NCSC-NL 2025 appendix B says phase-out.
    for name in ("ECDHE-RSA-CAMELLIA256-SHA384", "ECDHE-ARIA128-GCM-SHA256", "DHE-RSA-ARIA256-GCM-SHA384"):
        assert cipher_rating(name) == Rating.PHASE_OUT
    for name in ("CAMELLIA256-SHA256", "DHE-DSS-CAMELLIA128-SHA256", "DHE-RSA-CAMELLIA256-SHA"):
        assert cipher_rating(name) == Rating.INSUFFICIENT


def test_every_suite_the_scan_offers_is_rated_by_the_one_table() -> None:
    # Every suite the table lifts above insufficient is one the scan offers, so
    # a name spelt differently in the two tables would show here.
    offered = {suite.name for suite in SUITES}
    assert {name for name, rating in CIPHER_RATINGS.items() if rating is not Rating.INSUFFICIENT} <= offered


def test_the_table_lists_every_name_once_with_its_exact_case() -> None:
    assert all(name == name.strip() and " " not in name for name in CIPHER_RATINGS)


@pytest.mark.parametrize(
    ("bits", "rating"),
    [(1024, Rating.INSUFFICIENT), (2047, Rating.INSUFFICIENT), (2048, Rating.SUFFICIENT),
     (3071, Rating.SUFFICIENT), (3072, Rating.GOOD), (4096, Rating.GOOD)],
)  # fmt: skip
def test_rsa_keys_by_size(bits: int, rating: Rating) -> None:
    assert key_rating("RSA", bits) == rating


def test_other_keys() -> None:
    assert key_rating("EC", 256, "secp256r1") == Rating.GOOD
    assert key_rating("EC", 384, "secp384r1") == Rating.GOOD
    assert key_rating("EC", 256, "brainpoolP256r1") == Rating.INSUFFICIENT
    assert key_rating("EC", 192, "secp192r1") == Rating.INSUFFICIENT
    assert key_rating("EC", 256, None) == Rating.INSUFFICIENT  # a curve we could not name
    assert key_rating("Ed25519", 256) == Rating.GOOD
    assert key_rating("DSA", 3072) == Rating.INSUFFICIENT
    assert key_rating("unknown", 0) == Rating.INSUFFICIENT


@given(smaller=st.integers(0, 16384), larger=st.integers(0, 16384))
def test_a_larger_rsa_key_never_rates_worse(smaller: int, larger: int) -> None:
    smaller, larger = sorted((smaller, larger))
    assert _ORDER.index(key_rating("RSA", larger)) <= _ORDER.index(key_rating("RSA", smaller))


def test_signature_hashes() -> None:
    assert signature_hash_rating("sha256") == Rating.GOOD
    assert signature_hash_rating(None) == Rating.GOOD  # Ed25519 signs without a separate hash
    assert signature_hash_rating("sha1") == Rating.INSUFFICIENT
    assert signature_hash_rating("md5") == Rating.INSUFFICIENT


@dataclass(frozen=True)
class ChainEntry:
    key_type: str
    key_bits: int
    key_curve: str | None
    signature_hash: str | None
    self_signed: bool


def _entry(
    key_type: str = "EC", bits: int = 256, *, signature_hash: str | None = "sha256", root: bool = False
) -> ChainEntry:
    curve = {256: "secp256r1", 384: "secp384r1"}.get(bits) if key_type == "EC" else None
    return ChainEntry(key_type, bits, curve, signature_hash, self_signed=root)


def test_chain_weakest_leaves_out_a_presented_root() -> None:
    weak_root = _entry("RSA", 1024, signature_hash="sha1", root=True)
    assert chain_weakest_rating([_entry(), _entry("RSA", 4096), weak_root]) == Rating.GOOD
    assert chain_weakest_rating([_entry(), _entry("RSA", 2048)]) == Rating.SUFFICIENT
    assert chain_weakest_rating([_entry(), _entry("RSA", 4096, signature_hash="sha1")]) == Rating.INSUFFICIENT


def test_a_lone_self_signed_leaf_is_rated() -> None:
    assert chain_weakest_rating([_entry("RSA", 1024, root=True)]) == Rating.INSUFFICIENT


def test_no_chain_no_rating() -> None:
    assert chain_weakest_rating([]) is None
    assert weakest([]) is None


@given(st.lists(st.sampled_from(_ORDER), min_size=1))
def test_weakest_is_the_worst_of_them(ratings: list[Rating]) -> None:
    assert weakest(ratings) == max(ratings, key=_ORDER.index)
