from ensemble import names
from ensemble.planner.steps import ENTRY, PlannerPost, PlannerPre
from ensemble.task import Task

TASK = Task("planner", names.PLANNER, ENTRY, PlannerPre, PlannerPost, names.LLM_ENGINE)
