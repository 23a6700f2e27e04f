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
