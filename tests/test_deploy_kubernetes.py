"""deploy/kubernetes/: valid manifests that fit together, and rules identical to prometheus/alerts.yml.

Kubernetes' own kinds are validated offline against the strict schemas that
kubernetes-validate bundles (unknown fields are errors, as with `kubectl
apply`). ServiceMonitor and PrometheusRule are the Prometheus Operator's
CRDs, which those schemas do not have: they are validated against the CRDs'
own openAPIV3Schema (tests/data/prometheus-operator/, vendored from the
operator's release), made strict the same way. Neither replaces an API
server: admission webhooks, defaulting and the operator's own checks (such as
PromQL syntax, covered here by promtool) are not exercised.
"""

from __future__ import annotations

import copy
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml

from exporter import __version__
from tests.support.environment import require
from tests.support.namespaces import EXPORTER_SCRIPT, private_run_unavailable, run_with_private_run
from tests.support.prometheus import REPOSITORY, RULES_FILE, missing_tool, promtool

MANIFESTS = REPOSITORY / "deploy" / "kubernetes"
CRDS = REPOSITORY / "tests" / "data" / "prometheus-operator"
GENERATOR = MANIFESTS / "generate_prometheusrule.py"
# apps.kubernetes.io/pod-index, which the shard number comes from, is set on
# StatefulSet pods from 1.28 on; validate against that and the newest schemas.
KUBERNETES_VERSIONS = ("1.28", kubernetes_validate.utils.latest_version())
OPERATOR_KINDS = {"ServiceMonitor": "servicemonitors", "PrometheusRule": "prometheusrules"}

Manifest = dict[str, Any]


def _manifests() -> dict[str, Manifest]:
    """kind -> the one manifest of that kind, from the files kustomization.yaml lists."""
    kustomization = yaml.safe_load((MANIFESTS / "kustomization.yaml").read_text())
    by_kind: dict[str, Manifest] = {}
    for name in kustomization["resources"]:
        for document in yaml.safe_load_all((MANIFESTS / name).read_text()):
            assert document["kind"] not in by_kind, f"two {document['kind']} manifests"
            by_kind[document["kind"]] = document
    return by_kind


def _strict(schema: Any) -> Any:
    """An OpenAPI v3 schema in which objects with declared properties refuse others."""
    if isinstance(schema, list):
        return [_strict(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    strict = {key: _strict(value) for key, value in schema.items()}
    declared_only = "properties" in strict and not strict.get("x-kubernetes-preserve-unknown-fields")
    if declared_only and "additionalProperties" not in strict:
        strict["additionalProperties"] = False
    return strict


def _operator_schema(kind: str) -> dict[str, Any]:
    crd = yaml.safe_load((CRDS / f"monitoring.coreos.com_{OPERATOR_KINDS[kind]}.yaml").read_text())
    [version] = [version for version in crd["spec"]["versions"] if version["name"] == "v1"]
    schema: dict[str, Any] = _strict(version["schema"]["openAPIV3Schema"])
    return schema


def _operator_errors(manifest: Manifest) -> list[str]:
    validator = jsonschema.Draft7Validator(_operator_schema(manifest["kind"]))
    return [f"{'.'.join(map(str, error.path))}: {error.message}" for error in validator.iter_errors(manifest)]


def test_kustomization_lists_every_manifest() -> None:
    kustomization = yaml.safe_load((MANIFESTS / "kustomization.yaml").read_text())
    on_disk = {path.name for path in MANIFESTS.glob("*.yaml")} - {"kustomization.yaml"}
    assert sorted(kustomization["resources"]) == sorted(on_disk)
    assert set(_manifests()) == {"ConfigMap", "Secret", "Service", "StatefulSet", "ServiceMonitor", "PrometheusRule"}


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_kubernetes_kinds_validate_against_the_strict_schemas(version: str) -> None:
    for kind, manifest in _manifests().items():
        if kind in OPERATOR_KINDS:
            with pytest.raises(kubernetes_validate.SchemaNotFoundError):
                kubernetes_validate.validate(manifest, version, strict=True)
            continue
        kubernetes_validate.validate(manifest, version, strict=True)


def test_kubernetes_validation_can_fail() -> None:
    statefulset = copy.deepcopy(_manifests()["StatefulSet"])
    statefulset["spec"]["template"]["spec"]["containers"][0]["volumeMount"] = []
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(statefulset, KUBERNETES_VERSIONS[-1], strict=True)


@pytest.mark.parametrize("kind", sorted(OPERATOR_KINDS))
def test_operator_kinds_validate_against_their_crds(kind: str) -> None:
    manifest = _manifests()[kind]
    assert manifest["apiVersion"] == "monitoring.coreos.com/v1"
    assert _operator_errors(manifest) == []
    assert re.fullmatch(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?", manifest["metadata"]["name"])


def test_operator_validation_can_fail() -> None:
    monitor = copy.deepcopy(_manifests()["ServiceMonitor"])
    monitor["spec"]["endpoints"][0]["intervall"] = "60s"
    monitor["spec"]["endpoints"][0]["scrapeTimeout"] = "half a minute"
    rule = copy.deepcopy(_manifests()["PrometheusRule"])
    del rule["spec"]["groups"][0]["rules"][0]["expr"]
    assert {error.split(":")[0] for error in _operator_errors(monitor)} == {
        "spec.endpoints.0",
        "spec.endpoints.0.scrapeTimeout",
    }
    assert [error.split(":")[0] for error in _operator_errors(rule)] == ["spec.groups.0.rules.0"]


def test_the_pieces_fit_together() -> None:
    manifests = _manifests()
    statefulset, service, monitor = manifests["StatefulSet"], manifests["Service"], manifests["ServiceMonitor"]
    pod = statefulset["spec"]["template"]
    [container] = pod["spec"]["containers"]
    assert statefulset["spec"]["selector"]["matchLabels"].items() <= pod["metadata"]["labels"].items()
    assert service["spec"]["selector"].items() <= pod["metadata"]["labels"].items()
    assert statefulset["spec"]["serviceName"] == service["metadata"]["name"]
    assert service["spec"]["clusterIP"] == "None"
    assert monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    [service_port] = service["spec"]["ports"]
    [container_port] = container["ports"]
    assert monitor["spec"]["endpoints"][0]["port"] == service_port["name"] == container_port["name"]
    assert service_port["port"] == container_port["containerPort"] == 10587
    arguments = container["args"]
    assert arguments[arguments.index("--web.listen-address") + 1] == f":{container_port['containerPort']}"
    # The image tag is the release the manifests were written for.
    assert container["image"].rpartition(":")[2] == __version__
    for probe in ("readinessProbe", "livenessProbe"):
        assert container[probe]["httpGet"]["port"] == container_port["name"]


def test_each_pod_probes_its_own_share() -> None:
    statefulset = _manifests()["StatefulSet"]
    [container] = statefulset["spec"]["template"]["spec"]["containers"]
    shard = container["args"][container["args"].index("--shard") + 1]
    assert shard == f"$(SHARD_INDEX)/{statefulset['spec']['replicas']}"
    [variable] = [variable for variable in container["env"] if variable["name"] == "SHARD_INDEX"]
    assert variable["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.labels['apps.kubernetes.io/pod-index']"


def test_the_password_reaches_the_path_the_config_names() -> None:
    manifests = _manifests()
    config = yaml.safe_load(manifests["ConfigMap"]["data"]["config.yml"])
    [password_file] = {target["auth"]["password_file"] for target in config["targets"] if "auth" in target}
    pod = manifests["StatefulSet"]["spec"]["template"]["spec"]
    [container] = pod["containers"]
    mounts = {mount["name"]: mount["mountPath"] for mount in container["volumeMounts"]}
    volumes = {volume["name"]: volume for volume in pod["volumes"]}
    [secret_volume] = [name for name, volume in volumes.items() if "secret" in volume]
    assert volumes[secret_volume]["secret"]["secretName"] == manifests["Secret"]["metadata"]["name"]
    assert str(Path(password_file).parent) == mounts[secret_volume]
    assert Path(password_file).name in manifests["Secret"]["stringData"]
    [config_volume] = [name for name, volume in volumes.items() if "configMap" in volume]
    assert volumes[config_volume]["configMap"]["name"] == manifests["ConfigMap"]["metadata"]["name"]
    config_file = container["args"][container["args"].index("--config.file") + 1]
    assert config_file == f"{mounts[config_volume]}/config.yml"


def test_the_containers_command_line_accepts_the_configmaps_config(tmp_path: Path) -> None:
    """The container's args, with each pod's shard, check the ConfigMap's config with the Secret in place."""
    require(private_run_unavailable(), "the Kubernetes config check")
    manifests = _manifests()
    config_file = tmp_path / "config.yml"
    config_file.write_text(manifests["ConfigMap"]["data"]["config.yml"])
    config = yaml.safe_load(config_file.read_text())
    [password_file] = {target["auth"]["password_file"] for target in config["targets"] if "auth" in target}
    statefulset = manifests["StatefulSet"]
    [container] = statefulset["spec"]["template"]["spec"]["containers"]
    password = "kubernetes-test-password-5521"
    for ordinal in range(statefulset["spec"]["replicas"]):
        arguments = [argument.replace("$(SHARD_INDEX)", str(ordinal)) for argument in container["args"]]
        arguments[arguments.index("--config.file") + 1] = str(config_file)
        completed = run_with_private_run(
            {password_file: password.encode()}, [str(EXPORTER_SCRIPT), *arguments, "--config.check"]
        )
        output = completed.stdout + completed.stderr
        assert completed.returncode == 0, output
        assert f"configuration is valid ({len(config['targets'])} targets)" in completed.stdout
        assert password not in output


def test_prometheusrule_is_generated_from_the_rules_file() -> None:
    completed = subprocess.run(
        [sys.executable, str(GENERATOR), "--check"], capture_output=True, text=True, timeout=60, check=False
    )
    assert completed.returncode == 0, completed.stdout + completed.stderr
    assert _manifests()["PrometheusRule"]["spec"]["groups"] == yaml.safe_load(RULES_FILE.read_text())["groups"]


def test_prometheusrule_rules_pass_promtool(tmp_path: Path) -> None:
    require(missing_tool("promtool"), "promtool check rules")
    rules = tmp_path / "rules.yml"
    rules.write_text(yaml.safe_dump({"groups": _manifests()["PrometheusRule"]["spec"]["groups"]}))
    completed = promtool("check", "rules", str(rules))
    assert completed.returncode == 0, completed.stdout + completed.stderr
