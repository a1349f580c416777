"""The shipped alert rules: valid for promtool, unit-tested, and complete.

The behaviour of each alert is specified in prometheus/alerts_test.yml and
prometheus/alerts_7d_test.yml (firing and not firing, with the rendered
annotations); these tests run them and check that no alert is left out.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support.environment import require
from tests.support.prometheus import REPOSITORY, RULES_FILE, missing_tool, promtool

RULE_TESTS = sorted((REPOSITORY / "prometheus").glob("*_test.yml"))


def _alert_rules() -> list[dict[str, Any]]:
    document = yaml.safe_load(RULES_FILE.read_text())
    return [rule for group in document["groups"] for rule in group["rules"] if "alert" in rule]


def _rule_test_cases() -> list[dict[str, Any]]:
    cases = []
    for path in RULE_TESTS:
        for test in yaml.safe_load(path.read_text())["tests"]:
            cases.extend(test.get("alert_rule_test", []))
    return cases


def test_promtool_accepts_the_rules() -> None:
    require(missing_tool("promtool"), "promtool check rules")
    completed = promtool("check", "rules", str(RULES_FILE))
    assert completed.returncode == 0, completed.stdout + completed.stderr
    assert f"SUCCESS: {len(_alert_rules())} rules found" in completed.stdout


def test_promtool_unit_tests_pass() -> None:
    require(missing_tool("promtool"), "promtool test rules")
    assert RULE_TESTS, "no prometheus/*_test.yml"
    completed = promtool("test", "rules", *(str(path) for path in RULE_TESTS))
    assert completed.returncode == 0, completed.stdout + completed.stderr
    assert completed.stdout.count("SUCCESS") == len(RULE_TESTS), completed.stdout


def test_every_alert_has_a_firing_and_a_quiet_unit_test() -> None:
    cases = _rule_test_cases()
    for rule in _alert_rules():
        name = rule["alert"]
        outcomes = [bool(case.get("exp_alerts")) for case in cases if case["alertname"] == name]
        assert True in outcomes, f"{name}: no unit test where it fires"
        assert False in outcomes, f"{name}: no unit test where it stays quiet"


def test_unit_tests_name_only_alerts_that_exist() -> None:
    names = {rule["alert"] for rule in _alert_rules()}
    assert {case["alertname"] for case in _rule_test_cases()} <= names


@pytest.mark.parametrize("rule", _alert_rules(), ids=lambda rule: str(rule["alert"]))
def test_alert_has_severity_and_annotations_naming_target_and_value(rule: dict[str, Any]) -> None:
    # info: worth knowing, not worth waking anyone (an MTA-STS policy left in testing mode).
    assert rule["labels"]["severity"] in ("info", "warning", "critical")
    annotations = rule["annotations"]
    assert set(annotations) == {"summary", "description"}
    # An alert about the exporter itself has no target; it names the instance.
    about_exporter = "smtp_exporter_" in rule["expr"]
    subject = "$labels.instance" if about_exporter else "$labels.target"
    for key in ("summary", "description"):
        assert subject in annotations[key], f"{rule['alert']} {key} does not name {subject}"
    assert "$value" in annotations["description"], f"{rule['alert']} description does not give the value"


def test_the_unit_tests_load_the_shipped_rules() -> None:
    for path in RULE_TESTS:
        rule_files = [Path(entry) for entry in yaml.safe_load(path.read_text())["rule_files"]]
        assert [(path.parent / entry).resolve() for entry in rule_files] == [RULES_FILE]
