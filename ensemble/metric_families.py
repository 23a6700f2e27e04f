"""Every metric family the deployment exports on Triton's metrics port: its type, help text, labels and, where a
label's values are a closed set, that set.

The stub builds its exports from these (server/stub/bls.py), and the README's metric table is checked against
them (tests/unit/test_metric_families.py) and against a live server's page (tests/e2e/test_monitoring.py): one
description, three places that cannot drift. Names stay in `ensemble.names.Metric`.
"""

from __future__ import annotations

from dataclasses import dataclass

from ensemble.bls.covers import GradeSource
from ensemble.cover.request import CoverTask
from ensemble.names import (COVER, ENTRY_POINTS, LIST_JUDGE, LLM_ENGINE, POINTWISE, POSTRANK, RERANK, RICH_MEDIA_RERANKER,
                            VLM_ENGINE, Metric)
from ensemble.outcome_counts import ANSWER_KINDS, POST_RANK_RESULTS
from ensemble.pointwise.request import Grader
from ensemble.rerank.answer import RepairKind
from ensemble.rerank.outcome import FALLBACK_LABELS

COUNTER, HISTOGRAM = "counter", "histogram"


@dataclass(frozen=True, slots=True)
class Label:
    name: str
    values: tuple[str, ...] | None = None
    """The closed set of values it takes; None: open (step and engine names depend on the rendered repository)."""


@dataclass(frozen=True, slots=True)
class Family:
    name: str
    kind: str
    help: str
    labels: tuple[Label, ...]

    @property
    def label_names(self) -> tuple[str, ...]:
        return tuple(label.name for label in self.labels)


def model(*entries: str) -> Label:
    """The entry point that served the request: the BLS, and the direct entry that exports the family too."""
    return Label("model", (RICH_MEDIA_RERANKER, *entries))


RANKS = model(RERANK.entry, POSTRANK.entry)
"""The `reranker` ensemble's post step and the `post_ranker` entry count their answers as the BLS does."""
TASK = Label("task", tuple(t.value for t in CoverTask))
SOURCE = Label("source", tuple(s.value for s in GradeSource))
STORE_OP = Label("op", ("get", "set"))
STEP = Label("step")
"""A step model's name run inside the BLS, or `names.engine_call_step` of an engine slot."""
CALLS_ENGINES = model(COVER.entry, POINTWISE.entry, POSTRANK.entry, LIST_JUDGE.entry)
"""The Python entries that call engine slots themselves, as the BLS does."""

FAMILIES: dict[str, Family] = {f.name: f for f in (
    Family(Metric.ANSWERS, COUNTER, "Re-rank answers by kind", (RANKS, Label("kind", ANSWER_KINDS))),
    Family(Metric.REPAIRS, COUNTER, "Repairs made to re-rank answers by kind",
           (RANKS, Label("kind", tuple(k.value for k in RepairKind)))),
    Family(Metric.FALLBACKS, COUNTER, "Answers replaced by the fallback ranker by reason",
           (RANKS, Label("reason", FALLBACK_LABELS))),
    Family(Metric.THINKING_CUT, COUNTER, "Answers whose reasoning was cut at the thinking budget",
           (RANKS, Label("task", ("rerank",)))),
    Family(Metric.COVER_GRADES, COUNTER, "Cover grades in responses by task and source",
           (model(COVER.entry), TASK, SOURCE)),
    Family(Metric.POINTWISE_GRADES, COUNTER, "Pointwise grades in responses by grader and source",
           (model(POINTWISE.entry), Label("grader", tuple(g.value for g in Grader)), SOURCE)),
    Family(Metric.ENGINE_CALL_SECONDS, HISTOGRAM, "Engine calls as the caller waits for them",
           (CALLS_ENGINES, Label("engine"))),
    Family(Metric.STEP_SECONDS, COUNTER, "Seconds in each pre/post step run inside the BLS and in each engine call "
           "it waits for", (CALLS_ENGINES, STEP)),
    Family(Metric.STEP_CALLS, COUNTER, "Runs of each pre/post step inside the BLS and engine calls it made",
           (CALLS_ENGINES, STEP)),
    Family(Metric.POST_RANKS, COUNTER, "Post-ranks of the head (options.post_rank) by result",
           (model(), Label("result", POST_RANK_RESULTS))),
    Family(Metric.COVER_CACHE, COUNTER, "Cover-grade cache lookups by result and task",
           (Label("result", ("hits", "misses")), TASK)),
    Family(Metric.COVER_STORE, COUNTER, "Grade-store lookups by result and task",
           (Label("result", ("hits", "misses", "invalid", "unavailable")), TASK)),
    Family(Metric.STORE_CALLS, COUNTER, "Calls to the shared store by operation and result",
           (STORE_OP, Label("result", ("ok", "error", "bypassed")))),
    Family(Metric.STORE_SECONDS, COUNTER, "Seconds in calls that reached the store", (STORE_OP,)),
    Family(Metric.REFUSED, COUNTER, "Requests refused (INVALID_ARGUMENT) by entry point and field",
           (Label("model", (*ENTRY_POINTS, LLM_ENGINE, VLM_ENGINE)), Label("field"))),
)}
