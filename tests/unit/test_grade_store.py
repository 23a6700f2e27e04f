"""Cover grades shared through a store: read before computing, written after, versioned, never trusted blindly."""

import asyncio
import json

from ensemble.bls.orchestrator import Orchestrator
from ensemble.config import PipelineConfig
from ensemble.cover.grade_store import GradeRef, GradeStore
from ensemble.cover.prompt import cover_template
from ensemble.cover.request import CoverTask
from ensemble.version import checkpoint_identity, grade_version
from store import open_store
from store.guarded import GuardedStore
from tests.unit.test_orchestrator import FakeCaller, jpeg_of
from tests.unit.test_store import Flaky

VERSIONS = {CoverTask.RELEVANCE: "v-rel", CoverTask.QUALITY: "v-qual"}


def grade_store(store, versions=VERSIONS) -> GradeStore:
    return GradeStore(GuardedStore(store), versions, relevance_ttl_s=3600, quality_ttl_s=None)


def run(orchestrator, covers, **options):
    body = {"query": "北京", "candidates": [{"id": str(i), "title": "t"} for i in range(len(covers))]}
    if options:
        body["options"] = options
    return asyncio.run(orchestrator(json.dumps(body).encode(), covers))


def test_a_grade_computed_by_one_instance_is_read_by_another(tmp_path):
    shared = open_store("sqlite:///g.sqlite", base=tmp_path)
    covers = [jpeg_of((i * 60, 0, 0)) for i in range(3)]
    first, second = FakeCaller({CoverTask.RELEVANCE: 3, CoverTask.QUALITY: 2}), FakeCaller({})
    _, response = run(Orchestrator(PipelineConfig.load(), first, grade_store=grade_store(shared)), covers)
    assert response["cover_store"] == {"enabled": True, "hits": 0, "written": 6, "queued": 0}
    other = Orchestrator(PipelineConfig.load(), second, grade_store=grade_store(open_store("sqlite:///g.sqlite",
                                                                                            base=tmp_path)))
    _, response = run(other, covers)
    assert second.cover_calls == [] and response["cover_store"]["hits"] == 6
    assert all(g["source"] == {"relevance": "store", "quality": "store"} for g in response["cover_grades"])
    assert [(g["relevance"], g["quality"]) for g in response["cover_grades"]] == [(3, 2)] * 3


def test_an_entry_that_is_not_a_grade_is_ignored_recomputed_and_overwritten(tmp_path):
    store = open_store("sqlite:///g.sqlite", base=tmp_path)
    grades = grade_store(store)
    cover = jpeg_of((1, 2, 3))
    from ensemble.cover.grade_cache import image_key

    key = grades.key(GradeRef(CoverTask.QUALITY, "", image_key(cover)))
    store.set_many([(key, b"7", None)])
    caller = FakeCaller({CoverTask.RELEVANCE: 3, CoverTask.QUALITY: 2})
    _, response = run(Orchestrator(PipelineConfig.load(), caller, grade_store=grades), [cover])
    assert response["cover_grades"][0]["source"]["quality"] == "model"
    assert grades.counts["invalid", "quality"] == 1
    assert store.get_many([key]) == [b"2"]


def test_a_store_that_is_down_is_bypassed_and_the_request_served():
    flaky = Flaky()
    grades = grade_store(flaky)
    caller = FakeCaller({CoverTask.RELEVANCE: 3, CoverTask.QUALITY: 2})
    ranked, response = run(Orchestrator(PipelineConfig.load(), caller, grade_store=grades), [jpeg_of((5, 5, 5))])
    assert ranked == ["0"] and response["cover_grades"][0]["source"] == {"relevance": "model", "quality": "model"}
    assert response["cover_store"] == {"enabled": True, "hits": 0, "written": 0, "queued": 0}
    assert grades.counts["unavailable", "relevance"] == 1 and flaky.calls == 1  # the write was bypassed


def test_another_checkpoint_or_template_never_reads_old_grades(tmp_path):
    ckpt = tmp_path / "ckpt"
    ckpt.mkdir()
    (ckpt / "config.json").write_text('{"model_type": "qwen2_5_vl"}')
    (ckpt / "model.safetensors").write_bytes(b"\x01" * 4096)
    before = checkpoint_identity(ckpt)
    (ckpt / "model.safetensors").write_bytes(b"\x02" * 4096)  # fine-tuned: same size, other weights
    assert checkpoint_identity(ckpt) != before
    template = cover_template(CoverTask.QUALITY)
    changed = cover_template(CoverTask.QUALITY).__class__(template.name, template.system, template.user + " ",
                                                          template.parts, template.source)
    assert grade_version(before, template) != grade_version(before, changed)
    assert grade_version(before, template) == grade_version(before, cover_template(CoverTask.QUALITY))
    store = open_store("sqlite:///g.sqlite", base=tmp_path)
    cover = jpeg_of((9, 9, 9))
    run(Orchestrator(PipelineConfig.load(), FakeCaller({CoverTask.QUALITY: 4, CoverTask.RELEVANCE: 4}),
                     grade_store=grade_store(store)), [cover])
    newer = FakeCaller({CoverTask.QUALITY: 1, CoverTask.RELEVANCE: 1})
    _, response = run(Orchestrator(PipelineConfig.load(), newer, grade_store=grade_store(
        store, {CoverTask.RELEVANCE: "v2-rel", CoverTask.QUALITY: "v2-qual"})), [cover])
    assert response["cover_grades"][0]["quality"] == 1 and len(newer.cover_calls) == 2


def test_covers_only_quality_grading_skips_relevance_and_the_rerank(tmp_path):
    caller = FakeCaller({CoverTask.RELEVANCE: 3, CoverTask.QUALITY: 2})
    orchestrator = Orchestrator(PipelineConfig.load(), caller,
                                grade_store=grade_store(open_store("sqlite:///g.sqlite", base=tmp_path)))
    covers = [jpeg_of((i, 50, 50)) for i in (10, 90)]
    ranked, response = run(orchestrator, covers, cover_tasks=["quality"], rerank=False)
    assert ranked == ["0", "1"] and response["reranked"] is False and caller.rerank_bodies == []
    assert {task for _, task in caller.cover_calls} == {CoverTask.QUALITY}
    assert [g["source"] for g in response["cover_grades"]] == [{"relevance": "not_requested", "quality": "model"}] * 2


def test_write_backs_run_after_the_request_unless_the_caller_counts_them(tmp_path):
    """Online requests hand their write-back to `later` (the BLS: a thread of its own); a covers-only request
    (index-time grading) writes before it answers."""
    deferred = []
    store = open_store("sqlite:///g.sqlite", base=tmp_path)
    orchestrator = Orchestrator(PipelineConfig.load(), FakeCaller({CoverTask.RELEVANCE: 3, CoverTask.QUALITY: 2}),
                                grade_store=grade_store(store), later=deferred.append)
    _, response = run(orchestrator, [jpeg_of((3, 3, 3))])
    assert response["cover_store"] == {"enabled": True, "hits": 0, "written": 0, "queued": 2} and len(deferred) == 1
    deferred.pop()()  # what `later` runs
    assert len([v for v in store.get_many([k for k in _all_keys(store)]) if v]) == 2
    _, response = run(orchestrator, [jpeg_of((4, 4, 4))], cover_tasks=["quality"], rerank=False)
    assert response["cover_store"]["written"] == 1 and deferred == []


def _all_keys(store):
    return [row[0] for row in store._db.execute("SELECT key FROM entries")]


def test_versions_keep_the_stored_keys_version_and_name_every_part():
    from ensemble.rerank.prompt import rerank_template
    from ensemble.version import Versions, model_version

    templates = [rerank_template()]
    versions = Versions.of("r" * 32, "v" * 32, templates, "a800")
    assert versions.model_version == model_version(["r" * 32, "v" * 32], templates)  # result keys unchanged
    assert versions.to_json_dict() == {"model_version": versions.model_version, "reranker_checkpoint": "r" * 16,
                                       "vlm_checkpoint": "v" * 16, "postrank_checkpoint": "",
                                       "prompts": model_version([], templates), "profile": "a800"}
    assert versions.tag.startswith(f"[model_version={versions.model_version} ") and "profile=a800]" in versions.tag
    # a post-ranker is part of what wrote a ranking (options.post_rank): another one, another key
    with_ranker = Versions.of("r" * 32, "v" * 32, templates, "a800", postrank="p" * 32)
    other_ranker = Versions.of("r" * 32, "v" * 32, templates, "a800", postrank="q" * 32)
    assert len({versions.model_version, with_ranker.model_version, other_ranker.model_version}) == 3
    assert with_ranker.to_json_dict()["postrank_checkpoint"] == "p" * 16
