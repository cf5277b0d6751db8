"""The batch grader behind ``adaptertune-lite grade SUBMISSIONS --out grades.csv``: the judge.

Layout of ``SUBMISSIONS``: one folder per student holding their notebooks
(``SUBMISSIONS/alice/ex01_adapter.ipynb``), or notebooks directly inside, one per student
(``SUBMISSIONS/alice_ex01.ipynb``: the student is the file's name). A notebook is matched to its
exercise by ``exNN`` in its file name ("Copy of ex01_adapter (2).ipynb" works), else by the
``check("exNN...`` calls and graded names it contains. Symbolic links are not followed: they get a
``rejected`` row.

Each submission runs in a fresh Python process (:mod:`.worker`) in its own temporary folder with a
time limit and caps on memory, CPU time, file size and (in the sandbox) processes, under bubblewrap
when it is installed: the whole file system read-only except that folder, no network, its own process
tree, as an unprivileged user. That process only runs the notebook and answers *probes*.

This process, the judge, never runs student code: for each task it runs the check's verdict here,
generating the inputs after the notebook ran, sends each probe to the worker and decodes the answer as
untrusted plain data (:func:`.tasks.from_plain`); the reference answers are computed here. Hidden tests
stay in this process. Lines on the report channel that answer no request of this run are ignored and
counted for review; malformed, late, duplicated or missing answers cost only that submission's points.
Every submission gets one CSV row per task whatever it does, and every student a Markdown feedback file.
Threat model: README, "Grading a class".
"""

from __future__ import annotations

import ast
import csv
import json
import os
import queue
import re
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import types
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from IPython.core.inputtransformer2 import TransformerManager
from tqdm.auto import tqdm

import adaptertune_lite

from ..engine.storage import atomic_path
from .tasks import (
    TASKS,
    Grade,
    GradeStop,
    PlainDataError,
    Student,
    StudentError,
    Task,
    from_plain,
    run_task,
    tasks_of,
    to_plain,
)
from .worker import CPU_RULE, cpu_seconds  # noqa: F401  (CPU_RULE: what a --cpu-s help text says)

COLUMNS = ("student", "notebook", "task", "points", "max", "status", "reason", "sandbox", "file")
GRACE_S = 15.0  # on top of --timeout: process start-up, imports, bubblewrap
SANDBOX_UID = 2_000_000_000  # a grader run as root runs submission k of those at once as user SANDBOX_UID + k:
# root is exempt from RLIMIT_NPROC, and a user of its own gives each submission its own count
MAX_LINE = 16_000_000  # bytes of one report line; longer lines are dropped
MAX_EVENTS = 10_000  # report lines kept per submission; the rest are drained and counted
MAX_NOTEBOOK = 20_000_000  # bytes: a larger file is rejected unread
MAX_ERRORS = 50  # cell errors listed in the feedback

# The kit's reference implementation of each task: a graded function or class that calls one of these
# (``drift.linear_cka(...)``, ``from adaptertune_lite.drift import linear_cka``) is flagged for review.
REFERENCES = {
    "ex01.adapter": {"Adapter", "add_adapters"}, "ex01.param_count": {"num_adapter_params", "count_parameters"},
    "ex01.freeze": {"set_trainable"}, "ex02.post_mlp": {"add_adapters", "residual_hook"},
    "ex03.init": {"Adapter", "add_adapters"}, "ex04.cka": {"linear_cka", "block_cka"},
    "ex04.cls_cka": {"linear_cka", "block_cka", "block_outputs"}, "ex05.elbow": {"fit_elbow", "robust_elbow"},
    "ex06.count": {"count_parameters", "add_adapters"}, "ex06.best_rank": {"count_parameters", "add_adapters"},
    "ex07.merge": {"merge_lora", "delta_weight"}, "ex07.verify": {"merge_lora", "delta_weight"},
    "ex07.decide": {"paired_difference"},
}


@dataclass
class Limits:
    """Caps per submission: memory (heap and anonymous mappings, MB), processes + threads (in the sandbox
    only), CPU seconds (``None``: the default rule, :func:`.worker.cpu_seconds`)."""

    memory_mb: int = 4096
    max_procs: int = 64
    cpu_s: int | None = None

    def cpu_for(self, timeout: float, threads: int) -> int:
        """The CPU seconds a submission gets: ``cpu_s``, or the worker's own default rule."""
        return self.cpu_s or cpu_seconds(timeout, threads)


@dataclass(frozen=True)
class Review:
    """A note for the lecturer's review; ``task``: the task it flags in the CSV (None: the whole submission)."""

    note: str
    task: str | None = None


@dataclass
class Submission:
    student: str
    path: Path
    exercise: str | None
    problem: str = ""  # why it is not graded at all (a symbolic link, too large)


@dataclass
class Outcome:
    """What grading one submission produced."""

    submission: Submission
    grades: list[Grade]
    sandbox: str
    cell_errors: list[str] = field(default_factory=list)
    review: list[Review] = field(default_factory=list)  # for the lecturer: forged lines, the kit's reference, ...


def exercises() -> set[str]:
    return {t.notebook for t in TASKS.values()}


def identify(path: Path) -> str | None:
    """Which exercise a notebook is: ``exNN`` in its file name, else what its code refers to."""
    known = exercises()
    m = re.search(r"ex(\d\d)", path.name.lower())
    if m and f"ex{m.group(1)}" in known:
        return f"ex{m.group(1)}"
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return None
    votes = {ex: len(re.findall(rf"{ex}\.\w+", text)) +
             sum(len(re.findall(rf"\b{n}\b", text)) for t in tasks_of(ex) for n in t.needs) for ex in known}
    best = max(votes, key=votes.get, default=None)
    return best if best and votes[best] > 0 else None


def find_submissions(folder: str | os.PathLike) -> list[Submission]:
    """Every notebook under ``folder``: ``folder/STUDENT/*.ipynb`` or ``folder/STUDENT.ipynb``. Symbolic links
    (to a file or a folder) are not followed and oversized files not read: both come back with a ``problem``."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder} is not a folder of submissions: give the folder that holds one "
                                "sub-folder (or one .ipynb) per student.")
    found = []
    for root, dirs, files in os.walk(folder):  # followlinks=False: a link to a folder is listed, not entered
        dirs[:] = sorted(d for d in dirs if d != ".ipynb_checkpoints")
        here = Path(root)
        for name in sorted(files) + [d for d in dirs if (here / d).is_symlink()]:
            path = here / name
            if not (name.endswith(".ipynb") or path.is_symlink()):
                continue
            rel = path.relative_to(folder)
            student = rel.parts[0] if len(rel.parts) > 1 else path.stem
            if path.is_symlink():
                found.append(Submission(student, path, None, "a symbolic link: not followed, not graded"))
            elif path.stat().st_size > MAX_NOTEBOOK:
                found.append(Submission(student, path, None, f"larger than {MAX_NOTEBOOK:,} bytes: not graded"))
            else:
                found.append(Submission(student, path, identify(path)))
    return sorted(found, key=lambda s: str(s.path))


def load_tests(sources: dict[str, str]) -> list[str]:
    """Run hidden-test sources (``{file name: text}``; each registers tasks with ``@task``), in the judge only."""
    for name, text in sources.items():
        module = types.ModuleType(f"adaptertune_hidden_tests.{Path(name).stem}")
        module.__file__ = name
        try:
            exec(compile(text, f"<hidden test {name}>", "exec"), module.__dict__)
        except ValueError as err:  # e.g. an id that is a course task's
            raise ValueError(f"hidden test {name}: {err}") from None
    return list(sources)


def _namespaces() -> list[str]:
    """bubblewrap's isolation: every namespace and no capabilities; as root, every namespace but the user one
    (the worker then drops to an unprivileged user of its own, which also drops every capability)."""
    if os.geteuid() == 0:
        return ["--unshare-ipc", "--unshare-pid", "--unshare-net", "--unshare-uts", "--unshare-cgroup-try"]
    return ["--unshare-all", "--cap-drop", "ALL"]


def bubblewrap_status() -> tuple[bool, str]:
    """``(usable, why)``: whether bubblewrap is installed and can create a sandbox here (as the user it runs as)."""
    bwrap = shutil.which("bwrap")
    if bwrap is None:
        return False, "bubblewrap is not installed (Debian/Ubuntu: apt-get install bubblewrap)"
    probe = subprocess.run([bwrap, "--ro-bind", "/", "/", "--dev", "/dev", *_namespaces(), "true"],
                           capture_output=True, text=True, check=False)
    if probe.returncode != 0:
        return False, f"bubblewrap cannot create a sandbox here: {probe.stderr.strip()[:200]}"
    return True, "bubblewrap"


SYSTEM = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/etc", "/sys")


def _package_root() -> Path:
    """The folder holding the ``adaptertune_lite`` package this judge imported."""
    return Path(adaptertune_lite.__file__).resolve().parent.parent


def readable_paths() -> list[Path]:
    """What a sandboxed submission may read: the system, this Python and its packages, and nothing else
    (not your home, not the other submissions, not the hidden tests)."""
    prefixes = {sys.prefix, sys.base_prefix, sys.exec_prefix}
    packages = [p for p in sys.path if p.endswith(("site-packages", "dist-packages")) and Path(p).is_dir()]
    wanted = [p for p in SYSTEM if not Path(p).is_symlink()] + sorted(prefixes) + packages
    wanted.append(str(_package_root() / "adaptertune_lite"))  # an editable install lives outside site-packages
    found = sorted({Path(p).resolve() for p in wanted if Path(p).exists()})
    return [p for p in found if not any(q != p and q in p.parents for q in found)]  # drop paths inside others


def sandbox_prefix(workdir: Path) -> list[str]:
    """bubblewrap arguments: system and Python read-only, ``workdir`` writable, no network, own namespaces
    (user, process: whatever the submission starts dies with it), no capabilities."""
    args = ["bwrap"]
    bound = readable_paths() + [workdir]
    for parent in sorted({p for path in bound for p in path.parents if p != Path("/")}, key=lambda p: len(p.parts)):
        args += ["--perms", "0755", "--dir", str(parent)]  # the sandbox's own folders on the way, readable by its user
    for path in bound[:-1]:
        args += ["--ro-bind", str(path), str(path)]
    for link in SYSTEM:  # merged-/usr systems: /bin -> usr/bin, /lib64 -> usr/lib64, ...
        if Path(link).is_symlink():
            args += ["--symlink", os.readlink(link), link]
    return args + ["--dev", "/dev", "--proc", "/proc", "--bind", str(workdir), str(workdir), *_namespaces(),
                   "--die-with-parent", "--new-session", "--chdir", str(workdir), "--"]


# ----------------------------------------------------------------------------- the channel to one worker
class Channel:
    """The judge's end of one worker: probe requests out on its stdin, untrusted lines in from its report pipe.

    A reader thread parses each line as JSON (nothing else); answers are matched to requests by a random id
    made for each request. Everything else a line could say only adds to ``events`` (cells, cell errors),
    capped, or to ``unexpected``, a count shown to the lecturer."""

    def __init__(self, proc: subprocess.Popen, read_fd: int, deadline: float, sandboxed: bool):
        self.proc, self.deadline, self.sandboxed = proc, deadline, sandboxed
        self.lines: queue.Queue = queue.Queue()
        self.events: list[dict] = []
        self.unexpected = 0
        self.killed = False
        self.stopped: int | None = None
        self.stop: GradeStop | None = None  # once the worker is gone, every later probe ends the same way
        self.reader = threading.Thread(target=self._read, args=(read_fd,), daemon=True)
        self.reader.start()

    def _read(self, fd: int) -> None:
        kept = 0
        with os.fdopen(fd, "rb") as stream:
            while line := stream.readline(MAX_LINE + 1):
                if kept >= MAX_EVENTS or len(line) > MAX_LINE:
                    self.unexpected += 1
                    continue
                kept += 1
                try:
                    event = json.loads(line)
                except (ValueError, RecursionError):
                    event = None
                if isinstance(event, dict):
                    self.lines.put(event)
                else:
                    self.unexpected += 1
        self.lines.put(None)  # the pipe closed: the worker (and everything it started) is gone

    def _next(self, until: float) -> dict | None:
        """The next line as a dict; None once the pipe closed; raises TimeoutError at ``until``."""
        left = until - time.monotonic()
        if left <= 0:
            raise TimeoutError
        try:
            event = self.lines.get(timeout=left)
        except queue.Empty:
            raise TimeoutError from None
        if event is None:
            self.lines.put(None)  # stays closed for whoever asks next
        return event

    def _note(self, event: dict) -> None:
        """A line that is not the answer waited for: a cell event, or unexpected."""
        if (set(event) == {"cell"} and type(event["cell"]) is int) or \
                (set(event) == {"left_running"} and type(event["left_running"]) is int) or \
                (set(event) == {"cell_error"} and isinstance(event["cell_error"], dict)):
            if len(self.events) < MAX_EVENTS:
                self.events.append(event)
        else:
            self.unexpected += 1

    def wait_ready(self) -> bool:
        """Collect cell events until the worker says the notebook ran; False if it died or ran out of time."""
        while True:
            try:
                event = self._next(self.deadline)
            except TimeoutError:
                self.kill()
                return False
            if event is None:
                return False
            if set(event) == {"ready"} and isinstance(event["ready"], dict):
                stopped = event["ready"].get("stopped")
                self.stopped = stopped if type(stopped) is int else None
                return True
            self._note(event)

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.killed = True
        _kill_group(self.proc)

    def ended(self) -> GradeStop:
        """Why no more answers come: the time limit, a resource cap, or the process ended."""
        if self.killed:
            return GradeStop("timeout", f"ran past the time limit (stopped in code cell {self.last_cell()})")
        try:
            code = self.proc.wait(5)
        except subprocess.TimeoutExpired:
            self.kill()
            return GradeStop("error", "the report channel closed while the process ran on")
        sig = -code if code < 0 else code - 128 if self.sandboxed and code > 128 else 0
        if sig == signal.SIGXCPU:
            return GradeStop("limit", f"the CPU time limit stopped it in code cell {self.last_cell()}")
        return GradeStop("error", f"the process ended (exit code {code}) in code cell {self.last_cell()} "
                                 "before grading")

    def last_cell(self) -> int | None:
        return max((e["cell"] for e in self.events if "cell" in e), default=None)

    def runner(self, name: str, probe_name: str, args: tuple) -> Any:
        """One probe: send the request, wait for the answer with its id, decode it as untrusted data."""
        if self.stop is not None:
            raise self.stop
        rid = secrets.token_hex(8)
        left = self.deadline - time.monotonic()
        request = {"id": rid, "name": name, "probe": probe_name, "args": to_plain(list(args)),
                   "timeout": max(left - 2, 0.1)}
        watchdog = threading.Timer(max(left, 0.0), self.kill)  # a worker that never reads cannot block the judge
        watchdog.start()
        try:
            self.proc.stdin.write((json.dumps(request) + "\n").encode())
            self.proc.stdin.flush()
        except (BrokenPipeError, OSError, ValueError):
            pass  # the process is gone: the pipe's end says why
        finally:
            watchdog.cancel()
        while True:
            try:
                event = self._next(self.deadline)
            except TimeoutError:
                self.kill()
                self.stop = self.ended()
                raise self.stop from None
            if event is None:
                self.stop = self.ended()
                raise self.stop
            if event.get("id") == rid:
                return self._decode(event, name)
            self._note(event)

    def _decode(self, event: dict, name: str) -> Any:
        if "ok" in event:
            try:
                return from_plain(event["ok"])
            except (PlainDataError, RecursionError) as err:
                raise GradeStop("error", f"a malformed answer from the submission's process: {err}") from None
        raised = event.get("raised")
        if isinstance(raised, dict):
            kind, message = str(raised.get("type", ""))[:100], str(raised.get("message", ""))[:300]
            if kind == "NotImplementedError":
                raise NotImplementedError(message)
            raise StudentError(f"{kind}: {message}" if message else kind)
        if "missing" in event:
            if self.stopped is not None:
                raise GradeStop("timeout", f"not defined: {name}: the time limit stopped the notebook in code cell "
                                f"{self.stopped}")
            raise GradeStop("missing", f"not defined: {name} (was its cell deleted, renamed or left failing?)")
        if event.get("timeout") is True:
            raise GradeStop("timeout", "the check ran past the time limit (an endless loop?)")
        if event.get("limit") == "memory":
            raise GradeStop("limit", "the submission's code ran out of memory (its cap per submission)")
        raise GradeStop("error", "a malformed answer from the submission's process")

    def close(self) -> None:
        """Tell the worker to finish, give it a moment, then kill whatever is left of it."""
        try:
            self.proc.stdin.write(b'{"end": true}\n')
            self.proc.stdin.close()
        except (BrokenPipeError, OSError, ValueError):
            pass
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            pass
        _kill_group(self.proc)
        self.proc.wait()
        self.reader.join(5)
        while True:  # lines that came after the last answer
            try:
                event = self.lines.get_nowait()
            except queue.Empty:
                break
            if event is not None:
                self._note(event)


def _kill_group(proc: subprocess.Popen) -> None:
    """SIGKILL the worker's process group (unconfined: what it started and left running; in the sandbox,
    bubblewrap, whose process namespace takes everything inside with it)."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


# ----------------------------------------------------------------------------- one submission
def grade_submission(sub: Submission, timeout: float, sandboxed: bool, threads: int = 1,
                     limits: Limits | None = None, uid: int = SANDBOX_UID) -> Outcome:
    """Run one submission in a fresh, capped process and judge its answers to the tasks' probes here.
    ``uid``: the user a sandboxed submission runs as when this process is root (one per concurrent submission)."""
    limits = limits or Limits()
    sandbox = "bubblewrap" if sandboxed else "unconfined"
    tasks = tasks_of(sub.exercise) if sub.exercise else []
    workdir = Path(tempfile.mkdtemp(prefix="adaptertune-grade-"))
    try:
        notebook = workdir / "submission.ipynb"
        shutil.copyfile(sub.path, notebook, follow_symlinks=False)
        (workdir / "tmp").mkdir()
        as_user = sandboxed and os.geteuid() == 0
        if as_user:
            for path in (workdir, notebook, workdir / "tmp"):
                os.chown(path, uid, uid)
        read_end, write_end = os.pipe()
        cpu_s = limits.cpu_for(timeout, threads)
        cmd = [sys.executable, "-m", "adaptertune_lite.grading.worker", str(notebook), "--timeout", str(timeout),
               "--report-fd", str(write_end), "--memory-mb", str(limits.memory_mb), "--cpu-s", str(cpu_s)]
        if sandboxed:
            cmd = sandbox_prefix(workdir) + cmd + ["--max-procs", str(limits.max_procs)] + \
                (["--user", str(uid)] if as_user else [])
        python_path = [str(_package_root())] + [p for p in [os.environ.get("PYTHONPATH")] if p]
        env = {**os.environ, "ADAPTERTUNE_GRADING": "1", "ADAPTERTUNE_FAST": "1", "MPLBACKEND": "Agg",
               "HOME": str(workdir), "TMPDIR": str(workdir / "tmp"), "ADAPTERTUNE_RUNS": str(workdir / "runs"),
               "MPLCONFIGDIR": str(workdir / ".matplotlib"), "IPYTHONDIR": str(workdir / ".ipython"),
               "XDG_CACHE_HOME": str(workdir / ".cache"), "OMP_NUM_THREADS": str(threads),
               "PYTHONDONTWRITEBYTECODE": "1",
               "PYTHONPATH": os.pathsep.join(python_path)}  # the worker imports the very copy this judge imported
        with tempfile.TemporaryFile() as log:  # the process's own stdout/stderr, outside its folder
            proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.PIPE,
                                    pass_fds=(write_end,), cwd=workdir, env=env, start_new_session=True)
            os.close(write_end)
            channel = Channel(proc, read_end, time.monotonic() + timeout + GRACE_S, sandboxed)
            grades: dict[str, Grade] = {}
            stop = None
            if channel.wait_ready():
                for t in tasks:
                    grades[t.id] = run_task(t, *(Student(n, channel.runner) for n in t.needs))
            else:
                stop = channel.ended()
            channel.close()
            log_size = log.seek(0, 2)
            log.seek(max(0, log_size - 400))
            log_tail = (log.read().decode(errors="replace").strip().splitlines() or [""])[-1]
        if stop is not None and stop.status == "error" and not channel.killed and channel.last_cell() is None:
            stop = GradeStop("error", f"the grading process failed to start (exit code {proc.returncode}): "
                                         f"{log_tail[:200]}")
        for t in tasks:
            if t.id not in grades:
                status, reason = (stop.status, stop.reason) if stop else ("not_run", "")
                grades[t.id] = Grade(t.id, 0.0, t.points, status, reason)
        outcome = Outcome(sub, [grades[t.id] for t in tasks], sandbox, _cell_errors(channel.events))
        if log_size > 50_000_000:
            outcome.cell_errors.append(f"wrote {log_size:,} bytes of raw output")
        left = sum(e["left_running"] for e in channel.events if "left_running" in e)
        if left:
            outcome.cell_errors.append(f"{left} process(es) it started were still running at the end and were killed")
        if channel.unexpected:
            outcome.review.append(Review(f"the report channel carried {channel.unexpected} line(s) the grader did not "
                                         "ask for (written by the notebook's code?); they were ignored"))
        outcome.review += reference_use(notebook_sources(sub.path), tasks)
        return outcome
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def _cell_errors(events: list[dict]) -> list[str]:
    errors = []
    for e in events:
        if "cell_error" not in e:
            continue
        cell, error = e["cell_error"].get("cell"), str(e["cell_error"].get("error", ""))[:300]
        errors.append(f"cell {cell}: {error}" if type(cell) is int else error)
    return errors[:MAX_ERRORS] + ([f"... and {len(errors) - MAX_ERRORS} more"] if len(errors) > MAX_ERRORS else [])


def notebook_sources(path: Path) -> list[str]:
    """The code cells of a notebook file, read as data (never run here); [] for anything unreadable."""
    try:
        nb = json.loads(path.read_text(errors="replace"))
        return [c["source"] if isinstance(c["source"], str) else "".join(c["source"])
                for c in nb["cells"] if isinstance(c, dict) and c.get("cell_type") == "code"]
    except Exception:  # noqa: BLE001  (not a notebook: nothing to scan)
        return []


def reference_use(sources: list[str], tasks: list[Task]) -> list[Review]:
    """Review notes: graded functions or classes whose code calls the kit's reference implementation of
    their task (by attribute, ``drift.linear_cka``, or imported from ``adaptertune_lite``). Static and
    best effort: code that hides the call (``getattr``, ``importlib``, ``exec``) is not found."""
    defined: dict[str, ast.AST] = {}
    imported: set[str] = set()
    for source in sources:
        if len(source) > 200_000:
            continue
        try:
            tree = ast.parse(TransformerManager().transform_cell(source))
        except Exception:  # noqa: BLE001  (a cell that does not parse: nothing to scan)
            continue
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                defined[node.name] = node
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("adaptertune_lite"):
                imported |= {a.asname or a.name for a in node.names}
    notes = []
    for t in tasks:
        refs = REFERENCES.get(t.id, set())
        for name in t.needs:
            node = defined.get(name)
            if node is None or not refs:
                continue
            body = list(node.bases) + node.body if isinstance(node, ast.ClassDef) else node.body
            found = [n for part in body for n in ast.walk(part)]
            used = {n.attr for n in found if isinstance(n, ast.Attribute) and n.attr in refs}
            used |= {n.id for n in found if isinstance(n, ast.Name) and n.id in refs & imported}
            if used:
                notes.append(Review(f"{t.id}: `{name}` uses the kit's reference implementation "
                                    f"({', '.join(sorted(used))}): check that the answer is the student's own", t.id))
    return notes


# ----------------------------------------------------------------------------- the CSV and the feedback
def _cell(value: Any, limit: int = 500) -> Any:
    """A CSV cell that cannot break the table or run as a spreadsheet formula: one line, capped, and text
    starting with = + - @ prefixed with an apostrophe."""
    if not isinstance(value, str):
        return value
    text = re.sub(r"[\x00-\x1f\x7f\u2028\u2029]+", " ", value)[:limit]
    return "'" + text if text[:1] in ("=", "+", "-", "@") else text


def rows(outcome: Outcome) -> list[dict]:
    """CSV rows of one outcome: one per task (one row saying so for a notebook not graded)."""
    sub = outcome.submission
    base = {"student": sub.student, "notebook": sub.exercise or "", "sandbox": outcome.sandbox, "file": sub.path.name}
    if sub.problem:
        table = [{**base, "task": "", "points": 0, "max": 0, "status": "rejected", "reason": sub.problem}]
    elif sub.exercise is None:
        table = [{**base, "task": "", "points": 0, "max": 0, "status": "unidentified",
                  "reason": "no exNN in the file name and no exercise's checks in it: rename it as the exercise "
                            "(e.g. ex01_adapter.ipynb)"}]
    else:
        flagged = {r.task for r in outcome.review if r.task}
        table = [{**base, "task": g.task, "points": f"{g.points:g}", "max": f"{g.max_points:g}", "status": g.status,
                  "reason": g.reason + (" [review: the kit's reference implementation]" if g.task in flagged else "")}
                 for g in outcome.grades]
    return [{k: _cell(v) for k, v in r.items()} for r in table]


FENCE = "`" * 3


def _text(value: str) -> str:
    """Student-controlled text in the Markdown feedback: no code fences, no raw HTML, no runaway length."""
    return value.replace(FENCE, "'" * 3).replace("<", "&lt;")[:4000]


def feedback(student: str, outcomes: list[Outcome]) -> str:
    """The Markdown feedback file of one student."""
    lines = [f"# Feedback for {_text(_cell(student, 200))}", ""]
    for o in outcomes:
        got, out_of = sum(g.points for g in o.grades), sum(g.max_points for g in o.grades)
        name = _text(_cell(o.submission.path.name, 200))
        lines += [f"## {o.submission.exercise or 'unidentified notebook'} ({name}): {got:g} / {out_of:g} points", ""]
        if o.submission.exercise is None or o.submission.problem:
            lines += [rows(o)[0]["reason"], ""]
        for g in o.grades:
            lines += [FENCE, _text(g.report()), FENCE, ""]
        if o.cell_errors:
            lines += ["Cells that raised when the grader ran your notebook:", ""] + \
                [f"- {_text(_cell(e, 300))}" for e in o.cell_errors] + [""]
        if o.review:
            lines += ["For the lecturer's review:", ""] + [f"- {_text(r.note)}" for r in o.review] + [""]
    return "\n".join(lines)


def _feedback_names(students: list[str]) -> dict[str, str]:
    """A distinct, safe file name per student (``a b`` and ``a_b`` do not overwrite each other)."""
    names: dict[str, str] = {}
    taken: set[str] = set()
    for student in sorted(students):
        base = _safe(student)[:100]
        name, n = base, 1
        while name.lower() in taken:
            n += 1
            name = f"{base}-{n}"
        taken.add(name.lower())
        names[student] = name
    return names


def grade(submissions: str | os.PathLike, out: str | os.PathLike, tests: str | os.PathLike | None = None,
          timeout: float = 120.0, jobs: int | None = None, sandbox: str = "auto",
          feedback_dir: str | os.PathLike | None = None,
          progress: bool = True, limits: Limits | None = None) -> list[dict]:
    """Grade every submission; write the CSV ``out`` and ``feedback_dir/STUDENT.md``; return the rows.

    ``sandbox``: ``"auto"`` (bubblewrap when usable, otherwise unconfined, said loudly),
    ``"bwrap"`` (refuse to run without it) or ``"none"``. ``limits``: memory, processes, CPU time.
    Hidden tests (``tests``) are loaded in this process only, and unloaded when grading ends.
    """
    if sandbox not in ("auto", "bwrap", "none"):
        raise ValueError(f"sandbox must be 'auto', 'bwrap' or 'none', not {sandbox!r}.")
    if tests is not None and not Path(tests).is_dir():
        raise FileNotFoundError(f"--tests {tests}: not a folder of hidden-test .py files.")
    course = dict(TASKS)
    try:
        if tests is not None:  # a hidden test whose id is a course task's raises ValueError: it never replaces one
            load_tests({p.name: p.read_text() for p in sorted(Path(tests).glob("*.py"))})
        return _grade(submissions, out, timeout, jobs, sandbox, feedback_dir, progress, limits or Limits())
    finally:  # hidden tests stay out of whatever this process does next, even if one failed to load
        TASKS.clear()
        TASKS.update(course)


def _grade(submissions, out, timeout: float, jobs: int | None, sandbox: str, feedback_dir, progress: bool,
           limits: Limits) -> list[dict]:
    usable, why = bubblewrap_status() if sandbox != "none" else (False, "sandbox switched off (--sandbox none)")
    if sandbox == "bwrap" and not usable:
        raise RuntimeError(f"--sandbox bwrap: {why}.")
    if not usable:
        print(f"WARNING: submissions run UNCONFINED: {why}. They can read and write whatever you can; "
              "see README, 'Grading a class'.", file=sys.stderr)
    subs = find_submissions(submissions)
    graded = [s for s in subs if s.exercise and not s.problem]
    jobs = jobs or max(1, min(len(graded), os.cpu_count() or 1))
    threads = max(1, (os.cpu_count() or 1) // jobs)
    outcomes = [Outcome(s, [], "not run") for s in subs if s not in graded]
    uids: queue.Queue = queue.Queue()
    for k in range(jobs):
        uids.put(SANDBOX_UID + k)

    def one(sub: Submission) -> Outcome:
        uid = uids.get()
        try:
            return grade_submission(sub, timeout, usable, threads, limits, uid)
        finally:
            uids.put(uid)

    with ThreadPoolExecutor(jobs) as pool:
        futures = {pool.submit(one, s): s for s in graded}
        done = as_completed(futures)
        for f in tqdm(done, total=len(futures), desc="grading", unit="submission", disable=not progress):
            outcomes.append(f.result())
    outcomes.sort(key=lambda o: (o.submission.student, o.submission.exercise or "", str(o.submission.path)))
    table = [r for o in outcomes for r in rows(o)]
    with atomic_path(out) as tmp, open(tmp, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=COLUMNS)
        writer.writeheader()
        writer.writerows(table)
    folder = Path(feedback_dir) if feedback_dir is not None else Path(out).with_name(Path(out).stem + "_feedback")
    by_student: dict[str, list[Outcome]] = {}
    for o in outcomes:
        by_student.setdefault(o.submission.student, []).append(o)
    names = _feedback_names(list(by_student))
    for student, its in by_student.items():
        with atomic_path(folder / f"{names[student]}.md") as tmp:
            Path(tmp).write_text(feedback(student, its))
    return table


def _safe(name: str) -> str:
    return re.sub(r"[^\w.-]+", "_", name).strip("._") or "student"
