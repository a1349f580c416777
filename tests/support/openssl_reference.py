"""The reference for the capability scan: the same questions asked with `openssl s_client`.

Each answer comes from a complete handshake by OpenSSL's own client (the
scan only reads first flights), so the two methods share no code. OpenSSL 3.0
on Debian cannot offer SSLv3, RC4 or export suites; the comparisons are made
over what it can offer.
"""

from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass

_VERSION_FLAGS = {"TLSv1": "-tls1", "TLSv1.1": "-tls1_1", "TLSv1.2": "-tls1_2", "TLSv1.3": "-tls1_3"}
# Our group names -> OpenSSL's.
OPENSSL_GROUPS = {
    "x25519": "X25519",
    "x448": "X448",
    "secp256r1": "prime256v1",
    "secp384r1": "secp384r1",
    "secp521r1": "secp521r1",
    "ffdhe2048": "ffdhe2048",
    "ffdhe3072": "ffdhe3072",
    "ffdhe4096": "ffdhe4096",
    "ffdhe6144": "ffdhe6144",
    "ffdhe8192": "ffdhe8192",
}
_TEMP_KEY = re.compile(r"Server Temp Key: (?:ECDH, )?([A-Za-z0-9-]+)")
# "New, TLSv1.0, Cipher is X" names the suite's oldest version, not the one
# negotiated; the session block's "Protocol" line has that. In TLS 1.3 the
# block is printed only if a session ticket came in time, but there every
# suite is a TLS 1.3 suite, so the first line is right.
_CIPHER = re.compile(r"^New, (\S+), Cipher is (\S+)", re.MULTILINE)
_PROTOCOL = re.compile(r"^\s+Protocol\s+: (\S+)", re.MULTILINE)


@dataclass(frozen=True)
class Handshake:
    completed: bool
    version: str = ""
    cipher: str = ""
    output: str = ""


def handshake(port: int, *options: str, starttls: bool = True) -> Handshake:
    command = ["openssl", "s_client", "-connect", f"127.0.0.1:{port}", "-servername", "mail.test"]
    if starttls:
        command += ["-starttls", "smtp", "-name", "reference.test"]
    completed = subprocess.run(
        [*command, *options], stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=20, check=False
    )
    output = completed.stdout + completed.stderr
    cipher, protocol = _CIPHER.search(output), _PROTOCOL.search(output)
    if cipher is None or cipher.group(2) == "(NONE)":
        return Handshake(False, output=output)
    if protocol is None and cipher.group(1) != "TLSv1.3":
        return Handshake(False, output=output)
    version = protocol.group(1) if protocol is not None else "TLSv1.3"
    return Handshake(True, version, cipher.group(2), output)


def local_suites(version: str) -> list[str]:
    """The suites this machine's OpenSSL can offer in ``version``."""
    if version == "TLSv1.3":
        return ["TLS_AES_256_GCM_SHA384", "TLS_CHACHA20_POLY1305_SHA256", "TLS_AES_128_GCM_SHA256",
                "TLS_AES_128_CCM_SHA256", "TLS_AES_128_CCM_8_SHA256"]  # fmt: skip
    listed = subprocess.run(
        ["openssl", "ciphers", "ALL:COMPLEMENTOFALL:@SECLEVEL=0"], capture_output=True, text=True, check=True
    ).stdout.strip()
    tls13 = set(local_suites("TLSv1.3"))
    return [name for name in listed.split(":") if name not in tls13 and "PSK" not in name and "SRP" not in name]


def _suite_options(version: str, suites: list[str]) -> list[str]:
    if version == "TLSv1.3":
        return [_VERSION_FLAGS[version], "-ciphersuites", ":".join(suites)]
    return [_VERSION_FLAGS[version], "-cipher", ":".join(suites) + ":@SECLEVEL=0"]


def accepted_suites(port: int, version: str) -> set[str]:
    """Every suite the server completes a handshake with, found by taking each winner away."""
    remaining = local_suites(version)
    accepted: set[str] = set()
    while remaining:
        result = handshake(port, *_suite_options(version, remaining))
        if not result.completed or result.version != version or result.cipher not in remaining:
            break
        accepted.add(result.cipher)
        remaining.remove(result.cipher)
    return accepted


def version_accepted(port: int, version: str, *, starttls: bool = True) -> bool:
    result = handshake(port, *_suite_options(version, local_suites(version)), starttls=starttls)
    return result.completed and result.version == version


def group_accepted(port: int, version: str, group: str) -> bool:
    name = OPENSSL_GROUPS[group]
    if version == "TLSv1.3":
        result = handshake(port, "-tls1_3", "-groups", name)
        return result.completed
    if group.startswith("ffdhe"):
        return False  # OpenSSL's client does not offer RFC 7919 groups below TLS 1.3
    result = handshake(port, _VERSION_FLAGS[version], "-cipher", "ECDHE:AECDH:@SECLEVEL=0", "-curves", name)
    match = _TEMP_KEY.search(result.output)
    return result.completed and match is not None and match.group(1) == name


def session_facts(port: int, version: str) -> tuple[bool, bool, bool]:
    """(secure renegotiation, extended master secret, compression) of one handshake."""
    result = handshake(port, *_suite_options(version, local_suites(version)))
    output = result.output
    return (
        "Secure Renegotiation IS supported" in output,
        "Extended master secret: yes" in output,
        "Compression: NONE" not in output,
    )


def picks(port: int, version: str, client_order: list[str]) -> str:
    """The suite the server picks when offered ``client_order``, in that order."""
    return handshake(port, *_suite_options(version, client_order)).cipher
