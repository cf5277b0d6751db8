"""Graded exercises: inline self-checks, the exercise build, and the sandboxed batch grader.

* ``tasks``   – what a graded task is, how it scores, ``check(...)`` for notebooks
* ``checks``  – the course's tasks, one block per exercise notebook
* ``build``   – one master per exercise -> ``exercises/`` (stubs) and ``solutions/``
* ``worker``  – runs one submission and grades what it defined (inside the sandbox)
* ``grader``  – the batch grader behind ``adaptertune-lite grade``
"""

from . import checks  # noqa: F401  (registers the course's tasks in TASKS)
from .tasks import STATUSES, TASKS, Checker, Grade, Task, check, grading_mode, run_task, task, tasks_of

__all__ = ["STATUSES", "TASKS", "Checker", "Grade", "Task", "check", "grading_mode", "run_task", "task", "tasks_of"]
