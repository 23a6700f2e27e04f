"""The shipped alert rules and dashboard parse, and every metric they name is one the deployment exports."""

import json
import re
from pathlib import Path

import yaml

from ensemble.names import Metric

ROOT = Path(__file__).resolve().parents[2]
MONITORING = ROOT / "deploy" / "monitoring"
TRITON_METRICS = {"nv_inference_queue_duration_us", "nv_inference_request_success"}
"""Triton's own, used by the rules (server docs: metrics.md)."""
_NAME = re.compile(r"\b((?:rmr|nv)_[a-z_]+)\b")


def expressions() -> list[str]:
    rules = yaml.safe_load((MONITORING / "alerts.yml").read_text())
    exprs = [rule["expr"] for group in rules["groups"] for rule in group["rules"]]
    dashboard = json.loads((MONITORING / "dashboard.json").read_text())
    exprs += [target["expr"] for panel in dashboard["panels"] for target in panel["targets"]]
    return exprs


def named_metrics() -> set[str]:
    """Metric families the rules and panels read (a histogram's _bucket/_sum/_count series are its family)."""
    names = {m for e in expressions() for m in _NAME.findall(e)}
    return {re.sub(r"_(bucket|sum|count)$", "", n) if n.startswith("rmr_") else n for n in names}


def test_rules_and_panels_parse_and_each_rule_has_what_alertmanager_needs():
    rules = yaml.safe_load((MONITORING / "alerts.yml").read_text())
    for rule in (r for group in rules["groups"] for r in group["rules"]):
        assert rule["alert"] and rule["expr"] and rule["labels"]["severity"] in ("page", "warning")
        assert rule["annotations"]["summary"]
    dashboard = json.loads((MONITORING / "dashboard.json").read_text())
    assert dashboard["uid"] and all(panel["targets"] for panel in dashboard["panels"])


def test_every_metric_named_is_exported_by_the_deployment_or_triton():
    ours = {value for name, value in vars(Metric).items() if name.isupper()}
    named = named_metrics()
    assert named - ours - TRITON_METRICS == set()
    # The signals the issue asks for are all there: fallback and repair rates, queue time, store errors.
    assert {Metric.ANSWERS, Metric.FALLBACKS, Metric.REPAIRS, Metric.STORE_CALLS, Metric.ENGINE_CALL_SECONDS,
            "nv_inference_queue_duration_us"} <= named
