"""Red team: attacks on the batch grader by a student who has read its source.

Each attack is a notebook of a fixture class graded once (module-scoped) with the sandbox and the
caps on; each test asserts the rows the attack must get. The judge decides every grade in its own
process from data it checks itself, so code in the student's process can forge messages, patch the
worker or walk its objects and still score nothing it did not compute. The last tests check the
plain-data decoder on malformed answers without running a grader."""

from __future__ import annotations

import base64
import csv
import json
import os
from pathlib import Path

import pytest
import torch
from test_grading import _edit, _notebook, _with_cell, _write

from adaptertune_lite.grading import grader
from adaptertune_lite.grading.tasks import (
    MAX_DEPTH,
    PlainDataError,
    from_plain,
    roundtrip,
    to_plain,
)
from helpers import ROOT

TIMEOUT = 60  # seconds per submission: a wall-clock budget loose enough for a loaded CI machine (CPU time is capped apart)
LIMITS = grader.Limits(memory_mb=2048, max_procs=48, cpu_s=15)
MARK = "987654"  # the argument of the process the lingering attack leaves behind

# Forged report lines: the old grader's grade events, a fake "ready", answers with guessed ids, junk.
FORGE = """import json, os, sys
fd = int(sys.argv[sys.argv.index('--report-fd') + 1])
POINTS = {'ex01.adapter': 4, 'ex01.param_count': 1, 'ex01.freeze': 2}
lines = [json.dumps({'grade': {'task': t, 'points': p, 'max_points': p, 'status': 'pass', 'reason': 'forged',
                               'parts': []}}) for t, p in POINTS.items()]
lines += [json.dumps({'ready': {'stopped': None}})]
lines += [json.dumps({'id': i, 'ok': 7}) for i in range(50)] + [json.dumps({'id': '0' * 16, 'ok': 7})]
lines += ['not json', '[1, 2]', '{"ok": ' + '[' * 100000 + ']' * 100000 + '}', 'x' * 3_000_000]
os.write(fd, ('\\n'.join(lines) + '\\n').encode())
"""

# The worker patched from inside: its `answer` function, found by walking the interpreter's objects,
# replaced by one that answers every probe with made-up data.
IMPOSTOR = """import gc, types
def forged(request, namespace, probes):
    return {'id': request.get('id'), 'ok': {'W_down': 0.0, 'b_down': 0.0, 'W_up': 0.0, 'b_up': 0.0}}
patched = 0
for f in gc.get_objects():
    if isinstance(f, types.FunctionType) and f.__name__ == 'answer' and 'probes' in f.__code__.co_varnames:
        f.__globals__['answer'] = forged
        patched += 1
assert patched, 'the worker was not found'
"""

BOMBS = """import os, threading, time
def fork_bomb():
    while True:
        os.fork()
def thread_bomb():
    while True:
        threading.Thread(target=time.sleep, args=(300,), daemon=True).start()
def memory_bomb():
    hog = []
    while True:
        hog.append(bytearray(100_000_000))
caught = []
for bomb in (fork_bomb, thread_bomb, memory_bomb):
    try:
        bomb()
    except BaseException as err:
        if os.getpid() != PID:  # a forked copy: back to the worker, which ends it
            raise
        caught.append(f"{bomb.__name__}: {type(err).__name__}")
raise RuntimeError("BOMBS " + ", ".join(caught))
"""

LINGER = f"""import os
if os.fork() == 0:
    os.setsid()
    os.execvp('sleep', ['sleep', '{MARK}'])
"""

SPIN = """import signal
signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGALRM})  # the per-cell timer cannot stop it
while True:
    pass
"""

GREEDY = """def adapter_grads(*args):
    hog = []
    while True:
        hog.append(bytearray(100_000_000))
"""


@pytest.fixture(scope="module")
def attacked(tmp_path_factory):
    """Grade the attack class; return the CSV rows, the raw CSV text, the feedback folder and the bait files."""
    root = tmp_path_factory.mktemp("redteam")
    subs, bait = root / "submissions", root / "bait.txt"
    bait.write_text("the lecturer's file")
    ex01, ex03 = "ex01_adapter.ipynb", "ex03_gradients.ipynb"
    sol01, stub01 = _notebook(ROOT / "solutions" / ex01), _notebook(ROOT / "exercises" / ex01)
    sol03, stub03 = _notebook(ROOT / "solutions" / ex03), _notebook(ROOT / "exercises" / ex03)
    _write(subs / "complete" / ex03, sol03)
    _write(subs / "forger" / ex01, _with_cell(stub01, FORGE))
    _write(subs / "impostor" / ex03, _with_cell(stub03, IMPOSTOR))
    copied = _with_cell(_edit(sol01, "return 2 * d * r + r + d", "return at.num_adapter_params(d, r)"),
                        "class Adapter(at.Adapter):\n    pass\n")
    _write(subs / "copier" / ex01, copied)
    snoop = (f"import os\nfound = []\nfor path in [{str(subs / 'complete' / ex03)!r}, {str(root / 'grades.csv')!r}, "
             f"'/proc/{os.getpid()}/environ', {str(bait)!r}]:\n    try:\n        found.append(open(path).read()[:50])\n"
             "    except OSError as err:\n        found.append(type(err).__name__)\n"
             f"for path in [{str(bait)!r}, {str(subs / 'complete' / 'planted.txt')!r}]:\n    try:\n"
             "        open(path, 'w').write('overwritten')\n"
             "    except OSError as err:\n        found.append(type(err).__name__)\n"
             "others = [p for p in os.listdir('/proc') if p.isdigit()]\n"
             "raise RuntimeError('SNOOP ' + ' | '.join(found) + f' | {len(others)} processes')")
    _write(subs / "snooper" / ex03, _with_cell(sol03, snoop))
    if grader.bubblewrap_status()[0]:  # unconfined, nothing caps the number of processes: no fork bomb then
        _write(subs / "bomber" / ex03, _with_cell(sol03, "import os\nPID = os.getpid()\n" + BOMBS))
        _write(subs / "lingerer" / ex03, _with_cell(sol03, LINGER))
    _write(subs / "spinner" / ex03, _with_cell(stub03, SPIN))
    _write(subs / "greedy" / ex03, _with_cell(stub03, GREEDY))
    _write(subs / "=1+1" / ex03, _with_cell(sol03, "raise RuntimeError('=2+2\\n```\\n<b>forged</b>')"))
    _write(subs / "evil\nname" / ex03, sol03)
    _write(subs / "a b" / ex03, sol03)
    _write(subs / "a_b" / ex03, stub03)
    (subs / "linked").mkdir()
    (subs / "linked" / ex03).symlink_to(subs / "complete" / ex03)
    (subs / "linkdir").symlink_to(subs / "complete")
    out = root / "grades.csv"
    grader.grade(subs, out, timeout=TIMEOUT, sandbox="auto", progress=False, limits=LIMITS)
    text = out.read_text()
    with open(out, newline="") as fh:
        rows = list(csv.DictReader(fh))
    return rows, text, root / "grades_feedback", bait, subs


def _by_student(rows, student):
    return {r["task"]: (float(r["points"]), r["status"]) for r in rows if r["student"] == student}


def _sandboxed(rows) -> bool:
    sandbox = {r["sandbox"] for r in rows if r["status"] not in ("rejected", "unidentified")}
    if sandbox != {"bubblewrap"}:
        assert not os.environ.get("ADAPTERTUNE_REQUIRE_BWRAP"), "CI requires bubblewrap"
        return False
    return True


FULL = {"ex03.backprop": (3.0, "pass"), "ex03.init": (2.0, "pass")}


@pytest.mark.slow
def test_forged_report_lines_score_nothing_and_are_flagged_for_review(attacked):
    rows, _, feedback, _, _ = attacked
    assert _by_student(rows, "forger") == {"ex01.adapter": (0.0, "not_implemented"),
                                           "ex01.param_count": (0.0, "not_implemented"),
                                           "ex01.freeze": (0.0, "not_implemented")}
    assert "line(s) the grader did not ask for" in (feedback / "forger.md").read_text()


@pytest.mark.slow
def test_a_patched_worker_answers_with_forged_data_and_the_judge_scores_it_zero(attacked):
    rows, _, _, _, _ = attacked
    # fail/error, not not_implemented: the forged answers did reach the judge, which checked them
    assert _by_student(rows, "impostor") == {"ex03.backprop": (0.0, "fail"), "ex03.init": (0.0, "error")}


@pytest.mark.slow
def test_the_complete_solution_beside_the_attacks_gets_full_marks(attacked):
    rows, _, _, _, _ = attacked
    for student in ("complete", "a b", "evil name"):
        assert _by_student(rows, student) == FULL, student
    assert _by_student(rows, "a_b") == {"ex03.backprop": (0.0, "not_implemented"),
                                        "ex03.init": (0.0, "not_implemented")}


@pytest.mark.slow
def test_an_answer_that_calls_the_kits_reference_is_flagged_for_review(attacked):
    rows, _, feedback, _, _ = attacked
    reason = {r["task"]: r["reason"] for r in rows if r["student"] == "copier"}
    assert _by_student(rows, "copier") == {"ex01.adapter": (4.0, "pass"), "ex01.param_count": (1.0, "pass"),
                                           "ex01.freeze": (2.0, "pass")}
    assert "[review" in reason["ex01.param_count"] and "[review" in reason["ex01.adapter"]
    assert "[review" not in reason["ex01.freeze"]
    text = (feedback / "copier.md").read_text()
    assert "num_adapter_params" in text and "For the lecturer's review" in text


@pytest.mark.slow
def test_the_sandbox_hides_classmates_the_grades_and_the_judge_and_keeps_files_read_only(attacked):
    rows, _, feedback, bait, subs = attacked
    assert _by_student(rows, "snooper") == FULL  # the attempts raise in their own cell and cost nothing else
    if not _sandboxed(rows):
        pytest.skip(f"bubblewrap unusable here ({grader.bubblewrap_status()[1]}): ran unconfined")
    assert bait.read_text() == "the lecturer's file" and not (subs / "complete" / "planted.txt").exists()
    snooped = (feedback / "snooper.md").read_text().split("SNOOP ")[1].splitlines()[0]
    found = snooped.split(" | ")
    assert found[:6] == ["FileNotFoundError"] * 6, snooped  # nothing outside its folder exists for it
    assert int(found[6].split()[0]) <= 4, snooped  # its own process namespace: no judge, no classmates


@pytest.mark.slow
def test_memory_fork_and_thread_bombs_are_capped_and_cost_only_their_own_cells(attacked):
    rows, _, feedback, _, _ = attacked
    if not _sandboxed(rows):
        pytest.skip("the process cap needs the sandbox (no fork bomb is run without it)")
    assert _by_student(rows, "bomber") == FULL
    text = (feedback / "bomber.md").read_text()
    assert "BOMBS fork_bomb: BlockingIOError, thread_bomb: RuntimeError, memory_bomb: MemoryError" in text
    assert _by_student(rows, "greedy") == {"ex03.backprop": (0.0, "limit"), "ex03.init": (0.0, "not_implemented")}
    assert "out of memory" in {r["task"]: r["reason"] for r in rows if r["student"] == "greedy"}["ex03.backprop"]


@pytest.mark.slow
def test_cpu_time_is_capped_even_when_the_wall_clock_timer_is_blocked(attacked):
    rows, _, _, _, _ = attacked
    assert _by_student(rows, "spinner") == {"ex03.backprop": (0.0, "limit"), "ex03.init": (0.0, "limit")}
    assert all("CPU time" in r["reason"] for r in rows if r["student"] == "spinner")


@pytest.mark.slow
def test_a_process_left_running_is_killed(attacked):
    rows, _, feedback, _, _ = attacked
    if not _sandboxed(rows):
        pytest.skip("run in the sandbox only")
    assert _by_student(rows, "lingerer") == FULL
    assert "still running at the end and were killed" in (feedback / "lingerer.md").read_text()
    left = [p for p in Path("/proc").iterdir() if p.name.isdigit() and MARK in _cmdline(p)]
    assert not left, "the lingering process survived grading"


def _cmdline(proc: Path) -> str:
    try:
        return (proc / "cmdline").read_bytes().decode(errors="replace")
    except OSError:
        return ""


@pytest.mark.slow
def test_names_and_messages_cannot_break_the_csv_or_the_feedback(attacked):
    rows, text, feedback, _, _ = attacked
    students = {r["student"] for r in rows}
    assert {"'=1+1", "evil name", "a b", "a_b"} <= students
    assert len(text.splitlines()) == len(rows) + 1  # one line per row: no cell carries a newline
    for r in rows:
        for key in ("student", "task", "status", "reason", "file"):
            assert r[key][:1] not in ("=", "+", "-", "@"), r
    assert _by_student(rows, "'=1+1") == FULL
    files = sorted(p.name for p in feedback.glob("*.md"))
    assert len(files) == len(students) and "a_b.md" in files and "a_b-2.md" in files
    page = (feedback / "1_1.md").read_text()
    assert page.count("```") % 2 == 0 and "<b>" not in page and "=2+2" in page


@pytest.mark.slow
def test_symbolic_links_are_rejected_not_followed(attacked):
    rows, _, _, _, _ = attacked
    assert _by_student(rows, "linked") == {"": (0.0, "rejected")}
    assert _by_student(rows, "linkdir") == {"": (0.0, "rejected")}


# ----------------------------------------------------------------------------- untrusted answers
def _tensor(dtype="float32", shape=(2,), data=None):
    """A tensor record whose data is two float32 zeros unless ``data`` is given."""
    raw = data if data is not None else base64.b64encode(torch.zeros(2).numpy().tobytes()).decode()
    return {"__tensor__": {"dtype": dtype, "shape": list(shape), "data": raw}}


@pytest.mark.parametrize("bad", [
    _tensor(dtype="object"), _tensor(dtype="complex64"), _tensor(shape=(3,)), _tensor(data="!!not base64!!"),
    {"__tensor__": {"dtype": "float32", "shape": [2], "data": "", "extra": 1}}, {"__tensor__": [1, 2]},
    {"__tensor__": 1, "other": 2}, _tensor(shape=(-1,)),
    {"__tensor__": {"dtype": "float32", "shape": [1.5], "data": ""}},
    b"bytes", {1, 2}, "x" * 200_000,
])
def test_malformed_plain_data_is_refused(bad):
    with pytest.raises(PlainDataError):
        from_plain(bad)


def test_plain_data_is_refused_when_nested_too_deep_and_round_trips_otherwise():
    deep = 0
    for _ in range(MAX_DEPTH + 2):
        deep = [deep]
    with pytest.raises(PlainDataError):
        from_plain(deep)
    data = {"t": torch.arange(6, dtype=torch.int64).reshape(2, 3), "h": torch.ones(2, dtype=torch.bfloat16),
            "x": [1, 2.5, None, True, "s"], "e": torch.zeros(0, 3)}
    back = roundtrip(data)
    assert torch.equal(back["t"], data["t"]) and back["h"].dtype == torch.bfloat16 and back["x"] == data["x"]
    assert back["e"].shape == (0, 3)
    with pytest.raises(PlainDataError):
        to_plain(torch.nn.Linear(2, 2))
    assert json.loads(json.dumps(to_plain(torch.tensor(1.5))))["__tensor__"]["shape"] == []
