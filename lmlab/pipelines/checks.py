"""What a pipeline checks of the run it is handed (`lmlab.runs.open_run` finds and opens it)."""

from __future__ import annotations

from lmlab.runs import Run


def check_tuned_task(task: str, run: Run, wanted: str) -> None:
    """Refuse a model that is not a run of `lmlab tune task=wanted`."""
    trained = run.model_config.get("task", "classification") if run.family_class.kind == "task" else None
    if trained != wanted:
        what = f"a tuned {trained} model" if trained else f"a {run.family} model"
        raise run.refusal(f"{task} needs a run of `lmlab tune task={wanted}`, not {what}")
