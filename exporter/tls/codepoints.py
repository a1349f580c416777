"""IANA's TLS codepoint tables, as far as a probe can meet them (data only).

Names are the ones OpenSSL prints (``openssl s_client``, ``openssl list``),
which for groups differ from IANA's in case only (IANA ``x25519``, OpenSSL
``X25519``: OpenSSL's lower-case names from ``SSL_group_to_name`` are used, as
the issue's metric contract spells them). Sources: IANA "TLS Supported
Groups" and "TLS SignatureScheme" registries (RFC 8422, 7919, 8446, 8734,
draft-ietf-tls-ecdhe-mlkem, draft-tls-westerbaan-mldsa), read 2026-12.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Group:
    name: str
    # What OpenSSL 3 prints as the server temp key's bits (EVP_PKEY_get_bits):
    # the field size for prime curves, 253 for X25519, 448 for X448, the prime's
    # size for finite-field groups. None where OpenSSL 3.0 cannot negotiate the
    # group here, so nobody has seen what it prints: no number is better than a guess.
    bits: int | None


# TLS Supported Groups (the key_share of TLS 1.3, the named curve of a TLS 1.2
# ServerKeyExchange).
GROUPS: dict[int, Group] = {
    0x0001: Group("sect163k1", 163),
    0x0002: Group("sect163r1", 163),
    0x0003: Group("sect163r2", 163),
    0x0004: Group("sect193r1", 193),
    0x0005: Group("sect193r2", 193),
    0x0006: Group("sect233k1", 233),
    0x0007: Group("sect233r1", 233),
    0x0008: Group("sect239k1", 239),
    0x0009: Group("sect283k1", 283),
    0x000A: Group("sect283r1", 283),
    0x000B: Group("sect409k1", 409),
    0x000C: Group("sect409r1", 409),
    0x000D: Group("sect571k1", 571),
    0x000E: Group("sect571r1", 571),
    0x000F: Group("secp160k1", 160),
    0x0010: Group("secp160r1", 160),
    0x0011: Group("secp160r2", 160),
    0x0012: Group("secp192k1", 192),
    0x0013: Group("secp192r1", 192),
    0x0014: Group("secp224k1", 224),
    0x0015: Group("secp224r1", 224),
    0x0016: Group("secp256k1", 256),
    0x0017: Group("secp256r1", 256),
    0x0018: Group("secp384r1", 384),
    0x0019: Group("secp521r1", 521),
    0x001A: Group("brainpoolP256r1", 256),
    0x001B: Group("brainpoolP384r1", 384),
    0x001C: Group("brainpoolP512r1", 512),
    0x001D: Group("x25519", 253),
    0x001E: Group("x448", 448),
    0x001F: Group("brainpoolP256r1tls13", 256),
    0x0020: Group("brainpoolP384r1tls13", 384),
    0x0021: Group("brainpoolP512r1tls13", 512),
    0x0100: Group("ffdhe2048", 2048),
    0x0101: Group("ffdhe3072", 3072),
    0x0102: Group("ffdhe4096", 4096),
    0x0103: Group("ffdhe6144", 6144),
    0x0104: Group("ffdhe8192", 8192),
    # Post-quantum: ML-KEM alone and the hybrids real servers now choose
    # (OpenSSL 3.5 and later; OpenSSL 3.0 offers none of them).
    0x0200: Group("MLKEM512", None),
    0x0201: Group("MLKEM768", None),
    0x0202: Group("MLKEM1024", None),
    0x11EB: Group("SecP256r1MLKEM768", None),
    0x11EC: Group("X25519MLKEM768", None),
    0x11ED: Group("SecP384r1MLKEM1024", None),
    0x6399: Group("X25519Kyber768Draft00", None),
    0x639A: Group("SecP256r1Kyber768Draft00", None),
}

# The RFC 7919 primes by the SHA-256 of their big-endian octets: a TLS 1.2
# ServerKeyExchange sends the prime itself, not the group's codepoint.
# Computed from `openssl genpkey -genparam -algorithm DH -pkeyopt group:ffdheN`.
FFDHE_PRIME_SHA256: dict[str, str] = {
    "9cd3b7f336872f46c09428d1bbc19877a4d440512cda8d1c1cf0cd6e33698966": "ffdhe2048",
    "0eaf67db3a839156d5013494a5318a772b5697d270d721f37f092efc69ea5a17": "ffdhe3072",
    "4648414224ac881b3d0dc59b466f96d06a558278776807797ecf1f66ff397b3e": "ffdhe4096",
    "227ac9066b3ddd9e193670cda2388fa884f65ba0cf98b742d1fe77a6687c79c7": "ffdhe6144",
    "770b14efaf6f049929c523113b3fa99a8d11dab1b18af3609590122075d19833": "ffdhe8192",
}


@dataclass(frozen=True)
class SignatureScheme:
    name: str
    # How Postfix's TLS log line names the signature and its digest
    # ("server-signature RSA-PSS (2048 bits) server-digest SHA256");
    # None for the digest of pure EdDSA and ML-DSA, which sign the message itself.
    postfix_type: str
    digest: str | None


# TLS SignatureScheme (TLS 1.3 CertificateVerify, TLS 1.2 ServerKeyExchange's
# SignatureAndHashAlgorithm). The TLS 1.2-only pairs IANA keeps as reserved
# for backward compatibility carry OpenSSL's names for them.
SIGNATURE_SCHEMES: dict[int, SignatureScheme] = {
    0x0101: SignatureScheme("rsa_pkcs1_md5", "RSA", "MD5"),
    0x0201: SignatureScheme("rsa_pkcs1_sha1", "RSA", "SHA1"),
    0x0202: SignatureScheme("dsa_sha1", "DSA", "SHA1"),
    0x0203: SignatureScheme("ecdsa_sha1", "ECDSA", "SHA1"),
    0x0301: SignatureScheme("rsa_pkcs1_sha224", "RSA", "SHA224"),
    0x0302: SignatureScheme("dsa_sha224", "DSA", "SHA224"),
    0x0303: SignatureScheme("ecdsa_sha224", "ECDSA", "SHA224"),
    0x0401: SignatureScheme("rsa_pkcs1_sha256", "RSA", "SHA256"),
    0x0402: SignatureScheme("dsa_sha256", "DSA", "SHA256"),
    0x0403: SignatureScheme("ecdsa_secp256r1_sha256", "ECDSA", "SHA256"),
    0x0501: SignatureScheme("rsa_pkcs1_sha384", "RSA", "SHA384"),
    0x0502: SignatureScheme("dsa_sha384", "DSA", "SHA384"),
    0x0503: SignatureScheme("ecdsa_secp384r1_sha384", "ECDSA", "SHA384"),
    0x0601: SignatureScheme("rsa_pkcs1_sha512", "RSA", "SHA512"),
    0x0602: SignatureScheme("dsa_sha512", "DSA", "SHA512"),
    0x0603: SignatureScheme("ecdsa_secp521r1_sha512", "ECDSA", "SHA512"),
    0x0804: SignatureScheme("rsa_pss_rsae_sha256", "RSA-PSS", "SHA256"),
    0x0805: SignatureScheme("rsa_pss_rsae_sha384", "RSA-PSS", "SHA384"),
    0x0806: SignatureScheme("rsa_pss_rsae_sha512", "RSA-PSS", "SHA512"),
    0x0807: SignatureScheme("ed25519", "ED25519", None),
    0x0808: SignatureScheme("ed448", "ED448", None),
    0x0809: SignatureScheme("rsa_pss_pss_sha256", "RSA-PSS", "SHA256"),
    0x080A: SignatureScheme("rsa_pss_pss_sha384", "RSA-PSS", "SHA384"),
    0x080B: SignatureScheme("rsa_pss_pss_sha512", "RSA-PSS", "SHA512"),
    0x081A: SignatureScheme("ecdsa_brainpoolP256r1tls13_sha256", "ECDSA", "SHA256"),
    0x081B: SignatureScheme("ecdsa_brainpoolP384r1tls13_sha384", "ECDSA", "SHA384"),
    0x081C: SignatureScheme("ecdsa_brainpoolP512r1tls13_sha512", "ECDSA", "SHA512"),
    0x0904: SignatureScheme("mldsa44", "ML-DSA-44", None),
    0x0905: SignatureScheme("mldsa65", "ML-DSA-65", None),
    0x0906: SignatureScheme("mldsa87", "ML-DSA-87", None),
}

# TLS 1.0 and 1.1 have no SignatureAndHashAlgorithm field: the scheme follows
# from the certificate's key (RFC 4346 section 7.4.3). OpenSSL's names.
LEGACY_SIGNATURE_SCHEMES: dict[str, SignatureScheme] = {
    "RSA": SignatureScheme("rsa_pkcs1_md5_sha1", "RSA", "MD5-SHA1"),
    "EC": SignatureScheme("ecdsa_sha1", "ECDSA", "SHA1"),
    "DSA": SignatureScheme("dsa_sha1", "DSA", "SHA1"),
}


def scheme_by_name(name: str) -> SignatureScheme | None:
    for scheme in (*SIGNATURE_SCHEMES.values(), *LEGACY_SIGNATURE_SCHEMES.values()):
        if scheme.name == name:
            return scheme
    return None
