"""How long the batch grader takes for a class: N submissions of one exercise notebook.

    python benchmarks/grading.py                 # 30 submissions of ex01, writes benchmarks/results/grading.md
    python benchmarks/grading.py --students 4 --out /tmp/g   # a quick smoke run

The class is a realistic mix built from the shipped notebooks: complete solutions, untouched
stubs, and solutions with one task broken. Target (issue: graded exercises): 30 submissions in
<= 120 s on the course's 2-core machine. The report prints the measured time and its ratio to
the target, with the machine, versions, sandbox and date.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from adaptertune_lite.engine import runtime  # noqa: E402
from adaptertune_lite.grading import grader  # noqa: E402

TARGET_S = 120.0  # for 30 submissions


def make_class(folder: Path, exercise: str, students: int) -> None:
    """``students`` submissions: every third a stub, every third with one broken task, the rest complete."""
    solution = json.loads((ROOT / "solutions" / f"{exercise}.ipynb").read_text())
    stub = (ROOT / "exercises" / f"{exercise}.ipynb").read_text()
    broken = json.dumps(solution).replace("return 2 * d * r + r + d", "return 2 * d * r")
    for i in range(students):
        (folder / f"student{i:02d}").mkdir(parents=True)
        text = (json.dumps(solution), stub, broken)[i % 3]
        (folder / f"student{i:02d}" / f"{exercise}.ipynb").write_text(text)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--students", type=int, default=30)
    parser.add_argument("--exercise", default="ex01_adapter")
    parser.add_argument("--jobs", type=int, default=None, help="default: the grader's default (CPU cores)")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results"))
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        subs = Path(tmp) / "submissions"
        make_class(subs, args.exercise, args.students)
        start = time.perf_counter()
        rows = grader.grade(subs, Path(tmp) / "grades.csv", jobs=args.jobs, progress=sys.stderr.isatty())
        wall = time.perf_counter() - start
    statuses = Counter(r["status"] for r in rows)
    sandbox = ", ".join(sorted({r["sandbox"] for r in rows}))
    scaled = wall * 30 / args.students
    lines = [
        "# Batch grader speed",
        "",
        f"Measured by `benchmarks/grading.py` on {dt.date.today().isoformat()}: {platform.machine()}, "
        f"{os.cpu_count()} CPU cores, {runtime.describe_device()}, Python {platform.python_version()}, "
        f"torch {runtime.versions()['torch']}; sandbox: {sandbox}.",
        "",
        "| what | value |",
        "|---|---|",
        f"| submissions of `{args.exercise}` | {args.students} |",
        f"| wall time | {wall:.1f} s |",
        f"| per submission | {wall / args.students:.2f} s |",
        f"| rows by status | {', '.join(f'{k} {v}' for k, v in sorted(statuses.items()))} |",
        f"| 30 submissions (scaled) / target {TARGET_S:.0f} s | {scaled / TARGET_S:.2f} ({'PASS' if scaled <= TARGET_S else 'FAIL'}) |",
        "",
        "Each submission runs in its own fresh Python process (imports of torch and timm are most of",
        "its time), under bubblewrap when installed, with the default caps (memory "
        f"{grader.Limits().memory_mb} MB, {grader.Limits().max_procs} processes + threads, CPU time); the judge",
        "runs every verdict in the grader's own process. Heavy experiment cells skip themselves in grading mode.",
    ]
    report = "\n".join(lines) + "\n"
    print(report)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "grading.md").write_text(report)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
