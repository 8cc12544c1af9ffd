"""The fine-tuning tasks, one module each behind one interface (`base.FineTuningTask`):

    classification    {text, label}                 one label per text
    tagging           {tokens, tags}                one tag per word (BIO entities)
    qa                {question, context, answers}  the answer's span in the context
    multiple_choice   {question, choices, answer}   the right choice among N
    sft               {messages}                    the assistant's turns (a chat task: no head, see .chat)
    dpo               {prompt, chosen, rejected}    the chosen answer over the rejected one (a chat task)
    reward            {prompt, chosen, rejected}    a scalar score, the chosen answer's above the rejected one's
    grpo              {messages} and a reward       sampled replies, the better of each group reinforced (a chat task)

A new task is one module and one entry below: the runner (lmlab.tune.runner) and the tuned model
(lmlab.tune.model) find it here by the name `lmlab tune task=NAME` gives.
"""

from __future__ import annotations

from lmlab.errors import LmlabError
from lmlab.tune.tasks.base import FineTuningTask
from lmlab.tune.tasks.chat import ChatTask
from lmlab.tune.tasks.classification import ClassificationTask
from lmlab.tune.tasks.dpo import PreferenceTask
from lmlab.tune.tasks.grpo import GRPOTask
from lmlab.tune.tasks.multiple_choice import MultipleChoiceTask
from lmlab.tune.tasks.qa import QATask
from lmlab.tune.tasks.reward import RewardTask
from lmlab.tune.tasks.sft import SFTTask
from lmlab.tune.tasks.tagging import TaggingTask

TASKS: dict[str, FineTuningTask | ChatTask] = {task.name: task for task in (
    ClassificationTask(),
    TaggingTask(),
    QATask(),
    MultipleChoiceTask(),
    SFTTask(),
    PreferenceTask(),
    RewardTask(),
    GRPOTask(),
)}


def task_named(name: str) -> FineTuningTask | ChatTask:
    if name not in TASKS:
        raise LmlabError(f"task {name!r}: known tasks are {', '.join(TASKS)}")
    return TASKS[name]
