"""Graded tasks: what a task is, how it is scored, the plain data that crosses between processes,
and the self-check a notebook calls.

A task (``"ex01.adapter"``) names the objects it grades (``needs=("Adapter",)``), its points, and a
check function ``fn(c, *objects)``. The check generates fresh random inputs, hands them to the
student's objects and compares what comes back with the kit's reference code, scoring in parts.

The student's objects reach a check as :class:`Student` handles. Calling one (or ``.probe(...)``)
runs the student's code on the check's inputs and returns **plain data** (numbers, strings, lists,
dicts, tensors): that is the *probe*; everything else in the check is the *verdict*.

* In a notebook, ``check(...)`` runs both in the student's process, for their own feedback.
* The batch grader runs the verdict in the judge, a process that never executes student code: each
  probe becomes a request to the sandboxed worker that holds the notebook's objects, and its answer
  is decoded by :func:`from_plain` as untrusted data (no pickles, no code).
"""

from __future__ import annotations

import base64
import contextlib
import json
import math
import numbers
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch

STATUSES = ("pass", "partial", "fail", "not_implemented", "error", "missing", "timeout", "limit", "not_run")
RNG_LOCK = threading.Lock()  # the judge grades submissions in threads: global-RNG model builds take turns


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
    printed: bool = field(default=False, repr=False, compare=False)  # check() printed it: Jupyter need not show it

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

    def _ipython_display_(self) -> None:
        """In Jupyter a Grade shows as its report, and not twice when ``check(...)`` just printed it."""
        if self.printed:
            self.printed = False
            return
        print(self.report())


def _pts(x: float) -> str:
    return f"{x:g}"


# ----------------------------------------------------------------------------- plain data
TENSOR_DTYPES = {str(d).removeprefix("torch."): d for d in (
    torch.float64, torch.float32, torch.float16, torch.bfloat16, torch.int64, torch.int32, torch.int16, torch.int8,
    torch.uint8, torch.bool)}
MAX_DEPTH = 6  # nesting of lists and dicts
MAX_ITEMS = 100_000  # entries of one list or dict
MAX_ELEMENTS = 1_000_000  # elements of one tensor
MAX_TEXT = 100_000  # characters of one string


class PlainDataError(ValueError):
    """Data that is not plain data, or plain data that is malformed or too large."""


def to_plain(x: Any, depth: int = 0) -> Any:
    """``x`` as JSON-ready plain data: None, bools, numbers, strings, lists, dicts with string keys, and
    tensors (and NumPy arrays) as ``{"__tensor__": {"dtype", "shape", "data": base64 of the raw bytes}}``."""
    if depth > MAX_DEPTH:
        raise PlainDataError(f"nested deeper than {MAX_DEPTH} levels")
    if x is None or isinstance(x, (bool, str)):
        if isinstance(x, str) and len(x) > MAX_TEXT:
            raise PlainDataError(f"a string of {len(x):,} characters")
        return x
    if isinstance(x, torch.Tensor) or type(x).__module__ == "numpy":
        t = torch.as_tensor(x) if not isinstance(x, torch.Tensor) else x
        if t.layout != torch.strided or getattr(t, "is_nested", False):
            raise PlainDataError("a sparse or nested tensor")
        if t.dim() == 0 and not isinstance(x, torch.Tensor):  # a NumPy scalar: a number
            return to_plain(t.item(), depth)
        t = t.detach().cpu().contiguous()
        dtype = str(t.dtype).removeprefix("torch.")
        if dtype not in TENSOR_DTYPES:
            raise PlainDataError(f"a tensor of dtype {dtype}")
        if t.numel() > MAX_ELEMENTS:
            raise PlainDataError(f"a tensor of {t.numel():,} elements")
        raw = t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b""
        return {"__tensor__": {"dtype": dtype, "shape": list(t.shape), "data": base64.b64encode(raw).decode()}}
    if isinstance(x, numbers.Integral):
        return int(x)
    if isinstance(x, numbers.Real):
        return float(x)
    if isinstance(x, (list, tuple)):
        if len(x) > MAX_ITEMS:
            raise PlainDataError(f"a list of {len(x):,} items")
        return [to_plain(v, depth + 1) for v in x]
    if isinstance(x, dict):
        if len(x) > MAX_ITEMS:
            raise PlainDataError(f"a dict of {len(x):,} items")
        if not all(isinstance(k, str) and k != "__tensor__" for k in x):
            raise PlainDataError("a dict whose keys are not all strings")
        return {k: to_plain(v, depth + 1) for k, v in x.items()}
    raise PlainDataError(f"a {type(x).__name__}")


def from_plain(x: Any, depth: int = 0) -> Any:
    """The inverse of :func:`to_plain`, for data that arrived from an untrusted process: anything that is
    not exactly plain data (unknown dtypes, byte counts that do not match the shape, ...) raises PlainDataError."""
    if depth > MAX_DEPTH:
        raise PlainDataError(f"nested deeper than {MAX_DEPTH} levels")
    if x is None or isinstance(x, (bool, int, float)):
        return x
    if isinstance(x, str):
        if len(x) > MAX_TEXT:
            raise PlainDataError(f"a string of {len(x):,} characters")
        return x
    if isinstance(x, list):
        if len(x) > MAX_ITEMS:
            raise PlainDataError(f"a list of {len(x):,} items")
        return [from_plain(v, depth + 1) for v in x]
    if isinstance(x, dict) and set(x) == {"__tensor__"}:
        return _tensor_from_plain(x["__tensor__"])
    if isinstance(x, dict):
        if len(x) > MAX_ITEMS or "__tensor__" in x:
            raise PlainDataError("a malformed dict")
        return {k: from_plain(v, depth + 1) for k, v in x.items()}
    raise PlainDataError(f"a {type(x).__name__}")


def _tensor_from_plain(spec: Any) -> torch.Tensor:
    if not isinstance(spec, dict) or set(spec) != {"dtype", "shape", "data"}:
        raise PlainDataError("a malformed tensor")
    dtype, shape, data = spec["dtype"], spec["shape"], spec["data"]
    if dtype not in TENSOR_DTYPES or not isinstance(data, str) or not isinstance(shape, list) or len(shape) > 8 or \
            not all(type(n) is int and 0 <= n <= MAX_ELEMENTS for n in shape):
        raise PlainDataError("a malformed tensor")
    numel = math.prod(shape)
    if numel > MAX_ELEMENTS:
        raise PlainDataError(f"a tensor of {numel:,} elements")
    try:
        raw = base64.b64decode(data, validate=True)
    except ValueError as err:
        raise PlainDataError("a tensor whose data is not base64") from err
    t_dtype = TENSOR_DTYPES[dtype]
    if len(raw) != numel * t_dtype.itemsize:
        raise PlainDataError("a tensor whose data does not match its shape")
    if not numel:
        return torch.empty(shape, dtype=t_dtype)
    return torch.frombuffer(bytearray(raw), dtype=t_dtype).reshape(shape).clone()


def roundtrip(x: Any) -> Any:
    """``x`` as the judge would receive it: encoded, serialised, parsed and decoded (a deep copy)."""
    return from_plain(json.loads(json.dumps(to_plain(x))))


# ----------------------------------------------------------------------------- probes and handles
PROBES: dict[str, Callable] = {"call": lambda obj, *args: obj(*args)}


def probe(name: str) -> Callable:
    """Register a probe: ``fn(student_object, *plain_args) -> plain data``, run where the student's code lives."""
    def register(fn: Callable) -> Callable:
        PROBES[name] = fn
        return fn

    return register


class StudentError(Exception):
    """The student's code raised in its own process; ``str(err)`` is ``"TypeError: ..."``."""


class GradeStop(Exception):
    """Ends a task with a status of its own (missing, timeout, limit, error) and a reason."""

    def __init__(self, status: str, reason: str):
        super().__init__(reason)
        self.status, self.reason = status, reason


Runner = Callable[[str, str, tuple], Any]  # (object name, probe name, plain args) -> plain answer


class Student:
    """One of the student's graded objects as a check sees it: ``obj(*args)`` calls it and
    ``obj.probe("ex01.adapter", *args)`` runs a registered probe on it; both return plain data."""

    def __init__(self, name: str, runner: Runner):
        self.name, self._runner = name, runner

    def __call__(self, *args: Any) -> Any:
        return self._runner(self.name, "call", args)

    def probe(self, name: str, *args: Any) -> Any:
        return self._runner(self.name, name, args)

    def __repr__(self) -> str:
        return f"<the student's {self.name}>"


def local_runner(objects: dict[str, Any]) -> Runner:
    """Probes run here, in this process (the inline self-check); arguments and answers are copied through
    plain data exactly as between the grader's processes, so both see the same thing."""
    def run(name: str, probe_name: str, args: tuple) -> Any:
        result = PROBES[probe_name](objects[name], *roundtrip(list(args)))
        try:
            return roundtrip(result)
        except PlainDataError as err:
            raise TypeError(f"{name} returned {err}: a check compares numbers, tensors, lists and dicts") from None

    return run


Mistakes = dict[str, Any]  # what a known mistake is (said to the student) -> the answer it gives on the check's inputs


def _near(got: Any, predicted: Any, atol: float) -> bool:
    try:
        p = torch.as_tensor(predicted).detach().double()
    except Exception:  # noqa: BLE001  (a prediction that is not numeric: no match)
        return False
    return p.shape == got.shape and (not p.numel() or float((got - p).abs().max()) <= atol)


def _equal(got: Any, want: Any) -> bool:
    """``got == want`` for plain data; False where the comparison is not a plain bool (tensors)."""
    try:
        return bool(got == want) if not isinstance(got, torch.Tensor) else False
    except Exception:  # noqa: BLE001  (e.g. a list holding tensors)
        return False


def named_mistake(got: Any, mistakes: Mistakes | None, same: Callable[[Any, Any], bool]) -> str:
    """The first known mistake whose answer ``got`` matches ("" if none): the hint then says what it is."""
    return next((what for what, predicted in (mistakes or {}).items() if same(got, predicted)), "")


class Checker:
    """Handed to a check function; records each scored part. Inputs come from a fresh seed each run."""

    def __init__(self) -> None:
        self.parts: list[Part] = []
        self.generator = torch.Generator().manual_seed(int.from_bytes(os.urandom(8), "little") >> 1)

    def part(self, what: str, points: float, ok: bool, hint: str = "") -> bool:
        """Score ``points`` for ``what`` when ``ok``; ``hint`` says what was expected, observed, where to look."""
        ok = bool(ok)
        self.parts.append(Part(what, points if ok else 0.0, points, "" if ok else hint))
        return ok

    def close(self, what: str, points: float, got, want, atol: float = 1e-5, where: str = "",
              mistakes: Mistakes | None = None) -> bool:
        """A part that passes when ``got`` matches ``want`` (tensors or numbers) within ``atol``. ``mistakes``:
        ``{what the mistake is: the answer it gives}``; a wrong answer that matches one is named in the hint."""
        try:
            got_t, want_t = torch.as_tensor(got).detach().double(), torch.as_tensor(want).detach().double()
        except Exception as err:  # e.g. a string where a number belongs
            return self.part(what, points, False, f"expected a number or tensor, got {type(got).__name__}: {err}")
        if got_t.shape != want_t.shape:
            return self.part(what, points, False,
                             f"expected shape {tuple(want_t.shape)}, got {tuple(got_t.shape)}. {where}")
        diff = float((got_t - want_t).abs().max()) if got_t.numel() else 0.0
        one = f"expected {float(want_t):.6g}, got {float(got_t):.6g}" if want_t.numel() == 1 else ""
        shown = f"{one or f'max |difference| {diff:.3g}'} (tolerance {atol:g})"
        named = diff > atol and named_mistake(got_t, mistakes, lambda a, b: _near(a, b, atol))
        return self.part(what, points, diff <= atol, f"{named}: {shown}." if named else f"{shown}. {where}")

    def equal(self, what: str, points: float, got, want, hint: str, mistakes: Mistakes | None = None) -> bool:
        """A part that passes when ``got == want`` (plain data: verdicts, ints, lists); a wrong answer that
        equals one of ``mistakes`` (``{what the mistake is: the answer it gives}``) is named in the hint."""
        ok = _equal(got, want)
        named = not ok and named_mistake(got, mistakes, _equal)
        return self.part(what, points, ok, f"{named}. {hint}" if named else hint)

    def randn(self, *shape: int) -> torch.Tensor:
        return torch.randn(*shape, generator=self.generator)

    def randint(self, low: int, high: int) -> int:
        return int(torch.randint(low, high, (1,), generator=self.generator))

    def uniform(self, low: float, high: float) -> float:
        return low + (high - low) * float(torch.rand(1, generator=self.generator))


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
        if id in TASKS:
            raise ValueError(f"A task {id!r} exists already ({TASKS[id].title!r}): a hidden test needs an id of its "
                             f"own (e.g. '{id.split('.')[0]}.hidden_{id.split('.', 1)[1]}'), it never replaces a course task.")
        TASKS[id] = Task(id, float(points), tuple(needs), fn, title)
        return fn

    return register


def tasks_of(notebook: str) -> list[Task]:
    """The tasks of one exercise notebook (``"ex01"``), in registration order."""
    return [t for t in TASKS.values() if t.notebook == notebook]


def run_task(t: Task, *objects: Student) -> Grade:
    """Score ``t`` on the student's objects (handles); every outcome, including exceptions, becomes a Grade."""
    checker = Checker()
    earned = lambda: sum(p.points for p in checker.parts)  # noqa: E731
    try:
        t.fn(checker, *objects)
    except NotImplementedError:
        return Grade(t.id, 0.0, t.points, "not_implemented",
                     "NotImplementedError: replace `raise NotImplementedError` with your code", checker.parts)
    except GradeStop as stop:  # the judge could not get an answer: missing name, time or memory limit, ...
        return Grade(t.id, earned(), t.points, stop.status, stop.reason, checker.parts)
    except Exception as err:  # the student's code raised, or sent what the check cannot use: say what and keep going
        reason = str(err) if isinstance(err, StudentError) else f"{type(err).__name__}: {err}"
        return Grade(t.id, earned(), t.points, "error", (reason.splitlines() or [""])[0][:200], checker.parts)
    scored = sum(p.max_points for p in checker.parts)
    if abs(scored - t.points) > 1e-9:
        raise RuntimeError(f"task {t.id} scored parts worth {scored} but is worth {t.points}: fix its check.")
    status = "pass" if earned() == t.points else "partial" if earned() > 0 else "fail"
    failed = [p.what for p in checker.parts if p.points < p.max_points]
    return Grade(t.id, earned(), t.points, status, "all parts correct" if not failed else "wrong: " + "; ".join(failed),
                 checker.parts)


@contextlib.contextmanager
def demo(*needs: str):
    """A notebook's demo cell that runs the student's functions: while one of them still raises
    ``NotImplementedError``, the cell says what to finish and ends quietly, so Run All reaches every check::

        with demo("merged_weight", "merge_error"):
            print(merge_error(merged_weight(W, A, B, s), W, b, A, B, s, x))
    """
    try:
        yield
    except NotImplementedError:
        print(f"(This cell uses {', '.join(needs)}: finish {'them' if len(needs) > 1 else 'it'} above, "
              "then run this cell again.)")


def check(task_id: str, *objects: Any) -> Grade:
    """The inline self-check: ``check("ex01.adapter", Adapter)`` prints PASS/FAIL per part with hints.

    It works the same in JupyterLab, Colab and a plain Python process (it prints; in Jupyter the
    returned Grade does not show a second time)."""
    if task_id not in TASKS:
        known = ", ".join(sorted(TASKS))
        raise KeyError(f"No task {task_id!r}. Known tasks: {known}.")
    t = TASKS[task_id]
    if len(objects) != len(t.needs):
        raise TypeError(f"check({task_id!r}, ...) takes {len(t.needs)} object(s): {', '.join(t.needs)}.")
    runner = local_runner(dict(zip(t.needs, objects)))
    grade = run_task(t, *(Student(n, runner) for n in t.needs))
    print(grade.report())
    grade.printed = True
    return grade
