"""Graded tasks: what a task is, how it is scored, and the self-check a notebook calls.

A task (``"ex01.adapter"``) names the objects it grades (``needs=("Adapter",)``), its points, and a
check function that exercises them on freshly generated inputs against the kit's reference code,
scoring in parts (partial credit). The same function serves the student's inline ``check(...)``
and the batch grader, which calls it itself on what the student defined (never the notebook's
``check``, which a student could redefine).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Callable

import torch

STATUSES = ("pass", "partial", "fail", "not_implemented", "error", "missing", "timeout", "not_run")


def grading_mode() -> bool:
    """True when the batch grader runs this notebook (``ADAPTERTUNE_GRADING=1``): heavy experiment
    cells skip themselves, because only the functions you define are graded."""
    return os.environ.get("ADAPTERTUNE_GRADING", "") == "1"


@dataclass
class Part:
    """One scored part of a task."""

    what: str
    points: float
    max_points: float
    hint: str = ""


@dataclass
class Grade:
    """The outcome of one task: points out of ``max_points``, a status and a one-line reason."""

    task: str
    points: float
    max_points: float
    status: str
    reason: str
    parts: list[Part] = field(default_factory=list)

    def report(self) -> str:
        """Readable PASS/FAIL lines with the hints (what a student sees under their cell)."""
        head = {"pass": "PASS", "partial": "PARTIAL"}.get(self.status, "FAIL")
        lines = [f"{head}  {self.task}  {_pts(self.points)}/{_pts(self.max_points)} points" +
                 ("" if self.status in ("pass", "partial", "fail") else f"  ({self.reason})")]
        for p in self.parts:
            mark = "ok " if p.points == p.max_points else "-- "
            lines.append(f"  {mark}{p.what}  {_pts(p.points)}/{_pts(p.max_points)}")
            if p.hint and p.points < p.max_points:
                lines.append(f"       {p.hint}")
        return "\n".join(lines)


def _pts(x: float) -> str:
    return f"{x:g}"


class Checker:
    """Handed to a check function; records each scored part."""

    def __init__(self) -> None:
        self.parts: list[Part] = []
        self.generator = torch.Generator().manual_seed(int.from_bytes(os.urandom(4), "little"))  # fresh inputs each run

    def part(self, what: str, points: float, ok: bool, hint: str = "") -> bool:
        """Score ``points`` for ``what`` when ``ok``; ``hint`` says what was expected, observed, where to look."""
        self.parts.append(Part(what, points if ok else 0.0, points, "" if ok else hint))
        return bool(ok)

    def close(self, what: str, points: float, got, want, atol: float = 1e-5, where: str = "") -> bool:
        """A part that passes when ``got`` matches ``want`` (tensors or numbers) within ``atol``."""
        try:
            got_t, want_t = torch.as_tensor(got).detach().double(), torch.as_tensor(want).detach().double()
        except Exception as err:  # e.g. a string where a number belongs
            return self.part(what, points, False, f"expected a number or tensor, got {type(got).__name__}: {err}")
        if got_t.shape != want_t.shape:
            return self.part(what, points, False, f"expected shape {tuple(want_t.shape)}, got {tuple(got_t.shape)}. {where}")
        diff = float((got_t - want_t).abs().max()) if got_t.numel() else 0.0
        shown = f"expected {float(want_t):.6g}, got {float(got_t):.6g}" if want_t.numel() == 1 else f"max |difference| {diff:.3g}"
        return self.part(what, points, diff <= atol, f"{shown} (tolerance {atol:g}). {where}")

    def randn(self, *shape: int) -> torch.Tensor:
        return torch.randn(*shape, generator=self.generator)

    def randint(self, low: int, high: int) -> int:
        return int(torch.randint(low, high, (1,), generator=self.generator))


@dataclass(frozen=True)
class Task:
    """A graded task: ``fn(checker, *objects)`` scores the objects named in ``needs``."""

    id: str
    points: float
    needs: tuple[str, ...]
    fn: Callable
    title: str

    @property
    def notebook(self) -> str:
        return self.id.split(".")[0]


TASKS: dict[str, Task] = {}


def task(id: str, points: float, needs: tuple[str, ...], title: str) -> Callable:
    """Register a check function as a graded task (also how a lecturer writes hidden tests)."""
    if "." not in id:
        raise ValueError(f"A task id is 'NOTEBOOK.NAME', e.g. 'ex01.adapter'; got {id!r}.")

    def register(fn: Callable) -> Callable:
        TASKS[id] = Task(id, float(points), tuple(needs), fn, title)
        return fn

    return register


def tasks_of(notebook: str) -> list[Task]:
    """The tasks of one exercise notebook (``"ex01"``), in registration order."""
    return [t for t in TASKS.values() if t.notebook == notebook]


def run_task(t: Task, *objects) -> Grade:
    """Score ``t`` on ``objects``; every outcome, including exceptions, becomes a Grade."""
    checker = Checker()
    try:
        t.fn(checker, *objects)
    except NotImplementedError:
        return Grade(t.id, 0.0, t.points, "not_implemented",
                     "NotImplementedError: replace `raise NotImplementedError` with your code", checker.parts)
    except Exception as err:  # the student's code raised: say what and keep going
        earned = sum(p.points for p in checker.parts)
        reason = f"{type(err).__name__}: {err}".splitlines()[0][:200]
        return Grade(t.id, earned, t.points, "error", reason, checker.parts)
    scored = sum(p.max_points for p in checker.parts)
    if abs(scored - t.points) > 1e-9:
        raise RuntimeError(f"task {t.id} scored parts worth {scored} but is worth {t.points}: fix its check.")
    earned = sum(p.points for p in checker.parts)
    status = "pass" if earned == t.points else "partial" if earned > 0 else "fail"
    failed = [p.what for p in checker.parts if p.points < p.max_points]
    return Grade(t.id, earned, t.points, status, "all parts correct" if not failed else "wrong: " + "; ".join(failed), checker.parts)


def check(task_id: str, *objects) -> Grade:
    """The inline self-check: ``check("ex01.adapter", Adapter)`` prints PASS/FAIL per part with hints.

    It works the same in JupyterLab, Colab and a plain Python process (it only prints)."""
    if task_id not in TASKS:
        known = ", ".join(sorted(TASKS))
        raise KeyError(f"No task {task_id!r}. Known tasks: {known}.")
    t = TASKS[task_id]
    if len(objects) != len(t.needs):
        raise TypeError(f"check({task_id!r}, ...) takes {len(t.needs)} object(s): {', '.join(t.needs)}.")
    grade = run_task(t, *objects)
    print(grade.report())
    return grade
