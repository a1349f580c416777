"""What one capability scan found: a frozen value, like the probe's ProbeResult."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import ClassVar

from exporter.scan.hello import ProtocolVersion
from exporter.tls.ratings import Rating


class ScanError(enum.StrEnum):
    """Why a scan could not finish. A server refusing an offer is not an error."""

    DNS = "dns_error"
    CONNECT_REFUSED = "connect_refused"
    CONNECT_FAILED = "connect_failed"
    BANNER = "banner_rejected"
    STARTTLS_NOT_OFFERED = "starttls_not_offered"
    STARTTLS_REJECTED = "starttls_rejected"
    SMTP_PROTOCOL = "smtp_protocol_error"
    TIMEOUT = "timeout"
    # The server accepted none of the versions offered.
    NO_TLS = "no_tls_accepted"


@dataclass(frozen=True)
class AcceptedSuite:
    # One object per suite, shared by every scan that accepts it (the engine makes
    # each once, a restore from the state file likewise): 10,000 scans of about 46
    # suites each held 74 MiB as separate copies.
    kept_shared: ClassVar[bool] = True

    name: str
    code: int
    rating: Rating
    forward_secret: bool


@dataclass(frozen=True)
class VersionScan:
    """What the server accepts in one protocol version."""

    # Equal values are one object (the engine shares them, a restore likewise).
    kept_shared: ClassVar[bool] = True

    version: ProtocolVersion
    accepted: bool
    # In the order the server picked them (its preference when it enforces one).
    suites: tuple[AcceptedSuite, ...] = ()
    # Group names (suites.GROUPS) the server accepted in this version; for
    # TLS 1.2 and older, EC groups by ServerKeyExchange and ffdhe groups by
    # their RFC 7919 prime.
    groups: tuple[str, ...] = ()
    # TLS 1.2 and older: the size of the server's DHE prime when it accepts DHE.
    dhe_bits: int | None = None
    # The groups the scan asked about in this version: a group is offered
    # only beside suites that use it (no EC group without an ECDHE suite).
    groups_offered: tuple[str, ...] = ()


@dataclass(frozen=True)
class ScanResult:
    host: str
    port: int
    # The address scanned: one address per scan, so every hello meets the same server.
    address: str | None
    success: bool
    error: ScanError | None
    error_detail: str
    timestamp: float
    duration: float
    versions: tuple[VersionScan, ...] = ()
    # internet.nl's cipher-order test on the highest version below TLS 1.3:
    # offered its worse suites first, does the server still pick a good or
    # sufficient one? None when it cannot be asked (only TLS 1.3, or the
    # accepted suites are all on one side of that line).
    server_cipher_order: bool | None = None
    # RFC 5746 and RFC 7627 on the highest version below TLS 1.3; None when
    # the server speaks TLS 1.3 only (neither applies there).
    secure_renegotiation: bool | None = None
    extended_master_secret: bool | None = None
    # TLS compression (CRIME); TLS 1.3 forbids it.
    compression: bool | None = None
    # ClientHellos sent (one connection each).
    hellos: int = 0

    def version(self, version: ProtocolVersion) -> VersionScan | None:
        return next((scanned for scanned in self.versions if scanned.version is version), None)

    @property
    def accepted_versions(self) -> tuple[ProtocolVersion, ...]:
        return tuple(scanned.version for scanned in self.versions if scanned.accepted)

    @property
    def accepted_groups(self) -> frozenset[str]:
        return frozenset(group for scanned in self.versions for group in scanned.groups)

    def group_verdicts(self) -> dict[str, bool]:
        """Each group asked about in some version: accepted in any of them?

        Plus ``dh<bits>`` (accepted) for a TLS 1.2-or-older DHE prime that is no
        RFC 7919 group, the name the probe's smtp_tls_key_exchange_info gives it:
        that is how "finite-field DHE accepted, with which size" shows.
        """
        accepted = self.accepted_groups
        verdicts = {group: group in accepted for scanned in self.versions for group in scanned.groups_offered}
        for scanned in self.versions:
            named_ffdhe = any(group.startswith("ffdhe") for group in scanned.groups)
            if scanned.dhe_bits is not None and not named_ffdhe:
                verdicts[f"dh{scanned.dhe_bits}"] = True
        return verdicts

    @property
    def forward_secrecy_only(self) -> bool:
        """No accepted suite in any version goes without forward secrecy (RSA key transport)."""
        return all(suite.forward_secret for scanned in self.versions for suite in scanned.suites)
