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


def test_every_metric_is_in_base_units():
    """Prometheus' convention (`_seconds_total`, not microseconds): promtool check metrics flags the others."""
    names = [value for key, value in vars(Metric).items() if key.isupper()]
    assert [n for n in names if re.search(r"_(us|ms|ns|microseconds|milliseconds)(_|$)", n)] == []


def test_promtool_accepts_the_alert_rules(promtool):
    import subprocess

    checked = subprocess.run([promtool, "check", "rules", str(MONITORING / "alerts.yml")], capture_output=True,
                             text=True, timeout=60)
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_each_alert_fires_where_meant_and_stays_quiet_beside_it_in_promtools_rule_tests(promtool):
    """deploy/monitoring/alerts_test.yml: per alert, a case where it fires (after its `for:`) and one where the
    series beside it, or the same series earlier, leave it quiet."""
    import subprocess

    alerts = {rule["alert"] for group in yaml.safe_load((MONITORING / "alerts.yml").read_text())["groups"]
              for rule in group["rules"]}
    cases = [case for test in yaml.safe_load((MONITORING / "alerts_test.yml").read_text())["tests"]
             for case in test["alert_rule_test"]]
    fires = {case["alertname"] for case in cases if case["exp_alerts"]}
    quiet = {case["alertname"] for case in cases if not case["exp_alerts"]}
    assert fires == alerts and quiet == alerts, "every alert needs a firing and a quiet case"
    tested = subprocess.run([promtool, "test", "rules", str(MONITORING / "alerts_test.yml")], capture_output=True,
                            text=True, timeout=120)
    assert tested.returncode == 0, tested.stdout + tested.stderr
