"""The planner request: a query and the user's earlier queries in the session (``query_planner``)."""

from __future__ import annotations

from pydantic import BaseModel, ValidationError, field_validator

from ensemble.config import Limits
from ensemble.errors import RequestError
from ensemble.schema import STRICT, check_len, check_size, from_validation, not_blank, utf8


class PlanRequest(BaseModel):
    model_config = STRICT

    query: str
    session: tuple[str, ...] = ()
    """The user's earlier queries in this session, oldest first."""

    _not_blank = field_validator("query")(not_blank)


def parse_plan_request(query: bytes | str, session: list[bytes | str] | None = None,
                       limits: Limits | None = None) -> PlanRequest:
    """With `limits`, sizes are checked before any text is decoded."""
    if limits is not None:
        check_size("query", query, limits.max_query_chars)
        if len(session or ()) > limits.max_session_queries:
            raise RequestError("session", f"must hold at most {limits.max_session_queries} queries",
                               value=len(session or ()))
        for index, item in enumerate(session or ()):
            check_size(f"session[{index}]", item, limits.max_query_chars)
    data = {
        "query": utf8(query, "query"),
        "session": tuple(utf8(item, f"session[{i}]") for i, item in enumerate(session or ())),
    }
    try:
        return PlanRequest.model_validate(data)
    except ValidationError as exc:
        raise from_validation(exc) from None


def check_plan_limits(request: PlanRequest, limits: Limits) -> None:
    check_len("query", request.query, limits.max_query_chars)
    if len(request.session) > limits.max_session_queries:
        raise RequestError("session", f"must hold at most {limits.max_session_queries} queries",
                           value=len(request.session))
    for index, item in enumerate(request.session):
        check_len(f"session[{index}]", item, limits.max_query_chars)
