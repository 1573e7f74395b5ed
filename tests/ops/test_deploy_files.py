"""conf/compose.yaml and conf/k8s/: they parse, reference files that exist, probe the paths
and port the daemon serves, and configure marketd with a configuration it accepts."""

from __future__ import annotations

import collections
import signal
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from kit.net import free_port
from kit.wait import poll_until_blocking

from marketd.config.load import load_settings
from marketd.config.settings import Settings, Subscription
from marketd.errors import ConfigError
from marketd.shards.worker import settings_of_shard
from marketd.testing.processes import Process, http_json

ROOT = Path(__file__).parents[2]
CONF = ROOT / "conf"
K8S = CONF / "k8s"
ROLES = K8S / "roles"
SHARDED = ROLES / "sharded" / "collector.yaml"
POD_INDEX = "metadata.labels['apps.kubernetes.io/pod-index']"
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
    assert not selector <= pod_labels(sharded_workload()).items()
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


# --- sharded collectors (conf/k8s/roles/sharded/collector.yaml) ----------------------------


def sharded_documents() -> list[dict[str, Any]]:
    return list(yaml.safe_load_all(SHARDED.read_text()))


def sharded_workload() -> dict[str, Any]:
    (workload,) = [d for d in sharded_documents() if d["kind"] in WORKLOADS]
    return workload


def sharded_container() -> dict[str, Any]:
    c: dict[str, Any]
    (c,) = sharded_workload()["spec"]["template"]["spec"]["containers"]
    return c


def pod_environ(workload: dict[str, Any], ordinal: int) -> dict[str, str]:
    """The environment of the StatefulSet's pod ``ordinal``, the downward API resolved as
    the kubelet does (a StatefulSet labels its pods with their ordinal)."""
    (c,) = workload["spec"]["template"]["spec"]["containers"]
    fields = {
        POD_INDEX: str(ordinal),
        "metadata.name": f"{workload['metadata']['name']}-{ordinal}",
    }
    env = {}
    for e in c["env"]:
        if "value" in e:
            env[e["name"]] = e["value"]
        else:
            env[e["name"]] = fields[e["valueFrom"]["fieldRef"]["fieldPath"]]
    return env


def config_file(workload: dict[str, Any], tmp_path: Path) -> Path:
    """The ConfigMap's file, written where the workload's ``--config`` would find it."""
    pod = workload["spec"]["template"]["spec"]
    (c,) = pod["containers"]
    (volume,) = [v for v in pod["volumes"] if "configMap" in v]
    assert volume["configMap"]["name"] == k8s_objects()["ConfigMap"]["metadata"]["name"]
    mount = next(m for m in c["volumeMounts"] if m["name"] == volume["name"])
    assert mount["readOnly"] is True
    key = Path(c["args"][c["args"].index("--config") + 1]).relative_to(mount["mountPath"])
    path = tmp_path / key.as_posix()
    path.write_text(k8s_objects()["ConfigMap"]["data"][key.as_posix()])
    return path


def test_sharded_collector_probes_ports_and_security() -> None:
    """The StatefulSet's pod is the unsharded collector's, plus the shard and a claim."""
    workload = sharded_workload()
    unsharded = role_workload("collector")
    assert workload["kind"] == "StatefulSet"
    assert workload["metadata"]["name"] == "marketd-collector"
    assert workload["spec"]["podManagementPolicy"] == "Parallel"
    assert workload["spec"]["selector"]["matchLabels"].items() <= pod_labels(workload).items()
    assert pod_labels(workload)["app.kubernetes.io/component"] == "collector"
    pod = workload["spec"]["template"]["spec"]
    c = sharded_container()
    (u,) = unsharded["spec"]["template"]["spec"]["containers"]
    for key in ("image", "args", "ports", "livenessProbe", "readinessProbe", "startupProbe",
                "securityContext", "resources"):  # fmt: skip
        assert c[key] == u[key], key
    assert pod["securityContext"] == unsharded["spec"]["template"]["spec"]["securityContext"]
    assert c["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert c["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    assert c["securityContext"]["readOnlyRootFilesystem"] is True
    assert pod["securityContext"]["runAsNonRoot"] is True
    (port,) = c["ports"]
    assert (port["name"], port["containerPort"]) == ("http", 8080)
    # The headless Service names the pods.
    (headless,) = [d for d in sharded_documents() if d["kind"] == "Service"]
    assert headless["metadata"]["name"] == workload["spec"]["serviceName"]
    assert headless["spec"]["clusterIP"] == "None"
    assert headless["spec"]["selector"].items() <= pod_labels(workload).items()
    (svc_port,) = headless["spec"]["ports"]
    assert (svc_port["port"], svc_port["targetPort"]) == (8080, "http")
    # One shard down at a time on a drain; unready shards never block it.
    (budget,) = [d for d in sharded_documents() if d["kind"] == "PodDisruptionBudget"]
    assert budget["spec"]["selector"] == workload["spec"]["selector"]
    assert budget["spec"]["maxUnavailable"] == 1
    assert budget["spec"]["unhealthyPodEvictionPolicy"] == "AlwaysAllow"


def test_sharded_collector_shard_count_index_and_spool_claim() -> None:
    workload = sharded_workload()
    pod = workload["spec"]["template"]["spec"]
    c = sharded_container()
    env = {e["name"]: e for e in c["env"]}
    assert env["MARKETD_ROLES"]["value"] == "collector"
    assert env["MARKETD_HTTP__LISTEN"]["value"].endswith(":8080")
    # As many shards as pods, and each pod's shard its ordinal.
    assert int(env["MARKETD_COLLECTOR__SHARDS"]["value"]) == workload["spec"]["replicas"] > 1
    assert env["MARKETD_COLLECTOR__SHARD"]["valueFrom"] == {"fieldRef": {"fieldPath": POD_INDEX}}
    # The spool on the pod's own claim (a volumeClaimTemplate), not on a pod volume.
    claims = {t["metadata"]["name"]: t for t in workload["spec"]["volumeClaimTemplates"]}
    spool = env["MARKETD_SPOOL__DIRECTORY"]["value"]
    (state,) = [m for m in c["volumeMounts"] if spool.startswith(m["mountPath"] + "/")]
    assert state["name"] in claims
    assert state["name"] not in {v["name"] for v in pod["volumes"]}
    assert not state.get("readOnly", False)
    claim = claims[state["name"]]["spec"]
    assert claim["accessModes"] == ["ReadWriteOnce"]
    assert claim["resources"]["requests"]["storage"] == "2Gi"
    # Every mount is a pod volume or a claim; removed ordinals keep their spools.
    assert {m["name"] for m in c["volumeMounts"]} <= {v["name"] for v in pod["volumes"]} | set(
        claims
    )
    assert workload["spec"]["persistentVolumeClaimRetentionPolicy"] == {
        "whenScaled": "Retain", "whenDeleted": "Retain",
    }  # fmt: skip


def test_sharded_collector_replaces_the_unsharded_one() -> None:
    """Never both: the same name and pods; `kubectl apply -f roles/` applies only one."""
    sharded, unsharded = sharded_workload(), role_workload("collector")
    assert sharded["metadata"]["name"] == unsharded["metadata"]["name"]
    assert sharded["spec"]["selector"] == unsharded["spec"]["selector"]
    assert SHARDED.parent != ROLES
    assert SHARDED not in ROLES.glob("*.yaml")


def test_sharded_collector_pods_split_the_subscriptions(tmp_path: Path) -> None:
    """Each pod's configuration is valid and makes it one shard; together the pods collect
    every configured stream exactly once, each symbol on one pod, within the weight budget."""
    workload = sharded_workload()
    replicas = workload["spec"]["replicas"]
    path = config_file(workload, tmp_path)
    pods: list[Settings] = []
    for ordinal in range(replicas):
        env = pod_environ(workload, ordinal)
        settings = load_settings(path, env)  # raises ConfigError (exit 2) on any problem
        assert settings.roles == ("collector",)
        assert settings.kafka.enabled  # the one thing the shards share
        assert settings.collector.worker
        assert (settings.collector.shard, settings.collector.shards) == (ordinal, replicas)
        shard = settings_of_shard(settings, ordinal)
        assert shard.subscriptions  # no shard is empty
        assert shard.spool.directory == f"{env['MARKETD_SPOOL__DIRECTORY']}/shard-{ordinal}"
        pods.append(shard)
    configured = settings.subscriptions

    def streams(subscriptions: tuple[Subscription, ...]) -> list[tuple[str, str]]:
        out = []
        for sub in subscriptions:
            out += [
                (sub.market.value, f"{s.lower()}@{c}") for s in sub.symbols for c in sub.channels
            ]
            out += [(sub.market.value, s) for s in sub.streams]
        return out

    per_pod = [streams(p.subscriptions) for p in pods]
    counts = collections.Counter(s for pod_streams in per_pod for s in pod_streams)
    assert set(counts) == set(streams(configured))
    assert set(counts.values()) == {1}

    def symbols(subscriptions: tuple[Subscription, ...]) -> set[tuple[str, str]]:
        return {(sub.market.value, symbol) for sub in subscriptions for symbol in sub.symbols}

    per_pod_symbols = [symbols(p.subscriptions) for p in pods]
    assert set().union(*per_pod_symbols) == symbols(configured)
    assert sum(map(len, per_pod_symbols)) == len(symbols(configured))  # each on one pod
    assert len({p.kafka.client_id for p in pods}) == replicas
    assert sum(p.books.weight_budget_fraction for p in pods) == pytest.approx(
        settings.books.weight_budget_fraction
    )
    # Audits in all: one book per audit_interval_s and market, as one process audits.
    assert sum(1 / p.books.audit_interval_s for p in pods) == pytest.approx(
        1 / settings.books.audit_interval_s
    )


@pytest.mark.parametrize("index", ["", "{replicas}"])
def test_sharded_collector_pod_without_a_valid_index_refuses_to_start(
    index: str, tmp_path: Path
) -> None:
    """No pod-index label (an empty value), or a pod past the shard count: exit 2, never
    a pod running as the parent of every shard."""
    workload = sharded_workload()
    path = config_file(workload, tmp_path)
    env = pod_environ(workload, 0)
    env["MARKETD_COLLECTOR__SHARD"] = index.format(replicas=workload["spec"]["replicas"])
    with pytest.raises(ConfigError, match=r"collector\.shard:"):
        load_settings(path, env)


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
