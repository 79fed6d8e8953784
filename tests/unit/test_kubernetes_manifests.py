"""deploy/k8s: the manifests parse, hang together (labels, names, ports, the Secret they reference) and
name only settings the service knows, with values it accepts; the pod runs as the image does."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import pytest
from ruamel.yaml import YAML

from eventbus.service.settings import TransformerSettings
from tests.support.dockerfile import declared_volumes, final_user
from tests.support.settings_env import unknown_settings

K8S = Path(__file__).resolve().parents[2] / "deploy" / "k8s"


@functools.cache
def _manifests() -> dict[str, dict[str, Any]]:
    kustomization = YAML(typ="safe").load((K8S / "kustomization.yaml").read_text())
    found: dict[str, dict[str, Any]] = {}
    for name in kustomization["resources"]:
        for document in YAML(typ="safe").load_all((K8S / name).read_text()):
            assert {"apiVersion", "kind", "metadata"} <= document.keys(), name
            found[document["kind"]] = document
    return found


def _container() -> dict[str, Any]:
    containers = _manifests()["StatefulSet"]["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1
    return dict(containers[0])


def _environment() -> dict[str, str]:
    """The container's variables as the pod sees them: the ConfigMap's, then its own `env`."""
    environment = dict(_manifests()["ConfigMap"]["data"])
    for variable in _container()["env"]:
        environment[variable["name"]] = variable.get("value", "<from the cluster>")
    return environment


def test_every_file_of_the_folder_is_a_resource_of_the_kustomization() -> None:
    listed = set(YAML(typ="safe").load((K8S / "kustomization.yaml").read_text())["resources"])
    assert listed == {p.name for p in K8S.glob("*.yaml")} - {"kustomization.yaml"}
    assert set(_manifests()) == {
        "ServiceAccount",
        "ConfigMap",
        "StatefulSet",
        "Service",
        "PodDisruptionBudget",
    }


def test_only_known_settings_with_values_the_service_accepts() -> None:
    environment = _environment()
    assert not unknown_settings(list(environment))
    data = _manifests()["ConfigMap"]["data"]
    assert all(isinstance(value, str) for value in data.values()), "ConfigMap values are strings"
    settings = TransformerSettings.model_validate(
        {"kafka": {"bootstrap_servers": data["EVENTBUS_KAFKA__BOOTSTRAP_SERVERS"],
                   "security_protocol": data["EVENTBUS_KAFKA__SECURITY_PROTOCOL"],
                   "sasl": {"mechanism": data["EVENTBUS_KAFKA__SASL__MECHANISM"],
                            "aws_region": data["EVENTBUS_KAFKA__SASL__AWS_REGION"]}},
         "registry": {"url": data["EVENTBUS_REGISTRY__URL"], "mode": data["EVENTBUS_REGISTRY__MODE"]},
         "group_id": data["EVENTBUS_GROUP_ID"], "shutdown_timeout_s": data["EVENTBUS_SHUTDOWN_TIMEOUT_S"],
         "http": {"host": data["EVENTBUS_HTTP__HOST"], "port": data["EVENTBUS_HTTP__PORT"],
                  "broker_gone_after_s": data["EVENTBUS_HTTP__BROKER_GONE_AFTER_S"]}}
    )  # fmt: skip
    # The bus's rules: SASL_SSL with MSK IAM, schema ids pinned in production.
    assert settings.kafka.security_protocol.value == "SASL_SSL"
    assert settings.registry.mode.value == "pinned"


def test_secrets_come_from_a_secret_never_from_the_config_map() -> None:
    secret_names = {name for name in _environment() if "PASSWORD" in name or "SECRET" in name}
    assert secret_names and not secret_names & set(_manifests()["ConfigMap"]["data"])
    for variable in _container()["env"]:
        if variable["name"] in secret_names:
            assert "secretKeyRef" in variable["valueFrom"], variable["name"]


def test_probes_ask_the_service_endpoints_on_its_port() -> None:
    container = _container()
    ports = {port["name"]: port["containerPort"] for port in container["ports"]}
    assert ports["http"] == int(_environment()["EVENTBUS_HTTP__PORT"])
    assert _environment()["EVENTBUS_HTTP__HOST"] == "0.0.0.0", "the kubelet probes the pod's address"
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    for probe in ("readinessProbe", "livenessProbe", "startupProbe"):
        assert container[probe]["httpGet"]["port"] in (ports["http"], "http")


def test_the_pod_runs_as_the_image_does_hardened() -> None:
    pod = _manifests()["StatefulSet"]["spec"]["template"]["spec"]
    user, group = final_user().split(":")
    assert (pod["securityContext"]["runAsUser"], pod["securityContext"]["runAsGroup"]) == (
        int(user),
        int(group),
    )
    assert pod["securityContext"]["runAsNonRoot"] is True
    container = _container()
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    assert container["securityContext"]["capabilities"]["drop"] == ["ALL"]
    mounted = {mount["mountPath"] for mount in container["volumeMounts"]}
    assert declared_volumes() <= mounted, "every path the service writes is a volume"
    volumes = {volume["name"] for volume in pod["volumes"]}
    assert {mount["name"] for mount in container["volumeMounts"]} <= volumes


def test_the_stop_budget_fits_the_grace_period_and_resources_are_sized() -> None:
    pod = _manifests()["StatefulSet"]["spec"]["template"]["spec"]
    assert float(_environment()["EVENTBUS_SHUTDOWN_TIMEOUT_S"]) < pod["terminationGracePeriodSeconds"]
    resources = _container()["resources"]
    # make bench: peak RSS about 150 MB (163 MB with a lookup store); the request leaves headroom.
    assert _mebibytes(resources["requests"]["memory"]) >= 200
    assert _mebibytes(resources["limits"]["memory"]) >= _mebibytes(resources["requests"]["memory"])


def test_replicas_have_stable_names_so_their_transactional_ids_are_stable() -> None:
    """The pod name is the instance id: a StatefulSet's names survive restarts, a Deployment's do not."""
    (instance_id,) = [v for v in _container()["env"] if v["name"] == "EVENTBUS_INSTANCE_ID"]
    assert instance_id["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"
    manifests = _manifests()
    assert manifests["StatefulSet"]["spec"]["serviceName"] == manifests["Service"]["metadata"]["name"]
    assert manifests["Service"]["spec"]["clusterIP"] == "None"
    assert manifests["Service"]["spec"]["selector"].items() <= (
        manifests["StatefulSet"]["spec"]["template"]["metadata"]["labels"].items()
    )


def test_the_disruption_budget_and_service_account_select_the_pods() -> None:
    manifests = _manifests()
    labels = manifests["StatefulSet"]["spec"]["template"]["metadata"]["labels"]
    assert manifests["StatefulSet"]["spec"]["selector"]["matchLabels"].items() <= labels.items()
    assert manifests["PodDisruptionBudget"]["spec"]["selector"]["matchLabels"].items() <= labels.items()
    assert manifests["StatefulSet"]["spec"]["replicas"] >= 2, "a budget needs more than one replica"
    pod = manifests["StatefulSet"]["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == manifests["ServiceAccount"]["metadata"]["name"]
    assert _container()["envFrom"][0]["configMapRef"]["name"] == manifests["ConfigMap"]["metadata"]["name"]


def _mebibytes(quantity: str) -> float:
    units = {"Mi": 1.0, "Gi": 1024.0, "M": 1e6 / 2**20, "G": 1e9 / 2**20}
    for suffix, factor in units.items():
        if quantity.endswith(suffix):
            return float(quantity.removesuffix(suffix)) * factor
    pytest.fail(f"memory quantity {quantity!r} has no unit")
