from ensemble import names
from ensemble.cover.steps import ENTRY, CoverPost, CoverPre
from ensemble.task import Task

TASK = Task("cover", names.COVER, ENTRY, CoverPre, CoverPost, names.VLM_ENGINE)
