"""The one exception a bad request raises, carrying the field path it is about."""

from __future__ import annotations

import re

MAX_FIELD_CHARS = 120
MAX_RULE_CHARS = 400
MAX_VALUE_CHARS = 80
"""Every part of a message is cut to a short prefix: a client's own input is never echoed at length (gRPC caps
error metadata, and logs should not carry it), so a message stays under 1 KB."""


class RequestError(ValueError):
    """A request broke a rule; the adapter answers it with INVALID_ARGUMENT.

    `field` is a path into the request such as ``candidates[3].click_through_rate``.
    """

    def __init__(self, field: str, rule: str, *, value: object = ...) -> None:
        self.field = field
        self.rule = rule
        self.value = value
        super().__init__(str(self))

    def __str__(self) -> str:
        text = f"{_prefix(self.field, MAX_FIELD_CHARS)} {_prefix(self.rule, MAX_RULE_CHARS)}"
        if self.value is not ...:
            text += f", got {_prefix(repr(self.value), MAX_VALUE_CHARS)}"
        return text


def field_label(field: str) -> str:
    """A refused field as a metric label: ``candidates[3].click_through_rate`` -> ``candidates[].click_through_rate``
    (one series per field, not per candidate)."""
    return re.sub(r"\[\d+\]", "[]", field)[:MAX_FIELD_CHARS]


def _prefix(text: str, most: int) -> str:
    return text if len(text) <= most else text[: most - 3] + "..."
