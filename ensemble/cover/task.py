from ensemble import names
from ensemble.cover.steps import ENTRY, CoverPost, CoverPre
from ensemble.task import Task

# The entry (its folder bears its name) reads the grade store before it calls the VLM (ensemble/cover/evaluator.py).
TASK = Task("cover", names.COVER, ENTRY, CoverPre, CoverPost, names.VLM_ENGINE,
            entry_source=names.COVER.entry)
