"""The Kubernetes manifests rendered for the GPU targets are valid against the Kubernetes schema (no cluster),
probe Triton's health endpoints, request the target's GPUs, and autoscale on a metric the adapter rule makes."""

import copy

import kubernetes_validate
import pytest
import yaml

from build.k8s import QUEUE_METRIC, manifests, to_yaml
from build.profile import Profile

KUBERNETES = "1.30.0"


@pytest.mark.parametrize("target", ["a10", "a800"])
def test_manifests_are_valid_kubernetes(target):
    documents = list(yaml.safe_load_all(to_yaml(manifests(Profile.load(target), image="rmr:1"))))
    assert [d["kind"] for d in documents] == ["Deployment", "Service", "Service", "NetworkPolicy",
                                             "PodDisruptionBudget", "HorizontalPodAutoscaler", "ConfigMap"]
    for document in documents:
        kubernetes_validate.validate(document, KUBERNETES, strict=True)
    deployment, _, _, _, _, hpa, rule = documents
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    assert container["readinessProbe"]["httpGet"]["path"] == "/v2/health/ready"
    assert container["livenessProbe"]["httpGet"]["path"] == "/v2/health/live"
    assert container["resources"]["limits"]["nvidia.com/gpu"] == Profile.load(target).data["gpu"]["gpus_per_server"]
    assert f"--model-repository=/models/rmr-{target}" in container["args"]
    assert deployment["spec"]["strategy"]["rollingUpdate"] == {"maxSurge": 1, "maxUnavailable": 0}
    assert hpa["spec"]["metrics"][0]["pods"]["metric"]["name"] == QUEUE_METRIC
    [adapter] = yaml.safe_load(rule["data"]["rules.yaml"])
    assert adapter["name"]["as"] == QUEUE_METRIC and "nv_inference_queue_duration_us" in adapter["metricsQuery"]


def test_the_schema_check_catches_a_wrong_field():
    deployment = copy.deepcopy(manifests(Profile.load("a10"), image="rmr:1")[0])
    deployment["spec"]["template"]["spec"]["containers"][0]["readinesProbe"] = {}  # misspelt
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, KUBERNETES, strict=True)


def test_the_cpu_target_has_no_gpu_manifests():
    with pytest.raises(SystemExit, match="not a GPU target"):
        manifests(Profile.load("cpu"), image="rmr:1")


def test_a_canary_track_has_its_own_deployment_under_the_stable_service():
    stable = manifests(Profile.load("a800"), image="rmr:1")
    canary = manifests(Profile.load("a800"), image="rmr:2", replicas=1, track="canary")
    service = stable[1]["spec"]["selector"]
    for documents in (stable, canary):
        pods = documents[0]["spec"]["template"]["metadata"]["labels"]
        assert service.items() <= pods.items()  # the stable Service reaches both tracks' pods
    assert canary[0]["metadata"]["name"] == "rmr-a800-canary"
    assert stable[0]["spec"]["selector"] != canary[0]["spec"]["selector"]  # Deployments never share pods
    assert "--model-repository=/models/rmr-a800-canary" in canary[0]["spec"]["template"]["spec"]["containers"][0]["args"]


def test_clients_that_balance_themselves_get_a_headless_service_beside_the_cluster_ip_one():
    _, cluster_ip, headless, *_ = manifests(Profile.load("a10"), image="rmr:1")
    assert "clusterIP" not in cluster_ip["spec"] and headless["spec"]["clusterIP"] == "None"
    assert headless["metadata"]["name"] == "rmr-a10-headless"
    assert headless["spec"]["selector"] == cluster_ip["spec"]["selector"]
    assert [p["port"] for p in headless["spec"]["ports"]] == [8001]


def test_only_the_backends_and_monitoring_namespaces_are_admitted():
    policy = manifests(Profile.load("a10"), image="rmr:1", client_namespaces=("search", "ranking-jobs"))[3]
    grpc, metrics = policy["spec"]["ingress"]
    names = lambda rule: [f["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"]  # noqa: E731
                          for f in rule["from"]]
    assert names(grpc) == ["search", "ranking-jobs"] and grpc["ports"] == [{"protocol": "TCP", "port": 8001}]
    assert names(metrics) == ["monitoring"] and metrics["ports"] == [{"protocol": "TCP", "port": 8002}]
    assert policy["spec"]["podSelector"]["matchLabels"] == manifests(
        Profile.load("a10"), image="rmr:1")[0]["spec"]["selector"]["matchLabels"]


@pytest.mark.parametrize("mutual", [False, True])
def test_grpc_is_tls_and_inference_needs_the_key_from_secrets(mutual):
    deployment = manifests(Profile.load("a800"), image="rmr:1", mutual_tls=mutual)[0]
    pod = deployment["spec"]["template"]["spec"]
    container = pod["containers"][0]
    args = container["args"]
    assert "--grpc-use-ssl=true" in args and "--grpc-server-cert=/etc/rmr/tls/tls.crt" in args
    assert ("--grpc-use-ssl-mutual=true" in args) == mutual and ("--grpc-root-cert=/etc/rmr/tls/ca.crt" in args) == mutual
    assert "--grpc-restricted-protocol=inference:$(RMR_INFERENCE_KEY)" in args
    assert "--http-restricted-api=inference:$(RMR_INFERENCE_KEY)" in args
    key = next(e for e in container["env"] if e["name"] == "RMR_INFERENCE_KEY")
    assert key["valueFrom"]["secretKeyRef"] == {"name": "rmr-inference-key", "key": "key"}
    tls = next(v for v in pod["volumes"] if v["name"] == "grpc-tls")
    assert tls["secret"]["secretName"] == "rmr-grpc-tls"
    # The pod leaves the endpoints before Triton stops taking calls, within its grace period.
    assert container["lifecycle"]["preStop"]["exec"]["command"] == ["sleep", "10"]
    assert pod["terminationGracePeriodSeconds"] >= 10 + 30
