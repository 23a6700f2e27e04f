"""The README's metric table and the families the deployment exports agree: names, types, labels and the closed
values of each label (ensemble/metric_families.py is what the stub builds its exports from)."""

import re
from pathlib import Path

from ensemble.metric_families import FAMILIES
from ensemble.names import Metric

README = Path(__file__).resolve().parents[2] / "README.md"
_ROW = re.compile(r"^\| `(rmr_[a-z_]+)` \| (\w+) \| (.*?) \| .* \|$")


def readme_table() -> dict[str, tuple[str, dict[str, tuple[str, ...] | None]]]:
    """metric -> (type, label -> closed values or None), as the README's table states them."""
    table = {}
    for line in README.read_text().splitlines():
        match = _ROW.match(line)
        if not match:
            continue
        labels: dict[str, tuple[str, ...] | None] = {}
        for part in match[3].split("; "):
            name, _, values = part.partition(":")
            labels[name.strip().strip("`")] = tuple(v.strip() for v in values.split(",")) if values else None
        assert match[1] not in table, f"README: {match[1]} has two rows"
        table[match[1]] = (match[2], labels)
    return table


def test_the_readme_table_states_every_exported_family_with_its_type_labels_and_values():
    stated = readme_table()
    exported = {f.name: (f.kind, {label.name: label.values for label in f.labels}) for f in FAMILIES.values()}
    assert stated.keys() == exported.keys(), (
        f"exported but not in the README: {sorted(exported.keys() - stated.keys())}; "
        f"in the README but not exported: {sorted(stated.keys() - exported.keys())}")
    for name, (kind, labels) in exported.items():
        assert stated[name] == (kind, labels), f"README row of {name}"


def test_every_metric_name_has_a_family():
    named = {value for key, value in vars(Metric).items() if key.isupper()}
    assert named == FAMILIES.keys()


def test_every_counter_ends_in_total():
    """promtool check metrics' rule for counters (tests/e2e/test_monitoring.py runs it on a live page)."""
    assert [f.name for f in FAMILIES.values() if f.kind == "counter" and not f.name.endswith("_total")] == []
