"""The fine-tuning tasks, one module each behind one interface (`base.FineTuningTask`):

    classification    {text, label}                 one label per text
    tagging           {tokens, tags}                one tag per word (BIO entities)
    qa                {question, context, answers}  the answer's span in the context
    multiple_choice   {question, choices, answer}   the right choice among N

A new task is one module and one entry below: the runner (lmlab.tune.runner) and the tuned model
(lmlab.tune.model) find it here by the name `lmlab tune task=NAME` gives.
"""

from __future__ import annotations

from lmlab.errors import LmlabError
from lmlab.tune.tasks.base import FineTuningTask
from lmlab.tune.tasks.classification import ClassificationTask
from lmlab.tune.tasks.multiple_choice import MultipleChoiceTask
from lmlab.tune.tasks.qa import QATask
from lmlab.tune.tasks.tagging import TaggingTask

TASKS: dict[str, FineTuningTask] = {task.name: task for task in (
    ClassificationTask(),
    TaggingTask(),
    QATask(),
    MultipleChoiceTask(),
)}


def task_named(name: str) -> FineTuningTask:
    if name not in TASKS:
        raise LmlabError(f"task {name!r}: known tasks are {', '.join(TASKS)}")
    return TASKS[name]
