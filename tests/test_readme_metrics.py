"""The README's metric table lists exactly the families the exporter exposes, with their labels."""

from __future__ import annotations

import re
from pathlib import Path

from exporter.metrics.families import ALL_FAMILIES

README = Path(__file__).resolve().parent.parent / "README.md"


def _readme_rows() -> dict[str, tuple[tuple[str, ...], str]]:
    section = README.read_text().split("\n## Metrics\n", 1)[1].split("\n### Reasons\n", 1)[0]
    rows = {}
    for match in re.finditer(r"^\| `(\w+)(?:\{([\w,]*)\})?` \| (\w+) \|", section, re.MULTILINE):
        labels = tuple(label for label in (match.group(2) or "").split(",") if label)
        rows[match.group(1)] = (labels, match.group(3))
    return rows


def test_readme_metric_table_matches_the_family_table() -> None:
    documented = _readme_rows()
    exposed = {
        family.name: (family.labels if family.name != "smtp_exporter_scheduler_lag_seconds" else (), family.kind.value)
        for family in ALL_FAMILIES
    }
    assert documented == exposed
