from ensemble import names
from ensemble.postrank.steps import ENTRY, JUDGE_ENTRY, JudgePost, JudgePre, PostRankPost, PostRankPre
from ensemble.task import Task

# Both run on the re-ranker's engine with the post-ranker's LoRA adapter (no third model in memory).
TASKS = (Task("postrank", names.POSTRANK, ENTRY, PostRankPre, PostRankPost, names.LLM_ENGINE),
         Task("list_judge", names.LIST_JUDGE, JUDGE_ENTRY, JudgePre, JudgePost, names.LLM_ENGINE, folder="postrank"))
