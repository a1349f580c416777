"""What the scan offers: cipher suites and key-exchange groups by their IANA code points.

The table is data, not OpenSSL: the scan writes its own ClientHellos, so it can
offer suites and groups that the local OpenSSL no longer has (SSLv3-era RC4 and
export suites, ffdhe groups, X25519MLKEM768). Names are OpenSSL's, as in
`smtp_tls_cipher_info`. Rows from `openssl ciphers -V 'ALL:COMPLEMENTOFALL:@SECLEVEL=0'`
(OpenSSL 3.0.19, PSK and SRP left out: no server selects them without a
pre-shared secret), plus the legacy suites OpenSSL 3 dropped and the two
TLS 1.3 CCM suites it does not enable by default.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass


class KeyExchange(enum.StrEnum):
    ECDHE = "ecdhe"
    DHE = "dhe"
    RSA = "rsa"
    # Anonymous (EC)DH: ephemeral, but with no server authentication at all.
    ANON = "anon"
    # TLS 1.3 suites name no key exchange; it is always (EC)DHE or hybrid.
    TLS13 = "tls13"


@dataclass(frozen=True)
class CipherSuite:
    code: int
    name: str
    key_exchange: KeyExchange

    @property
    def tls13(self) -> bool:
        return self.key_exchange is KeyExchange.TLS13

    @property
    def forward_secret(self) -> bool:
        return self.key_exchange in (KeyExchange.ECDHE, KeyExchange.DHE, KeyExchange.ANON, KeyExchange.TLS13)


SUITES: tuple[CipherSuite, ...] = (
    CipherSuite(0x1302, "TLS_AES_256_GCM_SHA384", KeyExchange.TLS13),
    CipherSuite(0x1303, "TLS_CHACHA20_POLY1305_SHA256", KeyExchange.TLS13),
    CipherSuite(0x1301, "TLS_AES_128_GCM_SHA256", KeyExchange.TLS13),
    CipherSuite(0xC02C, "ECDHE-ECDSA-AES256-GCM-SHA384", KeyExchange.ECDHE),
    CipherSuite(0xC030, "ECDHE-RSA-AES256-GCM-SHA384", KeyExchange.ECDHE),
    CipherSuite(0x00A3, "DHE-DSS-AES256-GCM-SHA384", KeyExchange.DHE),
    CipherSuite(0x009F, "DHE-RSA-AES256-GCM-SHA384", KeyExchange.DHE),
    CipherSuite(0xCCA9, "ECDHE-ECDSA-CHACHA20-POLY1305", KeyExchange.ECDHE),
    CipherSuite(0xCCA8, "ECDHE-RSA-CHACHA20-POLY1305", KeyExchange.ECDHE),
    CipherSuite(0xCCAA, "DHE-RSA-CHACHA20-POLY1305", KeyExchange.DHE),
    CipherSuite(0xC0AF, "ECDHE-ECDSA-AES256-CCM8", KeyExchange.ECDHE),
    CipherSuite(0xC0AD, "ECDHE-ECDSA-AES256-CCM", KeyExchange.ECDHE),
    CipherSuite(0xC0A3, "DHE-RSA-AES256-CCM8", KeyExchange.DHE),
    CipherSuite(0xC09F, "DHE-RSA-AES256-CCM", KeyExchange.DHE),
    CipherSuite(0xC05D, "ECDHE-ECDSA-ARIA256-GCM-SHA384", KeyExchange.ECDHE),
    CipherSuite(0xC061, "ECDHE-ARIA256-GCM-SHA384", KeyExchange.ECDHE),
    CipherSuite(0xC057, "DHE-DSS-ARIA256-GCM-SHA384", KeyExchange.DHE),
    CipherSuite(0xC053, "DHE-RSA-ARIA256-GCM-SHA384", KeyExchange.DHE),
    CipherSuite(0x00A7, "ADH-AES256-GCM-SHA384", KeyExchange.ANON),
    CipherSuite(0xC02B, "ECDHE-ECDSA-AES128-GCM-SHA256", KeyExchange.ECDHE),
    CipherSuite(0xC02F, "ECDHE-RSA-AES128-GCM-SHA256", KeyExchange.ECDHE),
    CipherSuite(0x00A2, "DHE-DSS-AES128-GCM-SHA256", KeyExchange.DHE),
    CipherSuite(0x009E, "DHE-RSA-AES128-GCM-SHA256", KeyExchange.DHE),
    CipherSuite(0xC0AE, "ECDHE-ECDSA-AES128-CCM8", KeyExchange.ECDHE),
    CipherSuite(0xC0AC, "ECDHE-ECDSA-AES128-CCM", KeyExchange.ECDHE),
    CipherSuite(0xC0A2, "DHE-RSA-AES128-CCM8", KeyExchange.DHE),
    CipherSuite(0xC09E, "DHE-RSA-AES128-CCM", KeyExchange.DHE),
    CipherSuite(0xC05C, "ECDHE-ECDSA-ARIA128-GCM-SHA256", KeyExchange.ECDHE),
    CipherSuite(0xC060, "ECDHE-ARIA128-GCM-SHA256", KeyExchange.ECDHE),
    CipherSuite(0xC056, "DHE-DSS-ARIA128-GCM-SHA256", KeyExchange.DHE),
    CipherSuite(0xC052, "DHE-RSA-ARIA128-GCM-SHA256", KeyExchange.DHE),
    CipherSuite(0x00A6, "ADH-AES128-GCM-SHA256", KeyExchange.ANON),
    CipherSuite(0xC024, "ECDHE-ECDSA-AES256-SHA384", KeyExchange.ECDHE),
    CipherSuite(0xC028, "ECDHE-RSA-AES256-SHA384", KeyExchange.ECDHE),
    CipherSuite(0x006B, "DHE-RSA-AES256-SHA256", KeyExchange.DHE),
    CipherSuite(0x006A, "DHE-DSS-AES256-SHA256", KeyExchange.DHE),
    CipherSuite(0xC073, "ECDHE-ECDSA-CAMELLIA256-SHA384", KeyExchange.ECDHE),
    CipherSuite(0xC077, "ECDHE-RSA-CAMELLIA256-SHA384", KeyExchange.ECDHE),
    CipherSuite(0x00C4, "DHE-RSA-CAMELLIA256-SHA256", KeyExchange.DHE),
    CipherSuite(0x00C3, "DHE-DSS-CAMELLIA256-SHA256", KeyExchange.DHE),
    CipherSuite(0x006D, "ADH-AES256-SHA256", KeyExchange.ANON),
    CipherSuite(0x00C5, "ADH-CAMELLIA256-SHA256", KeyExchange.ANON),
    CipherSuite(0xC023, "ECDHE-ECDSA-AES128-SHA256", KeyExchange.ECDHE),
    CipherSuite(0xC027, "ECDHE-RSA-AES128-SHA256", KeyExchange.ECDHE),
    CipherSuite(0x0067, "DHE-RSA-AES128-SHA256", KeyExchange.DHE),
    CipherSuite(0x0040, "DHE-DSS-AES128-SHA256", KeyExchange.DHE),
    CipherSuite(0xC072, "ECDHE-ECDSA-CAMELLIA128-SHA256", KeyExchange.ECDHE),
    CipherSuite(0xC076, "ECDHE-RSA-CAMELLIA128-SHA256", KeyExchange.ECDHE),
    CipherSuite(0x00BE, "DHE-RSA-CAMELLIA128-SHA256", KeyExchange.DHE),
    CipherSuite(0x00BD, "DHE-DSS-CAMELLIA128-SHA256", KeyExchange.DHE),
    CipherSuite(0x006C, "ADH-AES128-SHA256", KeyExchange.ANON),
    CipherSuite(0x00BF, "ADH-CAMELLIA128-SHA256", KeyExchange.ANON),
    CipherSuite(0xC00A, "ECDHE-ECDSA-AES256-SHA", KeyExchange.ECDHE),
    CipherSuite(0xC014, "ECDHE-RSA-AES256-SHA", KeyExchange.ECDHE),
    CipherSuite(0x0039, "DHE-RSA-AES256-SHA", KeyExchange.DHE),
    CipherSuite(0x0038, "DHE-DSS-AES256-SHA", KeyExchange.DHE),
    CipherSuite(0x0088, "DHE-RSA-CAMELLIA256-SHA", KeyExchange.DHE),
    CipherSuite(0x0087, "DHE-DSS-CAMELLIA256-SHA", KeyExchange.DHE),
    CipherSuite(0xC019, "AECDH-AES256-SHA", KeyExchange.ANON),
    CipherSuite(0x003A, "ADH-AES256-SHA", KeyExchange.ANON),
    CipherSuite(0x0089, "ADH-CAMELLIA256-SHA", KeyExchange.ANON),
    CipherSuite(0xC009, "ECDHE-ECDSA-AES128-SHA", KeyExchange.ECDHE),
    CipherSuite(0xC013, "ECDHE-RSA-AES128-SHA", KeyExchange.ECDHE),
    CipherSuite(0x0033, "DHE-RSA-AES128-SHA", KeyExchange.DHE),
    CipherSuite(0x0032, "DHE-DSS-AES128-SHA", KeyExchange.DHE),
    CipherSuite(0x0045, "DHE-RSA-CAMELLIA128-SHA", KeyExchange.DHE),
    CipherSuite(0x0044, "DHE-DSS-CAMELLIA128-SHA", KeyExchange.DHE),
    CipherSuite(0xC018, "AECDH-AES128-SHA", KeyExchange.ANON),
    CipherSuite(0x0034, "ADH-AES128-SHA", KeyExchange.ANON),
    CipherSuite(0x0046, "ADH-CAMELLIA128-SHA", KeyExchange.ANON),
    CipherSuite(0x009D, "AES256-GCM-SHA384", KeyExchange.RSA),
    CipherSuite(0xC0A1, "AES256-CCM8", KeyExchange.RSA),
    CipherSuite(0xC09D, "AES256-CCM", KeyExchange.RSA),
    CipherSuite(0xC051, "ARIA256-GCM-SHA384", KeyExchange.RSA),
    CipherSuite(0x009C, "AES128-GCM-SHA256", KeyExchange.RSA),
    CipherSuite(0xC0A0, "AES128-CCM8", KeyExchange.RSA),
    CipherSuite(0xC09C, "AES128-CCM", KeyExchange.RSA),
    CipherSuite(0xC050, "ARIA128-GCM-SHA256", KeyExchange.RSA),
    CipherSuite(0x003D, "AES256-SHA256", KeyExchange.RSA),
    CipherSuite(0x00C0, "CAMELLIA256-SHA256", KeyExchange.RSA),
    CipherSuite(0x003C, "AES128-SHA256", KeyExchange.RSA),
    CipherSuite(0x00BA, "CAMELLIA128-SHA256", KeyExchange.RSA),
    CipherSuite(0x0035, "AES256-SHA", KeyExchange.RSA),
    CipherSuite(0x0084, "CAMELLIA256-SHA", KeyExchange.RSA),
    CipherSuite(0x002F, "AES128-SHA", KeyExchange.RSA),
    CipherSuite(0x0041, "CAMELLIA128-SHA", KeyExchange.RSA),
    CipherSuite(0xC006, "ECDHE-ECDSA-NULL-SHA", KeyExchange.ECDHE),
    CipherSuite(0xC010, "ECDHE-RSA-NULL-SHA", KeyExchange.ECDHE),
    CipherSuite(0xC015, "AECDH-NULL-SHA", KeyExchange.ANON),
    CipherSuite(0x003B, "NULL-SHA256", KeyExchange.RSA),
    CipherSuite(0x0002, "NULL-SHA", KeyExchange.RSA),
    CipherSuite(0x0001, "NULL-MD5", KeyExchange.RSA),
    CipherSuite(0x0004, "RC4-MD5", KeyExchange.RSA),
    CipherSuite(0x0005, "RC4-SHA", KeyExchange.RSA),
    CipherSuite(0x000A, "DES-CBC3-SHA", KeyExchange.RSA),
    CipherSuite(0x0016, "EDH-RSA-DES-CBC3-SHA", KeyExchange.DHE),
    CipherSuite(0x0013, "EDH-DSS-DES-CBC3-SHA", KeyExchange.DHE),
    CipherSuite(0x001B, "ADH-DES-CBC3-SHA", KeyExchange.ANON),
    CipherSuite(0x0018, "ADH-RC4-MD5", KeyExchange.ANON),
    CipherSuite(0xC012, "ECDHE-RSA-DES-CBC3-SHA", KeyExchange.ECDHE),
    CipherSuite(0xC008, "ECDHE-ECDSA-DES-CBC3-SHA", KeyExchange.ECDHE),
    CipherSuite(0xC011, "ECDHE-RSA-RC4-SHA", KeyExchange.ECDHE),
    CipherSuite(0xC007, "ECDHE-ECDSA-RC4-SHA", KeyExchange.ECDHE),
    CipherSuite(0xC017, "AECDH-DES-CBC3-SHA", KeyExchange.ANON),
    CipherSuite(0xC016, "AECDH-RC4-SHA", KeyExchange.ANON),
    CipherSuite(0x0009, "DES-CBC-SHA", KeyExchange.RSA),
    CipherSuite(0x0015, "EDH-RSA-DES-CBC-SHA", KeyExchange.DHE),
    CipherSuite(0x001A, "ADH-DES-CBC-SHA", KeyExchange.ANON),
    CipherSuite(0x0003, "EXP-RC4-MD5", KeyExchange.RSA),
    CipherSuite(0x0008, "EXP-DES-CBC-SHA", KeyExchange.RSA),
    CipherSuite(0x0006, "EXP-RC2-CBC-MD5", KeyExchange.RSA),
    CipherSuite(0x0014, "EXP-EDH-RSA-DES-CBC-SHA", KeyExchange.DHE),
    CipherSuite(0x0007, "IDEA-CBC-SHA", KeyExchange.RSA),
    CipherSuite(0x0096, "SEED-SHA", KeyExchange.RSA),
    CipherSuite(0x009A, "DHE-RSA-SEED-SHA", KeyExchange.DHE),
    CipherSuite(0x1304, "TLS_AES_128_CCM_SHA256", KeyExchange.TLS13),
    CipherSuite(0x1305, "TLS_AES_128_CCM_8_SHA256", KeyExchange.TLS13),
)

SUITES_BY_CODE = {suite.code: suite for suite in SUITES}
TLS13_SUITES = tuple(suite for suite in SUITES if suite.tls13)
LEGACY_SUITES = tuple(suite for suite in SUITES if not suite.tls13)

# RFC 5746 section 3.3: the signalling suite asks for secure renegotiation
# without an extension, which SSLv3 hellos cannot carry.
EMPTY_RENEGOTIATION_INFO_SCSV = 0x00FF


@dataclass(frozen=True)
class Group:
    code: int
    name: str
    finite_field: bool = False


# The label values of smtp_tls_group_accepted, as issue 17 names them.
GROUPS: tuple[Group, ...] = (
    Group(0x001D, "x25519"),
    Group(0x001E, "x448"),
    Group(0x0017, "secp256r1"),
    Group(0x0018, "secp384r1"),
    Group(0x0019, "secp521r1"),
    Group(0x0100, "ffdhe2048", finite_field=True),
    Group(0x0101, "ffdhe3072", finite_field=True),
    Group(0x0102, "ffdhe4096", finite_field=True),
    Group(0x0103, "ffdhe6144", finite_field=True),
    Group(0x0104, "ffdhe8192", finite_field=True),
    # The ML-KEM hybrid (draft-ietf-tls-ecdhe-mlkem); tested in TLS 1.3 only.
    Group(0x11EC, "X25519MLKEM768"),
)
GROUPS_BY_CODE = {group.code: group for group in GROUPS}
EC_GROUPS = tuple(group for group in GROUPS if not group.finite_field and group.name != "X25519MLKEM768")
FFDHE_GROUPS = tuple(group for group in GROUPS if group.finite_field)
