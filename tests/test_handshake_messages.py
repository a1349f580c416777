"""Reading handshake messages: built here from the RFCs' layouts, and arbitrary octets.

The real servers' side of the same contract is in test_handshake_agrees_with_openssl.py.
"""

from __future__ import annotations

import base64
import hashlib
import subprocess

import pytest
from hypothesis import given
from hypothesis import strategies as st

from exporter.tls.codepoints import FFDHE_PRIME_SHA256, GROUPS, SIGNATURE_SCHEMES
from exporter.tls.handshake import (
    KEA_DHE,
    KEA_ECDHE,
    KEA_RSA,
    KEA_TLS13,
    HandshakeFacts,
    HandshakeParseError,
    HandshakeRecorder,
    handshake_facts,
    key_exchange_by_suite,
    parse_server_hello,
    parse_server_key_exchange,
)

HRR_RANDOM = bytes.fromhex("cf21ad74e59a6111be1d8c021e65b891c2a211167abb8c5e079e09e2c8a8339c")


def _vector(length_size: int, data: bytes) -> bytes:
    return len(data).to_bytes(length_size, "big") + data


def _message(kind: int, body: bytes) -> bytes:
    return bytes([kind]) + _vector(3, body)


def _extension(kind: int, data: bytes) -> bytes:
    return kind.to_bytes(2, "big") + _vector(2, data)


def server_hello(
    *, suite: int = 0x1302, version: int | None = 0x0304, group: int | None = 0x001D, random: bytes = b"\x07" * 32
) -> bytes:
    extensions = b""
    if version is not None:
        extensions += _extension(43, version.to_bytes(2, "big"))
    if group is not None:
        extensions += _extension(51, group.to_bytes(2, "big") + _vector(2, b"\x01" * 32))
    body = b"\x03\x03" + random + _vector(1, b"\x02" * 32) + suite.to_bytes(2, "big") + b"\x00"
    return _message(2, body + (_vector(2, extensions) if extensions else b""))


def tls12_hello(suite: int = 0xC02F, version: int = 0x0303) -> bytes:
    body = version.to_bytes(2, "big") + b"\x07" * 32 + _vector(1, b"") + suite.to_bytes(2, "big") + b"\x00"
    return _message(2, body + _vector(2, _extension(0xFF01, b"\x00")))


def ecdhe_key_exchange(curve: int, scheme: int | None = 0x0804) -> bytes:
    body = b"\x03" + curve.to_bytes(2, "big") + _vector(1, b"\x04" + b"\x05" * 64)
    if scheme is not None:
        body += scheme.to_bytes(2, "big")
    return _message(12, body + _vector(2, b"\x09" * 256))


def dhe_key_exchange(prime: bytes, scheme: int | None = 0x0401) -> bytes:
    body = _vector(2, prime) + _vector(2, b"\x02") + _vector(2, b"\x03" * len(prime))
    if scheme is not None:
        body += scheme.to_bytes(2, "big")
    return _message(12, body + _vector(2, b"\x09" * 256))


def certificate_verify(scheme: int) -> bytes:
    return _message(15, scheme.to_bytes(2, "big") + _vector(2, b"\x09" * 64))


def recorded(*incoming: bytes, outgoing: tuple[bytes, ...] = ()) -> HandshakeRecorder:
    recorder = HandshakeRecorder()
    for message in incoming:
        recorder.observe(True, message)
    for message in outgoing:
        recorder.observe(False, message)
    return recorder


def test_tls13_group_from_the_key_share_and_scheme_from_certificate_verify() -> None:
    facts = handshake_facts(
        recorded(server_hello(group=0x001D), certificate_verify(0x0403)), kea=KEA_TLS13, leaf_key_type="EC"
    )
    assert facts == HandshakeFacts(group="x25519", key_exchange_bits=253, signature_scheme="ecdsa_secp256r1_sha256")


def hello_retry_request(group: int) -> bytes:
    # RFC 8446 section 4.1.4: a ServerHello with a fixed random whose
    # key_share holds only the selected group, no key.
    extensions = _extension(43, b"\x03\x04") + _extension(51, group.to_bytes(2, "big"))
    body = b"\x03\x03" + HRR_RANDOM + _vector(1, b"\x02" * 32) + b"\x13\x02\x00" + _vector(2, extensions)
    return _message(2, body)


def test_after_a_hello_retry_request_the_second_server_hello_decides() -> None:
    retry = hello_retry_request(0x0018)
    assert parse_server_hello(retry).key_share_group == 0x0018
    facts = handshake_facts(
        recorded(retry, server_hello(group=0x0018), certificate_verify(0x0804)), kea=KEA_TLS13, leaf_key_type="RSA"
    )
    assert (facts.group, facts.key_exchange_bits, facts.signature_scheme) == ("secp384r1", 384, "rsa_pss_rsae_sha256")


def test_post_quantum_hybrid_is_named_from_the_codepoint_table() -> None:
    facts = handshake_facts(recorded(server_hello(group=0x11EC)), kea=KEA_TLS13, leaf_key_type="EC")
    # OpenSSL 3.0 cannot negotiate it, so nobody here saw what bits it prints: none.
    assert (facts.group, facts.key_exchange_bits) == ("X25519MLKEM768", None)


def test_unassigned_codepoints_are_shown_in_hex_not_dropped() -> None:
    facts = handshake_facts(
        recorded(server_hello(group=0x7A7A), certificate_verify(0xFE01)), kea=KEA_TLS13, leaf_key_type="EC"
    )
    assert (facts.group, facts.signature_scheme) == ("0x7a7a", "0xfe01")


@pytest.mark.parametrize(("curve", "name", "bits"), [(0x0017, "secp256r1", 256), (0x0019, "secp521r1", 521)])
def test_tls12_ecdhe_names_the_curve_and_the_signature(curve: int, name: str, bits: int) -> None:
    facts = handshake_facts(
        recorded(tls12_hello(), ecdhe_key_exchange(curve, scheme=0x0401)), kea=KEA_ECDHE, leaf_key_type="RSA"
    )
    assert (facts.group, facts.key_exchange_bits, facts.signature_scheme) == (name, bits, "rsa_pkcs1_sha256")


def test_tls12_dhe_names_rfc7919_primes_and_sizes_the_others() -> None:
    ffdhe2048 = _ffdhe2048_prime()
    named = parse_server_key_exchange(dhe_key_exchange(ffdhe2048), dhe=True, has_scheme=True)
    assert (named.group, named.bits, named.scheme) == ("ffdhe2048", 2048, 0x0401)
    # The same size, one octet different: not the named group any more.
    other = ffdhe2048[:-1] + b"\x61"
    unnamed = parse_server_key_exchange(dhe_key_exchange(other), dhe=True, has_scheme=True)
    assert (unnamed.group, unnamed.bits) == ("dh2048", 2048)
    # A leading zero octet (DER-minded encoders) does not count towards the size.
    padded = parse_server_key_exchange(dhe_key_exchange(b"\x00" + b"\xc1" * 128), dhe=True, has_scheme=True)
    assert (padded.group, padded.bits) == ("dh1024", 1024)


def test_rsa_key_transport_has_no_temp_key_and_no_server_signature() -> None:
    facts = handshake_facts(recorded(tls12_hello(suite=0x009C)), kea=KEA_RSA, leaf_key_type="RSA")
    assert facts == HandshakeFacts(group="rsa")


@pytest.mark.parametrize(("key_type", "scheme"), [("RSA", "rsa_pkcs1_md5_sha1"), ("EC", "ecdsa_sha1")])
def test_before_tls12_the_signature_follows_from_the_key(key_type: str, scheme: str) -> None:
    facts = handshake_facts(
        recorded(tls12_hello(version=0x0302), ecdhe_key_exchange(0x0017, scheme=None)),
        kea=KEA_ECDHE,
        leaf_key_type=key_type,
    )
    assert (facts.group, facts.signature_scheme) == ("secp256r1", scheme)


def test_client_certificate_request_and_our_answer() -> None:
    request = _message(13, _vector(1, b"") + _vector(2, b""))
    empty_tls13 = _message(11, _vector(1, b"") + _vector(3, b""))
    ours_tls13 = _message(11, _vector(1, b"") + _vector(3, _vector(3, b"\x30\x82") + _vector(2, b"")))
    asked = handshake_facts(
        recorded(server_hello(), request, outgoing=(empty_tls13,)), kea=KEA_TLS13, leaf_key_type="EC"
    )
    assert (asked.client_certificate_requested, asked.client_certificate_sent) == (True, False)
    answered = handshake_facts(
        recorded(server_hello(), request, outgoing=(ours_tls13,)), kea=KEA_TLS13, leaf_key_type="EC"
    )
    assert (answered.client_certificate_requested, answered.client_certificate_sent) == (True, True)
    ours_tls12 = _message(11, _vector(3, _vector(3, b"\x30\x82")))
    tls12 = handshake_facts(recorded(tls12_hello(), request, outgoing=(ours_tls12,)), kea=KEA_ECDHE, leaf_key_type="EC")
    assert tls12.client_certificate_sent
    assert not handshake_facts(recorded(server_hello()), kea=KEA_TLS13, leaf_key_type="EC").client_certificate_requested


def test_a_truncated_message_is_an_error_of_ours_not_a_crash() -> None:
    with pytest.raises(HandshakeParseError):
        parse_server_hello(server_hello()[:-3])
    facts = handshake_facts(recorded(server_hello()[:40]), kea=KEA_TLS13, leaf_key_type="EC")
    assert facts == HandshakeFacts()


def test_suites_key_exchange_comes_from_openssls_own_cipher_table() -> None:
    kinds = key_exchange_by_suite()
    assert kinds["TLS_AES_256_GCM_SHA384"] == KEA_TLS13
    assert kinds["ECDHE-RSA-AES128-GCM-SHA256"] == KEA_ECDHE
    assert kinds["DHE-RSA-AES256-GCM-SHA384"] == KEA_DHE
    assert kinds["AES128-GCM-SHA256"] == KEA_RSA


def test_tables_have_unique_names() -> None:
    groups = [group.name for group in GROUPS.values()]
    schemes = [scheme.name for scheme in SIGNATURE_SCHEMES.values()]
    assert len(set(groups)) == len(groups)
    assert len(set(schemes)) == len(schemes)
    assert len(set(FFDHE_PRIME_SHA256.values())) == len(FFDHE_PRIME_SHA256)


_any_message = st.binary(max_size=300) | st.builds(
    _message, st.sampled_from([2, 11, 12, 13, 15]), st.binary(max_size=200)
)


@given(
    messages=st.lists(st.tuples(st.booleans(), _any_message), max_size=8),
    kea=st.sampled_from([KEA_TLS13, KEA_ECDHE, KEA_DHE, KEA_RSA, "kx-psk"]),
    key_type=st.sampled_from(["RSA", "EC", "DSA", "Ed25519", "unknown"]),
)
def test_any_octets_give_facts_never_an_exception(messages: list[tuple[bool, bytes]], kea: str, key_type: str) -> None:
    # The recorder runs inside OpenSSL's callback, where an exception would
    # abort a handshake OpenSSL itself accepted.
    recorder = HandshakeRecorder()
    for incoming, message in messages:
        recorder.observe(incoming, message)
    assert isinstance(handshake_facts(recorder, kea=kea, leaf_key_type=key_type), HandshakeFacts)


@given(group=st.integers(0, 0xFFFF), scheme=st.integers(0, 0xFFFF))
def test_any_codepoints_round_trip_through_the_tls13_messages(group: int, scheme: int) -> None:
    facts = handshake_facts(
        recorded(server_hello(group=group), certificate_verify(scheme)), kea=KEA_TLS13, leaf_key_type="EC"
    )
    known_group = GROUPS.get(group)
    assert facts.group == (known_group.name if known_group else f"0x{group:04x}")
    known_scheme = SIGNATURE_SCHEMES.get(scheme)
    assert facts.signature_scheme == (known_scheme.name if known_scheme else f"0x{scheme:04x}")


def _ffdhe2048_prime() -> bytes:
    # The prime as OpenSSL knows it (RFC 7919 appendix A.1).
    pem = subprocess.run(
        ["openssl", "genpkey", "-genparam", "-algorithm", "DH", "-pkeyopt", "group:ffdhe2048"],
        capture_output=True,
        check=True,
        text=True,
    ).stdout
    der = base64.b64decode("".join(line for line in pem.splitlines() if not line.startswith("-----")))
    # DHParameter ::= SEQUENCE { prime INTEGER, ... }: 30 82 len len, 02 82 01 01 00, 256 octets.
    assert der[4:9] == bytes.fromhex("0282010100"), der[:9].hex()
    prime = der[9 : 9 + 256]
    assert FFDHE_PRIME_SHA256[hashlib.sha256(prime).hexdigest()] == "ffdhe2048"
    return prime
