"""Does the server enforce the target's ``require:`` policy? The scan's side of it (pure).

The probe holds the *negotiated* session to ``require:`` (tls/verdicts.py:
``tls_version_too_low``, ``no_forward_secrecy``). A server can negotiate TLS 1.3
with us and still accept TLS 1.0 from an older client; only the scan sees that.
The comparison is made here rather than in PromQL because the policy is per
target (constants in a rule would hold every target to one policy) and because
forward secrecy per accepted suite is not among the scan's exported series
(``smtp_tls_ciphers_accepted`` counts by rating, and "insufficient" mixes
RSA key transport with, say, ECDHE with CBC and SHA-1).
"""

from __future__ import annotations

from exporter.config.model import TlsRequirements
from exporter.scan.result import ScanResult

# The label values of smtp_tls_scan_requirement_met: the keys of `require:`.
MIN_TLS_VERSION = "min_tls_version"
FORWARD_SECRECY = "forward_secrecy"


def requirements_met(result: ScanResult, require: TlsRequirements | None) -> tuple[tuple[str, bool], ...]:
    """Each requirement ``require`` sets, and whether the server accepts nothing that breaks it.

    Empty when nothing is required or the scan did not finish (a failed scan knows nothing).
    """
    if require is None or not result.success:
        return ()
    met: list[tuple[str, bool]] = []
    if require.min_tls_version is not None:
        too_low = [version for version in result.accepted_versions if require.version_too_low(version.value)]
        met.append((MIN_TLS_VERSION, not too_low))
    if require.forward_secrecy:
        met.append((FORWARD_SECRECY, result.forward_secrecy_only))
    return tuple(met)
