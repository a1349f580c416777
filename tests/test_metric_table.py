"""The family table is the contract: the README, the reserved labels and the scrape agree with it."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from exporter.config.loader import ConfigError, parse_config
from exporter.metrics.families import ALL_FAMILIES, RESERVED_LABELS, SCRAPE_LABELS, TARGET_FAMILIES, TARGET_LABELS

README = Path(__file__).resolve().parent.parent / "README.md"
_ROW = re.compile(r"^\| `(?P<name>[a-z0-9_]+)(?:\{(?P<labels>[a-z0-9_,]+)\})?` \| (?P<kind>[a-z]+) \|")


def _readme_rows() -> dict[str, tuple[tuple[str, ...], str]]:
    text = README.read_text(encoding="utf-8")
    section = text[text.index("\n## Metrics\n") : text.index("\n### Reasons\n")]
    rows: dict[str, tuple[tuple[str, ...], str]] = {}
    for line in section.splitlines():
        match = _ROW.match(line)
        if match:
            labels = tuple(match["labels"].split(",")) if match["labels"] else ()
            rows[match["name"]] = (labels, match["kind"])
    return rows


def test_the_readme_metric_table_lists_every_family_with_its_labels_and_type() -> None:
    documented = _readme_rows()
    table = {family.name: (family.labels, family.kind.value) for family in ALL_FAMILIES}
    assert documented == table


def test_every_label_a_target_series_carries_is_reserved() -> None:
    for family in TARGET_FAMILIES:
        assert set(family.labels) <= RESERVED_LABELS, family.name
    assert set(TARGET_LABELS) | set(SCRAPE_LABELS) <= RESERVED_LABELS


def test_a_static_label_may_not_shadow_any_reserved_label(tmp_path: Path) -> None:
    for label in sorted(RESERVED_LABELS):
        text = f"targets:\n  - host: mx.example.com\n    labels: {{{label}: x}}\n"
        with pytest.raises(ConfigError, match=rf"targets\[0\]\.labels\.{label}: is set by the exporter itself"):
            parse_config(text, tmp_path / "c.yml")
