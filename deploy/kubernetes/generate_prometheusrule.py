"""Write deploy/kubernetes/prometheusrule.yaml from prometheus/alerts.yml.

    python deploy/kubernetes/generate_prometheusrule.py          # rewrite it
    python deploy/kubernetes/generate_prometheusrule.py --check  # exit 1 if it is stale

The rule groups are copied as text, indented under `spec:`, so the comments
that explain the rules survive; the result is parsed back and compared with
the source before it is written. One set of rules, the one promtool tests.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import yaml

REPOSITORY = Path(__file__).resolve().parents[2]
SOURCE = REPOSITORY / "prometheus" / "alerts.yml"
OUTPUT = REPOSITORY / "deploy" / "kubernetes" / "prometheusrule.yaml"

HEADER = """\
# Generated from prometheus/alerts.yml by deploy/kubernetes/generate_prometheusrule.py:
# edit those rules and run the script, never this file (tests/test_deploy_kubernetes.py
# checks that the two agree). Add the labels your Prometheus's ruleSelector expects
# (kube-prometheus-stack: `release: <its release name>`).
apiVersion: monitoring.coreos.com/v1
kind: PrometheusRule
metadata:
  name: smtp-tls-exporter
  labels:
    app.kubernetes.io/name: smtp-tls-exporter
spec:
"""


def render(source_text: str) -> str:
    lines = source_text.splitlines()
    starts = [index for index, line in enumerate(lines) if line.startswith("groups:")]
    if len(starts) != 1:
        raise ValueError(f"{SOURCE}: expected one top-level 'groups:' line, found {len(starts)}")
    body = "".join(f"  {line}\n" if line.strip() else "\n" for line in lines[starts[0] :])
    text = HEADER + body
    if yaml.safe_load(text)["spec"]["groups"] != yaml.safe_load(source_text)["groups"]:
        raise ValueError(f"{SOURCE}: indenting its groups changed their meaning; is there text before 'groups:'?")
    return text


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if the file differs from what would be written")
    arguments = parser.parse_args(argv)
    text = render(SOURCE.read_text(encoding="utf-8"))
    if arguments.check:
        if not OUTPUT.exists() or OUTPUT.read_text(encoding="utf-8") != text:
            print(f"{OUTPUT.relative_to(REPOSITORY)} is stale: run {Path(__file__).relative_to(REPOSITORY)}")
            return 1
        return 0
    OUTPUT.write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
