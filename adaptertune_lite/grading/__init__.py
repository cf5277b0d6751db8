"""Graded exercises: inline self-checks, the exercise build, and the sandboxed batch grader.

* ``tasks``   – what a graded task is, how it scores (naming known mistakes), probes and plain data,
  ``check(...)`` and ``demo(...)`` for notebooks
* ``checks``  – the course's tasks (probes + verdicts, inputs that separate each known mistake), one block per
  exercise notebook
* ``build``   – one master per exercise -> ``exercises/`` (stubs) and ``solutions/``
* ``worker``  – runs one submission and answers probes with plain data (inside the sandbox, capped)
* ``grader``  – the judge behind ``adaptertune-lite grade``: runs every verdict, never student code
"""

from . import checks  # noqa: F401  (registers the course's tasks in TASKS)
from .tasks import STATUSES, TASKS, Checker, Grade, Task, check, demo, grading_mode, run_task, task, tasks_of

__all__ = ["STATUSES", "TASKS", "Checker", "Grade", "Task", "check", "demo", "grading_mode", "run_task", "task", "tasks_of"]
