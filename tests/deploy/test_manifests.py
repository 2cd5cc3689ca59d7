"""deploy/kubernetes without a cluster: every rendered manifest validated strictly against
Kubernetes' own schemas (kubernetes-validate), and the wiring between them that a schema cannot
see: probes on Triton's health endpoints, the ports of docker/serve.Dockerfile, selectors that
select the pods, the autoscaler's metric served by the adapter rule, Triton's metric names."""

from __future__ import annotations

import re
import urllib.request

import kubernetes_validate
import pytest
import yaml

from builder.tensorrt import ngc
from tests.conftest import REPO_ROOT
from tests.deploy.kustomize import render

DEPLOY = REPO_ROOT / "deploy" / "kubernetes"
OVERLAYS = ["base", "overlays/s3", "overlays/cpu"]
PLAIN = ["repository-loader.yaml"]  # applied with kubectl apply -f
KUBERNETES = ["1.30.0", kubernetes_validate.utils.latest_version()]  # the oldest supported, the newest
LABEL = {"app.kubernetes.io/name": "segstack-triton"}


def _docs(overlay: str) -> dict[str, dict]:
    return {d["kind"]: d for d in render(DEPLOY / overlay)}


def _container(docs: dict[str, dict]) -> dict:
    (container,) = docs["Deployment"]["spec"]["template"]["spec"]["containers"]
    return container


def _every_doc():
    for overlay in OVERLAYS:
        for doc in render(DEPLOY / overlay):
            yield pytest.param(doc, id=f"{overlay}:{doc['kind']}")
    for name in PLAIN:
        for doc in yaml.safe_load_all((DEPLOY / name).read_text()):
            yield pytest.param(doc, id=f"{name}:{doc['kind']}")


@pytest.mark.parametrize("version", KUBERNETES)
@pytest.mark.parametrize("doc", list(_every_doc()))
def test_every_manifest_follows_the_kubernetes_schema(doc, version):
    kubernetes_validate.validate(doc, version, strict=True)  # strict: an unknown field fails too


def test_a_misspelt_field_would_fail_the_validation():
    doc = _docs("base")["Deployment"]
    doc["spec"]["template"]["spec"]["containers"][0]["readinessProbes"] = {}
    with pytest.raises(kubernetes_validate.ValidationError, match="readinessProbes"):
        kubernetes_validate.validate(doc, KUBERNETES[-1], strict=True)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_pods_run_the_serving_image_on_its_ports_with_health_probes(overlay):
    docs = _docs(overlay)
    container = _container(docs)
    assert container["image"] == ngc.SERVE_IMAGE  # the tag compose.yaml builds
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    exposed = re.search(r"^EXPOSE (.+)$", (REPO_ROOT / "docker/serve.Dockerfile").read_text(), re.M)
    assert sorted(ports.values()) == sorted(int(p) for p in exposed.group(1).split())
    assert ports == {"http": 8000, "grpc": 8001, "metrics": 8002}
    probes = {k: container[k]["httpGet"] for k in ("startupProbe", "readinessProbe", "livenessProbe")}
    assert probes["startupProbe"]["path"] == probes["readinessProbe"]["path"] == "/v2/health/ready"
    assert probes["livenessProbe"]["path"] == "/v2/health/live"
    assert {p["port"] for p in probes.values()} == {"http"}
    startup = container["startupProbe"]
    assert startup["periodSeconds"] * startup["failureThreshold"] >= 300  # engines load for minutes
    assert f"--metrics-port={ports['metrics']}" in container["args"]
    annotations = docs["Deployment"]["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/scrape"] == "true"
    assert int(annotations["prometheus.io/port"]) == ports["metrics"]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_service_is_headless_and_every_selector_selects_the_pods(overlay):
    docs = _docs(overlay)
    pod_labels = docs["Deployment"]["spec"]["template"]["metadata"]["labels"]
    service = docs["Service"]["spec"]
    assert service["clusterIP"] == "None"  # DNS answers every ready pod, not one virtual IP
    for selector in (
        service["selector"],
        docs["Deployment"]["spec"]["selector"]["matchLabels"],
        docs["PodDisruptionBudget"]["spec"]["selector"]["matchLabels"],
    ):
        assert selector == LABEL and selector.items() <= pod_labels.items()
    names = {p["name"] for p in _container(docs)["ports"]}
    assert {p["targetPort"] for p in service["ports"]} <= names
    assert {p["port"] for p in service["ports"] if p["name"] == "grpc"} == {8001}
    assert docs["PodDisruptionBudget"]["spec"]["maxUnavailable"] == 1
    assert {d["metadata"].get("namespace") for k, d in docs.items() if k != "Namespace"} == {"segstack"}


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_autoscaler_scales_the_deployment_on_the_adapters_queue_metric(overlay):
    docs = _docs(overlay)
    hpa = docs["HorizontalPodAutoscaler"]["spec"]
    target = hpa["scaleTargetRef"]
    assert (target["kind"], target["name"]) == ("Deployment", docs["Deployment"]["metadata"]["name"])
    assert 1 <= hpa["minReplicas"] <= docs["Deployment"]["spec"]["replicas"] <= hpa["maxReplicas"]
    (metric,) = hpa["metrics"]
    (rule,) = _adapter_rules()
    assert metric["type"] == "Pods" and metric["pods"]["metric"]["name"] == rule["name"]["as"]
    assert rule["resources"]["overrides"]["pod"] == {"resource": "pod"}


def test_the_model_repository_comes_from_the_read_only_claim_or_from_s3():
    base = _docs("base")
    container, pod = _container(base), base["Deployment"]["spec"]["template"]["spec"]
    mount = next(m for m in container["volumeMounts"] if m["name"] == "model-repository")
    assert mount["readOnly"] and f"--model-repository={mount['mountPath']}" in container["args"]
    volume = next(v for v in pod["volumes"] if v["name"] == "model-repository")
    assert volume["persistentVolumeClaim"]["claimName"] == base["PersistentVolumeClaim"]["metadata"]["name"]
    loader = yaml.safe_load((DEPLOY / "repository-loader.yaml").read_text())
    assert (
        loader["spec"]["volumes"][0]["persistentVolumeClaim"]["claimName"]
        == volume["persistentVolumeClaim"]["claimName"]
    )
    shm = next(v for v in pod["volumes"] if v["name"] == "shm")
    assert shm["emptyDir"]["medium"] == "Memory"  # the Python backend's tensors

    s3 = _docs("overlays/s3")
    container, pod = _container(s3), s3["Deployment"]["spec"]["template"]["spec"]
    assert "PersistentVolumeClaim" not in s3
    assert [v["name"] for v in pod["volumes"]] == ["shm"]
    assert [m["name"] for m in container["volumeMounts"]] == ["shm"]
    env = {e["name"]: e for e in container["env"]}
    assert "--model-repository=$(MODEL_REPOSITORY)" in container["args"]  # expanded by the kubelet
    assert env["MODEL_REPOSITORY"]["value"].startswith("s3://")
    for secret in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        assert "value" not in env[secret]  # never a literal key in the manifests
        assert env[secret]["valueFrom"]["secretKeyRef"]["key"] == secret


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_one_gpu_per_pod_except_on_cpu_nodes(overlay):
    resources = _container(_docs(overlay))["resources"]
    gpus = {k: v.get("nvidia.com/gpu") for k, v in resources.items()}
    wanted = None if overlay.endswith("cpu") else 1
    assert gpus == {"requests": wanted, "limits": wanted}


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_pods_run_unprivileged(overlay):
    pod = _docs(overlay)["Deployment"]["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    container = pod["containers"][0]["securityContext"]
    assert container["allowPrivilegeEscalation"] is False and container["capabilities"]["drop"] == ["ALL"]


def _adapter_rules() -> list[dict]:
    values = yaml.safe_load((DEPLOY / "prometheus-adapter-values.yaml").read_text())
    return values["rules"]["custom"]


@pytest.mark.integration
def test_the_adapter_rule_reads_metrics_a_real_tritonserver_exports(triton):
    """The series the adapter rule queries are ones Triton itself exports (with the labels the
    queries divide by), read from a running server's metrics port."""
    with urllib.request.urlopen(f"http://{triton.metrics_url}/metrics", timeout=10) as response:
        exported = {line.split("{")[0] for line in response.read().decode().splitlines() if line[:1] != "#"}
    (rule,) = _adapter_rules()
    queried = set(re.findall(r"\b(nv_[a-z_]+)\{", rule["seriesQuery"] + rule["metricsQuery"]))
    assert queried == {"nv_inference_queue_duration_us", "nv_inference_request_success"}
    assert queried <= exported, sorted(exported)
