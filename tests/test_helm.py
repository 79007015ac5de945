"""The Helm chart, rendered by Helm's own engine (helm-python-sdk binds Helm's
Go library through ctypes: no helm binary, no cluster, no network).

Each test renders helm/auditsvc with default values or with production-like
values (CloudNativePG, autoscaler, ServiceMonitor, custom resources) and
checks the parsed manifests: what the pods may do, what they reach, where
their secrets come from, and that values.schema.json refuses bad values.
"""

from __future__ import annotations

import base64
import json
import re
import shutil
import time
from pathlib import Path
from typing import Any

import helm_python as helm
import pytest
import yaml

from auditsvc.sealing import FileKeyProvider, IdentifierSealer, SealError, key_provider, rotate_keyring
from auditsvc.settings import Settings

CHART = Path(__file__).resolve().parent.parent / "helm" / "auditsvc"
RELEASE = "auditsvc"
NAMESPACE = "audit"
# In a pod the API listens on the pod's own address; the NetworkPolicy limits who reaches it.
POD_INTERFACES = "0.0.0.0"  # noqa: S104

PRODUCTION: dict[str, Any] = {
    "image": {"repository": "registry.example-hospital.org/auditsvc", "tag": "0.1.0"},
    # One worker per pod: the ServiceMonitor scrapes each pod's own /metrics.
    "config": {"logName": "audit.example-hospital.org/phi-access", "workers": 1},
    "postgresql": {
        "mode": "cnpg",
        "cnpg": {
            "instances": 3,
            "storage": {"size": "200Gi", "storageClass": "fast-ssd"},
            "walStorage": {"size": "50Gi"},
            "runtimeRole": {"passwordSecret": "audit-db-runtime"},
        },
    },
    "secrets": {
        "secretKey": {"existingSecret": "audit-master-key", "key": "master"},
        "signingKey": {"existingSecret": "audit-checkpoint-key", "key": "ed25519.pem"},
        "identifierKeys": {
            "existingSecret": "audit-identifier-keyring",
            "key": "keyring.json",
            "mountPath": "/etc/audit/identifier-keyring",
        },
    },
    "resources": {
        "requests": {"cpu": "500m", "memory": "512Mi"},
        "limits": {"cpu": "2", "memory": "1Gi"},
    },
    "autoscaling": {"enabled": True, "minReplicas": 3, "maxReplicas": 12, "targetCPUUtilizationPercentage": 65},
    "serviceMonitor": {"enabled": True, "labels": {"release": "kube-prometheus-stack"}},
    "verify": {"enabled": True, "schedule": "17 3 * * *"},
    "otel": {"enabled": True, "endpoint": "http://otel-collector.observability:4317", "protocol": "grpc"},
    "checkpoint": {
        "everyEvents": 5000,
        "intervalSeconds": 30,
        "witnesses": [{"url": "https://witness.example.org/", "vkey": "witness.example.org+0a1b2c3d+AQID"}],
    },
    "networkPolicy": {
        "ingress": {"from": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "integration"}}}]},
        "egress": {
            "otlp": {
                "to": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "observability"}}}],
                "ports": [{"protocol": "TCP", "port": 4317}],
            }
        },
    },
}


@pytest.fixture(scope="module")
def chart() -> Any:
    with helm.Chart.load(CHART) as loaded:
        yield loaded


def render(chart: Any, values: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """Every object the chart renders, hooks included (NOTES.txt left out)."""
    files = chart.render(values, name=RELEASE, namespace=NAMESPACE, is_install=True)
    return [
        doc
        for path, text in sorted(files.items())
        if path.endswith((".yaml", ".yml"))
        for doc in yaml.safe_load_all(text)
        if doc
    ]


def of_kind(objects: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [o for o in objects if o["kind"] == kind]


def one(objects: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    found = of_kind(objects, kind)
    assert len(found) == 1, f"expected one {kind}, got {len(found)}"
    return found[0]


def api_deployment(objects: list[dict[str, Any]]) -> dict[str, Any]:
    return one(objects, "Deployment")


def migration_job(objects: list[dict[str, Any]]) -> dict[str, Any]:
    return one(objects, "Job")


def env_of(container: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {e["name"]: e for e in container.get("env", [])}


@pytest.fixture(scope="module")
def default_objects(chart: Any) -> list[dict[str, Any]]:
    return render(chart)


@pytest.fixture(scope="module")
def production_objects(chart: Any) -> list[dict[str, Any]]:
    return render(chart, PRODUCTION)


@pytest.fixture(params=["default", "production"])
def objects(request: pytest.FixtureRequest) -> list[dict[str, Any]]:
    return request.getfixturevalue(f"{request.param}_objects")


# -- Lint -------------------------------------------------------------------


@pytest.mark.parametrize("values", [None, PRODUCTION], ids=["default", "production"])
def test_lint_is_clean_in_strict_mode(values: dict[str, Any] | None) -> None:
    report = helm.lint(CHART, values, strict=True, namespace=NAMESPACE, kube_version="v1.30.0")
    assert report["errors"] == []
    # Severity 2 is a warning, 3 an error; 1 (info) is only "icon is recommended".
    assert [m for m in report["messages"] if m["severity"] >= 2] == []


# -- What is rendered -------------------------------------------------------


def test_default_render_has_the_api_its_guard_rails_and_the_migration_hook(default_objects) -> None:
    kinds = sorted(o["kind"] for o in default_objects)
    assert kinds == sorted(
        [
            "ConfigMap",
            "Deployment",
            "Job",
            "NetworkPolicy",  # the API's
            "NetworkPolicy",  # the migration Job's
            "PodDisruptionBudget",
            "Service",
            "ServiceAccount",  # the API's
            "ServiceAccount",  # the migration Job's
        ]
    )
    for o in default_objects:
        assert o["metadata"]["namespace"] == NAMESPACE
        assert o["metadata"]["labels"]["app.kubernetes.io/instance"] == RELEASE
        assert o["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "Helm"


def test_production_render_adds_autoscaler_service_monitor_and_cnpg_cluster(production_objects) -> None:
    kinds = {o["kind"] for o in production_objects}
    assert {"HorizontalPodAutoscaler", "ServiceMonitor", "Cluster", "CronJob"} <= kinds


# -- The API pod ------------------------------------------------------------


def test_api_pod_runs_as_non_root_on_a_read_only_root_filesystem(objects) -> None:
    pod = api_deployment(objects)["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == 10001
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert pod["automountServiceAccountToken"] is False
    assert pod["enableServiceLinks"] is False  # else AUDITSVC_PORT=tcp://... from a Service named auditsvc
    (container,) = pod["containers"]
    sc = container["securityContext"]
    assert sc["runAsNonRoot"] is True
    assert sc["readOnlyRootFilesystem"] is True
    assert sc["allowPrivilegeEscalation"] is False
    assert sc["capabilities"]["drop"] == ["ALL"]
    assert sc["seccompProfile"] == {"type": "RuntimeDefault"}
    # The only writable places are emptyDirs: /tmp and the data directory.
    volumes = {v["name"]: v for v in pod["volumes"]}
    mounts = {m["mountPath"]: m for m in container["volumeMounts"]}
    assert "emptyDir" in volumes[mounts["/tmp"]["name"]]
    assert "emptyDir" in volumes[mounts["/var/lib/auditsvc"]["name"]]
    for m in container["volumeMounts"]:
        assert m.get("readOnly") is True or "emptyDir" in volumes[m["name"]]


def test_api_serves_on_all_interfaces_with_probes_on_healthz_and_readyz(objects) -> None:
    (container,) = api_deployment(objects)["spec"]["template"]["spec"]["containers"]
    assert container["command"] + container["args"] == ["auditsvc", "serve", "--host", POD_INTERFACES, "--port", "8000"]
    assert container["ports"] == [{"name": "http", "containerPort": 8000, "protocol": "TCP"}]
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    assert container["startupProbe"]["httpGet"]["path"] == "/healthz"


def test_resources_have_requests_and_limits(default_objects, production_objects) -> None:
    for objects, expected in (
        (default_objects, {"requests": {"cpu": "250m", "memory": "256Mi"}, "limits": {"cpu": "1", "memory": "768Mi"}}),
        (production_objects, PRODUCTION["resources"]),
    ):
        (container,) = api_deployment(objects)["spec"]["template"]["spec"]["containers"]
        assert container["resources"] == expected
        (job_container,) = migration_job(objects)["spec"]["template"]["spec"]["containers"]
        assert set(job_container["resources"]) == {"requests", "limits"}


def test_settings_come_from_the_config_map(objects) -> None:
    deployment = api_deployment(objects)
    config_map = one(objects, "ConfigMap")
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    assert container["envFrom"] == [{"configMapRef": {"name": config_map["metadata"]["name"]}}]
    data = config_map["data"]
    assert data["AUDITSVC_ENV"] == "production"
    assert data["AUDITSVC_MIGRATE_ON_START"] == "false"  # the migration Job does it
    assert data["AUDITSVC_DATA_DIR"] == "/var/lib/auditsvc"
    assert data["AUDITSVC_LOG_FORMAT"] == "json"  # one JSON object per line, for the log collector
    assert all(isinstance(v, str) for v in data.values())
    # A change of settings rolls the pods.
    assert len(deployment["spec"]["template"]["metadata"]["annotations"]["checksum/config"]) == 64


READ_OUTSIDE_SETTINGS = {"AUDITSVC_LOG_LEVEL"}  # read by the CLI's logging set-up, not by Settings


def test_every_rendered_auditsvc_variable_is_a_real_setting(objects) -> None:
    (container,) = api_deployment(objects)["spec"]["template"]["spec"]["containers"]
    names = set(one(objects, "ConfigMap")["data"]) | set(env_of(container))
    for name in sorted(n for n in names if n.startswith("AUDITSVC_")):
        assert name in READ_OUTSIDE_SETTINGS or name.removeprefix("AUDITSVC_").lower() in Settings.model_fields, name


def test_chart_defaults_are_the_code_defaults_where_not_deliberately_different(default_objects) -> None:
    data = one(default_objects, "ConfigMap")["data"]
    fields = Settings.model_fields
    deliberate = {"env", "migrate_on_start", "host", "port", "data_dir", "log_format"}  # see values.yaml
    compared = 0
    for name, value in data.items():
        field = name.removeprefix("AUDITSVC_").lower()
        if field in fields and field not in deliberate:
            assert value == str(fields[field].default), name
            compared += 1
    assert compared == 9  # log_name, runtime_role, workers, the limits, the pool and timeouts


def test_config_change_changes_the_pod_checksum(chart) -> None:
    def checksum(values: dict[str, Any] | None) -> str:
        return api_deployment(render(chart, values))["spec"]["template"]["metadata"]["annotations"]["checksum/config"]

    assert checksum(None) != checksum({"config": {"dbPoolSize": 20}})


# -- Scaling and disruption -------------------------------------------------


def test_autoscaler_is_off_by_default_and_the_deployment_sets_replicas(default_objects) -> None:
    assert of_kind(default_objects, "HorizontalPodAutoscaler") == []
    assert api_deployment(default_objects)["spec"]["replicas"] == 2


def test_autoscaler_in_production_scales_the_deployment_between_min_and_max(production_objects) -> None:
    hpa = one(production_objects, "HorizontalPodAutoscaler")
    deployment = api_deployment(production_objects)
    assert hpa["apiVersion"] == "autoscaling/v2"
    assert hpa["spec"]["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": deployment["metadata"]["name"],
    }
    assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (3, 12)
    (metric,) = hpa["spec"]["metrics"]
    assert metric["resource"]["name"] == "cpu"
    assert metric["resource"]["target"] == {"type": "Utilization", "averageUtilization": 65}
    assert "replicas" not in deployment["spec"]  # the autoscaler owns it


def test_disruption_budget_covers_the_api_pods_only(objects) -> None:
    pdb = one(objects, "PodDisruptionBudget")
    deployment = api_deployment(objects)
    assert pdb["apiVersion"] == "policy/v1"
    assert pdb["spec"]["maxUnavailable"] == 1
    assert pdb["spec"]["selector"] == deployment["spec"]["selector"]
    job_labels = migration_job(objects)["spec"]["template"]["metadata"]["labels"]
    assert not pdb["spec"]["selector"]["matchLabels"].items() <= job_labels.items()


def test_service_selects_the_api_pods_and_never_the_migration_pod(objects) -> None:
    service = one(objects, "Service")
    pod_labels = api_deployment(objects)["spec"]["template"]["metadata"]["labels"]
    job_labels = migration_job(objects)["spec"]["template"]["metadata"]["labels"]
    selector = service["spec"]["selector"]
    assert selector.items() <= pod_labels.items()
    assert not selector.items() <= job_labels.items()
    assert service["spec"]["ports"] == [{"name": "http", "port": 8000, "targetPort": "http", "protocol": "TCP"}]


# -- Network ----------------------------------------------------------------


def network_policy(objects: list[dict[str, Any]], component: str) -> dict[str, Any]:
    (policy,) = [
        o
        for o in of_kind(objects, "NetworkPolicy")
        if o["metadata"]["labels"]["app.kubernetes.io/component"] == component
    ]
    return policy


def egress_ports(policy: dict[str, Any]) -> set[tuple[str, int]]:
    return {(p["protocol"], p["port"]) for rule in policy["spec"]["egress"] for p in rule["ports"]}


def test_api_network_policy_admits_the_api_port_and_egress_to_dns_and_postgresql(default_objects) -> None:
    policy = network_policy(default_objects, "api")
    assert policy["spec"]["podSelector"] == api_deployment(default_objects)["spec"]["selector"]
    assert policy["spec"]["policyTypes"] == ["Ingress", "Egress"]
    (ingress,) = policy["spec"]["ingress"]
    assert ingress["ports"] == [{"protocol": "TCP", "port": "http"}]
    assert egress_ports(policy) == {("UDP", 53), ("TCP", 53), ("TCP", 5432)}


def test_production_network_policy_limits_callers_and_reaches_cnpg_and_otlp(production_objects) -> None:
    policy = network_policy(production_objects, "api")
    (ingress,) = policy["spec"]["ingress"]
    assert ingress["from"] == PRODUCTION["networkPolicy"]["ingress"]["from"]
    assert egress_ports(policy) == {("UDP", 53), ("TCP", 53), ("TCP", 5432), ("TCP", 4317)}
    cluster = one(production_objects, "Cluster")["metadata"]["name"]
    (db_rule,) = [r for r in policy["spec"]["egress"] if {"protocol": "TCP", "port": 5432} in r["ports"]]
    assert db_rule["to"] == [{"podSelector": {"matchLabels": {"cnpg.io/cluster": cluster}}}]


def test_migration_job_network_policy_allows_only_dns_and_postgresql_out(objects) -> None:
    policy = network_policy(objects, "migrate")
    job_labels = migration_job(objects)["spec"]["template"]["metadata"]["labels"]
    assert policy["spec"]["podSelector"]["matchLabels"].items() <= job_labels.items()
    assert "ingress" not in policy["spec"] and "Ingress" in policy["spec"]["policyTypes"]
    assert egress_ports(policy) == {("UDP", 53), ("TCP", 53), ("TCP", 5432)}


def test_service_accounts_mount_no_token(objects) -> None:
    accounts = of_kind(objects, "ServiceAccount")
    assert len(accounts) == 2
    assert all(sa["automountServiceAccountToken"] is False for sa in accounts)
    names = {sa["metadata"]["name"] for sa in accounts}
    assert api_deployment(objects)["spec"]["template"]["spec"]["serviceAccountName"] in names
    assert migration_job(objects)["spec"]["template"]["spec"]["serviceAccountName"] in names


# -- Migrations -------------------------------------------------------------


def test_migration_job_is_a_pre_install_pre_upgrade_hook(default_objects) -> None:
    job = migration_job(default_objects)
    annotations = job["metadata"]["annotations"]
    assert annotations["helm.sh/hook"] == "pre-install,pre-upgrade"
    assert annotations["helm.sh/hook-weight"] == "-5"
    assert annotations["helm.sh/hook-delete-policy"] == "before-hook-creation,hook-succeeded"
    pod = job["spec"]["template"]["spec"]
    assert pod["restartPolicy"] == "Never"
    (container,) = pod["containers"]
    assert container["command"] == ["auditsvc", "migrate"]
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert pod["securityContext"]["runAsNonRoot"] is True
    # Its account and network policy exist before it: hooks of lower weight.
    for kind in ("ServiceAccount", "NetworkPolicy"):
        (hooked,) = [
            o for o in of_kind(default_objects, kind) if "helm.sh/hook" in o["metadata"].get("annotations", {})
        ]
        assert hooked["metadata"]["annotations"]["helm.sh/hook"] == annotations["helm.sh/hook"]
        assert int(hooked["metadata"]["annotations"]["helm.sh/hook-weight"]) < int(annotations["helm.sh/hook-weight"])
    # A pre-install hook runs before the ConfigMap exists: the settings are inline.
    config = one(default_objects, "ConfigMap")["data"]
    env = env_of(container)
    assert {name: env[name]["value"] for name in config} == config


def test_migration_job_gets_only_the_owner_dsn_and_the_secret_key(default_objects) -> None:
    (container,) = migration_job(default_objects)["spec"]["template"]["spec"]["containers"]
    from_secrets = {name for name, e in env_of(container).items() if "valueFrom" in e}
    assert from_secrets == {"AUDITSVC_DATABASE_URL", "AUDITSVC_SECRET_KEY"}


def test_in_cnpg_mode_the_migration_runs_after_the_cluster_is_created(production_objects) -> None:
    # The Cluster is an ordinary release object: it does not exist before pre-install hooks.
    annotations = migration_job(production_objects)["metadata"]["annotations"]
    assert annotations["helm.sh/hook"] == "post-install,pre-upgrade"


# -- Secrets ----------------------------------------------------------------


def secret_refs(objects: list[dict[str, Any]]) -> set[tuple[str, str]]:
    refs = set()
    for workload in of_kind(objects, "Deployment") + of_kind(objects, "Job"):
        for container in workload["spec"]["template"]["spec"]["containers"]:
            for e in container.get("env", []):
                ref = e.get("valueFrom", {}).get("secretKeyRef")
                if ref:
                    refs.add((ref["name"], ref["key"]))
    return refs


def pod_specs(objects: list[dict[str, Any]]) -> list[dict[str, Any]]:
    specs = [w["spec"]["template"]["spec"] for w in of_kind(objects, "Deployment") + of_kind(objects, "Job")]
    specs += [c["spec"]["jobTemplate"]["spec"]["template"]["spec"] for c in of_kind(objects, "CronJob")]
    return specs


def test_no_secret_is_rendered_only_referenced(objects) -> None:
    assert of_kind(objects, "Secret") == []
    assert all("secret" not in o["kind"].lower() for o in objects)
    # No literal value carries a credential: a DSN's password is at most a $(VAR) reference.
    for spec in pod_specs(objects):
        for container in spec["containers"]:
            for e in container.get("env", []):
                value = e.get("value", "")
                if "@" in value:
                    assert re.search(r"://[a-z_]+:\$\([A-Z_]+\)@", value), e["name"]
    for value in one(objects, "ConfigMap")["data"].values():
        assert "@" not in value and "PRIVATE" not in value


def test_external_mode_reads_the_dsns_and_keys_from_the_named_secrets(default_objects) -> None:
    (container,) = api_deployment(default_objects)["spec"]["template"]["spec"]["containers"]
    env = env_of(container)
    assert env["AUDITSVC_DATABASE_URL"]["valueFrom"]["secretKeyRef"] == {"name": "auditsvc-database", "key": "url"}
    assert env["AUDITSVC_RUNTIME_DATABASE_URL"]["valueFrom"]["secretKeyRef"] == {
        "name": "auditsvc-database",
        "key": "runtime-url",
    }
    assert env["AUDITSVC_SECRET_KEY"]["valueFrom"]["secretKeyRef"] == {
        "name": "auditsvc-secret-key",
        "key": "secret-key",
    }
    assert secret_refs(default_objects) == {
        ("auditsvc-database", "url"),
        ("auditsvc-database", "runtime-url"),
        ("auditsvc-secret-key", "secret-key"),
    }
    pod = api_deployment(default_objects)["spec"]["template"]["spec"]
    (signing,) = [v for v in pod["volumes"] if v["name"] == "signing-key"]
    assert signing["secret"]["secretName"] == "auditsvc-checkpoint-key"
    assert signing["secret"]["items"] == [{"key": "signing.key", "path": "signing.key"}]
    assert signing["secret"]["defaultMode"] == 0o440
    (mount,) = [m for m in container["volumeMounts"] if m["name"] == "signing-key"]
    # A directory mount, not subPath: an updated Secret reaches the running pod,
    # and the service re-reads the key file when it changes (rotation, no restart).
    assert mount == {"name": "signing-key", "mountPath": "/etc/auditsvc/checkpoint-key", "readOnly": True}
    assert env["AUDITSVC_CHECKPOINT_KEY_FILE"]["value"] == "/etc/auditsvc/checkpoint-key/signing.key"
    # The identifier keyring: the same shape, so `auditsvc keys rotate` plus a
    # Secret update reaches the running pods (the service re-reads the file).
    (keyring,) = [v for v in pod["volumes"] if v["name"] == "identifier-keys"]
    assert keyring["secret"] == {
        "secretName": "auditsvc-identifier-keys",
        "defaultMode": 0o440,
        "items": [{"key": "identifier-keys.json", "path": "identifier-keys.json"}],
    }
    (mount,) = [m for m in container["volumeMounts"] if m["name"] == "identifier-keys"]
    assert mount == {"name": "identifier-keys", "mountPath": "/etc/auditsvc/identifier-keys", "readOnly": True}
    assert env["AUDITSVC_IDENTIFIER_KEYS_FILE"] == {
        "name": "AUDITSVC_IDENTIFIER_KEYS_FILE",
        "value": "/etc/auditsvc/identifier-keys/identifier-keys.json",
    }
    assert "AUDITSVC_IDENTIFIER_KEYS" not in env  # the keys are never an environment value in the chart


def test_cnpg_mode_reads_the_owner_dsn_from_the_operator_generated_secret(production_objects) -> None:
    cluster = one(production_objects, "Cluster")["metadata"]["name"]
    (container,) = api_deployment(production_objects)["spec"]["template"]["spec"]["containers"]
    env = env_of(container)
    assert env["AUDITSVC_DATABASE_URL"]["valueFrom"]["secretKeyRef"] == {"name": f"{cluster}-app", "key": "uri"}
    # The runtime DSN is composed in the pod from the runtime role's password Secret.
    names = list(env)
    assert names.index("RUNTIME_DB_PASSWORD") < names.index("AUDITSVC_RUNTIME_DATABASE_URL")
    assert env["AUDITSVC_RUNTIME_DATABASE_URL"]["value"] == (
        f"postgresql://auditsvc_app:$(RUNTIME_DB_PASSWORD)@{cluster}-rw.{NAMESPACE}.svc:5432/app"
    )
    assert secret_refs(production_objects) == {
        (f"{cluster}-app", "uri"),
        ("audit-db-runtime", "password"),
        ("audit-master-key", "master"),
    }
    pod = api_deployment(production_objects)["spec"]["template"]["spec"]
    (signing,) = [v for v in pod["volumes"] if v["name"] == "signing-key"]
    assert signing["secret"]["secretName"] == "audit-checkpoint-key"
    assert signing["secret"]["items"] == [{"key": "ed25519.pem", "path": "signing.key"}]
    (keyring,) = [v for v in pod["volumes"] if v["name"] == "identifier-keys"]
    assert keyring["secret"]["secretName"] == "audit-identifier-keyring"
    assert keyring["secret"]["items"] == [{"key": "keyring.json", "path": "keyring.json"}]
    (mount,) = [m for m in container["volumeMounts"] if m["name"] == "identifier-keys"]
    assert mount == {"name": "identifier-keys", "mountPath": "/etc/audit/identifier-keyring", "readOnly": True}
    assert env["AUDITSVC_IDENTIFIER_KEYS_FILE"]["value"] == "/etc/audit/identifier-keyring/keyring.json"


def secret_volumes(workload: dict[str, Any]) -> dict[str, str]:
    volumes = workload["spec"]["template"]["spec"]["volumes"]
    return {v["name"]: v["secret"]["secretName"] for v in volumes if "secret" in v}


def test_cnpg_mode_verifies_the_database_certificate_against_the_cluster_ca(production_objects) -> None:
    cluster = one(production_objects, "Cluster")["metadata"]["name"]
    assert secret_volumes(api_deployment(production_objects)) == {
        "pg-ca": f"{cluster}-ca",
        "signing-key": "audit-checkpoint-key",
        "identifier-keys": "audit-identifier-keyring",
    }
    assert secret_volumes(migration_job(production_objects)) == {"pg-ca": f"{cluster}-ca"}
    for workload in (api_deployment(production_objects), migration_job(production_objects)):
        pod = workload["spec"]["template"]["spec"]
        (container,) = pod["containers"]
        env = env_of(container)
        assert env["PGSSLMODE"]["value"] == "verify-full"
        assert env["PGSSLROOTCERT"]["value"] == "/etc/auditsvc/pg-ca/ca.crt"
        (ca,) = [v for v in pod["volumes"] if v["name"] == "pg-ca"]
        assert ca["secret"]["items"] == [{"key": "ca.crt", "path": "ca.crt"}]  # never the CA's private key
        assert {"name": "pg-ca", "mountPath": "/etc/auditsvc/pg-ca", "readOnly": True} in container["volumeMounts"]


def test_external_mode_uses_tls_settings_only_when_asked(chart, default_objects) -> None:
    (container,) = api_deployment(default_objects)["spec"]["template"]["spec"]["containers"]
    assert not {"PGSSLMODE", "PGSSLROOTCERT"} & set(env_of(container))
    objects = render(
        chart, {"postgresql": {"tls": {"sslMode": "verify-full", "caSecret": "rds-ca", "caKey": "global-bundle.pem"}}}
    )
    for workload in (api_deployment(objects), migration_job(objects)):
        pod = workload["spec"]["template"]["spec"]
        env = env_of(pod["containers"][0])
        assert env["PGSSLMODE"]["value"] == "verify-full"
        assert env["PGSSLROOTCERT"]["value"] == "/etc/auditsvc/pg-ca/ca.crt"
        (ca,) = [v for v in pod["volumes"] if v["name"] == "pg-ca"]
        assert ca["secret"] == {
            "secretName": "rds-ca",
            "defaultMode": 0o444,
            "items": [{"key": "global-bundle.pem", "path": "ca.crt"}],
        }


def test_optional_key_references_render_only_when_set(chart, default_objects) -> None:
    (container,) = api_deployment(default_objects)["spec"]["template"]["spec"]["containers"]
    assert {v["name"] for v in api_deployment(default_objects)["spec"]["template"]["spec"]["volumes"]} == {
        "tmp",
        "data",
        "signing-key",
        "identifier-keys",
    }
    assert "AUDITSVC_TOKEN_HMAC_KEY" not in env_of(container)
    objects = render(
        chart, {"secrets": {"tokenHmacKey": {"existingSecret": "audit-token-key", "envVar": "AUDITSVC_TOKEN_HMAC_KEY"}}}
    )
    (container,) = api_deployment(objects)["spec"]["template"]["spec"]["containers"]
    assert env_of(container)["AUDITSVC_TOKEN_HMAC_KEY"]["valueFrom"]["secretKeyRef"] == {
        "name": "audit-token-key",
        "key": "token-hmac-key",
    }


def test_only_the_api_pods_mount_the_identifier_keyring(production_objects) -> None:
    # Migrations and verification never open a sealed identifier: they get no key to do it with.
    for workload in [migration_job(production_objects), *of_kind(production_objects, "CronJob")]:
        template = workload["spec"].get("jobTemplate", workload)["spec"]["template"]
        pod = template["spec"]
        assert "audit-identifier-keyring" not in {v.get("secret", {}).get("secretName") for v in pod["volumes"]}
        (container,) = pod["containers"]
        assert not {m["name"] for m in container["volumeMounts"]} & {"identifier-keys", "signing-key"}
        assert not {"AUDITSVC_IDENTIFIER_KEYS", "AUDITSVC_IDENTIFIER_KEYS_FILE"} & set(env_of(container))


def project_secret(mount: Path, files: dict[str, str]) -> None:
    """Write a Secret volume as the kubelet does: the files in a timestamped
    directory, ``..data`` a symlink to it, each file a symlink through
    ``..data``; an update writes a new directory and renames ``..data`` over."""
    mount.mkdir(parents=True, exist_ok=True)
    stamp = mount / f"..{time.strftime('%Y_%m_%d_%H_%M_%S')}.{time.time_ns()}"
    stamp.mkdir()
    for name, text in files.items():
        (stamp / name).write_text(text)
    data = mount / "..data"
    old = data.resolve() if data.is_symlink() else None
    (mount / "..data_tmp").symlink_to(stamp.name)
    (mount / "..data_tmp").rename(data)
    for name in files:
        if not (mount / name).is_symlink():
            (mount / name).symlink_to(f"..data/{name}")
    if old is not None:
        shutil.rmtree(old)


def test_the_mounted_keyring_is_required_in_production_and_rotates_in_place(default_objects, tmp_path) -> None:
    pod = api_deployment(default_objects)["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    (volume,) = [v for v in pod["volumes"] if v["name"] == "identifier-keys"]
    (mount,) = [m for m in container["volumeMounts"] if m["name"] == "identifier-keys"]
    (item,) = volume["secret"]["items"]
    rendered = env_of(container)["AUDITSVC_IDENTIFIER_KEYS_FILE"]["value"]
    assert rendered == f"{mount['mountPath']}/{item['path']}"
    mount_dir = tmp_path / "pod" / mount["mountPath"].lstrip("/")
    settings = Settings(
        env=one(default_objects, "ConfigMap")["data"]["AUDITSVC_ENV"],
        database_url="postgresql://auditsvc@db/auditsvc",
        secret_key=base64.b64encode(b"\x01" * 32).decode(),
        data_dir=tmp_path / "data",
        identifier_keys_file=tmp_path / "pod" / rendered.lstrip("/"),
    )
    assert settings.env == "production"
    with pytest.raises(SealError, match="no identifier encryption key"):
        key_provider(settings)  # no Secret mounted: the service refuses to start

    # The operator's keyring, put into the Secret and projected into the pod.
    local = tmp_path / "operator" / "identifier-keys.json"
    FileKeyProvider(local, create=True)
    project_secret(mount_dir, {item["key"]: local.read_text()})
    in_pod = IdentifierSealer(key_provider(settings))
    before = in_pod.seal("urn:oid:2.16.840.1.113883.19.5", "MRN-HELM-0001")
    assert before.startswith("aes256gcm:k1:")

    # `auditsvc keys rotate` on the copy, the Secret updated, the kubelet swaps the files.
    assert rotate_keyring(local) == ("k2", ["k1", "k2"])
    project_secret(mount_dir, {item["key"]: local.read_text()})
    # A pod updated first seals with k2; this one opens it at once (a missing
    # key id re-reads the file), and k1 still opens what it sealed.
    elsewhere = IdentifierSealer(FileKeyProvider(local)).seal("urn:oid:2.16.840.1.113883.19.5", "MRN-HELM-0002")
    assert elsewhere.startswith("aes256gcm:k2:")
    assert in_pod.open("urn:oid:2.16.840.1.113883.19.5", elsewhere) == "MRN-HELM-0002"
    assert in_pod.open("urn:oid:2.16.840.1.113883.19.5", before) == "MRN-HELM-0001"
    assert in_pod.provider.current()[0] == "k2"


# -- Optional pieces --------------------------------------------------------


def test_service_monitor_only_when_enabled(default_objects, production_objects) -> None:
    assert of_kind(default_objects, "ServiceMonitor") == []
    monitor = one(production_objects, "ServiceMonitor")
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    assert monitor["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    assert (
        monitor["spec"]["selector"]["matchLabels"].items()
        <= one(production_objects, "Service")["metadata"]["labels"].items()
    )
    assert monitor["spec"]["endpoints"][0]["port"] == "http"
    assert monitor["spec"]["endpoints"][0]["path"] == "/metrics"
    # The service serves /metrics only when told to; the chart tells it exactly when it scrapes.
    assert one(production_objects, "ConfigMap")["data"]["AUDITSVC_PROMETHEUS_METRICS"] == "true"
    assert "AUDITSVC_PROMETHEUS_METRICS" not in one(default_objects, "ConfigMap")["data"]


def test_cnpg_cluster_only_in_cnpg_mode(default_objects, production_objects) -> None:
    assert of_kind(default_objects, "Cluster") == []
    cluster = one(production_objects, "Cluster")
    assert cluster["apiVersion"] == "postgresql.cnpg.io/v1"
    assert cluster["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"
    spec = cluster["spec"]
    assert spec["instances"] == 3
    assert spec["storage"] == {"size": "200Gi", "storageClass": "fast-ssd"}
    assert spec["walStorage"] == {"size": "50Gi"}
    assert spec["bootstrap"]["initdb"] == {"database": "app", "owner": "app"}
    (role,) = spec["managed"]["roles"]
    assert role == {
        "name": "auditsvc_app",
        "ensure": "present",
        "login": True,
        "passwordSecret": {"name": "audit-db-runtime"},
    }


def test_scheduled_verification_only_when_enabled(default_objects, production_objects) -> None:
    assert of_kind(default_objects, "CronJob") == []
    cron = one(production_objects, "CronJob")
    assert cron["spec"]["schedule"] == "17 3 * * *"
    assert cron["spec"]["concurrencyPolicy"] == "Forbid"
    job = cron["spec"]["jobTemplate"]["spec"]
    assert job["backoffLimit"] == 0  # a run that found damage must stay failed
    pod = job["template"]["spec"]
    (container,) = pod["containers"]
    assert container["command"] == ["auditsvc", "verify", "--json"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert pod["automountServiceAccountToken"] is False
    assert {n for n, e in env_of(container).items() if "valueFrom" in e} == {
        "AUDITSVC_DATABASE_URL",
        "AUDITSVC_SECRET_KEY",
    }
    policy = network_policy(production_objects, "verify")
    assert policy["spec"]["podSelector"]["matchLabels"].items() <= job["template"]["metadata"]["labels"].items()
    assert "ingress" not in policy["spec"]
    # DNS, PostgreSQL, and the OTLP collector that receives the run's auditsvc.verify.* metrics.
    assert egress_ports(policy) == {("UDP", 53), ("TCP", 53), ("TCP", 5432), ("TCP", 4317)}


def test_telemetry_and_checkpoint_settings_render_nothing_when_unset(default_objects, production_objects) -> None:
    default = one(default_objects, "ConfigMap")["data"]
    assert not [k for k in default if k.startswith(("OTEL_", "AUDITSVC_CHECKPOINT_", "AUDITSVC_WITNESSES"))]
    production = one(production_objects, "ConfigMap")["data"]
    assert production["OTEL_EXPORTER_OTLP_ENDPOINT"] == "http://otel-collector.observability:4317"
    assert production["OTEL_EXPORTER_OTLP_PROTOCOL"] == "grpc"
    assert production["OTEL_SERVICE_NAME"] == RELEASE
    assert production["AUDITSVC_CHECKPOINT_EVERY_EVENTS"] == "5000"
    assert production["AUDITSVC_CHECKPOINT_INTERVAL_SECONDS"] == "30"
    assert json.loads(production["AUDITSVC_WITNESSES"]) == PRODUCTION["checkpoint"]["witnesses"]
    assert "AUDITSVC_CHECKPOINT_DIR" not in production and "AUDITSVC_CHECKPOINT_WEBHOOK_URL" not in production


# -- values.schema.json and template guards ---------------------------------


@pytest.mark.parametrize(
    ("override", "why"),
    [
        ({"postgresql": {"mode": "mysql"}}, "mode is external or cnpg"),
        ({"postgresql": {"external": {"existingSecret": ""}}}, "external mode needs a Secret"),
        ({"postgresql": {"mode": "cnpg", "cnpg": {"runtimeRole": {"passwordSecret": ""}}}}, "cnpg needs a role Secret"),
        ({"secrets": {"secretKey": {"existingSecret": ""}}}, "the secret key is by reference"),
        ({"secrets": {"signingKey": {"existingSecret": "Not_A_Name"}}}, "a Secret name is a DNS name"),
        ({"secrets": {"identifierKeys": {"existingSecret": ""}}}, "the identifier keyring is by reference"),
        ({"secrets": {"identifierKeys": {"existingSecret": None}}}, "the identifier keyring is required"),
        ({"secrets": {"identifierKeys": {"key": ""}}}, "the keyring's key in the Secret"),
        ({"secrets": {"identifierKeys": {"key": "keys/ring.json"}}}, "a Secret key is a file name"),
        ({"secrets": {"identifierKeys": {"mountPath": "identifier-keys"}}}, "the keyring mount is absolute"),
        ({"secrets": {"identifierEncryptionKeys": {"existingSecret": "x"}}}, "the old slot is gone: identifierKeys"),
        ({"securityContext": {"readOnlyRootFilesystem": False}}, "the root filesystem stays read-only"),
        ({"podSecurityContext": {"runAsNonRoot": False}}, "never root"),
        ({"replicaCount": "two"}, "types"),
        ({"replicaCount": 0}, "at least one replica"),
        ({"resources": {"limits": None}}, "limits are required"),  # null deletes a key, as --set x=null does
        ({"resources": {"limits": {"memory": None}}}, "a memory limit is required"),
        ({"config": {"env": "staging"}}, "env is development or production"),
        ({"config": {"runtimeRole": "Auditsvc-App"}}, "a plain role name, as Settings requires"),
        ({"config": {"extra": {"DATABASE_URL": "x"}}}, "extra settings are AUDITSVC_*"),
        ({"otel": {"enabled": True}}, "OTLP needs an endpoint"),
        ({"config": {"logFormat": "xml"}}, "log lines are text or json"),
        ({"serviceMonitor": {"enabled": True, "path": "/prometheus"}}, "the service serves /metrics"),
        ({"image": {"digest": "latest"}}, "a digest is sha256:<hex>"),
        ({"checkpoint": {"everyEvents": 0}}, "a checkpoint needs at least one event"),
        ({"checkpoint": {"witnesses": [{"url": "witness.example.org"}]}}, "a witness has a URL and a vkey"),
        ({"migrations": {"hookEvents": "pre-rollback"}}, "hook events"),
        ({"postgresql": {"tls": {"sslMode": "on"}}}, "libpq sslmode names"),
        ({"replicas": 3}, "unknown keys are typos"),
        ({"syslog": {"enabled": True, "clientAuth": "maybe"}}, "client certificates are required or optional"),
        ({"syslog": {"enabled": True, "udpPort": 70000}}, "a port number"),
        ({"syslog": {"enabled": True, "tls": {"mountPath": "syslog-tls"}}}, "the TLS mount is absolute"),
        ({"syslog": {"enabled": True, "cnMap": {"pacs-01": "ris"}}}, "a CN maps to a list of systems"),
    ],
)
def test_schema_rejects_bad_values(chart, override: dict[str, Any], why: str) -> None:
    with pytest.raises(helm.HelmValuesError):
        render(chart, override)


def test_lint_reports_schema_violations(chart) -> None:
    report = helm.lint(CHART, {"postgresql": {"mode": "mysql"}})
    assert any("mode" in e for e in report["errors"])


@pytest.mark.parametrize(
    "override",
    [
        {"autoscaling": {"enabled": True, "minReplicas": 5, "maxReplicas": 2}},
        {"podDisruptionBudget": {"minAvailable": 1, "maxUnavailable": 1}},
        {"serviceMonitor": {"enabled": True}, "config": {"workers": 2}},
        {"syslog": {"enabled": True}},
        {"syslog": {"enabled": True, "tlsPort": None}},
    ],
    ids=[
        "hpa-min-above-max",
        "pdb-both-bounds",
        "scrape-with-several-workers",
        "syslog-tls-without-its-secret",
        "syslog-without-a-port",
    ],
)
def test_templates_refuse_contradictory_values(chart, override: dict[str, Any]) -> None:
    with pytest.raises(helm.HelmRenderError):
        render(chart, override)


def test_cnpg_mode_makes_the_operators_app_login_the_schema_owner(production_objects) -> None:  # type: ignore[no-untyped-def]
    # Migration 0005 cannot create a role as CloudNativePG's "app" login, which owns the database.
    config = next(o for o in production_objects if o["kind"] == "ConfigMap")
    assert config["data"]["AUDITSVC_OWNER_ROLE"] == "app"


def test_external_mode_leaves_the_owner_role_to_the_service_default(default_objects) -> None:  # type: ignore[no-untyped-def]
    config = next(o for o in default_objects if o["kind"] == "ConfigMap")
    assert "AUDITSVC_OWNER_ROLE" not in config["data"]


# -- ATNA syslog -----------------------------------------------------------

SYSLOG: dict[str, Any] = {
    **PRODUCTION,
    "syslog": {
        "enabled": True,
        "udpPort": 514,
        "cnMap": {"pacs-01": ["ris"]},
        "tls": {"existingSecret": "audit-syslog-tls"},
        "service": {"type": "LoadBalancer", "annotations": {"example.org/internal": "true"}},
        "ingress": {"from": [{"ipBlock": {"cidr": "10.20.0.0/16"}}]},
    },
}


@pytest.fixture(scope="module")
def syslog_objects(chart: Any) -> list[dict[str, Any]]:
    return render(chart, SYSLOG)


def test_lint_is_clean_with_syslog() -> None:
    report = helm.lint(CHART, SYSLOG, strict=True, namespace=NAMESPACE, kube_version="v1.30.0")
    assert report["errors"] == []
    assert [m for m in report["messages"] if m["severity"] >= 2] == []


def test_syslog_is_off_by_default(default_objects, production_objects) -> None:
    for objects in (default_objects, production_objects):
        assert not any(k.startswith("AUDITSVC_SYSLOG") for k in one(objects, "ConfigMap")["data"])
        assert len(of_kind(objects, "Service")) == 1


def test_syslog_settings_are_real_and_name_the_mounted_certificate(syslog_objects, monkeypatch) -> None:
    data = one(syslog_objects, "ConfigMap")["data"]
    syslog = {k: v for k, v in data.items() if k.startswith("AUDITSVC_SYSLOG")}
    assert syslog == {
        "AUDITSVC_SYSLOG_HOST": POD_INTERFACES,
        "AUDITSVC_SYSLOG_TLS_PORT": "6514",
        "AUDITSVC_SYSLOG_TLS_CERT_FILE": "/etc/auditsvc/syslog-tls/tls.crt",
        "AUDITSVC_SYSLOG_TLS_KEY_FILE": "/etc/auditsvc/syslog-tls/tls.key",
        "AUDITSVC_SYSLOG_TLS_CLIENT_CA_FILE": "/etc/auditsvc/syslog-tls/ca.crt",
        "AUDITSVC_SYSLOG_TLS_CLIENT_AUTH": "required",
        "AUDITSVC_SYSLOG_UDP_PORT": "514",
        "AUDITSVC_SYSLOG_CN_MAP": '{"pacs-01":["ris"]}',
        "AUDITSVC_SYSLOG_METRICS_PORT": "9465",  # the ServiceMonitor is on
    }
    for name, value in syslog.items():
        monkeypatch.setenv(name, value)  # as the pod reads them
    settings = Settings()
    assert settings.syslog_cn_map == {"pacs-01": ["ris"]} and settings.syslog_udp_port == 514

    spec = api_deployment(syslog_objects)["spec"]["template"]["spec"]
    (container,) = spec["containers"]
    ports = {p["name"]: (p["containerPort"], p["protocol"]) for p in container["ports"]}
    assert ports == {
        "http": (8000, "TCP"),
        "syslog-tls": (6514, "TCP"),
        "syslog-udp": (514, "UDP"),
        "syslog-metrics": (9465, "TCP"),
    }
    [mount] = [m for m in container["volumeMounts"] if m["name"] == "syslog-tls"]
    assert mount == {"name": "syslog-tls", "mountPath": "/etc/auditsvc/syslog-tls", "readOnly": True}
    [volume] = [v for v in spec["volumes"] if v["name"] == "syslog-tls"]
    assert volume["secret"]["secretName"] == "audit-syslog-tls"
    assert {i["path"] for i in volume["secret"]["items"]} == {"tls.crt", "tls.key", "ca.crt"}


def test_the_syslog_service_reaches_the_api_pods_on_the_syslog_ports(syslog_objects) -> None:
    services = {s["metadata"]["name"]: s for s in of_kind(syslog_objects, "Service")}
    syslog = services[f"{RELEASE}-syslog"]["spec"]
    api = services[RELEASE]["spec"]
    assert syslog["type"] == "LoadBalancer" and api["type"] == "ClusterIP"  # the API stays internal
    assert syslog["selector"] == api["selector"]
    assert {(p["name"], p["port"], p["protocol"], p["targetPort"]) for p in syslog["ports"]} == {
        ("syslog-tls", 6514, "TCP", "syslog-tls"),
        ("syslog-udp", 514, "UDP", "syslog-udp"),
    }
    # The listener's metrics: on the internal Service, scraped by the ServiceMonitor.
    assert "syslog-metrics" in {p["name"] for p in api["ports"]}
    endpoints = one(syslog_objects, "ServiceMonitor")["spec"]["endpoints"]
    assert [e["port"] for e in endpoints] == ["http", "syslog-metrics"]


def test_the_network_policy_admits_the_senders_on_the_syslog_ports_only(syslog_objects) -> None:
    [policy] = [p for p in of_kind(syslog_objects, "NetworkPolicy") if p["metadata"]["name"] == RELEASE]
    rules = policy["spec"]["ingress"]
    assert len(rules) == 2
    api_rule, syslog_rule = rules
    assert {p["port"] for p in api_rule["ports"]} == {"http", "syslog-metrics"}
    assert syslog_rule["ports"] == [
        {"protocol": "TCP", "port": "syslog-tls"},
        {"protocol": "UDP", "port": "syslog-udp"},
    ]
    assert syslog_rule["from"] == [{"ipBlock": {"cidr": "10.20.0.0/16"}}]
