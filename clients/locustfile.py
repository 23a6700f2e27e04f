"""locust load test of the deployment over gRPC (tritonclient.grpc), loopback targets only.

    locust -f clients/locustfile.py --headless -u 8 -r 8 -t 60s --host 127.0.0.1:8001 \
        --workload bench/workloads/paper.json --weights rich_media_reranker=1,cover_evaluator=2

    locust -f clients/locustfile.py ... --day day.jsonl --corpus corpus.jsonl   # the T+1 chain, as `rmr batch`

    locust -f clients/locustfile.py ... --weights pointwise_grader=1 --grader experience   # pointwise grades
    locust -f clients/locustfile.py ... --rerank-options '{"pointwise": "rank"}'         # a ranking mode
    locust -f clients/locustfile.py ... --weights post_ranker=2,list_judge=1             # the post-ranker (seed 004)

With `--day`, every call is one query of the day through the T+1 job's own chain (plan, retrieval from the
corpus, C(Q), re-rank with covers), reported as `t1_chain`: the server's saturated rate on the job's work.

Every call is reported through locust's request events under the model's name; a Triton error is a failure
(the gRPC status is in its message). Payloads cycle through the workload file's requests; their candidates carry
features in the tiny post-ranker's schema (clients/samples: with_features) for options.post_rank and the post-ranker.
"""

from __future__ import annotations

import itertools
from pathlib import Path

from grpc.experimental import gevent as grpc_gevent

grpc_gevent.init_gevent()  # before any channel exists, or gRPC's C core blocks gevent (one user per process)

from locust import User, constant, events, task  # noqa: E402

from clients.connection import add_connection_arguments, connection_from_args  # noqa: E402
from clients.load_options import MODELS, call_schedule, parse_weights, require_loopback, rerank_options  # noqa: E402
from clients.rerank_client import RerankClient  # noqa: E402
from clients.samples import SAMPLE_USER, with_features  # noqa: E402
from clients.workload import Workload  # noqa: E402
from ensemble import names  # noqa: E402

_state: dict = {}
_features: dict[int, list[dict]] = {}


@events.init_command_line_parser.add_listener
def _arguments(parser) -> None:
    parser.add_argument("--workload", default="bench/workloads/paper.json", help="workload description (JSON)")
    parser.add_argument("--weights", default=f"{names.RICH_MEDIA_RERANKER}=1",
                        help="task weights, e.g. rich_media_reranker=4,cover_evaluator=1 (models: %s)" % ", ".join(MODELS))
    parser.add_argument("--day", default="", help="a day's queries (JSONL): run the T+1 chain instead")
    parser.add_argument("--corpus", default="", help="with --day: the corpus the chain retrieves from")
    parser.add_argument("--call-timeout", type=float, default=120.0, help="client deadline per call, seconds")
    parser.add_argument("--rerank-options", default="", help="JSON options of every rich_media_reranker call, "
                        'e.g. {"pointwise": "signal"} (the request schema\'s options)')
    parser.add_argument("--grader", default="relevance", help="the pointwise_grader calls' grader")
    add_connection_arguments(parser, url_flag="")  # --host is the target: host:port, ip:port[,...], dns:///name:port


@events.init.add_listener
def _setup(environment, **_kwargs) -> None:
    options = environment.parsed_options
    if options is None:
        return
    if options.day:
        from clients.batch.chain import Chain, parse_line
        from clients.batch.retrieval import LocalIndex

        lines = [line for line in Path(options.day).read_text(encoding="utf-8").splitlines() if line.strip()]
        _state["day"] = [parse_line(line) for line in lines]
        _state["chain"] = Chain(LocalIndex(Path(options.corpus)) if options.corpus else None)
        TritonUser.schedule = [T1_CHAIN]
        return
    _state["requests"] = Workload.load(options.workload).requests()
    _state["rerank_options"] = rerank_options(options.rerank_options)
    TritonUser.schedule = call_schedule(parse_weights(options.weights))


def _rich(user: TritonUser) -> None:
    r = user.next_request()
    options = _state.get("rerank_options")
    post_rank = bool(options and options.get("post_rank"))  # only then do candidates carry features (payload size)
    with user.environment.events.request.measure("grpc", names.RICH_MEDIA_RERANKER):
        user.client.rerank(r.query, _featured(r) if post_rank else r.candidates, cover_images=r.covers,
                           options=options, user=SAMPLE_USER if post_rank else None)


def _featured(r) -> list[dict]:
    """The request's candidates with post-ranker features (made once per workload request)."""
    key = id(r)
    if key not in _features:
        _features[key] = with_features(list(r.candidates), seed=len(_features))
    return _features[key]


def _post_ranker(user: TritonUser) -> None:
    r = user.next_request()
    with user.environment.events.request.measure("grpc", names.POSTRANK.entry):
        user.client.post_rank(r.query, _featured(r), user=SAMPLE_USER)


def _list_judge(user: TritonUser) -> None:
    r = user.next_request()
    ids = [c["id"] for c in r.candidates]
    with user.environment.events.request.measure("grpc", names.LIST_JUDGE.entry):
        user.client.judge(r.query, _featured(r), ids, ids[::-1], user=SAMPLE_USER)


def _pointwise(user: TritonUser) -> None:
    """Every candidate of a request graded (a row each; the covers go to the VLM)."""
    r = user.next_request()
    grader = user.environment.parsed_options.grader if user.environment.parsed_options else "relevance"
    with user.environment.events.request.measure("grpc", names.POINTWISE.entry):
        user.client.grade(r.query, r.candidates, grader=grader, cover_images=r.covers)


def _reranker(user: TritonUser) -> None:
    r = user.next_request()
    with user.environment.events.request.measure("grpc", names.RERANK.entry):
        user.client.rerank_step(r.query, r.candidates)


def _cover(user: TritonUser) -> None:
    r = user.next_request()
    image = next((c for c in r.covers if c), None)
    if image is None:
        return
    with user.environment.events.request.measure("grpc", names.COVER.entry):
        user.client.evaluate_cover(image, task="relevance", query=r.query)


def _planner(user: TritonUser) -> None:
    r = user.next_request()
    with user.environment.events.request.measure("grpc", names.PLANNER.entry):
        user.client.plan(r.query, r.session)


T1_CHAIN = "t1_chain"


def _t1_chain(user: TritonUser) -> None:
    line = _state["day"][next(_day_position) % len(_state["day"])]
    with user.environment.events.request.measure("grpc", T1_CHAIN):
        _state["chain"](user.client, line)


_day_position = itertools.count()
TASKS = {T1_CHAIN: _t1_chain, names.RICH_MEDIA_RERANKER: _rich, names.RERANK.entry: _reranker,
         names.COVER.entry: _cover, names.PLANNER.entry: _planner, names.POINTWISE.entry: _pointwise,
         names.POSTRANK.entry: _post_ranker, names.LIST_JUDGE.entry: _list_judge}


class TritonUser(User):
    wait_time = constant(0)
    schedule = [names.RICH_MEDIA_RERANKER]
    _started = itertools.count()

    @task
    def next_call(self) -> None:
        name = self.schedule[self._position % len(self.schedule)]
        self._position += 1
        TASKS[name](self)

    def on_start(self) -> None:
        self._position = next(TritonUser._started)  # users start at different points of the schedule
        url = require_loopback(self.host or "127.0.0.1:8001")
        self.timeout = self.environment.parsed_options.call_timeout if self.environment.parsed_options else 120.0
        options = self.environment.parsed_options
        connection = connection_from_args(options, url=url) if options is not None else url
        self.client = RerankClient(connection, timeout_s=self.timeout)
        self._cycle = itertools.cycle(_state.get("requests") or Workload.load("bench/workloads/smoke.json").requests())

    def next_request(self):
        return next(self._cycle)

    def on_stop(self) -> None:
        self.client.close()
