"""Run one submission's notebook and answer the judge's probes: the part of the batch grader that
runs student code, inside the sandbox.

    python -m adaptertune_lite.grading.worker NOTEBOOK --timeout 120 --report-fd 3 \\
        [--memory-mb 4096] [--cpu-s 130] [--max-procs 64]

Nothing this process says is trusted, and it decides no grade: the judge (:mod:`.grader`) sends
probe requests with inputs it generated after the notebook ran, this process calls the student's
objects on them and answers with plain data, and the judge scores the answers against the kit's
reference in its own process. Student code can write to the report channel too; the judge treats
every line as untrusted data.

The notebook's code cells run in one IPython shell (so ``%magics`` and ``!commands`` work as in
Jupyter), in order, each under the time that is left; a cell that raises is recorded and the next
one runs, so a broken or reordered cell costs only what depends on it. ``sys.exit`` is caught and
``os._exit`` turned into ``SystemExit`` for the same reason. Output beyond 1 MB is dropped. Caps
are set before any student code: memory (``RLIMIT_DATA``), CPU time, file size and, in the
sandbox's own user namespace, processes and threads (``RLIMIT_NPROC``).

Protocol, JSON lines. To the judge, on ``--report-fd``: ``{"cell": i}`` before each cell,
``{"cell_error": {"cell", "error"}}``, ``{"ready": {"stopped": i or null}}`` after the last cell, then
one answer per request: ``{"id", "ok": DATA}``, ``{"id", "raised": {"type", "message"}}``,
``{"id", "missing": NAME}``, ``{"id", "timeout": true}`` or ``{"id", "limit": "memory"}``; last
``{"left_running": n}`` when it killed processes the notebook left behind. From the judge, on stdin,
after ``ready``: ``{"id", "name", "probe", "args", "timeout"}`` per probe, then ``{"end": true}``.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import resource
import signal
import sys
import time
from pathlib import Path

from IPython.core.interactiveshell import InteractiveShell

from . import checks  # noqa: F401  (registers the course's probes before any student code runs)
from .tasks import PROBES, PlainDataError, from_plain, to_plain

OUTPUT_LIMIT = 1_000_000  # characters of student output kept; the rest is counted and dropped
FILE_LIMIT = 50_000_000  # bytes: the largest file the submission may write
ANSWER_LIMIT = 15_000_000  # characters of one answer line (the judge drops longer lines)
MAIN_PID = os.getpid()
CPU_RULE = "--timeout × threads + 10"  # the default CPU-time cap, as the help texts say it (see cpu_seconds)
_real_exit = os._exit  # kept before any student code can replace it


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


def cpu_seconds(timeout: float, threads: int = 1) -> int:
    """The default CPU-time cap of one submission (:data:`CPU_RULE`): its wall-clock budget on each of its
    threads, plus 10 s for start-up. The one place it is computed: the grader passes it as ``--cpu-s``."""
    return int(timeout * max(threads, 1)) + 10


def _threads() -> int:
    """The threads the grader gave this process (``OMP_NUM_THREADS``; 1 when unset or unreadable)."""
    value = os.environ.get("OMP_NUM_THREADS", "")
    return int(value) if value.isdigit() and int(value) > 0 else 1


def set_limits(memory_mb: int, cpu_s: int, max_procs: int | None) -> None:
    """Cap this process and its children: memory (heap and anonymous mappings), CPU seconds (SIGXCPU,
    then SIGKILL 5 s later), file size, and processes + threads (only meaningful in the sandbox's own
    user namespace, where the count covers this submission alone)."""
    resource.setrlimit(resource.RLIMIT_FSIZE, (FILE_LIMIT, FILE_LIMIT))  # no file (or log) beyond 50 MB
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past it fails with an error instead of killing us
    memory = memory_mb * 2**20
    resource.setrlimit(resource.RLIMIT_DATA, (memory, memory))
    resource.setrlimit(resource.RLIMIT_CPU, (cpu_s, cpu_s + 5))
    if max_procs:
        resource.setrlimit(resource.RLIMIT_NPROC, (max_procs, max_procs))


def _raise_timeout(signum, frame):
    raise Timeout("time limit reached")


def _no_hard_exit(code=0):
    raise SystemExit(code)  # os._exit would end the process before anything is graded


@contextlib.contextmanager
def guarded(seconds: float, output: io.TextIOBase):
    """Run student code inside: a time limit (``Timeout``), output into ``output``, ``os._exit`` turned into
    ``SystemExit``; the worker's own handler, streams and ``os._exit`` restored after, whatever happened."""
    real_stdout, real_stderr = sys.stdout, sys.stderr
    signal.signal(signal.SIGALRM, _raise_timeout)  # set each time: student code may have replaced the handler
    sys.stdout = sys.stderr = output
    os._exit = _no_hard_exit
    signal.setitimer(signal.ITIMER_REAL, max(seconds, 0.01))
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        os._exit, sys.stdout, sys.stderr = _real_exit, real_stdout, real_stderr
        if os.getpid() != MAIN_PID:  # a process the notebook forked came back here: it must not answer probes
            _real_exit(0)


def _error(err: BaseException) -> str:
    return f"{type(err).__name__}: {err}".splitlines()[0][:300] if str(err) else type(err).__name__


def answer(request: dict, namespace: dict, probes: dict) -> dict:
    """One probe: the student's object called on the judge's inputs; the answer as plain data."""
    rid, name, probe_name = request.get("id"), request.get("name"), request.get("probe")
    if not isinstance(name, str) or name not in namespace:
        return {"id": rid, "missing": name if isinstance(name, str) else ""}
    if probe_name not in probes:
        return {"id": rid, "raised": {"type": "ValueError", "message": f"unknown probe {probe_name!r}"}}
    timeout = request.get("timeout")
    timeout = float(timeout) if isinstance(timeout, (int, float)) else 10.0
    try:
        with guarded(timeout, CappedOutput(10_000)):
            args = from_plain(request.get("args"))
            data = to_plain(probes[probe_name](namespace[name], *args))
        return {"id": rid, "ok": data}
    except Timeout:
        return {"id": rid, "timeout": True}
    except MemoryError:
        return {"id": rid, "limit": "memory"}
    except PlainDataError as err:
        message = f"{name} returned {err}: a check compares numbers, tensors, lists and dicts"
        return {"id": rid, "raised": {"type": "TypeError", "message": message}}
    except BaseException as err:  # anything the student's code raised, SystemExit and KeyboardInterrupt included
        if "can't allocate memory" in str(err):  # torch's allocator past the memory cap
            return {"id": rid, "limit": "memory"}
        return {"id": rid, "raised": {"type": type(err).__name__, "message": str(err)[:300]}}


def kill_left_running() -> int:
    """Kill the processes this one started that are still running (the sandbox's process namespace and the
    grader's process group catch what escaped from this list); returns how many."""
    children = set()
    for task_dir in Path("/proc/self/task").glob("*"):
        with contextlib.suppress(OSError, ValueError):
            children |= {int(p) for p in (task_dir / "children").read_text().split()}
    running = 0
    for pid in children:
        with contextlib.suppress(OSError, IndexError):
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
            os.kill(pid, signal.SIGKILL)
            running += state != "Z"  # a zombie has already ended
    return running


def run_notebook(path: str, budget_s: float, emit) -> tuple[InteractiveShell, int | None]:
    """Run the code cells of the notebook at ``path`` in an IPython shell within ``budget_s`` seconds, emitting
    ``cell`` / ``cell_error`` events. Returns the shell (its namespace holds what the notebook defined) and the
    code cell the time limit stopped in (``None`` if it ran to the end)."""
    start = time.monotonic()
    try:  # plain JSON: nbformat's validator costs a second of start-up per submission
        nb = json.loads(Path(path).read_text())
        sources = [c["source"] if isinstance(c["source"], str) else "".join(c["source"])
                   for c in nb["cells"] if c.get("cell_type") == "code"]
    except Exception as err:  # not a notebook at all
        emit(cell_error={"cell": None, "error": f"unreadable notebook: {type(err).__name__}: {err}"[:300]})
        sources = []
    shell = InteractiveShell.instance(colors="nocolor", history_load_length=0)
    out = CappedOutput()
    stopped = None  # the code cell the time limit stopped in
    for i, source in enumerate(sources):
        left = budget_s - (time.monotonic() - start)
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
            emit(cell_error={"cell": i, "error": _error(error)})
    if out.size > out.limit:
        kept = f"the notebook printed {out.size:,} characters; the first {out.limit:,} were kept"
        emit(cell_error={"cell": None, "error": kept})
    return shell, stopped


def serve_probes(requests, namespace: dict, probes: dict, report) -> None:
    """Answer the judge's probe requests (JSON lines on ``requests``) on what the notebook defined, until an
    ``end`` request or the end of the stream; answers too large to compare are refused here."""
    for line in requests:
        try:
            request = json.loads(line)
        except json.JSONDecodeError:
            continue
        if not isinstance(request, dict) or request.get("end"):
            break
        reply = answer(request, namespace, probes)
        line = json.dumps(reply)
        if len(line) > ANSWER_LIMIT:
            message = f"{request.get('name')} returned {len(line):,} characters of data: too large to compare"
            line = json.dumps({"id": reply.get("id"), "raised": {"type": "ValueError", "message": message}})
        report.write(line + "\n")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("notebook")
    parser.add_argument("--timeout", type=float, required=True)
    parser.add_argument("--report-fd", type=int, required=True)
    parser.add_argument("--memory-mb", type=int, default=4096)
    parser.add_argument("--cpu-s", type=int, default=None, help=f"default: {CPU_RULE} (threads: OMP_NUM_THREADS)")
    parser.add_argument("--max-procs", type=int, default=None, help="processes + threads (sandbox only)")
    parser.add_argument("--user", type=int, default=None, help="started as root: run as this user id (no capabilities)")
    args = parser.parse_args(argv)
    start = time.monotonic()
    if args.user is not None and os.getuid() == 0:
        os.setgroups([])
        os.setgid(args.user)
        os.setuid(args.user)  # from root to another user: every capability goes too
        if os.getuid() != args.user or os.geteuid() != args.user:
            raise SystemExit("could not drop to the sandbox user")
    set_limits(args.memory_mb, args.cpu_s or cpu_seconds(args.timeout, _threads()), args.max_procs)
    report = os.fdopen(args.report_fd, "w", buffering=1)
    emit = lambda **event: report.write(json.dumps(event) + "\n")  # noqa: E731
    requests = os.fdopen(os.dup(0), "r")  # the judge's probe requests, read only after the notebook ran
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)  # the notebook's stdin is empty, never the judge's pipe
    sys.stdin = io.StringIO("")

    probes = dict(PROBES)  # the probes as loaded, before the student's code (which can only change its own copy)

    # 1. The student's notebook, cell by cell; 2. the judge's probes on what it defined.
    shell, stopped = run_notebook(args.notebook, 0.8 * args.timeout - (time.monotonic() - start), emit)  # a fifth left for probes
    emit(ready={"stopped": stopped})
    serve_probes(requests, shell.user_ns, probes, report)
    left_running = kill_left_running()
    if left_running:
        emit(left_running=left_running)
    report.close()
    sys.stdout.flush()
    _real_exit(0)  # no interpreter teardown: nothing of the student's (atexit, __del__) runs after the answers


if __name__ == "__main__":
    raise SystemExit(main())
