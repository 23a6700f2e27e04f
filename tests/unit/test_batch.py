"""The T+1 job's pieces without a server: input lines, retrieval, C(Q), the result format."""

import http.server
import json
import threading
from pathlib import Path

import pytest

from clients.batch.chain import Chain, LineError, parse_line
from clients.batch.results import LATEST_KEY, ResultStore, cached_ranking, normalise_query, result_key, result_value
from clients.batch.retrieval import HttpRetriever, LocalIndex
from clients.batch.sample import make_sample_day
from store import open_store


def test_queries_are_normalised_for_their_key():
    assert normalise_query("  北京　旅游 ATTRACTIONS\t") == "北京 旅游 attractions"
    assert normalise_query("ＡＢＣ Straße") == normalise_query("abc STRASSE")
    assert result_key("v1", " Beijing  Guide ") == "rmr:rank:v1:beijing guide"


@pytest.mark.parametrize("raw,reason", [("{oops", "line is not JSON"), ("[1]", "must be a JSON object"),
                                        ('{"session": []}', "query is required"),
                                        ('{"query": "q", "session": "a"}', "session must be an array"),
                                        ('{"query": "q", "candidates": [1]}', "candidates must be an array of obj")])
def test_bad_lines_say_why(raw, reason):
    with pytest.raises(LineError, match=reason):
        parse_line(raw)


def test_results_are_written_under_a_version_and_read_with_one_get(tmp_path):
    store = open_store("sqlite:///r.sqlite", base=tmp_path)
    results = ResultStore(store, "v7")
    response = {"ranked_ids": ["b", "a"], "valid": True, "repairs": [], "fallback": False, "cover_grades": []}
    results.put("北京 攻略", result_value("北京 攻略", response, {"query_type": "Simple Query"}, "v7"))
    assert results.stored(["北京  攻略", "other"]) == [True, False]
    assert cached_ranking(store, "北京 攻略") is None  # no completed job yet
    results.publish()
    assert store.get_many([LATEST_KEY]) == [b"v7"]
    found = cached_ranking(store, " 北京 攻略 ")
    assert found["ranked_ids"] == ["b", "a"] and found["version"] == "v7" and found["plan"]["query_type"]


def test_the_local_index_and_the_chain_build_cq_with_every_dimension(tmp_path):
    log, corpus = make_sample_day(tmp_path, queries=4)
    index = LocalIndex(corpus)
    line = parse_line(log.read_text().splitlines()[0])
    found = index.retrieve(line.query, 5)
    assert found and all(line.query in d["title"] for d in found[:1])
    plan = {"sub_queries": [{"sub_query": line.query, "intent_dimensions": ["Authoritativeness"]},
                            {"sub_query": line.query, "intent_dimensions": ["High Freshness"]}]}
    merged = Chain(index, k=5).candidates(line, plan)
    assert [d["id"] for d in merged] == [d["id"] for d in found]  # the same documents once
    assert all({"Authoritativeness", "High Freshness"} <= set(d["intent_dimensions"]) for d in merged)
    covers = [d["cover_path"] for d in merged if d.get("cover_path")]
    assert covers and all(Path(c).is_absolute() and Path(c).is_file() for c in covers)


def test_an_index_shipped_to_an_actor_finds_the_same_on_numpys_fast_path(tmp_path):
    """Ray pickles the index to every actor. Unpickled arrays carry copies of their dtypes, which send numpy's
    ufunc.at (bm25s's scoring) down its slow path; the index views them as the builtin dtypes again."""
    import numpy as np
    import ray.cloudpickle

    log, corpus = make_sample_day(tmp_path, queries=6)
    index = LocalIndex(corpus)
    shipped = ray.cloudpickle.loads(ray.cloudpickle.dumps(index))
    arrays = [shipped._index.scores[key] for key in ("data", "indices", "indptr")]
    assert all(a.dtype is np.dtype(a.dtype.name) for a in arrays)
    for raw in log.read_text().splitlines():
        query = parse_line(raw).query
        assert [d["id"] for d in shipped.retrieve(query, 5)] == [d["id"] for d in index.retrieve(query, 5)]


def test_the_http_retriever_speaks_its_contract():
    seen = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self):
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            seen.append(body)
            answer = json.dumps({"candidates": [{"id": str(i), "title": body["query"]} for i in range(5)]}).encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

        def log_message(self, *args):
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        found = HttpRetriever(f"http://127.0.0.1:{server.server_port}/search").retrieve("北京", 3)
    finally:
        server.shutdown()
    assert seen == [{"query": "北京", "k": 3}] and [d["id"] for d in found] == ["0", "1", "2"]


def test_lines_of_one_query_after_normalisation_are_claimed_once():
    from clients.batch.claims import QueryClaims

    claims = QueryClaims()
    assert claims.claim(["北京 旅游", "北京　旅游 ", "Beijing", "ＢＥＩＪＩＮＧ", "other"]) == [True, False, True, False, True]
    assert claims.claim(["beijing", "new"]) == [False, True]  # across batches and actors: one claim set a job


@pytest.mark.parametrize(("response", "kind"), [
    ({"ranked_by": "listwise", "valid": True, "fallback": False, "order": [1]}, "valid"),
    ({"ranked_by": "windows", "valid": False, "fallback": False, "order": [1],
      "repairs": [{"kind": "duplicate_id", "ids": [1], "message": "m"}]}, "repaired"),
    ({"ranked_by": "fallback", "valid": False, "fallback": True, "order": [1]}, "fallback"),
    ({"ranked_by": "pointwise", "valid": False, "fallback": False, "order": [1]}, "pointwise"),  # no listwise answer
    ({"ranked_by": "none", "valid": False, "fallback": False, "order": [1]}, "none"),
    ({"valid": True, "fallback": False, "order": [1]}, "valid"),  # the `reranker` entry's result: one listwise call
])
def test_a_response_is_classified_as_the_server_counts_it(response, kind):
    from ensemble.outcome_counts import response_kind

    assert response_kind(response) == kind


def test_an_unreachable_result_store_ends_the_job_before_ray_naming_the_url(tmp_path):
    import ray

    from clients import cli

    log, _ = make_sample_day(tmp_path, queries=1)
    with pytest.raises(SystemExit, match=r"redis://127\.0\.0\.1:1/0: .*(refused|Connect)") as raised:
        cli.main(["batch", "--queries", str(log), "--store", "redis://127.0.0.1:1/0", "--server", "127.0.0.1:1"])
    assert "Traceback" not in str(raised.value)
    assert not ray.is_initialized()
    with pytest.raises(SystemExit, match=r"store URL must be"):
        cli.main(["batch", "--queries", str(log), "--store", "memcached://x", "--server", "127.0.0.1:1"])


def test_lookup_refuses_a_sqlite_store_that_does_not_exist_and_creates_nothing(tmp_path, capsys):
    from clients import cli

    missing = tmp_path / "no" / "results.sqlite"
    assert cli.main(["lookup", "q", "--store", f"sqlite:///{missing}"]) == 1
    assert f"{missing} does not exist" in capsys.readouterr().err
    assert not missing.exists() and not missing.parent.exists()
    present = open_store(f"sqlite:///{tmp_path}/r.sqlite")
    ResultStore(present, "v1").publish()
    assert cli.main(["lookup", "q", "--store", f"sqlite:///{tmp_path}/r.sqlite"]) == 1  # there, but no result
    assert "no stored result" in capsys.readouterr().err


def test_a_redis_password_is_not_written_in_messages():
    from store import shown_url

    assert shown_url("redis://:s3cret@cache:6379/1") == "redis://:***@cache:6379/1"
    assert shown_url("redis://user:s3cret@cache:6379/1") == "redis://user:***@cache:6379/1"
    assert shown_url("sqlite:///r.sqlite") == "sqlite:///r.sqlite"
