"""The scan for people: `check --scan`'s tables, laid out like testssl.sh's protocol and cipher sections."""

from __future__ import annotations

from exporter.scan.hello import ProtocolVersion
from exporter.scan.result import ScanResult
from exporter.scan.suites import SUITES_BY_CODE

# testssl.sh's verdicts per version (RFC 8996 deprecates TLS 1.0 and 1.1; SSLv3 is broken, RFC 7568).
_VERDICTS = {
    ProtocolVersion.SSLV3: ("offered (NOT ok)", "not offered (OK)"),
    ProtocolVersion.TLSV1: ("offered (deprecated)", "not offered"),
    ProtocolVersion.TLSV1_1: ("offered (deprecated)", "not offered"),
    ProtocolVersion.TLSV1_2: ("offered (OK)", "not offered"),
    ProtocolVersion.TLSV1_3: ("offered (OK)", "not offered"),
}


def _yes_no(verdict: bool | None, not_applicable: str) -> str:
    return not_applicable if verdict is None else ("yes" if verdict else "no")


def scan_report(endpoint: str, result: ScanResult) -> str:
    lines = [
        "",
        f"TLS capability scan of {endpoint}" + (f" ({result.address})" if result.address else ""),
        f"  {result.hellos} ClientHellos in {result.duration:.2f} s",
    ]
    if not result.success:
        error = result.error.value if result.error else "unknown"
        lines.append(f"  FAILED {error}: {result.error_detail}")
        return "\n".join(lines) + "\n"
    lines += ["", " Testing protocols via sockets", ""]
    for scanned in result.versions:
        offered, not_offered = _VERDICTS[scanned.version]
        lines.append(f" {scanned.version.value:<10} {offered if scanned.accepted else not_offered}")
    lines += [
        "",
        " Cipher suites per protocol, in the order the server picked them (rated by NCSC-NL 2025)",
        "",
        f" {'Hexcode':<8} {'Cipher Suite Name (OpenSSL)':<34} {'KeyExch.':<9} {'FS':<4} Rating",
        " " + "-" * 70,
    ]
    for scanned in result.versions:
        lines.append(f" {scanned.version.value}")
        if not scanned.suites:
            lines.append("  -")
        for suite in scanned.suites:
            known = SUITES_BY_CODE.get(suite.code)
            key_exchange = known.key_exchange.value.upper() if known else "?"
            forward_secret = "yes" if suite.forward_secret else "no"
            lines.append(
                f"  x{suite.code:04x}  {suite.name:<34} {key_exchange:<9} {forward_secret:<4} {suite.rating.value}"
            )
    verdicts = result.group_verdicts()
    accepted = [group for group, ok in verdicts.items() if ok]
    refused = [group for group, ok in verdicts.items() if not ok]
    lines += [
        "",
        f" {'Groups accepted':<24} {' '.join(accepted) or '-'}",
        f" {'Groups not accepted':<24} {' '.join(refused) or '-'}",
        f" {'Server cipher order':<24} {_yes_no(result.server_cipher_order, 'not applicable')}",
        f" {'Secure renegotiation':<24} {_yes_no(result.secure_renegotiation, 'not applicable (TLS 1.3 only)')}",
        f" {'Extended master secret':<24} {_yes_no(result.extended_master_secret, 'not applicable (TLS 1.3 only)')}",
        f" {'Compression':<24} {_yes_no(result.compression, 'not applicable')}",
    ]
    return "\n".join(lines) + "\n"
