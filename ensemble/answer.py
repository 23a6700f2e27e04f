"""Answer readers of every task, re-exported for users' training and evaluation code.

None of them raises on model output; each returns what it could use and a record of every repair.
"""

from ensemble.cover.answer import GRADE_REWARD_NON_INTEGER, GRADE_REWARD_NONE, GRADE_REWARD_VALID, GradeReport, parse_grade
from ensemble.planner.answer import Plan, SubQuery, parse_plan
from ensemble.pointwise.answer import UNKNOWN_GRADE, PointwiseAnswer, read_pointwise
from ensemble.rerank.answer import (PERMUTATION_REWARD_NONE, PERMUTATION_REWARD_REPAIRED, PERMUTATION_REWARD_VALID,
                                    PermutationReport, Repair, RepairKind, parse_permutation)

__all__ = ["GRADE_REWARD_NONE", "GRADE_REWARD_NON_INTEGER", "GRADE_REWARD_VALID", "PERMUTATION_REWARD_NONE",
           "PERMUTATION_REWARD_REPAIRED", "PERMUTATION_REWARD_VALID", "GradeReport", "PermutationReport", "Plan",
           "PointwiseAnswer", "Repair", "RepairKind", "SubQuery", "UNKNOWN_GRADE", "parse_grade", "parse_permutation",
           "parse_plan", "read_pointwise"]
