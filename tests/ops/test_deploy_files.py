"""conf/compose.yaml and conf/k8s/: they parse, reference files that exist, probe the paths
and port the daemon serves, and configure marketd with a configuration it accepts."""

from __future__ import annotations

import signal
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from kit.net import free_port
from kit.wait import poll_until_blocking

from marketd.config.load import load_settings
from marketd.testing.processes import Process, http_json

ROOT = Path(__file__).parents[2]
CONF = ROOT / "conf"
K8S = CONF / "k8s"
ROLES = K8S / "roles"
WORKLOADS = ("Deployment", "StatefulSet")


def k8s_objects() -> dict[str, dict[str, Any]]:
    out = {}
    for path in sorted(K8S.glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            out[doc["kind"]] = doc
    return out


def container() -> dict[str, Any]:
    (c,) = k8s_objects()["Deployment"]["spec"]["template"]["spec"]["containers"]
    return c


def test_compose_services_mounts_and_no_default_password() -> None:
    compose = yaml.safe_load((CONF / "compose.yaml").read_text())
    services = compose["services"]
    assert set(services) == {"kafka", "marketd", "prometheus", "grafana"}
    kafka = services["kafka"]
    assert kafka["image"].startswith("docker.io/apache/kafka:")
    assert kafka["environment"]["KAFKA_PROCESS_ROLES"] == "broker,controller"  # KRaft
    marketd = services["marketd"]
    assert marketd["environment"]["MARKETD_KAFKA__BOOTSTRAP_SERVERS"] == "kafka:9092"
    assert marketd["environment"]["MARKETD_HTTP__LISTEN"] == "0.0.0.0:8080"
    assert (CONF / marketd["build"]["context"] / marketd["build"]["dockerfile"]).is_file()
    for name, service in services.items():
        for volume in service.get("volumes", []):
            source = volume.split(":", 1)[0]
            if source.startswith("."):
                assert (CONF / source).exists(), f"{name}: {volume}"
    password = services["grafana"]["environment"]["GF_SECURITY_ADMIN_PASSWORD"]
    assert password.startswith("${")
    assert ":?" in password  # required from the operator, no default


def test_k8s_probes_ports_and_security() -> None:
    objects = k8s_objects()
    assert set(objects) == {"ConfigMap", "Deployment", "Service", "PersistentVolumeClaim"}
    c = container()
    (port,) = c["ports"]
    assert (port["name"], port["containerPort"]) == ("http", 8080)
    env = {e["name"]: e.get("value") for e in c["env"]}
    assert env["MARKETD_HTTP__LISTEN"].endswith(":8080")
    assert c["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert c["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    assert c["securityContext"]["readOnlyRootFilesystem"] is True
    assert c["securityContext"]["allowPrivilegeEscalation"] is False
    pod = objects["Deployment"]["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert c["resources"]["requests"]
    assert c["resources"]["limits"]["memory"]
    (svc_port,) = objects["Service"]["spec"]["ports"]
    assert svc_port["targetPort"] == "http"
    selector = objects["Service"]["spec"]["selector"]
    labels = objects["Deployment"]["spec"]["template"]["metadata"]["labels"]
    assert selector.items() <= labels.items()
    # The spool lives on the state volume (mounted, writable, sized for spool.max_bytes).
    spool = env["MARKETD_SPOOL__DIRECTORY"]
    (state,) = [m for m in c["volumeMounts"] if spool.startswith(m["mountPath"] + "/")]
    assert not state.get("readOnly", False)
    (volume,) = [v for v in pod["volumes"] if v["name"] == state["name"]]
    assert volume["emptyDir"]["sizeLimit"] == "2Gi"
    claim = objects["PersistentVolumeClaim"]
    assert claim["spec"]["resources"]["requests"]["storage"] == "2Gi"


def test_k8s_config_is_mounted_where_the_daemon_reads_it_and_is_valid(tmp_path: Path) -> None:
    objects = k8s_objects()
    c = container()
    config_arg = c["args"][c["args"].index("--config") + 1]
    mounts = {m["name"]: m["mountPath"] for m in c["volumeMounts"]}
    volumes = {v["name"]: v for v in objects["Deployment"]["spec"]["template"]["spec"]["volumes"]}
    config_volume = next(n for n, v in volumes.items() if "configMap" in v)
    assert volumes[config_volume]["configMap"]["name"] == objects["ConfigMap"]["metadata"]["name"]
    mount = Path(mounts[config_volume])
    assert mount == Path("/etc/marketd")
    key = Path(config_arg).relative_to(mount).as_posix()
    text = objects["ConfigMap"]["data"][key]
    path = tmp_path / key
    path.write_text(text)
    env = {e["name"]: e["value"] for e in c["env"] if "value" in e}
    settings = load_settings(path, env)  # raises ConfigError on any problem
    assert settings.http.listen == "0.0.0.0:8080"
    assert settings.kafka.enabled


# --- one workload per role (conf/k8s/roles/) ---------------------------------------------


def role_documents(role: str) -> list[dict[str, Any]]:
    return list(yaml.safe_load_all((ROLES / f"{role}.yaml").read_text()))


def role_workload(role: str) -> dict[str, Any]:
    (workload,) = [d for d in role_documents(role) if d["kind"] in WORKLOADS]
    return workload


def pod_labels(workload: dict[str, Any]) -> dict[str, str]:
    labels: dict[str, str] = workload["spec"]["template"]["metadata"]["labels"]
    return labels


@pytest.mark.parametrize("role", ["collector", "detector", "gateway"])
def test_role_workload_probes_ports_and_security(role: str) -> None:
    assert sorted(p.name for p in ROLES.glob("*.yaml")) == [
        "collector.yaml", "detector.yaml", "gateway.yaml",
    ]  # fmt: skip
    workload = role_workload(role)
    assert workload["metadata"]["name"] == f"marketd-{role}"
    assert workload["spec"]["selector"]["matchLabels"].items() <= pod_labels(workload).items()
    assert pod_labels(workload)["app.kubernetes.io/component"] == role
    pod = workload["spec"]["template"]["spec"]
    (c,) = pod["containers"]
    (port,) = c["ports"]
    assert (port["name"], port["containerPort"]) == ("http", 8080)
    # Every role serves the probes: liveness never depends on Kafka, readiness on its role.
    assert c["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert c["startupProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert c["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    assert c["securityContext"]["readOnlyRootFilesystem"] is True
    assert c["securityContext"]["allowPrivilegeEscalation"] is False
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert c["resources"]["requests"]
    assert c["resources"]["limits"]["memory"]
    env = {e["name"]: e.get("value") for e in c["env"]}
    assert env["MARKETD_ROLES"] == role
    assert env["MARKETD_HTTP__LISTEN"].endswith(":8080")
    mounts = {m["name"]: m for m in c["volumeMounts"]}
    assert all(name in {v["name"] for v in pod["volumes"]} for name in mounts)
    if role == "collector":
        # One collector per set of subscriptions; its spool on the writable state volume.
        assert (workload["spec"]["replicas"], workload["spec"]["strategy"]["type"]) == (
            1, "Recreate",
        )  # fmt: skip
        assert env["MARKETD_SPOOL__DIRECTORY"].startswith(mounts["state"]["mountPath"] + "/")
        assert not mounts["state"].get("readOnly", False)
    else:
        assert "state" not in mounts  # nothing to keep: no spool, no rules file written
    if role == "detector":
        # Stable host names: the default transactional id stays the replica's own.
        assert workload["kind"] == "StatefulSet"
        assert "MARKETD_ALERTS__TRANSACTIONAL_ID" not in env
        (headless,) = [d for d in role_documents(role) if d["kind"] == "Service"]
        assert headless["metadata"]["name"] == workload["spec"]["serviceName"]
        assert headless["spec"]["clusterIP"] == "None"


def test_only_gateway_pods_serve_the_gateway_service() -> None:
    (service,) = [d for d in role_documents("gateway") if d["kind"] == "Service"]
    selector = service["spec"]["selector"].items()
    assert selector <= pod_labels(role_workload("gateway")).items()
    for role in ("collector", "detector"):
        assert not selector <= pod_labels(role_workload(role)).items(), role
    (port,) = service["spec"]["ports"]
    assert (port["port"], port["targetPort"]) == (8080, "http")


@pytest.mark.parametrize("role", ["collector", "detector", "gateway"])
def test_role_configuration_is_valid_and_runs_only_that_role(role: str, tmp_path: Path) -> None:
    """The shared ConfigMap with each workload's environment passes validation (exit 2
    otherwise) and gives exactly its role."""
    (c,) = role_workload(role)["spec"]["template"]["spec"]["containers"]
    config_map = role_workload(role)["spec"]["template"]["spec"]["volumes"]
    (volume,) = [v for v in config_map if "configMap" in v]
    assert volume["configMap"]["name"] == k8s_objects()["ConfigMap"]["metadata"]["name"]
    mount = next(m for m in c["volumeMounts"] if m["name"] == volume["name"])
    config_arg = Path(c["args"][c["args"].index("--config") + 1])
    key = config_arg.relative_to(mount["mountPath"]).as_posix()
    path = tmp_path / key
    path.write_text(k8s_objects()["ConfigMap"]["data"][key])
    env = {e["name"]: e["value"] for e in c["env"] if "value" in e}
    settings = load_settings(path, env)
    assert settings.roles == (role,)
    assert settings.kafka.enabled
    if role == "detector":
        assert settings.alerts.source == "kafka"


@pytest.mark.slow
def test_probe_paths_answer_on_a_live_daemon(tmp_path: Path) -> None:
    c = container()
    port = free_port()
    daemon = Process(
        [sys.executable, "-m", "marketd", "demo", "--symbols", "1", "--listen",
         f"127.0.0.1:{port}"],
        tmp_path / "demo.log",
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"

    def status(path: str) -> int:
        assert daemon.proc.poll() is None, daemon.log_tail()
        try:
            return http_json(base + path)[0]
        except OSError:
            return 0

    try:
        poll_until_blocking(
            lambda: status(c["livenessProbe"]["httpGet"]["path"]) == 200,
            timeout=30,
            what="the liveness probe answering 200",
        )
        poll_until_blocking(
            lambda: status(c["readinessProbe"]["httpGet"]["path"]) == 200,
            timeout=30,
            what="the readiness probe answering 200",
        )
        code, body = http_json(base + c["readinessProbe"]["httpGet"]["path"])
        assert (code, body["ready"]) == (200, True)
    finally:
        daemon.signal(signal.SIGINT)
        daemon.wait(30)
        daemon.close()
