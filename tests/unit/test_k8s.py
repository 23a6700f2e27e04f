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
    assert [d["kind"] for d in documents] == ["Deployment", "Service", "PodDisruptionBudget",
                                             "HorizontalPodAutoscaler", "ConfigMap"]
    for document in documents:
        kubernetes_validate.validate(document, KUBERNETES, strict=True)
    deployment, _, _, hpa, rule = documents
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
