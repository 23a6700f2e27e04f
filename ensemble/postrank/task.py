from ensemble import names
from ensemble.postrank.steps import ENTRY, JUDGE_ENTRY, JudgePost, JudgePre, PostRankPost, PostRankPre
from ensemble.task import Task

# Both run on the re-ranker's engine with the post-ranker's LoRA adapter (no third model in memory). Each entry is one
# Python model running its steps around the slot call (ensemble/postrank/runner.py; its folder bears the post-ranker's
# name): two processes, not six.
TASKS = (Task("postrank", names.POSTRANK, ENTRY, PostRankPre, PostRankPost, names.LLM_ENGINE,
              entry_source=names.POSTRANK.entry),
         Task("judge", names.LIST_JUDGE, JUDGE_ENTRY, JudgePre, JudgePost, names.LLM_ENGINE, folder="postrank",
              entry_source=names.POSTRANK.entry))
