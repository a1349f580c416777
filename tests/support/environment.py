"""Tests that need system tools skip where the tools cannot be had, never in CI.

scripts/test sets SMTP_EXPORTER_REQUIRE_INTEGRATION=1 where it could install
everything (root with apt-get); there a missing piece is a failure.
"""

from __future__ import annotations

import os

import pytest


def require(why_not: str | None, what: str) -> None:
    """Skip (or, where everything must run, fail) when ``why_not`` is set."""
    if why_not is None:
        return
    if os.environ.get("SMTP_EXPORTER_REQUIRE_INTEGRATION") == "1":
        pytest.fail(f"{what} must run here but cannot: {why_not}")
    pytest.skip(f"{what}: {why_not}")
