"""NCSC-NL 2025 ratings of cipher suites, as the scan uses them.

The NCSC-NL "ICT-beveiligingsrichtlijnen voor TLS" (2025) sort suites into
good, sufficient and phase-out (appendix B, derived from sections 3.3.3 and
3.3.4); any suite not listed is insufficient. These are the lists internet.nl's
mail test applies, written with OpenSSL's names. Suites the lists name that
OpenSSL never implemented (ECDHE-RSA with CCM, Camellia-GCM, ARIA-CBC) cannot be
negotiated by our servers' OpenSSL and are left out.

To be unified with exporter/tls/ratings.py (the negotiated cipher's rating,
branch tlsdepth) once both have landed; until then only `cipher_rating` is
public here, so the switch touches one function.
"""

from __future__ import annotations

import enum


class Rating(enum.StrEnum):
    GOOD = "good"
    SUFFICIENT = "sufficient"
    PHASE_OUT = "phase_out"
    INSUFFICIENT = "insufficient"


_GOOD = frozenset({"TLS_AES_256_GCM_SHA384", "TLS_CHACHA20_POLY1305_SHA256"})
_SUFFICIENT = frozenset(
    {
        "TLS_AES_128_GCM_SHA256",
        "TLS_AES_128_CCM_SHA256",
        "ECDHE-ECDSA-CHACHA20-POLY1305",
        "ECDHE-ECDSA-AES256-GCM-SHA384",
        "ECDHE-ECDSA-AES256-CCM",
        "ECDHE-ECDSA-AES128-GCM-SHA256",
        "ECDHE-ECDSA-AES128-CCM",
        "ECDHE-RSA-CHACHA20-POLY1305",
        "ECDHE-RSA-AES256-GCM-SHA384",
        "ECDHE-RSA-AES128-GCM-SHA256",
    }
)
_PHASE_OUT = frozenset(
    {
        "ECDHE-ECDSA-CAMELLIA256-SHA384",
        "ECDHE-ECDSA-CAMELLIA128-SHA256",
        "ECDHE-ECDSA-ARIA256-GCM-SHA384",
        "ECDHE-ECDSA-ARIA128-GCM-SHA256",
        "ECDHE-ECDSA-AES256-SHA384",
        "ECDHE-ECDSA-AES128-SHA256",
        "ECDHE-RSA-CAMELLIA256-SHA384",
        "ECDHE-RSA-CAMELLIA128-SHA256",
        "ECDHE-ARIA256-GCM-SHA384",
        "ECDHE-ARIA128-GCM-SHA256",
        "ECDHE-RSA-AES256-SHA384",
        "ECDHE-RSA-AES128-SHA256",
        "DHE-RSA-CHACHA20-POLY1305",
        "DHE-RSA-CAMELLIA256-SHA256",
        "DHE-RSA-CAMELLIA128-SHA256",
        "DHE-RSA-ARIA256-GCM-SHA384",
        "DHE-RSA-ARIA128-GCM-SHA256",
        "DHE-RSA-AES256-GCM-SHA384",
        "DHE-RSA-AES256-CCM",
        "DHE-RSA-AES256-SHA256",
        "DHE-RSA-AES128-GCM-SHA256",
        "DHE-RSA-AES128-CCM",
        "DHE-RSA-AES128-SHA256",
    }
)


def cipher_rating(name: str) -> Rating:
    """The NCSC-NL 2025 rating of a suite by its OpenSSL name."""
    if name in _GOOD:
        return Rating.GOOD
    if name in _SUFFICIENT:
        return Rating.SUFFICIENT
    if name in _PHASE_OUT:
        return Rating.PHASE_OUT
    return Rating.INSUFFICIENT


# Better first: the cipher-order test asks whether the server picks from the front.
RATING_ORDER = (Rating.GOOD, Rating.SUFFICIENT, Rating.PHASE_OUT, Rating.INSUFFICIENT)
