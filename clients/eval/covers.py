"""Table 3: the cover evaluator's grades against labelled ones, per task: accuracy, recall of each grade, and
the confusion matrix (rows the label, columns the prediction; "none" = no usable grade)."""

from __future__ import annotations

from collections import Counter
from typing import Any

from clients.eval.labelled import LabelledCover

GRADES = (1, 2, 3, 4)


def grade_covers(client: Any, items: list[LabelledCover]) -> list[dict[str, Any]]:
    """One row per labelled cover: its label and the deployment's grade (None when it gave none)."""
    rows = []
    for item in items:
        grade = client.evaluate_cover(item.image.read_bytes(), task=item.task, query=item.query).grade
        rows.append({"image": str(item.image), "task": item.task, "query": item.query, "label": item.grade,
                     "predicted": grade})
    return rows


def cover_table(rows: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Task -> {"n", "accuracy", "recall": {grade: value or None}, "confusion": {label: {prediction: count}}}."""
    out = {}
    for task in sorted({r["task"] for r in rows}):
        mine = [r for r in rows if r["task"] == task]
        pairs = Counter((r["label"], r["predicted"]) for r in mine)
        labelled = Counter(r["label"] for r in mine)
        out[task] = {
            "n": len(mine),
            "accuracy": sum(r["label"] == r["predicted"] for r in mine) / len(mine),
            "recall": {g: (pairs[(g, g)] / labelled[g] if labelled[g] else None) for g in GRADES},
            "confusion": {g: {str(p): pairs[(g, p)] for p in (*GRADES, None)} for g in GRADES},
        }
    return out


def cover_text(table: dict[str, dict[str, Any]]) -> str:
    lines = []
    for task, t in table.items():
        recall = "  ".join(f"R{g} {'-' if v is None else f'{100 * v:.1f}'}" for g, v in t["recall"].items())
        lines += [f"{task}: {t['n']} covers, accuracy {100 * t['accuracy']:.1f}%  recall by grade: {recall}",
                  "  label \\ predicted" + "".join(f"{p if p != 'None' else 'none':>6}" for p in
                                                   (*map(str, GRADES), "None"))]
        lines += [f"  {g:>17}" + "".join(f"{t['confusion'][g][str(p)]:>6}" for p in (*GRADES, None)) for g in GRADES]
        lines.append("")
    return "\n".join(lines)
