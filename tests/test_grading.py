"""Graded exercises: one source for exercises and solutions, self-checks that teach, and a batch
grader that gives every submission its rows whatever the submission does.

The batch grader runs once over a whole fixture class (module-scoped), and each test below reads
the part of the result it is about."""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from IPython.core.interactiveshell import InteractiveShell
from IPython.utils.capture import capture_output

import adaptertune_lite as at
from adaptertune_lite.course import cli
from adaptertune_lite.grading import build, check, grader, tasks_of
from adaptertune_lite.grading.tasks import TASKS
from helpers import ROOT

EXERCISES = sorted(p.stem for p in (ROOT / "exercises").glob("ex*.ipynb"))


# ----------------------------------------------------------------------------- one source
MASTER = '''# %% [markdown]
# # A tiny exercise

# %%
def double(x):
    """Twice x."""
    ### BEGIN SOLUTION
    return 2 * x
    ### END SOLUTION
'''


def test_a_master_splits_into_a_stub_and_a_solution():
    exercise, solution = build.split(MASTER)
    assert "    # YOUR CODE HERE\n    raise NotImplementedError\n" in exercise
    assert "return 2 * x" not in exercise and "BEGIN SOLUTION" not in exercise
    assert "    return 2 * x\n" in solution and "SOLUTION" not in solution
    namespace = {}
    exec(solution.split("# %%\n")[1], namespace)
    assert namespace["double"](3) == 6


@pytest.mark.parametrize("broken, message", [
    (MASTER.replace("    ### END SOLUTION\n", ""), "never closed"),
    (MASTER.replace("    ### BEGIN SOLUTION\n", ""), "without a"),
    (MASTER.replace("    return 2 * x\n", "    ### BEGIN SOLUTION\n    return 2 * x\n"), "inside another"),
    (MASTER.replace("# # A tiny exercise", "# ### BEGIN SOLUTION"), "own line in a code cell"),
    (MASTER.replace("    return 2 * x\n", "    return 2 * x  ### END SOLUTION\n"), "own line"),
    ("# %%\n### BEGIN SOLUTION\nx = 1\n### END SOLUTION\n", "function or method body"),
    (MASTER.replace("    ### END SOLUTION\n", "") + "\n# %%\nprint(1)\n", "not closed before the next cell"),
    ("# %%\nx = 1\n", "no ### BEGIN SOLUTION"),
])
def test_malformed_markers_are_refused_with_the_line(broken, message):
    with pytest.raises(build.MarkerError, match=message):
        build.split(broken, "ex99.py")


def test_generated_exercises_and_solutions_are_up_to_date():
    stale = build.build(ROOT, check=True)
    assert not stale, f"run `adaptertune-lite build-exercises`: stale {stale}"
    assert len(build.masters(ROOT)) >= 6 and len(EXERCISES) == len(build.masters(ROOT))


def test_build_exercises_cli_writes_deterministically_and_reports_stale_files(tmp_path, capsys):
    (tmp_path / "exercises" / "src").mkdir(parents=True)
    (tmp_path / "exercises" / "src" / "ex99_tiny.py").write_text(MASTER)
    build_cli = ["build-exercises", "--root", str(tmp_path)]
    assert cli.main(build_cli + ["--check"]) == 1
    assert cli.main(build_cli) == 0
    first = {p: p.read_bytes() for p in tmp_path.rglob("ex99_tiny.*")}
    assert len(first) == 5  # master, and .py + .ipynb in exercises/ and solutions/
    assert cli.main(build_cli + ["--check"]) == 0
    for folder in ("exercises", "solutions"):
        assert json.loads((tmp_path / folder / "ex99_tiny.ipynb").read_text())["cells"][1]["id"] == "cell-001"
    (tmp_path / "solutions" / "ex99_tiny.py").write_text("edited by hand\n")
    assert cli.main(build_cli + ["--check"]) == 1
    assert cli.main(build_cli) == 0
    assert {p: p.read_bytes() for p in tmp_path.rglob("ex99_tiny.*")} == first
    (tmp_path / "exercises" / "src" / "ex99_tiny.py").write_text(MASTER.replace("    ### END SOLUTION\n", ""))
    assert cli.main(build_cli) == 2
    assert "never closed" in capsys.readouterr().err


@pytest.mark.parametrize("master", build.masters(ROOT), ids=lambda p: p.stem)
def test_no_solution_text_leaks_into_the_exercise(master):
    blocks = build.solution_blocks(master.read_text())
    assert blocks, "every master has answers"
    exercise = (ROOT / "exercises" / master.name).read_text()
    for block in blocks:
        for line in block.splitlines():
            if len(line.strip()) > 12:  # skip trivial lines such as `return model`
                assert line.strip() not in exercise, f"{master.name}: solution line leaks: {line.strip()!r}"


def test_every_exercise_has_2_to_4_graded_tasks_and_states_its_points():
    for name in EXERCISES:
        ex = name.split("_")[0]
        tasks = tasks_of(ex)
        assert 2 <= len(tasks) <= 4, name
        text = (ROOT / "exercises" / f"{name}.py").read_text()
        assert f"({sum(t.points for t in tasks):g} points)" in text, f"{name}: title states the total"
        for t in tasks:
            assert f"`{t.id}`" in text and f'check("{t.id}"' in text, f"{name}: {t.id} listed and self-checked"


# ----------------------------------------------------------------------------- self-checks
def test_a_self_check_scores_in_parts_and_says_where_to_look(capsys):
    class RandomUpAdapter(at.Adapter):  # right shape and forward, but W_up not zero: the classic slip
        def __init__(self, dim, rank):
            super().__init__(dim, rank, init="random")

    grade = check("ex01.adapter", RandomUpAdapter)
    printed = capsys.readouterr().out
    assert (grade.status, grade.points, grade.max_points) == ("partial", 3.0, 4.0)
    assert "PARTIAL  ex01.adapter  3/4 points" in printed
    assert "expected A(h) == 0 exactly" in printed and "nn.init.zeros_" in printed


def test_check_in_jupyter_shows_the_report_once_and_not_the_grade_repr():
    shell = InteractiveShell.instance()
    shell.user_ns.update(check=check, count=lambda d, r: 2 * d * r + r + d)
    with capture_output() as shown:
        shell.run_cell('check("ex01.param_count", count)', store_history=True)  # the last expression of a cell
    assert shown.stdout.count("PASS  ex01.param_count  1/1 points") == 1
    assert "Grade(" not in shown.stdout and not shown.outputs
    with capture_output() as shown:
        shell.run_cell('grade = check("ex01.param_count", count)\ngrade', store_history=True)
    assert shown.stdout.count("PASS  ex01.param_count") == 1  # printed by check, not shown again
    with capture_output() as shown:
        shell.run_cell("grade", store_history=True)
    assert shown.stdout.count("PASS  ex01.param_count") == 1  # shown on its own: the report, not the repr


def test_pasted_values_cannot_pass_because_inputs_are_fresh_each_time():
    answers = {}

    def remembered(d, r):  # a student who pasted the answer for one (d, r) they saw
        return answers.setdefault((d, r), 2 * d * r + r + d) if not answers else next(iter(answers.values()))

    results = {check("ex01.param_count", remembered).status for _ in range(3)}
    assert "fail" in results


def test_check_refuses_unknown_tasks_and_wrong_arity():
    with pytest.raises(KeyError, match="Known tasks"):
        check("ex01.nope", print)
    with pytest.raises(TypeError, match="takes 1 object"):
        check("ex01.adapter", print, print)


# ----------------------------------------------------------------------------- the fixture class
def _notebook(path: Path) -> dict:
    return json.loads(path.read_text())


def _code(nb: dict) -> list[dict]:
    return [c for c in nb["cells"] if c["cell_type"] == "code"]


def _new_cell(source: str) -> dict:
    return {"cell_type": "code", "execution_count": None, "id": f"x{abs(hash(source)) % 10**8}", "metadata": {},
            "outputs": [], "source": source}


def _write(path: Path, nb: dict | str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(nb if isinstance(nb, str) else json.dumps(nb))


def _with_cell(nb: dict, source: str, before: str | None = None) -> dict:
    """``nb`` with a new code cell, appended or placed before the first cell containing ``before``."""
    nb = json.loads(json.dumps(nb))
    i = next(i for i, c in enumerate(nb["cells"]) if before in "".join(c["source"])) if before else len(nb["cells"])
    nb["cells"].insert(i, _new_cell(source))
    return nb


def _edit(nb: dict, old: str, new: str) -> dict:
    text = json.dumps(nb)
    assert json.dumps(old)[1:-1] in text, old
    return json.loads(text.replace(json.dumps(old)[1:-1], json.dumps(new)[1:-1]))


HIDDEN_TEST = '''
from adaptertune_lite.grading import task

@task("ex03.hidden_zero_up", points=1, needs=("adapter_grads",), title="hidden: W_down's gradient vanishes when W_up = 0")
def _(c, adapter_grads):
    import torch
    g = adapter_grads(c.randn(3, 5), torch.zeros(3), torch.zeros(5, 3), torch.zeros(5), c.randn(4, 5), c.randn(4, 5))
    c.part("dL/dW_down == 0 exactly", 1, bool(torch.equal(g["W_down"], torch.zeros(3, 5))), "W_up = 0 blocks the path")
'''

HACK = """from adaptertune_lite.grading import tasks as _t
for k, v in list(_t.TASKS.items()):  # every check replaced by one that awards full points
    _t.TASKS[k] = _t.Task(v.id, v.points, v.needs, lambda c, *a, p=v.points: c.part("hacked", p, True), v.title)
_t.run_task = lambda t, *a: _t.Grade(t.id, t.points, t.points, "pass", "hacked")
"""

TIMEOUT = 20  # seconds per submission in the fixture class


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    """Grade a class built from ex03 (complete, blank, partly right, broken, ...) plus every solution
    and every stub, with one hidden test; return the CSV rows, the feedback folder and the outside file."""
    root = tmp_path_factory.mktemp("class")
    subs, outside = root / "submissions", root / "outside.txt"
    solution, stub = _notebook(ROOT / "solutions" / "ex03_gradients.ipynb"), _notebook(ROOT / "exercises" / "ex03_gradients.ipynb")
    ex03 = "ex03_gradients.ipynb"
    _write(subs / "complete" / ex03, solution)
    _write(subs / "blank" / ex03, stub)
    _write(subs / "partial" / ex03, _edit(solution, "dz = (g @ W_up) * (Phi + z * phi)", "dz = g @ W_up"))
    _write(subs / "broken" / ex03, _edit(_with_cell(solution, "raise RuntimeError('oops')", before="def adapter_grads"),
                                         "nn.init.zeros_(adapter.up.bias)", "nn.init.zeros_(adapter.up.bais)"))
    _write(subs / "tampered" / ex03, _with_cell(stub, "def check(*args, **kwargs):\n    print('PASS 5/5 points')\n",
                                                before="def adapter_grads"))
    _write(subs / "hacker" / ex03, _with_cell(stub, HACK, before="def adapter_grads"))
    _write(subs / "loop" / ex03, _with_cell(solution, "while True:\n    pass", before="def adaptertune_init_"))
    _write(subs / "stubborn" / ex03, _with_cell(solution, "import time\nwhile True:\n    try:\n        time.sleep(0.1)\n"
                                                "    except BaseException:\n        pass"))
    _write(subs / "renamed" / "Copy of ex03_gradients (1).ipynb", solution)
    _write(subs / "nameless" / "my homework.ipynb", solution)
    _write(subs / "escape" / ex03, _with_cell(solution, f"open({str(outside)!r}, 'w').write('escaped')"))
    snoop = ("leaks = []\nfor path in [%r, %r]:\n    try:\n        leaks.append(open(path).read()[:200])\n"
             "    except OSError as err:\n        leaks.append(type(err).__name__)\nraise RuntimeError('LEAK ' + ' | '.join(leaks))"
             % (str(root / "hidden" / "test_ex03.py"), str(subs / "complete" / ex03)))
    _write(subs / "snoop" / ex03, _with_cell(solution, snoop))
    _write(subs / "exits" / ex03, _with_cell(_with_cell(solution, "import os\nos._exit(3)"), "import sys\nsys.exit(1)",
                                             before="def adapter_grads"))
    _write(subs / "killed" / ex03, _with_cell(solution, "import os, signal\nos.kill(os.getpid(), signal.SIGKILL)",
                                              before="def adaptertune_init_"))
    _write(subs / "flood" / ex03, _with_cell(solution, "print('x' * 5_000_000)"))
    deleted = json.loads(json.dumps(solution))
    deleted["cells"] = [c for c in deleted["cells"] if "def adaptertune_init_" not in "".join(c["source"])]
    _write(subs / "deleted" / ex03, deleted)
    reordered = json.loads(json.dumps(solution))
    i = next(i for i, c in enumerate(reordered["cells"]) if "def adapter_grads" in "".join(c["source"]))
    j = next(i for i, c in enumerate(reordered["cells"]) if "def adaptertune_init_" in "".join(c["source"]))
    reordered["cells"][i], reordered["cells"][j] = reordered["cells"][j], reordered["cells"][i]
    _write(subs / "reordered" / ex03, reordered)
    _write(subs / "garbage" / ex03, "this is not JSON")
    _write(subs / "stranger" / "notes.ipynb", {"cells": [], "metadata": {}, "nbformat": 4, "nbformat_minor": 5})
    for name in EXERCISES:
        shutil.copy(ROOT / "solutions" / f"{name}.ipynb", _mk(subs / "all_solutions") / f"{name}.ipynb")
        shutil.copy(ROOT / "exercises" / f"{name}.ipynb", _mk(subs / "all_stubs") / f"{name}.ipynb")
    hidden = _mk(root / "hidden")
    (hidden / "test_ex03.py").write_text(HIDDEN_TEST)
    out = root / "grades.csv"
    grader.grade(subs, out, tests=hidden, timeout=TIMEOUT, sandbox="auto", progress=False)
    with open(out, newline="") as fh:
        rows = list(csv.DictReader(fh))
    TASKS.pop("ex03.hidden_zero_up", None)  # hidden tests stay out of the rest of the session
    return rows, root / "grades_feedback", outside


def _mk(p: Path) -> Path:
    p.mkdir(parents=True, exist_ok=True)
    return p


def _by_student(rows, student):
    return {r["task"]: (float(r["points"]), r["status"]) for r in rows if r["student"] == student}


FULL = {"ex03.backprop": (3.0, "pass"), "ex03.init": (2.0, "pass"), "ex03.hidden_zero_up": (1.0, "pass")}


@pytest.mark.slow
def test_the_fixture_class_gets_exactly_the_expected_grades(graded):
    rows, _, _ = graded
    expected = {
        "complete": FULL, "renamed": FULL, "nameless": FULL, "reordered": FULL, "flood": FULL, "exits": FULL,
        "escape": FULL, "snoop": FULL,  # the attempts raise in their own cell and cost nothing else
        "blank": {"ex03.backprop": (0.0, "not_implemented"), "ex03.init": (0.0, "not_implemented"),
                  "ex03.hidden_zero_up": (0.0, "not_implemented")},
        "hacker": {"ex03.backprop": (0.0, "not_implemented"), "ex03.init": (0.0, "not_implemented"),
                   "ex03.hidden_zero_up": (0.0, "not_implemented")},
        "tampered": {"ex03.backprop": (0.0, "not_implemented"), "ex03.init": (0.0, "not_implemented"),
                     "ex03.hidden_zero_up": (0.0, "not_implemented")},
        "partial": {"ex03.backprop": (1.5, "partial"), "ex03.init": (2.0, "pass"), "ex03.hidden_zero_up": (1.0, "pass")},
        "broken": {"ex03.backprop": (3.0, "pass"), "ex03.init": (0.0, "error"), "ex03.hidden_zero_up": (1.0, "pass")},
        "loop": {"ex03.backprop": (3.0, "pass"), "ex03.init": (0.0, "timeout"), "ex03.hidden_zero_up": (1.0, "pass")},
        "stubborn": {"ex03.backprop": (0.0, "timeout"), "ex03.init": (0.0, "timeout"), "ex03.hidden_zero_up": (0.0, "timeout")},
        "killed": {"ex03.backprop": (0.0, "error"), "ex03.init": (0.0, "error"), "ex03.hidden_zero_up": (0.0, "error")},
        "deleted": {"ex03.backprop": (3.0, "pass"), "ex03.init": (0.0, "missing"), "ex03.hidden_zero_up": (1.0, "pass")},
        "garbage": {"ex03.backprop": (0.0, "missing"), "ex03.init": (0.0, "missing"), "ex03.hidden_zero_up": (0.0, "missing")},
        "stranger": {"": (0.0, "unidentified")},
    }
    for student, want in expected.items():
        assert _by_student(rows, student) == want, student
    assert {r["file"] for r in rows if r["student"] == "renamed"} == {"Copy of ex03_gradients (1).ipynb"}
    assert {r["sandbox"] for r in rows if r["status"] != "unidentified"} <= {"bubblewrap", "unconfined"}
    assert set(rows[0]) == set(grader.COLUMNS)


@pytest.mark.slow
def test_solutions_pass_every_check_and_stubs_fail_every_task_with_notimplementederror_only(graded):
    rows, _, _ = graded
    solutions = [r for r in rows if r["student"] == "all_solutions"]
    stubs = [r for r in rows if r["student"] == "all_stubs"]
    course_tasks = {t.id for t in TASKS.values() if t.notebook in {n.split("_")[0] for n in EXERCISES}}
    assert {r["task"] for r in solutions} == {r["task"] for r in stubs} >= course_tasks
    assert all(r["status"] == "pass" and r["points"] == r["max"] for r in solutions), solutions
    assert all(r["status"] == "not_implemented" and float(r["points"]) == 0 for r in stubs), stubs


@pytest.mark.slow
def test_reasons_and_feedback_say_what_happened(graded):
    rows, feedback, _ = graded
    reason = {(r["student"], r["task"]): r["reason"] for r in rows}
    assert "adaptertune_init_" in reason[("deleted", "ex03.init")]
    assert "time limit" in reason[("loop", "ex03.init")]
    assert "exit code" in reason[("killed", "ex03.init")]
    assert "AttributeError" in reason[("broken", "ex03.init")]
    assert "rename" in reason[("stranger", "")]
    partial = (feedback / "partial.md").read_text()
    assert "PARTIAL  ex03.backprop  1.5/3 points" in partial and "GELU'(z)" in partial
    assert "RuntimeError: oops" in (feedback / "broken.md").read_text()
    assert "the notebook printed 5,00" in (feedback / "flood.md").read_text()
    assert sorted(p.stem for p in feedback.glob("*.md")) == sorted({r["student"] for r in rows})


@pytest.mark.slow
def test_a_sandboxed_submission_can_neither_write_outside_its_folder_nor_read_hidden_tests_or_classmates(graded):
    rows, feedback, outside = graded
    sandbox = {r["sandbox"] for r in rows if r["student"] in ("escape", "snoop")}
    if sandbox != {"bubblewrap"}:
        assert not os.environ.get("ADAPTERTUNE_REQUIRE_BWRAP"), "CI requires bubblewrap"
        pytest.skip(f"bubblewrap unusable here ({grader.bubblewrap_status()[1]}): ran unconfined")
    assert not outside.exists()
    assert "Errno" in (feedback / "escape.md").read_text()
    snooped = (feedback / "snoop.md").read_text()
    assert "RuntimeError: LEAK FileNotFoundError | FileNotFoundError" in snooped
    assert "hidden:" not in snooped and "adapter_grads" not in snooped.split("LEAK")[1]


@pytest.mark.slow
def test_without_a_sandbox_the_csv_and_the_terminal_say_so(tmp_path, capfd):
    _write(tmp_path / "subs" / "solo" / "ex05_rank_elbow.ipynb", _notebook(ROOT / "solutions" / "ex05_rank_elbow.ipynb"))
    assert cli.main(["grade", str(tmp_path / "subs"), "--out", str(tmp_path / "g.csv"), "--sandbox", "none", "--timeout", "60"]) == 0
    out, err = capfd.readouterr()
    assert "UNCONFINED" in err and "solo" in out and "4 / 4" in out
    rows = list(csv.DictReader(open(tmp_path / "g.csv")))
    assert {r["sandbox"] for r in rows} == {"unconfined"} and len(rows) == 3


def test_bad_grader_input_gets_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="one sub-folder"):
        grader.grade(tmp_path / "nowhere", tmp_path / "g.csv")
    with pytest.raises(FileNotFoundError, match="hidden-test"):
        grader.grade(tmp_path, tmp_path / "g.csv", tests=tmp_path / "missing")
    with pytest.raises(ValueError, match="sandbox"):
        grader.grade(tmp_path, tmp_path / "g.csv", sandbox="docker")


# ----------------------------------------------------------------------------- the grader's own state
CLASHING_TEST = '''
from adaptertune_lite.grading import task

@task("ex03.init", points=1, needs=("adaptertune_init_",), title="hidden: a clash with a course task")
def _(c, adaptertune_init_):
    c.part("anything", 1, True)
'''


def test_a_hidden_test_cannot_replace_a_course_task_and_leaves_no_trace(tmp_path):
    (tmp_path / "subs").mkdir()
    (tmp_path / "hidden").mkdir()
    (tmp_path / "hidden" / "a_new.py").write_text(HIDDEN_TEST)  # loads first, then the clash stops the run
    (tmp_path / "hidden" / "b_clash.py").write_text(CLASHING_TEST)
    before = dict(TASKS)
    with pytest.raises(ValueError, match=r"b_clash.py: A task 'ex03.init' exists already"):
        grader.grade(tmp_path / "subs", tmp_path / "g.csv", tests=tmp_path / "hidden", progress=False)
    assert TASKS == before  # the course task kept, the hidden task that did load removed again


def test_one_function_sets_the_cpu_cap_for_the_grader_and_the_worker(monkeypatch):
    from adaptertune_lite.grading import worker  # noqa: PLC0415  (only this test needs the worker's internals)

    assert grader.Limits().cpu_for(120, 2) == worker.cpu_seconds(120, 2) == 250
    assert grader.Limits(cpu_s=30).cpu_for(120, 2) == 30
    monkeypatch.setenv("OMP_NUM_THREADS", "2")
    assert worker._threads() == 2
    monkeypatch.setenv("OMP_NUM_THREADS", "many")
    assert worker._threads() == 1
    with capture_output() as shown, pytest.raises(SystemExit):
        worker.main(["--help"])
    assert worker.CPU_RULE in " ".join(shown.stdout.split())


def test_review_notes_flag_their_task_as_data():
    notes = grader.reference_use(["from adaptertune_lite.drift import linear_cka\n"
                                  "def linear_cka_mine(X, Y):\n    return 1.0\n"
                                  "def cls_cka_per_block(model, reference, x):\n    return [linear_cka(x, x)]\n"], tasks_of("ex04"))
    assert [(n.task, "linear_cka" in n.note) for n in notes] == [("ex04.cls_cka", True)]


@pytest.mark.slow
def test_an_unsolved_exercise_runs_top_to_bottom_and_shows_every_fail_line(tmp_path):
    """What Run All does on a fresh exercise: no cell raises, and every task's check prints its FAIL line."""
    script = "import runpy, sys\nfor path in sys.argv[1:]:\n    runpy.run_path(path, run_name='__main__')\n"
    env = {**os.environ, "ADAPTERTUNE_FAST": "1", "ADAPTERTUNE_PROFILE": "kit", "MPLBACKEND": "Agg",
           "ADAPTERTUNE_RUNS": str(tmp_path / "runs")}
    env.pop("ADAPTERTUNE_GRADING", None)
    stubs = [str(ROOT / "exercises" / f"{name}.py") for name in EXERCISES]
    out = subprocess.run([sys.executable, "-c", script, *stubs], cwd=tmp_path, env=env, capture_output=True, text=True,
                         timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "Traceback" not in out.stderr and "{'torch'" not in out.stdout
    for t in (t for name in EXERCISES for t in tasks_of(name.split("_")[0])):
        assert f"FAIL  {t.id}  0/{t.points:g} points  (NotImplementedError" in out.stdout, t.id
    assert out.stdout.count("finish") >= len(EXERCISES)  # each demo says what to finish first
