from ensemble import names
from ensemble.rerank.steps import ENTRY, RerankPost, RerankPre
from ensemble.task import Task

TASK = Task("rerank", names.RERANK, ENTRY, RerankPre, RerankPost, names.LLM_ENGINE)
