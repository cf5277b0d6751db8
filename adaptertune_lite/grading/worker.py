"""Run one submission and grade what it defined: the part of the batch grader inside the sandbox.

    python -m adaptertune_lite.grading.worker NOTEBOOK --exercise ex01 --timeout 120 --report-fd 3 [--tests-on-stdin]

Order matters: the course's checks (and a lecturer's hidden tests) are loaded **before** any
student code runs, and the grader calls those functions on the objects the notebook defined.
What the notebook printed, and any ``check`` it (re)defined, play no part in the grade.

The notebook's code cells run in one IPython shell (so ``%magics`` and ``!commands`` work as in
Jupyter), in order, each under the time that is left; a cell that raises is recorded and the next
one runs, so a broken or reordered cell costs only what depends on it. ``sys.exit`` is caught and
``os._exit`` turned into ``SystemExit`` for the same reason. Output beyond 1 MB is dropped.

Events go to the grader as JSON lines on ``--report-fd``: ``{"cell": i}`` before each cell,
``{"cell_error": ...}``, one ``{"grade": ...}`` per task, then ``{"done": true}``.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import signal
import sys
import time
from dataclasses import asdict
from pathlib import Path

OUTPUT_LIMIT = 1_000_000  # characters of student output kept; the rest is counted and dropped
FILE_LIMIT = 50_000_000  # bytes: the largest file the submission may write


class Timeout(BaseException):
    """Raised in the student's code when its time is up (a BaseException: ``except Exception`` does not swallow it)."""


class CappedOutput(io.TextIOBase):
    """A stdout/stderr that keeps the first ``limit`` characters and counts the rest."""

    def __init__(self, limit: int = OUTPUT_LIMIT):
        self.limit, self.size, self.kept = limit, 0, []

    def write(self, text: str) -> int:
        if self.size < self.limit:
            self.kept.append(text[: self.limit - self.size])
        self.size += len(text)
        return len(text)

    def writable(self) -> bool:
        return True


def load_tests(sources: dict[str, str]) -> list[str]:
    """Run hidden-test sources (``{file name: text}``; each registers tasks with ``@task``); returns the names."""
    import types

    for name, text in sources.items():
        module = types.ModuleType(f"adaptertune_hidden_tests.{Path(name).stem}")
        module.__file__ = name
        exec(compile(text, f"<hidden test {name}>", "exec"), module.__dict__)
    return list(sources)


def _raise_timeout(signum, frame):
    raise Timeout("time limit reached")


def _no_hard_exit(code=0):
    raise SystemExit(code)  # os._exit would end the process before anything is graded


@contextlib.contextmanager
def guarded(seconds: float, output: io.TextIOBase):
    """Run student code inside: a time limit (``Timeout``), output into ``output``, ``os._exit`` turned into
    ``SystemExit``; the grader's own handler, streams and ``os._exit`` restored after, whatever happened."""
    real_exit, real_stdout, real_stderr = os._exit, sys.stdout, sys.stderr
    signal.signal(signal.SIGALRM, _raise_timeout)  # set each time: student code may have replaced the handler
    sys.stdout = sys.stderr = output
    os._exit = _no_hard_exit
    signal.setitimer(signal.ITIMER_REAL, max(seconds, 0.01))
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        os._exit, sys.stdout, sys.stderr = real_exit, real_stdout, real_stderr


def main(argv=None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("notebook")
    parser.add_argument("--exercise", required=True)
    parser.add_argument("--timeout", type=float, required=True)
    parser.add_argument("--report-fd", type=int, required=True)
    parser.add_argument("--tests-on-stdin", action="store_true", help="read hidden tests as JSON from stdin")
    args = parser.parse_args(argv)
    start = time.monotonic()
    import resource

    resource.setrlimit(resource.RLIMIT_FSIZE, (FILE_LIMIT, FILE_LIMIT))  # no file (or log) beyond 50 MB
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past it fails with an error instead of killing us
    report = os.fdopen(args.report_fd, "w", buffering=1)
    emit = lambda **event: report.write(json.dumps(event) + "\n")  # noqa: E731

    # 1. Trusted code first: the checks, captured before the student's code can touch them.
    from IPython.core.interactiveshell import InteractiveShell

    from . import checks  # noqa: F401  (registers the course's tasks)
    from .tasks import Grade, run_task, tasks_of

    if args.tests_on_stdin:
        load_tests(json.loads(sys.stdin.read()))
    sys.stdin = io.StringIO("")  # the notebook gets an empty stdin, never the grader's pipe
    tasks = tasks_of(args.exercise)

    # 2. The student's notebook, cell by cell.
    try:  # plain JSON: nbformat's validator costs a second of start-up per submission
        nb = json.loads(Path(args.notebook).read_text())
        sources = [c["source"] if isinstance(c["source"], str) else "".join(c["source"])
                   for c in nb["cells"] if c.get("cell_type") == "code"]
    except Exception as err:  # not a notebook at all
        emit(cell_error={"cell": None, "error": f"unreadable notebook: {type(err).__name__}: {err}"[:300]})
        sources = []
    run_budget = 0.8 * args.timeout  # leave a fifth of the time for the checks
    shell = InteractiveShell.instance(colors="nocolor")
    out = CappedOutput()
    stopped = None  # the code cell the time limit stopped in
    for i, source in enumerate(sources):
        left = run_budget - (time.monotonic() - start)
        if left <= 0:
            stopped = i if stopped is None else stopped
            emit(cell_error={"cell": i, "error": f"not run: the time limit was reached before code cell {i}"})
            break
        emit(cell=i)
        try:
            with guarded(left, out):
                result = shell.run_cell(source, store_history=False, silent=False)
        except Timeout as err:  # raised between IPython's own handlers
            result = None
            error: BaseException | None = err
        if result is not None:
            error = result.error_in_exec or result.error_before_exec
        if isinstance(error, Timeout):
            stopped = i
        if error is not None:
            emit(cell_error={"cell": i, "error": f"{type(error).__name__}: {error}".splitlines()[0][:300]})
    if out.size > out.limit:
        emit(cell_error={"cell": None, "error": f"the notebook printed {out.size:,} characters; the first {out.limit:,} were kept"})

    # 3. Grade what the notebook defined, with the checks loaded in step 1.
    namespace = shell.user_ns
    deadline = start + 0.97 * args.timeout
    for t in tasks:
        missing = [n for n in t.needs if n not in namespace]
        if missing and stopped is not None:
            grade = Grade(t.id, 0.0, t.points, "timeout",
                          f"not defined: {', '.join(missing)}: the time limit stopped the notebook in code cell {stopped}")
        elif missing:
            grade = Grade(t.id, 0.0, t.points, "missing",
                          f"not defined: {', '.join(missing)} (was its cell deleted, renamed or left failing?)")
        else:
            try:
                with guarded(deadline - time.monotonic(), CappedOutput(10_000)):
                    grade = run_task(t, *(namespace[n] for n in t.needs))
            except Timeout:
                grade = Grade(t.id, 0.0, t.points, "timeout", "the check ran past the time limit (an endless loop?)")
            except BaseException as err:  # SystemExit or KeyboardInterrupt from the student's function
                grade = Grade(t.id, 0.0, t.points, "error", f"{type(err).__name__}: {err}"[:200])
        emit(grade=asdict(grade))
    emit(done=True)
    report.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
