"""Reading the re-ranker's answer: a permutation of the prompt's ids 1..n, repaired when it is not one.

None of this raises on model output: it returns a full permutation and a record of every repair.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import Enum

from ensemble.tags import split_answer

# Paper eq. (9).
PERMUTATION_REWARD_NONE, PERMUTATION_REWARD_REPAIRED, PERMUTATION_REWARD_VALID = 0.0, 0.2, 0.5

# Parsing splits on separators and matches each item with a bounded pattern, so no regex here can backtrack
# over model output (tests/unit/test_fuzz.py).
_SEPARATORS = re.compile(r"[,>，、]")
_ITEM = re.compile(r"\[?\s*(\d{1,4})\s*\]?")


class RepairKind(str, Enum):
    NO_ANSWER = "no_answer"
    EMPTY_LIST = "empty_list"
    NOT_A_LIST = "not_a_list"
    FALLBACK_ORDER = "fallback_order"
    INVALID_ID = "invalid_id"
    DUPLICATE_ID = "duplicate_id"
    MISSING_IDS = "missing_ids"
    READ_BRACKETED = "read_bracketed"
    READ_FROM_PROSE = "read_from_prose"


_MESSAGES = {
    RepairKind.NO_ANSWER: "no answer",
    RepairKind.EMPTY_LIST: "answer list is empty",
    RepairKind.NOT_A_LIST: "answer is not an id list",
    RepairKind.FALLBACK_ORDER: "fallback order used",
    RepairKind.INVALID_ID: "invalid id {id} dropped",
    RepairKind.DUPLICATE_ID: "duplicate id {id} dropped",
    RepairKind.MISSING_IDS: "missing ids {ids} appended",
    RepairKind.READ_BRACKETED: "the bracketed id list was read out of surrounding text",
    RepairKind.READ_FROM_PROSE: "the id list was read out of prose (no brackets)",
}


@dataclass(frozen=True, slots=True)
class Repair:
    """One change made to the model's answer; `ids` are the prompt ids it concerns."""

    kind: RepairKind
    ids: tuple[int, ...] = ()

    @property
    def message(self) -> str:
        """``Repair(DUPLICATE_ID, (3,))`` -> ``"duplicate id 3 dropped"``."""
        return _MESSAGES[self.kind].format(id=self.ids[0] if self.ids else "", ids=list(self.ids))

    def to_json_dict(self) -> dict[str, object]:
        return {"kind": self.kind.value, "ids": list(self.ids), "message": self.message}

    @classmethod
    def from_json_dict(cls, data: dict[str, object]) -> Repair:
        return cls(RepairKind(data["kind"]), tuple(int(i) for i in data.get("ids", ())))


@dataclass(frozen=True, slots=True)
class PermutationReport:
    order: list[int]
    """Always a full permutation of 1..n."""
    valid: bool
    """True only when the model's answer was already a clean permutation."""
    format_reward: float
    repairs: tuple[Repair, ...]
    thinking: str = ""
    answered: list[int] = field(default_factory=list)
    """The ids as the model wrote them, before repair."""

    @property
    def repaired(self) -> bool:
        return not self.valid

    @property
    def issues(self) -> list[str]:
        """One short sentence per repair, e.g. ``"duplicate id 3 dropped"``."""
        return [repair.message for repair in self.repairs]


def parse_permutation(text: str, n: int, *, fill_order: Sequence[int] | None = None) -> PermutationReport:
    """Read ``<answer>[3,1,2]</answer>`` (or ``3,1,2``, ``[3] > [1] > [2]``, ``3 > 1 > 2``) for n candidates.

    Repairs, each reported: keep the first copy of a duplicate, drop ids outside 1..n, then append the
    missing ids in `fill_order` (the fallback ranker's order; default 1..n).
    """
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    fill = _checked_fill_order(fill_order, n)
    parts = split_answer(text)
    ids = _read_list(parts.answer)
    repairs: list[Repair] = []
    if ids is None and parts.answer is not None:
        lenient = read_leniently(parts.answer, tagged=parts.tagged)
        if lenient is not None:
            ids, how = lenient
            repairs.append(Repair(how))
    if not ids:
        kind = RepairKind.NO_ANSWER if parts.answer is None else (
            RepairKind.EMPTY_LIST if ids is not None else RepairKind.NOT_A_LIST)
        return PermutationReport(list(fill), False, PERMUTATION_REWARD_NONE,
                                 (Repair(kind), Repair(RepairKind.FALLBACK_ORDER)), parts.thinking, [])
    order: list[int] = []
    seen: set[int] = set()
    for value in ids:
        if not 1 <= value <= n:
            repairs.append(Repair(RepairKind.INVALID_ID, (value,)))
        elif value in seen:
            repairs.append(Repair(RepairKind.DUPLICATE_ID, (value,)))
        else:
            seen.add(value)
            order.append(value)
    missing = [i for i in fill if i not in seen]
    if missing:
        repairs.append(Repair(RepairKind.MISSING_IDS, tuple(missing)))
        order.extend(missing)
    valid = not repairs
    reward = PERMUTATION_REWARD_VALID if valid else PERMUTATION_REWARD_REPAIRED
    return PermutationReport(order, valid, reward, tuple(repairs), parts.thinking, list(ids))


def _read_list(answer: str | None) -> list[int] | None:
    """``"[3,1,2]"`` -> [3, 1, 2]; ``"[]"`` -> []; anything that is not an id list -> None."""
    if answer is None:
        return None
    text = answer.strip().removesuffix(".").strip()
    if text.replace(" ", "") in ("", "[]"):
        return []
    pieces = [piece.strip() for piece in _SEPARATORS.split(text)]
    if len(pieces) > 1 and pieces[-1] in ("", "]"):  # a trailing separator: "[3,1,2,]"
        last = pieces.pop()
        pieces[-1] += last
    ids = []
    for index, piece in enumerate(pieces):
        if index == 0 and piece.startswith("[["):
            piece = piece[1:]
        match = _ITEM.fullmatch(piece)
        if match is None:
            # The list's own brackets sit on its first and last items: "[3" ... "2]" both match _ITEM.
            return None
        ids.append(int(match.group(1)))
    return ids


# Lenient reading (answers a person reads without doubt): NFKC first, so full-width digits and brackets and
# circled digits become plain ones. Bracket groups hold no brackets, so the pattern cannot backtrack.
_BRACKETED = re.compile(r"\[([^\[\]]{0,4000})\]")
_DIGITS = re.compile(r"\d{1,4}")
_TOKEN = re.compile(r"\d{1,9}|[^\W\d_]+|\S")
_LIST_WORDS = frozenset({"id", "ids", "no", "doc", "candidate"})
_LIST_MARKS = frozenset(",;>、，；\"'#()|-→")


def read_leniently(answer: str, *, tagged: bool) -> tuple[list[int], RepairKind] | None:
    """The ids of an answer whose order is unambiguous though it is not a bare list, and how it was read.

    - One bracketed list in surrounding text (``The final ranking is [2,1,3].``, ``Top 5: [3,1,2]``, a fenced
      block): its ids. Several bracketed single ids (``Ranking: [3] > [1]``) in order. Several lists: None.
    - No brackets (tagged answers only): the longest run of ids with list marks between them
      (``Ranking (best first): 3 > 1 > 2``, ``ID 3, ID 1, ID 2``, ``3; 1; 2``, ``3 1 2``); a number in the
      prose around it (``Top 5``) is not part of the run. Two runs equally long: None.
    """
    text = unicodedata.normalize("NFKC", answer).replace("```", " ")
    groups = [g for g in _BRACKETED.findall(text) if _DIGITS.search(g)]
    if groups:
        if len(groups) == 1:
            return [int(d) for d in _DIGITS.findall(groups[0])], RepairKind.READ_BRACKETED
        if all(len(_DIGITS.findall(g)) == 1 for g in groups):
            return [int(_DIGITS.search(g).group()) for g in groups], RepairKind.READ_BRACKETED
        return None
    if not tagged:
        return None
    runs: list[list[int]] = [[]]
    for token in _TOKEN.findall(text):
        if token.isdigit():
            runs[-1].append(int(token) if len(token) <= 4 else 0)
        elif token.lower() not in _LIST_WORDS and token not in _LIST_MARKS:
            runs.append([])
    runs.sort(key=len, reverse=True)
    if not runs[0] or (len(runs) > 1 and len(runs[1]) == len(runs[0])):
        return None
    return runs[0], RepairKind.READ_FROM_PROSE


def _checked_fill_order(fill_order: Sequence[int] | None, n: int) -> list[int]:
    if fill_order is None:
        return list(range(1, n + 1))
    fill = list(fill_order)
    if sorted(fill) != list(range(1, n + 1)):
        raise ValueError(f"fill_order must be a permutation of 1..{n}, got {fill}")
    return fill
