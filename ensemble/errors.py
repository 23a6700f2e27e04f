"""The one exception a bad request raises, carrying the field path it is about."""

from __future__ import annotations

_MAX_VALUE_CHARS = 80


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
        text = f"{self.field} {self.rule}"
        if self.value is not ...:
            text += f", got {_short(self.value)}"
        return text


def _short(value: object) -> str:
    text = repr(value)
    if len(text) > _MAX_VALUE_CHARS:
        text = text[: _MAX_VALUE_CHARS - 3] + "..."
    return text
