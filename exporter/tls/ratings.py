"""How the negotiated TLS and the presented keys are rated (data, and lookups in it).

The levels and lists follow NCSC-NL's "IT Security Guidelines for Transport
Layer Security" as updated in 2025, which internet.nl's mail test applies
(its checks/tasks/tls/ keeps them in tables too). What NCSC-NL does not list
is insufficient, as internet.nl rates it: a suite or key we cannot place is
reported as the weakest level, never as a silent pass.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol


class Rating(enum.StrEnum):
    GOOD = "good"
    SUFFICIENT = "sufficient"
    PHASE_OUT = "phase_out"
    INSUFFICIENT = "insufficient"


# Weakest last: the order in which "weakest" is decided, and in which the
# scan's cipher-order test asks whether a server picks from the front.
RATING_ORDER = (Rating.GOOD, Rating.SUFFICIENT, Rating.PHASE_OUT, Rating.INSUFFICIENT)


def weakest(ratings: Iterable[Rating]) -> Rating | None:
    found = list(ratings)
    return max(found, key=RATING_ORDER.index) if found else None


# Cipher suites by the name OpenSSL gives them (SSLObject.cipher()[0]); TLS 1.3
# suites have the IANA name there. The one table for both the negotiated
# suite (probe) and every suite the capability scan finds accepted. Both authentications of each ECDHE suite
# are listed; NCSC-NL lists DHE with RSA authentication only.
CIPHER_RATINGS: dict[str, Rating] = {
    # TLS 1.3, 256-bit AEAD
    "TLS_AES_256_GCM_SHA384": Rating.GOOD,
    "TLS_CHACHA20_POLY1305_SHA256": Rating.GOOD,
    # TLS 1.3 with 128-bit keys; TLS 1.2 ECDHE with an AEAD
    "TLS_AES_128_GCM_SHA256": Rating.SUFFICIENT,
    "TLS_AES_128_CCM_SHA256": Rating.SUFFICIENT,
    "ECDHE-ECDSA-AES256-GCM-SHA384": Rating.SUFFICIENT,
    "ECDHE-RSA-AES256-GCM-SHA384": Rating.SUFFICIENT,
    "ECDHE-ECDSA-CHACHA20-POLY1305": Rating.SUFFICIENT,
    "ECDHE-RSA-CHACHA20-POLY1305": Rating.SUFFICIENT,
    "ECDHE-ECDSA-AES128-GCM-SHA256": Rating.SUFFICIENT,
    "ECDHE-RSA-AES128-GCM-SHA256": Rating.SUFFICIENT,
    "ECDHE-ECDSA-AES256-CCM": Rating.SUFFICIENT,
    "ECDHE-ECDSA-AES128-CCM": Rating.SUFFICIENT,
    # ECDHE with CBC and a SHA-2 MAC; DHE (slow to check, often weak groups)
    "ECDHE-ECDSA-AES256-SHA384": Rating.PHASE_OUT,
    "ECDHE-RSA-AES256-SHA384": Rating.PHASE_OUT,
    "ECDHE-ECDSA-AES128-SHA256": Rating.PHASE_OUT,
    "ECDHE-RSA-AES128-SHA256": Rating.PHASE_OUT,
    "DHE-RSA-AES256-GCM-SHA384": Rating.PHASE_OUT,
    "DHE-RSA-CHACHA20-POLY1305": Rating.PHASE_OUT,
    "DHE-RSA-AES128-GCM-SHA256": Rating.PHASE_OUT,
    "DHE-RSA-AES256-CCM": Rating.PHASE_OUT,
    "DHE-RSA-AES128-CCM": Rating.PHASE_OUT,
    "DHE-RSA-AES256-SHA256": Rating.PHASE_OUT,
    "DHE-RSA-AES128-SHA256": Rating.PHASE_OUT,
    # Camellia and ARIA: NCSC-NL 2025 appendix B lists them beside AES, with
    # ECDHE or DHE-RSA, as phase-out (internet.nl's CIPHERS_PHASE_OUT too).
    # Their GCM-Camellia and CBC-ARIA forms are left out: OpenSSL never
    # implemented them, so no handshake or scan here can name them.
    "ECDHE-ECDSA-CAMELLIA256-SHA384": Rating.PHASE_OUT,
    "ECDHE-ECDSA-CAMELLIA128-SHA256": Rating.PHASE_OUT,
    "ECDHE-RSA-CAMELLIA256-SHA384": Rating.PHASE_OUT,
    "ECDHE-RSA-CAMELLIA128-SHA256": Rating.PHASE_OUT,
    "ECDHE-ECDSA-ARIA256-GCM-SHA384": Rating.PHASE_OUT,
    "ECDHE-ECDSA-ARIA128-GCM-SHA256": Rating.PHASE_OUT,
    "ECDHE-ARIA256-GCM-SHA384": Rating.PHASE_OUT,  # OpenSSL's name for ECDHE-RSA with ARIA
    "ECDHE-ARIA128-GCM-SHA256": Rating.PHASE_OUT,
    "DHE-RSA-CAMELLIA256-SHA256": Rating.PHASE_OUT,
    "DHE-RSA-CAMELLIA128-SHA256": Rating.PHASE_OUT,
    "DHE-RSA-ARIA256-GCM-SHA384": Rating.PHASE_OUT,
    "DHE-RSA-ARIA128-GCM-SHA256": Rating.PHASE_OUT,
    # Everything else is insufficient, among them (named here so the table
    # reads as the guideline does): RSA key transport (no forward secrecy),
    # CBC with SHA-1, 3DES, RC4, CCM_8.
    "AES256-GCM-SHA384": Rating.INSUFFICIENT,
    "AES128-GCM-SHA256": Rating.INSUFFICIENT,
    "AES256-SHA256": Rating.INSUFFICIENT,
    "AES128-SHA256": Rating.INSUFFICIENT,
    "AES256-SHA": Rating.INSUFFICIENT,
    "AES128-SHA": Rating.INSUFFICIENT,
    "ECDHE-ECDSA-AES256-SHA": Rating.INSUFFICIENT,
    "ECDHE-RSA-AES256-SHA": Rating.INSUFFICIENT,
    "ECDHE-ECDSA-AES128-SHA": Rating.INSUFFICIENT,
    "ECDHE-RSA-AES128-SHA": Rating.INSUFFICIENT,
    "DHE-RSA-AES256-SHA": Rating.INSUFFICIENT,
    "DHE-RSA-AES128-SHA": Rating.INSUFFICIENT,
    "DES-CBC3-SHA": Rating.INSUFFICIENT,
    "ECDHE-RSA-DES-CBC3-SHA": Rating.INSUFFICIENT,
    "DHE-RSA-DES-CBC3-SHA": Rating.INSUFFICIENT,
    "RC4-SHA": Rating.INSUFFICIENT,
    "RC4-MD5": Rating.INSUFFICIENT,
    "ECDHE-RSA-RC4-SHA": Rating.INSUFFICIENT,
    "TLS_AES_128_CCM_8_SHA256": Rating.INSUFFICIENT,
    "ECDHE-ECDSA-AES256-CCM8": Rating.INSUFFICIENT,
    "ECDHE-ECDSA-AES128-CCM8": Rating.INSUFFICIENT,
}


def cipher_rating(cipher: str) -> Rating:
    return CIPHER_RATINGS.get(cipher, Rating.INSUFFICIENT)


# Certificate keys. RSA (and DSA, for completeness) by modulus size: the first
# row whose minimum the key reaches. NCSC-NL: RSA 3072 good, 2048 sufficient.
# DSA is insufficient at any size: FIPS 186-5 withdrew it for signing and
# TLS 1.3 removed it; NCSC-NL lists it nowhere.
@dataclass(frozen=True)
class SizeRating:
    minimum_bits: int
    rating: Rating


RSA_KEY_RATINGS: tuple[SizeRating, ...] = (
    SizeRating(3072, Rating.GOOD),
    SizeRating(2048, Rating.SUFFICIENT),
    SizeRating(0, Rating.INSUFFICIENT),
)

# EC keys by curve (OpenSSL's names, as cryptography reports them). NCSC-NL
# rates the NIST curves P-256 and P-384 good; P-521 is rated with them (more
# margin, same family). Ed25519 and Ed448 are not in NCSC-NL's certificate
# list; they are rated good here for their 128- and 224-bit security levels
# (RFC 8032), and so marked in the README. Other curves (P-192, P-224,
# brainpool, secp256k1) are not listed: insufficient.
EC_CURVE_RATINGS: dict[str, Rating] = {
    "secp256r1": Rating.GOOD,
    "secp384r1": Rating.GOOD,
    "secp521r1": Rating.GOOD,
}
OTHER_KEY_RATINGS: dict[str, Rating] = {
    "Ed25519": Rating.GOOD,
    "Ed448": Rating.GOOD,
    "DSA": Rating.INSUFFICIENT,
}


def key_rating(key_type: str, key_bits: int, curve: str | None = None) -> Rating:
    """``key_type`` and ``key_bits`` as certificates.py reports them."""
    if key_type == "RSA":
        return next(row.rating for row in RSA_KEY_RATINGS if key_bits >= row.minimum_bits)
    if key_type == "EC":
        return EC_CURVE_RATINGS.get(curve or "", Rating.INSUFFICIENT)
    return OTHER_KEY_RATINGS.get(key_type, Rating.INSUFFICIENT)


# The hash of a certificate's signature (cryptography's names). None: EdDSA,
# which signs the message itself. NCSC-NL: SHA-2 256/384/512 good; SHA-224
# is not listed for certificates (phase_out: short, but not broken);
# SHA-1 and MD5 insufficient (chosen-prefix collisions).
SIGNATURE_HASH_RATINGS: dict[str | None, Rating] = {
    "sha512": Rating.GOOD,
    "sha384": Rating.GOOD,
    "sha256": Rating.GOOD,
    "sha3-256": Rating.GOOD,
    "sha3-384": Rating.GOOD,
    "sha3-512": Rating.GOOD,
    None: Rating.GOOD,
    "sha224": Rating.PHASE_OUT,
    "sha1": Rating.INSUFFICIENT,
    "md5": Rating.INSUFFICIENT,
}


def signature_hash_rating(hash_name: str | None) -> Rating:
    return SIGNATURE_HASH_RATINGS.get(hash_name, Rating.INSUFFICIENT)


class RatedCertificate(Protocol):
    """What rating needs of one presented certificate (certificates.CertificateFacts has it)."""

    @property
    def key_type(self) -> str: ...
    @property
    def key_bits(self) -> int: ...
    @property
    def key_curve(self) -> str | None: ...
    @property
    def signature_hash(self) -> str | None: ...
    @property
    def self_signed(self) -> bool: ...


def certificate_rating(certificate: RatedCertificate) -> Rating:
    """The weaker of the certificate's key and its signature's hash."""
    key = key_rating(certificate.key_type, certificate.key_bits, certificate.key_curve)
    return max(key, signature_hash_rating(certificate.signature_hash), key=RATING_ORDER.index)


def chain_weakest_rating(chain: Sequence[RatedCertificate]) -> Rating | None:
    """The weakest key or signature in the presented chain, root excluded.

    The root is the self-signed last certificate when the server sends it:
    a client trusts it because its own store holds it, not by anything the
    server sent (internet.nl leaves it out likewise), and a client that
    lacks it cannot use it at all. A lone self-signed leaf is kept: its key
    is the one the server signs the handshake with.
    """
    rated = chain[:-1] if len(chain) > 1 and chain[-1].self_signed else chain
    return weakest(certificate_rating(certificate) for certificate in rated)
