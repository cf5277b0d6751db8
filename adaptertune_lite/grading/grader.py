"""The batch grader behind ``adaptertune-lite grade SUBMISSIONS --out grades.csv``.

Layout of ``SUBMISSIONS``: one folder per student holding their notebooks
(``SUBMISSIONS/alice/ex01_adapter.ipynb``), or notebooks directly inside, one per student
(``SUBMISSIONS/alice_ex01.ipynb``: the student is the file's name). A notebook is matched to its
exercise by ``exNN`` in its file name ("Copy of ex01_adapter (2).ipynb" works), else by the
``check("exNN...`` calls and graded names it contains.

Each submission runs in a fresh Python process (:mod:`.worker`) in its own temporary folder with a
time limit, under bubblewrap when it is installed: the whole file system read-only except that
folder, no network, its own process tree. The worker loads the checks before the student's code
runs and grades the objects the notebook defined. Every submission gets one CSV row per task
whatever it does (loops, exits, crashes, deleted cells, floods of output), and every student a
Markdown feedback file. Threat model: README, "Grading a class".
"""

from __future__ import annotations

import csv
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path

from ..storage import atomic_path
from .tasks import TASKS, Grade, Part, tasks_of

COLUMNS = ("student", "notebook", "task", "points", "max", "status", "reason", "sandbox", "file")
GRACE_S = 15.0  # on top of --timeout: process start-up, imports, bubblewrap


@dataclass
class Submission:
    student: str
    path: Path
    exercise: str | None


@dataclass
class Outcome:
    """What grading one submission produced."""

    submission: Submission
    grades: list[Grade]
    sandbox: str
    cell_errors: list[str] = field(default_factory=list)


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
    """Every notebook under ``folder``: ``folder/STUDENT/*.ipynb`` or ``folder/STUDENT.ipynb``."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder} is not a folder of submissions: give the folder that holds one "
                                "sub-folder (or one .ipynb) per student.")
    found = []
    for path in sorted(folder.rglob("*.ipynb")):
        if ".ipynb_checkpoints" in path.parts:
            continue
        rel = path.relative_to(folder)
        student = rel.parts[0] if len(rel.parts) > 1 else path.stem
        found.append(Submission(student, path, identify(path)))
    return found


def bubblewrap_status() -> tuple[bool, str]:
    """``(usable, why)``: whether bubblewrap is installed and can create a sandbox here."""
    bwrap = shutil.which("bwrap")
    if bwrap is None:
        return False, "bubblewrap is not installed (Debian/Ubuntu: apt-get install bubblewrap)"
    probe = subprocess.run([bwrap, "--ro-bind", "/", "/", "--dev", "/dev", "--unshare-all", "true"], capture_output=True, text=True)
    if probe.returncode != 0:
        return False, f"bubblewrap cannot create a sandbox here: {probe.stderr.strip()[:200]}"
    return True, "bubblewrap"


SYSTEM = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/etc", "/sys")


def readable_paths() -> list[Path]:
    """What a sandboxed submission may read: the system, this Python and its packages, and nothing else
    (not your home, not the other submissions, not the hidden tests)."""
    import adaptertune_lite

    prefixes = {sys.prefix, sys.base_prefix, sys.exec_prefix}
    packages = [p for p in sys.path if p.endswith(("site-packages", "dist-packages")) and Path(p).is_dir()]
    wanted = [p for p in SYSTEM if not Path(p).is_symlink()] + sorted(prefixes) + packages
    wanted.append(str(Path(adaptertune_lite.__file__).parent))  # an editable install lives outside site-packages
    found = sorted({Path(p).resolve() for p in wanted if Path(p).exists()})
    return [p for p in found if not any(q != p and q in p.parents for q in found)]  # drop paths inside others


def sandbox_prefix(workdir: Path) -> list[str]:
    """bubblewrap arguments: system and Python read-only, ``workdir`` writable, no network, own namespaces."""
    args = ["bwrap"]
    for path in readable_paths():
        args += ["--ro-bind", str(path), str(path)]
    for link in SYSTEM:  # merged-/usr systems: /bin -> usr/bin, /lib64 -> usr/lib64, ...
        if Path(link).is_symlink():
            args += ["--symlink", os.readlink(link), link]
    return args + ["--dev", "/dev", "--proc", "/proc", "--bind", str(workdir), str(workdir), "--unshare-all",
                   "--die-with-parent", "--new-session", "--chdir", str(workdir), "--"]


def grade_submission(sub: Submission, timeout: float, tests: dict[str, str] | None, sandboxed: bool, threads: int = 1) -> Outcome:
    """Run one submission in a fresh, time-limited process and collect its grades."""
    sandbox = "bubblewrap" if sandboxed else "unconfined"
    tasks = tasks_of(sub.exercise) if sub.exercise else []
    workdir = Path(tempfile.mkdtemp(prefix="adaptertune-grade-"))
    try:
        notebook = workdir / "submission.ipynb"
        shutil.copyfile(sub.path, notebook)
        (workdir / "tmp").mkdir()
        read_end, write_end = os.pipe()
        cmd = [sys.executable, "-m", "adaptertune_lite.grading.worker", str(notebook), "--exercise", sub.exercise,
               "--timeout", str(timeout), "--report-fd", str(write_end)]
        if tests:
            cmd += ["--tests-on-stdin"]  # sources through a pipe: the files stay invisible to the submission
        if sandboxed:
            cmd = sandbox_prefix(workdir) + cmd
        env = {**os.environ, "ADAPTERTUNE_GRADING": "1", "ADAPTERTUNE_FAST": "1", "MPLBACKEND": "Agg",
               "HOME": str(workdir), "TMPDIR": str(workdir / "tmp"), "ADAPTERTUNE_RUNS": str(workdir / "runs"),
               "MPLCONFIGDIR": str(workdir / ".matplotlib"), "IPYTHONDIR": str(workdir / ".ipython"),
               "XDG_CACHE_HOME": str(workdir / ".cache"), "OMP_NUM_THREADS": str(threads),
               "PYTHONDONTWRITEBYTECODE": "1"}
        with tempfile.TemporaryFile() as log:  # the process's own stdout/stderr, outside its folder
            proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.PIPE,
                                    pass_fds=(write_end,), cwd=workdir, env=env, start_new_session=True)
            os.close(write_end)
            try:
                proc.stdin.write(json.dumps(tests or {}).encode())
                proc.stdin.close()
            except BrokenPipeError:  # the process is already gone; its outcome says so
                pass
            events: list[dict] = []
            reader = threading.Thread(target=_read_events, args=(read_end, events), daemon=True)
            reader.start()
            try:
                proc.wait(timeout + GRACE_S)
                killed = False
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, 9)
                proc.wait()
                killed = True
            reader.join(10)
            log_size = log.seek(0, 2)
            log.seek(max(0, log_size - 400))
            log_tail = log.read().decode(errors="replace").strip().splitlines()[-1:] or [""]
        return _outcome(sub, tasks, events, sandbox, proc.returncode, killed, log_size, log_tail[0])
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def _read_events(fd: int, events: list[dict]) -> None:
    with os.fdopen(fd, errors="replace") as stream:
        for line in stream:
            try:
                events.append(json.loads(line))
            except json.JSONDecodeError:
                events.append({"cell_error": {"cell": None, "error": "garbled report line (the notebook wrote to the grader's channel?)"}})


def _outcome(sub: Submission, tasks, events: list[dict], sandbox: str, code: int, killed: bool, log_size: int,
             log_tail: str = "") -> Outcome:
    grades = {}
    for e in events:
        if "grade" in e and e["grade"].get("task") in {t.id for t in tasks}:
            g = e["grade"]
            grades[g["task"]] = Grade(g["task"], float(g["points"]), float(g["max_points"]), g["status"], g["reason"],
                                      [Part(**p) for p in g["parts"]])
    errors = [f"cell {e['cell_error']['cell']}: {e['cell_error']['error']}" if e["cell_error"]["cell"] is not None
              else e["cell_error"]["error"] for e in events if "cell_error" in e]
    last_cell = max((e["cell"] for e in events if "cell" in e), default=None)
    done = any(e.get("done") for e in events)
    if killed:
        why, status = f"ran past the time limit (stopped in code cell {last_cell})", "timeout"
    elif not done and last_cell is None:  # no student code ran: the grader's own start failed, say how
        why, status = f"the grading process failed to start (exit code {code}): {log_tail[:200]}", "error"
    elif not done:
        why, status = f"the process ended (exit code {code}) in code cell {last_cell} before grading", "error"
    else:
        why, status = "", "not_run"
    for t in tasks:
        if t.id not in grades:
            grades[t.id] = Grade(t.id, 0.0, t.points, status, why or "no grade reported")
    if log_size > 50_000_000:
        errors.append(f"wrote {log_size:,} bytes of raw output")
    return Outcome(sub, [grades[t.id] for t in tasks], sandbox, errors)


def rows(outcome: Outcome) -> list[dict]:
    """CSV rows of one outcome: one per task (one row saying so for a notebook of no known exercise)."""
    sub = outcome.submission
    base = {"student": sub.student, "notebook": sub.exercise or "", "sandbox": outcome.sandbox, "file": sub.path.name}
    if sub.exercise is None:
        return [{**base, "task": "", "points": 0, "max": 0, "status": "unidentified",
                 "reason": "no exNN in the file name and no exercise's checks in it: rename it as the exercise (e.g. ex01_adapter.ipynb)"}]
    return [{**base, "task": g.task, "points": f"{g.points:g}", "max": f"{g.max_points:g}", "status": g.status,
             "reason": g.reason} for g in outcome.grades]


def feedback(student: str, outcomes: list[Outcome]) -> str:
    """The Markdown feedback file of one student."""
    lines = [f"# Feedback for {student}", ""]
    for o in outcomes:
        got, out_of = sum(g.points for g in o.grades), sum(g.max_points for g in o.grades)
        lines += [f"## {o.submission.exercise or 'unidentified notebook'} ({o.submission.path.name}): {got:g} / {out_of:g} points", ""]
        if o.submission.exercise is None:
            lines += [rows(o)[0]["reason"], ""]
        for g in o.grades:
            lines += ["```", g.report(), "```", ""]
        if o.cell_errors:
            lines += ["Cells that raised when the grader ran your notebook:", ""] + [f"- {e}" for e in o.cell_errors] + [""]
    return "\n".join(lines)


def grade(submissions: str | os.PathLike, out: str | os.PathLike, tests: str | os.PathLike | None = None,
          timeout: float = 120.0, jobs: int | None = None, sandbox: str = "auto", feedback_dir: str | os.PathLike | None = None,
          progress: bool = True) -> list[dict]:
    """Grade every submission; write the CSV ``out`` and ``feedback_dir/STUDENT.md``; return the rows.

    ``sandbox``: ``"auto"`` (bubblewrap when usable, otherwise unconfined, said loudly),
    ``"bwrap"`` (refuse to run without it) or ``"none"``.
    """
    from tqdm.auto import tqdm

    from .worker import load_tests

    if sandbox not in ("auto", "bwrap", "none"):
        raise ValueError(f"sandbox must be 'auto', 'bwrap' or 'none', not {sandbox!r}.")
    hidden = None
    if tests is not None:
        if not Path(tests).is_dir():
            raise FileNotFoundError(f"--tests {tests}: not a folder of hidden-test .py files.")
        hidden = {p.name: p.read_text() for p in sorted(Path(tests).glob("*.py"))}
        load_tests(hidden)
    usable, why = bubblewrap_status() if sandbox != "none" else (False, "sandbox switched off (--sandbox none)")
    if sandbox == "bwrap" and not usable:
        raise RuntimeError(f"--sandbox bwrap: {why}.")
    if not usable:
        print(f"WARNING: submissions run UNCONFINED: {why}. They can read and write whatever you can; "
              "see README, 'Grading a class'.", file=sys.stderr)
    subs = find_submissions(submissions)
    jobs = jobs or max(1, min(len(subs), os.cpu_count() or 1))
    threads = max(1, (os.cpu_count() or 1) // jobs)
    outcomes: list[Outcome] = []
    with ThreadPoolExecutor(jobs) as pool:
        futures = {pool.submit(grade_submission, s, timeout, hidden, usable, threads): s for s in subs if s.exercise}
        outcomes += [Outcome(s, [], "not run") for s in subs if not s.exercise]
        for f in tqdm(as_completed(futures), total=len(futures), desc="grading", unit="submission", disable=not progress):
            outcomes.append(f.result())
    outcomes.sort(key=lambda o: (o.submission.student, o.submission.exercise or "", o.submission.path.name))
    table = [r for o in outcomes for r in rows(o)]
    with atomic_path(out) as tmp, open(tmp, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=COLUMNS)
        writer.writeheader()
        writer.writerows(table)
    folder = Path(feedback_dir) if feedback_dir is not None else Path(out).with_name(Path(out).stem + "_feedback")
    by_student: dict[str, list[Outcome]] = {}
    for o in outcomes:
        by_student.setdefault(o.submission.student, []).append(o)
    for student, its in by_student.items():
        with atomic_path(folder / f"{_safe(student)}.md") as tmp:
            Path(tmp).write_text(feedback(student, its))
    return table


def _safe(name: str) -> str:
    return re.sub(r"[^\w.-]+", "_", name).strip("._") or "student"
