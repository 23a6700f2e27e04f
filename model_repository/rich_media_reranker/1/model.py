"""The call the search backend makes: cover grading fan-out and re-ranking, over BLS (ensemble/bls/)."""

import asyncio

from ensemble.arrays import bytes_list, scalar_bytes
from ensemble.bls.orchestrator import Orchestrator, response_json
from ensemble.errors import RequestError
from ensemble.metric_families import FAMILIES
from ensemble.names import Metric, Param
from ensemble.tensors import RICH_MEDIA_RERANKER
from server.stub.adapter import CounterExport, ModelContext, error_response, read_rows, response_from
from server.stub.bls import (OutcomeMetrics, StepMetrics, StoreMetrics, caller_for, deployment_version,
                             grade_store_for, waits_in_place)
from server.stub.metrics import DeferredPublish


def _after_execution(work):
    asyncio.get_running_loop().call_soon(work)


class TritonPythonModel:
    def initialize(self, args):
        self.context = ModelContext(args)
        config = self.context.pipeline_config()
        self.caller = caller_for(self.context, config)
        grade_store = grade_store_for(self.context, config)
        # Grades are written back on the event loop once the execution has answered: a write costs no request.
        versions = deployment_version(self.context, config)
        self.context.log_tag = versions.tag
        self.orchestrator = Orchestrator(config, self.caller, grade_store=grade_store, later=_after_execution,
                                         cover_batch_size=int(self.context.param(Param.ENGINE_BATCH_SIZE)),
                                         model_version=versions.model_version, versions=versions.to_json_dict())
        self.context.logger.log_info(f"{self.context.name} {versions.tag}: ready")
        self.cache_metric = CounterExport(FAMILIES[Metric.COVER_CACHE])
        times = getattr(self.caller, "times", None)  # the ensembles caller runs no step and calls no engine itself
        self.step_metrics = StepMetrics(self.context.name, times) if times is not None else None
        self.store_metrics = StoreMetrics(grade_store)
        self.outcome_metrics = OutcomeMetrics(self.context.name, self.orchestrator.counts)
        self.metrics = DeferredPublish(self._publish_metrics)
        self.waits_in_place = self.context.flag(Param.WAITS_IN_PLACE, True)

    async def _one(self, request):
        try:
            rows = read_rows(request, RICH_MEDIA_RERANKER)
            if len(rows) != 1:
                raise RequestError("request", "must have batch size 1 (one query per request)", value=len(rows))
            arrays = rows[0]
            images = bytes_list(arrays, "cover_images") if "cover_images" in arrays else None
            timeout_us = request.timeout()  # the client's Triton timeout: the budget when options set none
            ranked, response = await self.orchestrator(scalar_bytes(arrays, "request"), images,
                                                       timeout_s=timeout_us / 1e6 if timeout_us else None)
            if response["fallback"]:
                self.context.logger.log_warn(f"{self.context.name} {self.context.log_tag}: fallback ranking "
                                             f"({response['fallback_reason'][:200]})")
            return response_from({"ranked_ids": [[i.encode("utf-8") for i in ranked]],
                                  "response": [[response_json(response)]]}, RICH_MEDIA_RERANKER)
        except Exception as error:  # noqa: BLE001 - this request's error response
            return error_response(error, self.context)

    def _publish_metrics(self):
        if self.orchestrator.cache is not None:
            self.cache_metric.publish(dict(self.orchestrator.cache.counts))
        if self.step_metrics is not None:
            self.step_metrics.publish()
        self.store_metrics.publish()
        self.outcome_metrics.publish()

    async def execute(self, requests):
        with waits_in_place(self.waits_in_place and len(requests) == 1):
            responses = list(await asyncio.gather(*(self._one(r) for r in requests)))
        self.metrics.changed()
        return responses
