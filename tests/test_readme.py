"""The README's reference tables follow the code: every alert is explained, every folder mapped."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from tests.support.prometheus import REPOSITORY, RULES_FILE

README = REPOSITORY / "README.md"
# | `SmtpName` | severity | fires when | what to do |
_ALERT_ROW = re.compile(
    r"^\| `(?P<name>Smtp[A-Za-z]+)` \| (?P<severity>[a-z]+) \| (?P<when>[^|]+) \| (?P<fix>[^|]+) \|$"
)
_FOLDER_ROW = re.compile(r"^\| `(?P<folder>[a-z_]+)/` \|")


def _section(heading: str) -> str:
    text = README.read_text(encoding="utf-8")
    start = text.index(f"\n{heading}\n")
    level = heading.split(" ", 1)[0]
    # Up to the next heading of the same or a higher level.
    following = re.search(rf"\n#{{1,{len(level)}}} ", text[start + len(heading) + 1 :])
    return text[start : start + len(heading) + 1 + following.start()] if following else text[start:]


def _alert_rows() -> dict[str, tuple[str, str, str]]:
    rows = {}
    for line in _section("## Alerting rules").splitlines():
        match = _ALERT_ROW.match(line)
        if match:
            rows[match["name"]] = (match["severity"], match["when"].strip(), match["fix"].strip())
    return rows


def test_every_alert_of_the_rules_is_explained_in_the_alerting_section() -> None:
    rules = [rule for group in yaml.safe_load(RULES_FILE.read_text())["groups"] for rule in group["rules"]]
    severities = {rule["alert"]: rule["labels"]["severity"] for rule in rules if "alert" in rule}
    rows = _alert_rows()
    # Both ways: no alert left out, none documented that the rules do not have.
    assert set(rows) == set(severities)
    for name, (severity, when, fix) in rows.items():
        assert severity == severities[name], name
        assert when, f"{name}: says when it fires"
        assert fix, f"{name}: says what to do"


def test_the_code_map_lists_every_folder_of_the_package() -> None:
    package = REPOSITORY / "exporter"
    folders = {path.parent.name for path in package.glob("*/__init__.py")}
    mapped = {match["folder"] for line in _section("### Code map").splitlines() if (match := _FOLDER_ROW.match(line))}
    assert mapped == folders
    # Every folder the map names is a package, not a stray directory.
    assert all((package / folder / "__init__.py").is_file() for folder in mapped)


def test_the_section_reader_stops_at_the_next_heading() -> None:
    # The alert table must be read from its own section, not from a later one.
    section = _section("## Alerting rules")
    assert "## Grafana dashboard" not in section
    assert Path(RULES_FILE).name in section
