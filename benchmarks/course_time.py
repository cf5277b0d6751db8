"""How long the whole FAST course takes: every notebook, then every solution, run in order like a student would.

    python benchmarks/course_time.py              # the whole course, one cold run cache (8 minutes on 2 cores)
    python benchmarks/course_time.py --quick      # two short notebooks: proves the script runs, measures nothing

Each notebook runs top to bottom in FAST mode with nbclient, in its own fresh kernel, exactly as
``tests/test_notebooks.py`` runs it. All of them share one run cache (``ADAPTERTUNE_RUNS``) that starts
empty: a student walking through the course reuses what an earlier notebook trained, but never finds
anything trained before the walk began. ``--cold-each`` gives every notebook its own empty cache instead
(what the test suite does). Writes ``<out>/course_time_cpu.md`` and ``.json``: the wall time of each
notebook (kernel start included) and its slowest cells.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import tempfile
import time
from datetime import datetime
from pathlib import Path

import nbformat
import torch
from nbclient import NotebookClient
from speed import harness_step_time, prepared  # the step timing of the speed benchmark (this folder)

import adaptertune_lite as at
from adaptertune_lite.engine.storage import write_json

ROOT = Path(__file__).resolve().parents[1]
TARGET_S = 8 * 60  # the course's FAST budget: notebooks and solutions together


def course() -> list[Path]:
    """The course in a student's order: the notebooks (00 first, the lecture demo last), then the solutions."""
    notebooks = sorted((ROOT / "notebooks").glob("*.ipynb"), key=lambda p: (p.stem.startswith("lecture"), p.stem))
    return notebooks + sorted((ROOT / "solutions").glob("*.ipynb"))


def cell_seconds(cell) -> float | None:
    """Seconds a cell ran, from the timestamps nbclient records in its metadata (``None`` when it did not run)."""
    t = cell.get("metadata", {}).get("execution", {})
    start, end = t.get("shell.execute_reply.started") or t.get("iopub.execute_input"), t.get("shell.execute_reply")
    if not (start and end):
        return None
    parse = lambda s: datetime.fromisoformat(s.replace("Z", "+00:00"))  # noqa: E731
    return (parse(end) - parse(start)).total_seconds()


def run_one(path: Path, workdir: Path) -> dict:
    """Execute one notebook in FAST mode in a fresh kernel; its wall time and each code cell's time.

    The wall time runs from the kernel's start to the end of the last cell: what a student waits for. Shutting
    the kernel down afterwards (about 2 s: the interpreter tears down torch and timm) is timed apart as
    ``shutdown_s`` and not counted, since nobody waits for a kernel to exit; the next notebook starts only after it."""
    nb = nbformat.read(path, as_version=4)
    last_cell_done = []  # perf_counter() when each cell finished
    client = NotebookClient(nb, timeout=900, kernel_name="python3", resources={"metadata": {"path": str(workdir)}},
                            on_cell_executed=lambda **_: last_cell_done.append(time.perf_counter()))
    t0 = time.perf_counter()
    client.execute()
    end = time.perf_counter()
    wall = last_cell_done[-1] - t0
    cells = []
    for i, c in enumerate(nb.cells):
        if c.cell_type == "code":
            t = cell_seconds(c)
            cells.append({"index": i, "seconds": None if t is None else round(t, 3),
                          "first_line": c.source.strip().splitlines()[0][:80] if c.source.strip() else ""})
    return {"notebook": f"{path.parent.name}/{path.name}", "wall_s": round(wall, 1), "shutdown_s": round(end - last_cell_done[-1], 1),
            "cells": cells}


def step_ms(steps: int = 15) -> float:
    """Milliseconds per kit AdapterTune training step (r = 16 after every block, batch 64, FAST's thread count; the
    mean of ``steps`` after 3 warm-up steps, timed by ``speed.py``'s harness): a probe of this machine's speed at the
    moment, taken before and after the walk. A shared VM's speed drifts between runs, so a total means something only
    beside the probe taken with it."""
    at.engine.runtime.use_cpu_threads()
    x, y = torch.randn(64, 3, 32, 32), torch.randint(0, 10, (64,))
    model = prepared("kit_vit_tiny", "adapter_tune", 10, None)
    return 1e3 * harness_step_time(model, x, y, torch.device("cpu"), steps=steps, warmup=3, checkpointing=False)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default=str(ROOT / "benchmarks" / "results"))
    p.add_argument("--cold-each", action="store_true", help="every notebook gets its own empty run cache (as the tests do)")
    p.add_argument("--only", nargs="*", help="run only notebooks whose name contains one of these strings")
    p.add_argument("--runs", help="the shared run cache (must not exist yet, so the walk starts cold; kept afterwards)")
    p.add_argument("--quick", action="store_true", help="two short notebooks: proves the script runs, measures nothing")
    args = p.parse_args(argv)
    paths = course()
    if args.quick:
        paths = [q for q in paths if q.stem in ("00_start_here", "ex01_adapter")]
    elif args.only:
        paths = [q for q in paths if any(s in q.name for s in args.only)]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    os.environ.update(ADAPTERTUNE_FAST="1", ADAPTERTUNE_PROFILE="kit", MPLBACKEND="Agg")
    if args.runs and Path(args.runs).exists():
        p.error(f"--runs {args.runs} exists: give a new folder, so the walk starts on an empty run cache")
    results, probe = [], {"before": step_ms()}
    with tempfile.TemporaryDirectory(prefix="course_time_") as tmp:
        for i, path in enumerate(paths):
            workdir = Path(tmp) / f"work{i}"
            workdir.mkdir()
            os.environ["ADAPTERTUNE_RUNS"] = str(Path(tmp) / f"runs{i}" if args.cold_each else Path(args.runs or Path(tmp) / "runs"))
            r = run_one(path, workdir)
            results.append(r)
            print(f"{r['wall_s']:7.1f} s  {r['notebook']}", flush=True)
    probe["after"] = step_ms()
    total = sum(r["wall_s"] for r in results)
    machine = f"{platform.machine()}, {os.cpu_count()} CPU cores, {at.describe_device()}, torch {torch.__version__}"
    cache = ("every notebook on its own empty run cache" if args.cold_each
             else "one run cache, empty when the walk began, shared by the notebooks in order")
    lines = [
        "# The FAST course, timed", "",
        f"Measured by `benchmarks/course_time.py` on {dt.date.today().isoformat()}, {machine}; {cache}."
        + (" **QUICK SMOKE RUN: these numbers measure nothing.**" if args.quick or args.only else ""), "",
        f"**Total: {total:.0f} s ({total / 60:.1f} min)** for {len(results)} notebooks; the course's target is "
        f"{TARGET_S / 60:.0f} min: **{'met' if total <= TARGET_S else 'not met'}**.", "",
        f"Machine speed probe (`step_ms`: one kit AdapterTune step, batch 64, mean of 15): {probe['before']:.0f} ms before "
        f"the walk, {probe['after']:.0f} ms after. This machine's speed drifts between runs; compare totals only with "
        "their probes.", "",
        "| notebook | wall (s) | slowest cells (s) |", "| --- | ---: | --- |",
    ]
    for r in results:
        top = sorted(r["cells"], key=lambda c: -(c["seconds"] or 0))[:3]
        slow = "; ".join(f"[{c['index']}] {c['seconds']:.0f} `{c['first_line'].replace('|', '/')}`" for c in top if (c["seconds"] or 0) >= 2)
        lines.append(f"| {r['notebook']} | {r['wall_s']:.0f} | {slow} |")
    shutdown = sum(r["shutdown_s"] for r in results)
    lines += ["", "Wall time runs from the kernel's start (imports included) to the end of the notebook's last cell; a cell's "
              f"time is from nbclient's timestamps. Not counted: shutting each kernel down after its last cell, {shutdown:.0f} s "
              "in all, which no student waits for."]
    name = "course_time_cpu"
    write_json(out / f"{name}.json", {"machine": machine, "cache": cache, "total_s": total, "target_s": TARGET_S,
                                       "quick": bool(args.quick or args.only), "step_ms": probe, "notebooks": results})
    (out / f"{name}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
