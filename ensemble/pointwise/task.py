from ensemble import names
from ensemble.pointwise.steps import ENTRY, PointwisePost, PointwisePre
from ensemble.task import Task

# The entry (its folder bears its name) sends pairs with a cover to the VLM slot, the others to the text slot
# (ensemble/pointwise/grader.py); its step models serve the text slot.
TASK = Task("pointwise", names.POINTWISE, ENTRY, PointwisePre, PointwisePost, names.LLM_ENGINE,
            entry_source=names.POINTWISE.entry)
