"""Request schemas of every task, re-exported for users' code (each lives in its task's folder)."""

from ensemble.candidate import Candidate
from ensemble.cover.request import CoverRequest, CoverTask, check_cover_limits, parse_cover_request
from ensemble.planner.request import PlanRequest, check_plan_limits, parse_plan_request
from ensemble.pointwise.request import Grader, PointwiseRequest, PointwiseUse, parse_pointwise_request
from ensemble.rerank.request import RerankOptions, RerankRequest, check_rerank_limits, parse_rerank_request

__all__ = ["Candidate", "CoverRequest", "CoverTask", "Grader", "PlanRequest", "PointwiseRequest", "PointwiseUse",
           "RerankOptions", "RerankRequest", "check_cover_limits", "check_plan_limits", "check_rerank_limits",
           "parse_cover_request", "parse_plan_request", "parse_pointwise_request", "parse_rerank_request"]
