"""`rmr eval` without a server: the floors on the project's labelled sample, the saved files, the comparison,
and the metrics cross-checked against trec_eval (through ir-measures) where the paper's definitions agree."""

import json
import random
from pathlib import Path

import pytest

from clients.eval import cli
from clients.eval.covers import cover_table
from clients.eval.labelled import LabelledFileError, read_cover_set, read_rerank_set
from clients.eval.rankers import FLOORS
from clients.eval.report import METRICS, Run, paired_test, recompute, score
from clients.eval.sample import make_eval_set
from ensemble.metrics import ndcg_at_k, recall_at_k


@pytest.fixture(scope="module")
def sample(tmp_path_factory):
    return make_eval_set(tmp_path_factory.mktemp("eval"), per_type=8)


def test_the_sample_set_is_read_with_every_query_type_and_both_cover_tasks(sample):
    queries = read_rerank_set(sample[0])
    assert {q.query_type for q in queries} == {"Complex Query", "Broad-needs Query", "Simple Query"}
    assert all(sorted(q.label) == sorted(q.ids) for q in queries)
    assert {c.task for c in read_cover_set(sample[1])} == {"relevance", "quality"}


def test_floor_rankers_print_table_one_and_the_predictions_recompute_it_exactly(sample, tmp_path, capsys):
    out = tmp_path / "run.json"
    assert cli.main(["--set", str(sample[0]), "--ranker", "fallback,input,random", "--json", str(out),
                     "--predictions", str(tmp_path / "pred.jsonl")]) == 0
    printed = capsys.readouterr().out
    for row in ("All", "Complex Query", "Broad-needs Query", "Simple Query", "N@4", "N@10", "R@4", "R@10", "RBO"):
        assert row in printed
    for name in ("fallback", "input", "random"):
        saved = json.loads((tmp_path / f"run.{name}.json").read_text())
        again = recompute(tmp_path / f"pred.{name}.jsonl")
        assert again == saved["table"]  # exactly: the same numbers from the predictions alone
    fallback = json.loads((tmp_path / "run.fallback.json").read_text())["table"]["All"]
    random_order = json.loads((tmp_path / "run.random.json").read_text())["table"]["All"]
    assert fallback["N@4"] > random_order["N@4"]  # the sample's labels carry signal a ranker can find


def test_compare_prints_the_difference_with_a_paired_test(sample, tmp_path, capsys):
    cli.main(["--set", str(sample[0]), "--ranker", "fallback,random", "--json", str(tmp_path / "r.json")])
    capsys.readouterr()
    cli.main(["--compare", str(tmp_path / "r.random.json"), str(tmp_path / "r.fallback.json")])
    lines = capsys.readouterr().out.splitlines()
    n4 = next(line for line in lines if line.strip().startswith("N@4")).split()
    assert float(n4[3]) > 0 and float(n4[4]) < 0.01  # fallback beats random, significantly on 24 queries


def test_paired_test_finds_no_difference_between_a_run_and_itself_and_a_clear_one_otherwise():
    rng = random.Random(1)
    a = [rng.random() for _ in range(40)]
    assert paired_test(a, a) == 1.0
    assert paired_test(a, [x + 0.2 for x in a]) < 0.001
    with pytest.raises(ValueError):
        paired_test(a, a[:-1])


def _line(candidates, label=None, **fields):
    return json.dumps({"query": "q", "query_type": "Simple Query", "candidates": candidates,
                       "label": label if label is not None else [c.get("id") for c in candidates], **fields})


@pytest.mark.parametrize(("line", "message"), [
    ("{not json", ":1: not JSON"),
    ('{"query": "q", "query_type": "Odd Query", "candidates": [{"id": "a"}], "label": ["a"]}', "query_type"),
    (_line([{"id": "a", "title": "t"}, {"id": "b", "title": "u"}], ["a"]), "label must rank every candidate id"),
    ('{"query": "", "query_type": "Simple Query", "candidates": [{"id": "a"}], "label": ["a"]}', "query"),
    # Candidates are checked with the request schema as the file is read, for every ranker, naming the field.
    (_line([{"id": "a", "title": "t", "click_through_rate": 1.5}]), r":1: candidates\[0\].click_through_rate must be <= 1"),
    (_line([{"id": "a", "title": "t"}, {"id": "b"}]), r"candidates\[1\].title is required"),
    (_line([{"id": "a", "title": "t", "intent_dimensions": ["Cheapness"]}]), r"candidates\[0\].intent_dimensions\[0\]"),
    (_line([{"id": "a", "title": "t", "publish_time": "yesterday"}]), r"candidates\[0\].publish_time"),
    (_line([{"id": "a", "title": "t", "cover_quality": 5}]), r"candidates\[0\].cover_quality must be <= 4"),
    (_line([{"id": "a", "title": "t"}, {"id": "a", "title": "u"}]), r"candidates\[1\].id must be unique"),
    (_line([{"id": 7, "title": "t"}], ["7"]), r"candidates\[0\].id must be a string"),
    (_line([{"id": "a", "title": "t"}], session="not a list"), "session must be an array of text"),
])
def test_a_bad_labelled_line_names_the_file_line_and_field(tmp_path, line, message):
    path = tmp_path / "set.jsonl"
    path.write_text(line + "\n")
    with pytest.raises(LabelledFileError, match=message):
        read_rerank_set(path)
    with pytest.raises(SystemExit, match=message):
        cli.main(["--set", str(path), "--ranker", "input"])


README_REQUEST = {"id": "a", "title": "t", "content": "c", "intent_dimensions": ["Personal Experience"],
                  "publish_time": "2025-09-12T10:00:00+08:00", "click_through_rate": 0.14, "completion_rate": 0.61,
                  "cover_relevance": 3, "cover_quality": None}


@pytest.mark.parametrize("ranker", FLOORS)
def test_every_floor_ranks_candidates_in_the_readmes_request_format(tmp_path, ranker, capsys):
    """JSON arrays, enum names, ISO times and nulls, as the README's request shows them: read as the server reads
    the wire, by every ranker."""
    path = tmp_path / "set.jsonl"
    path.write_text(_line([README_REQUEST, {"id": "b", "title": "u", "intent_dimensions": ["High Freshness"],
                                           "publish_time": 1757642400}], ["b", "a"]) + "\n")
    assert cli.main(["--set", str(path), "--ranker", ranker, "--predictions", str(tmp_path / "p.jsonl")]) == 0
    predicted = json.loads((tmp_path / "p.jsonl").read_text().splitlines()[0])["predicted"]
    assert sorted(predicted) == ["a", "b"]


def test_cover_table_accuracy_recall_and_confusion():
    rows = [{"task": "quality", "label": 4, "predicted": 4}, {"task": "quality", "label": 4, "predicted": 3},
            {"task": "quality", "label": 1, "predicted": None}, {"task": "relevance", "label": 2, "predicted": 2}]
    table = cover_table(rows)
    assert table["quality"]["accuracy"] == pytest.approx(1 / 3)
    assert table["quality"]["recall"] == {1: 0.0, 2: None, 3: None, 4: 0.5}
    assert table["quality"]["confusion"][1]["None"] == 1 and table["quality"]["confusion"][4]["3"] == 1
    assert table["relevance"]["accuracy"] == 1.0


def test_server_only_modes_say_they_need_a_server(sample):
    with pytest.raises(SystemExit, match="need --server"):
        cli.main(["--set", str(sample[0]), "--ranker", "input", "--ablations"])


def _trec(pred, label, k):
    """The paper's NDCG@K and Recall@K through trec_eval: qrels give label[:K] the gain n - rank, the run
    scores pred in order. Where they agree with the paper, the library is the check."""
    import ir_measures
    from ir_measures import R, nDCG

    n = len(label)
    qrels = [ir_measures.Qrel("q", d, n - rank) for rank, d in enumerate(label[:k], start=1) if n - rank > 0]
    run = [ir_measures.ScoredDoc("q", d, float(len(pred) - i)) for i, d in enumerate(pred)]
    values = ir_measures.calc_aggregate([nDCG @ k, R @ k], qrels, run)
    return values[nDCG @ k], values[R @ k]


@pytest.mark.parametrize("seed", range(25))
def test_ndcg_and_recall_agree_with_trec_eval_where_the_definitions_coincide(seed):
    rng = random.Random(seed)
    n = rng.randint(11, 30)  # n > K: every one of the top K has a positive gain n - rank
    label = [f"d{i}" for i in range(n)]
    pred = rng.sample(label, n)
    for k in (4, 10):
        trec_ndcg, trec_recall = _trec(pred, label, k)
        assert ndcg_at_k(pred, label, k) == pytest.approx(trec_ndcg, abs=1e-4)
        assert recall_at_k(pred, label, k) == pytest.approx(trec_recall, abs=1e-4)


@pytest.mark.parametrize("seed", range(12))
def test_below_k_candidates_recall_is_the_papers_n_over_k_where_trec_eval_says_one(seed):
    """A query with n < K candidates: every ranking holds all of them, so the paper's |pred[:K] ∩ label[:K]| / K
    is n/K and trec_eval's recall (relevant retrieved / relevant) is 1, whatever the order. The README states it;
    NDCG@K still agrees with ndcg_cut."""
    rng = random.Random(seed)
    n = rng.randint(2, 9)
    label = [f"d{i}" for i in range(n)]
    for pred in (label, rng.sample(label, n)):
        trec_ndcg, trec_recall = _trec(pred, label, 10)
        assert recall_at_k(pred, label, 10) == pytest.approx(n / 10)
        assert trec_recall == pytest.approx(1.0)
        assert ndcg_at_k(pred, label, 10) == pytest.approx(trec_ndcg, abs=1e-4)
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    assert "a perfect list of 6 gets R@10 = 0.6" in readme and "trec_eval's is 1" in readme


def test_score_has_every_column_of_table_one():
    assert list(score(["a", "b"], ["b", "a"])) == list(METRICS) == ["N@4", "N@10", "R@4", "R@10", "RBO"]
    assert Run("x", []).table() == {}
