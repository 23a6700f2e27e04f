"""Kubernetes manifests for a GPU target: a Deployment of Triton replicas, its Services, a NetworkPolicy, a
PodDisruptionBudget and a HorizontalPodAutoscaler on queue time (through the Prometheus adapter, whose rule is
rendered beside them).

    python -m build.k8s --target a10 --image registry.internal/rmr:1.2.1 --out deploy/k8s/a10 \
        [--replicas 2] [--max-replicas 8] [--store-url redis://grades:6379/0] [--models-claim rmr-models] \
        [--client-namespace search-backend] [--monitoring-namespace monitoring] [--mutual-tls]

Each replica serves the model repository rendered for the target (`python -m build.render`) and its engines,
from a read-only volume (`--models-claim`, a PersistentVolumeClaim holding /models/rmr-<target>). Readiness
and liveness are Triton's own health endpoints; a slow engine load is covered by a startup probe.

Two Services: `rmr-<target>` (ClusterIP: kube-proxy balances connections, so a gRPC client's few long-lived
connections stay on the pods they first reached; for callers behind an L7 proxy or mesh, which balance requests)
and `rmr-<target>-headless` (no cluster IP: its DNS name resolves to every ready pod, for clients that balance
requests themselves with `dns:///rmr-<target>-headless.<namespace>.svc.cluster.local:8001`, README: Connecting).
gRPC is TLS (Secret `rmr-grpc-tls`: tls.crt, tls.key, and ca.crt with --mutual-tls) and inference needs the key in
Secret `rmr-inference-key` (its `key`: ``name=value``); the NetworkPolicy admits the client namespaces to gRPC and
the monitoring namespace to the metrics port only.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from build.profile import Profile
from server.host.launcher import INFERENCE_CATEGORIES, ServerTls, restricted_arguments

APP = "rich-media-reranker"
HTTP, GRPC, METRICS = 8000, 8001, 8002
QUEUE_METRIC = "rmr_queue_us_per_request"
"""What the HPA scales on: mean microseconds a request waited in Triton's queues, per pod (adapter rule below)."""
TLS_SECRET, KEY_SECRET = "rmr-grpc-tls", "rmr-inference-key"
TLS_DIR = Path("/etc/rmr/tls")
PRE_STOP_S = 10
"""Before SIGTERM the pod waits this long, so that it has left the Services' endpoints (and the headless name's
answers) before Triton refuses new calls; clients already connected move on by their retries."""
GPU_PRODUCTS = {"NVIDIA A10": "NVIDIA-A10", "NVIDIA A800 80GB": "NVIDIA-A800-SXM4-80GB"}
"""Profile GPU name -> the `nvidia.com/gpu.product` label GPU feature discovery puts on its nodes."""


def manifests(profile: Profile, *, image: str, replicas: int = 2, max_replicas: int = 8,
              queue_target_us: int = 200_000, store_url: str = "", models_claim: str = "rmr-models",
              track: str = "stable", client_namespaces: tuple[str, ...] = ("search-backend",),
              monitoring_namespace: str = "monitoring", mutual_tls: bool = False) -> list[dict[str, Any]]:
    """`track`: "stable", or a canary's name: its Deployment, PDB and HPA are its own (selected by the track
    label), the Service is the stable one's and sends traffic to every track."""
    if profile.data["target"]["device"] != "cuda":
        raise SystemExit(f"target {profile.name!r} is not a GPU target: the manifests request GPUs")
    service_name = f"rmr-{profile.name}"
    name = service_name if track == "stable" else f"{service_name}-{track}"
    service_labels = {"app": APP, "target": profile.name}
    labels = {**service_labels, "track": track}
    gpus = int(profile.data["gpu"].get("gpus_per_server", 1))
    exit_timeout = 30
    env = [{"name": "RMR_STORE_URL", "value": store_url}] if store_url else []
    env.append({"name": "RMR_INFERENCE_KEY", "valueFrom": {"secretKeyRef": {"name": KEY_SECRET, "key": "key"}}})
    tls = ServerTls(TLS_DIR / "tls.crt", TLS_DIR / "tls.key", TLS_DIR / "ca.crt" if mutual_tls else None)
    container = {
        "name": "tritonserver",
        "image": image,
        "command": ["tritonserver"],
        "args": [f"--model-repository=/models/{name}", "--model-control-mode=none", "--strict-readiness=true",
                 "--disable-auto-complete-config", "--exit-on-error=true", f"--exit-timeout-secs={exit_timeout}",
                 f"--http-port={HTTP}", f"--grpc-port={GRPC}", f"--metrics-port={METRICS}",
                 # Kubernetes puts the Secret's key in place of $(RMR_INFERENCE_KEY).
                 *restricted_arguments(INFERENCE_CATEGORIES, "$(RMR_INFERENCE_KEY)", check=False),
                 *tls.arguments(check=False)],
        "ports": [{"name": "http", "containerPort": HTTP}, {"name": "grpc", "containerPort": GRPC},
                  {"name": "metrics", "containerPort": METRICS}],
        "env": env,
        "resources": {"requests": {"cpu": "8", "memory": "32Gi", "nvidia.com/gpu": gpus},
                      "limits": {"memory": "48Gi", "nvidia.com/gpu": gpus}},
        # Engines load for minutes; until then only the startup probe runs.
        "startupProbe": {"httpGet": {"path": "/v2/health/ready", "port": HTTP}, "periodSeconds": 10,
                         "failureThreshold": 90},
        "readinessProbe": {"httpGet": {"path": "/v2/health/ready", "port": HTTP}, "periodSeconds": 5,
                           "failureThreshold": 2},
        "livenessProbe": {"httpGet": {"path": "/v2/health/live", "port": HTTP}, "periodSeconds": 10,
                          "failureThreshold": 6},
        "volumeMounts": [{"name": "models", "mountPath": "/models", "readOnly": True},
                         {"name": "shm", "mountPath": "/dev/shm"},
                         {"name": "grpc-tls", "mountPath": str(TLS_DIR), "readOnly": True}],
        "lifecycle": {"preStop": {"exec": {"command": ["sleep", str(PRE_STOP_S)]}}},
    }
    pod = {
        "metadata": {"labels": labels,
                     "annotations": {"prometheus.io/scrape": "true", "prometheus.io/port": str(METRICS)}},
        "spec": {
            "containers": [container],
            "terminationGracePeriodSeconds": PRE_STOP_S + exit_timeout + 30,
            "nodeSelector": {"nvidia.com/gpu.product": GPU_PRODUCTS.get(profile.data["gpu"]["name"],
                                                                         profile.data["gpu"]["name"].replace(" ", "-"))},
            "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}],
            # Python steps move tensors through /dev/shm; a container's default 64 MiB is too small.
            "volumes": [{"name": "models", "persistentVolumeClaim": {"claimName": models_claim, "readOnly": True}},
                        {"name": "shm", "emptyDir": {"medium": "Memory", "sizeLimit": "4Gi"}},
                        {"name": "grpc-tls", "secret": {"secretName": TLS_SECRET, "defaultMode": 0o400}}],
        },
    }
    return [
        {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name, "labels": labels},
         "spec": {"replicas": replicas, "selector": {"matchLabels": labels},
                  # A new checkpoint rolls out one replica at a time, never below the current capacity.
                  "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}},
                  "template": pod}},
        {"apiVersion": "v1", "kind": "Service", "metadata": {"name": service_name, "labels": service_labels},
         "spec": {"selector": service_labels, "ports": [
             {"name": "grpc", "port": GRPC, "targetPort": "grpc"}, {"name": "http", "port": HTTP, "targetPort": "http"},
             {"name": "metrics", "port": METRICS, "targetPort": "metrics"}]}},
        {"apiVersion": "v1", "kind": "Service", "metadata": {"name": f"{service_name}-headless",
                                                             "labels": service_labels},
         "spec": {"clusterIP": "None", "selector": service_labels,
                  "ports": [{"name": "grpc", "port": GRPC, "targetPort": "grpc"}]}},
        {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy", "metadata": {"name": name, "labels": labels},
         "spec": {"podSelector": {"matchLabels": labels}, "policyTypes": ["Ingress"], "ingress": [
             {"from": [_namespace(ns) for ns in client_namespaces], "ports": [{"protocol": "TCP", "port": GRPC}]},
             {"from": [_namespace(monitoring_namespace)], "ports": [{"protocol": "TCP", "port": METRICS}]}]}},
        {"apiVersion": "policy/v1", "kind": "PodDisruptionBudget", "metadata": {"name": name, "labels": labels},
         "spec": {"maxUnavailable": 1, "selector": {"matchLabels": labels}}},
        {"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler", "metadata": {"name": name, "labels": labels},
         "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": name},
                  "minReplicas": replicas, "maxReplicas": max_replicas,
                  "metrics": [{"type": "Pods", "pods": {"metric": {"name": QUEUE_METRIC},
                                                        "target": {"type": "AverageValue",
                                                                   "averageValue": str(queue_target_us)}}}],
                  # A replica takes minutes to load its engines: scale up early, down slowly.
                  "behavior": {"scaleUp": {"stabilizationWindowSeconds": 60},
                               "scaleDown": {"stabilizationWindowSeconds": 900}}}},
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": f"{name}-adapter-rule", "labels": labels},
         "data": {"rules.yaml": ADAPTER_RULE}},
    ]


ADAPTER_RULE = f"""# Merge into the prometheus-adapter's rules (its config.yaml "rules:" list): the HPA's {QUEUE_METRIC}.
- seriesQuery: 'nv_inference_queue_duration_us{{namespace!="",pod!=""}}'
  resources: {{overrides: {{namespace: {{resource: namespace}}, pod: {{resource: pod}}}}}}
  name: {{matches: "^nv_inference_queue_duration_us$", as: "{QUEUE_METRIC}"}}
  metricsQuery: >-
    sum(rate(nv_inference_queue_duration_us{{<<.LabelMatchers>>}}[2m])) by (<<.GroupBy>>)
    / clamp_min(sum(rate(nv_inference_request_success{{<<.LabelMatchers>>}}[2m])) by (<<.GroupBy>>), 1e-9)
"""


def _namespace(name: str) -> dict[str, Any]:
    return {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": name}}}


def to_yaml(documents: list[dict[str, Any]]) -> str:
    import yaml

    return "---\n".join(yaml.safe_dump(d, sort_keys=False) for d in documents)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--target", required=True, help="a10, a800 or a profile .toml")
    parser.add_argument("--image", required=True, help="the serving image (the project's Dockerfile)")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--replicas", type=int, default=2)
    parser.add_argument("--max-replicas", type=int, default=8)
    parser.add_argument("--queue-target-us", type=int, default=200_000,
                        help="mean queue time per request the autoscaler keeps each replica under")
    parser.add_argument("--store-url", default="", help="the shared grade store (RMR_STORE_URL)")
    parser.add_argument("--models-claim", default="rmr-models")
    parser.add_argument("--track", default="stable", help="stable, or a canary's name (its own Deployment)")
    parser.add_argument("--client-namespace", action="append", default=[],
                        help="a namespace whose pods may call gRPC (repeat; default search-backend)")
    parser.add_argument("--monitoring-namespace", default="monitoring", help="whose pods may scrape the metrics port")
    parser.add_argument("--mutual-tls", action="store_true",
                        help=f"serve only clients with a certificate the CA in Secret {TLS_SECRET} (ca.crt) signed")
    args = parser.parse_args(argv)
    documents = manifests(Profile.load(args.target), image=args.image, replicas=args.replicas,
                          max_replicas=args.max_replicas, queue_target_us=args.queue_target_us,
                          store_url=args.store_url, models_claim=args.models_claim, track=args.track,
                          client_namespaces=tuple(args.client_namespace) or ("search-backend",),
                          monitoring_namespace=args.monitoring_namespace, mutual_tls=args.mutual_tls)
    if args.track != "stable":  # the Services are the stable track's
        documents = [d for d in documents if d["kind"] != "Service"]
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"rich-media-reranker-{args.track}.yaml"
    path.write_text(to_yaml(documents), encoding="utf-8")
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
