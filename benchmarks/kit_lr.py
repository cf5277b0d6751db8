"""Choose the kit's learning rates (every method of ``recipes.KIT_RECIPES``) on validation, never on test.

    python benchmarks/kit_lr.py            # the grids below, about 35 minutes on 2 CPU cores
    python benchmarks/kit_lr.py --quick    # a tiny smoke run (the test suite runs this)

On the course's default target (``recipes.DEFAULT_TARGET``) each method runs at a grid of learning rates:
at the FAST budget with 3 seeds (what a student runs) and at the full budget with one seed (what notebooks run
outside FAST mode). The choice is the rate with the highest mean *validation* accuracy at the FAST budget;
the full budget's choice is shown beside it, and a choice at the edge of its grid is flagged. The kit changes its
rate only when the choice beats it by a difference the course would call one: a paired 95 % t interval over the
seeds that excludes zero (``stats.paired_difference``); a best mean within seed noise keeps the rate. Test accuracy
is not computed into any choice; it is not even printed. Writes ``<out>/kit_lr.md`` and ``kit_lr.json``.

A thin client of the experiments engine (``experiments.sweep``): a killed run resumes from ``--runs``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import platform
from pathlib import Path

import numpy as np
import torch

import adaptertune_lite as at
from adaptertune_lite.course.experiments import RunConfig, runs_root, sweep
from adaptertune_lite.engine.storage import write_json
from adaptertune_lite.recipes import DEFAULT_TARGET, KIT_RECIPES
from adaptertune_lite.stats import paired_difference

GRIDS = {  # learning rates per method, around the kit's current rate
    "head_only": [1e-2, 3e-2, 1e-1],
    "adapter_tune": [2e-3, 5e-3, 1e-2, 2e-2],
    "full_finetune": [2e-4, 5e-4, 1e-3, 2e-3],
    "lora": [5e-3, 1e-2, 2e-2, 4e-2],
    "bitfit": [1e-2, 2e-2, 5e-2, 1e-1],
}
# Each method as the course compares it (notebooks 04 and 08): AdapterTune at r = 16 (RunConfig's default) and LoRA
# at r = 2 with s = 1, which train about the same number of parameters.
METHOD_CHANGES = {"lora": {"rank": 2}}


def choose(grid: list[float], val: np.ndarray) -> tuple[float, bool]:
    """``(the rate with the highest mean validation accuracy, whether it is at an edge of the grid)``.

    ``val``: (n_rates, n_seeds) validation accuracies."""
    i = int(np.argmax(val.mean(1)))
    return grid[i], i in (0, len(grid) - 1)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seeds", type=int, default=3, help="seeds at the FAST budget (the full budget runs seed 0)")
    p.add_argument("--out", default=str(Path(__file__).parent / "results"))
    p.add_argument("--runs", default=None, help="the engine's result cache (default: $ADAPTERTUNE_RUNS/kit_lr)")
    p.add_argument("--quick", action="store_true", help="tiny smoke configuration: proves the script runs, measures nothing")
    args = p.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    runs_dir = Path(args.runs) if args.runs else (out / "engine_runs" if args.quick else runs_root() / "kit_lr")
    budgets = {"fast": (True, list(range(args.seeds))), "full": (False, [0])}
    grids = GRIDS
    if args.quick:
        grids = {m: g[:2] for m, g in GRIDS.items()}
        budgets = {"fast": (True, [0]), "full": (True, [1])}

    results: dict = {"date": dt.date.today().isoformat(), "machine": f"{platform.machine()}, {at.describe_device()}",
                     "torch": torch.__version__, "dataset": DEFAULT_TARGET, "methods": {}}
    lines = ["# Kit learning rates, chosen on validation", "",
             f"Measured by `benchmarks/kit_lr.py` on {results['date']}, {results['machine']}, torch {torch.__version__}. "
             f"Dataset {DEFAULT_TARGET}; validation accuracy %, mean ± std over seeds; AdapterTune at r = 16, post_block; LoRA "
             "at r = 2, s = 1, on every block's qkv, proj, fc1 and fc2; head-only on cached features with 40x the epochs. "
             "The choice is the highest mean validation accuracy at the FAST budget (what a student runs); the full "
             "budget's choice is shown beside it." + (" **QUICK SMOKE RUN: these numbers measure nothing.**" if args.quick else ""), ""]
    for method, grid in grids.items():
        rows, entry = [], {"grid": grid, "kit_lr": KIT_RECIPES[method].lr}
        for budget, (fast, seeds) in budgets.items():
            configs = [RunConfig.from_recipe(method, DEFAULT_TARGET, fast=fast, lr=lr, seed=s, **METHOD_CHANGES.get(method, {}))
                       for lr in grid for s in seeds]
            if args.quick:
                configs = [c.replace(n_train=64, epochs=1) for c in configs]
            res = sweep(configs, runs_dir, progress=False)
            val = np.array([r["val_acc"] for r in res]).reshape(len(grid), len(seeds))
            lr, edge = choose(grid, val)
            c0 = configs[0]
            entry[budget] = {"n_train": c0.n_train, "epochs": c0.recipe.epochs, "seeds": seeds, "val_acc": val.tolist(),
                             "chosen": lr, "at_edge": edge}
            rows.append((budget, c0, val, lr, edge))
            print(f"{method} {budget}: " + ", ".join(f"{g:g} -> {100 * v.mean():.1f}" for g, v in zip(grid, val))
                  + f"; chosen {lr:g}" + (" (edge of the grid)" if edge else ""), flush=True)
        results["methods"][method] = entry
        lines += [f"## {method}", "", "| budget | images | epochs | seeds | " + " | ".join(f"lr {g:g}" for g in grid) + " | chosen |",
                  "| --- | --- | --- | --- |" + " --- |" * (len(grid) + 1)]
        for budget, c0, val, lr, edge in rows:
            cells = [f"{100 * v.mean():.1f} ± {100 * v.std():.1f}" for v in val]
            lines.append(f"| {budget} | {c0.n_train or 'all'} | {c0.recipe.epochs} | {len(val[0])} | " + " | ".join(cells)
                         + f" | {lr:g}{' (edge of the grid)' if edge else ''} |")
        fast_choice, full_choice, kit = entry["fast"]["chosen"], entry["full"]["chosen"], entry["kit_lr"]
        if fast_choice == kit:
            decision, why = "same", " (the same)."
        else:
            fast_val = np.array(entry["fast"]["val_acc"])
            d = paired_difference(fast_val[grid.index(fast_choice)], fast_val[grid.index(kit)]) if kit in grid else None
            decision = "update" if d is None or d.detected else "keep"
            why = (f". {d.sentence(f'lr {fast_choice:g}', f'lr {kit:g}')}" if d else " (the kit's rate is not in the grid).") + (
                " Update `recipes.KIT_RECIPES`." if decision == "update" else " The kit keeps its rate.")
        lines += ["", f"Kit recipe's rate: {kit:g}; best mean validation accuracy at the FAST budget: {fast_choice:g}" + why
                  + ("" if full_choice == fast_choice else
                     f" The full budget, with {len(entry['full']['seeds'])} seed(s), chooses {full_choice:g}; the recipe follows the "
                     f"FAST budget, measured over {len(entry['fast']['seeds'])} seeds."), ""]
        entry["decision"] = decision  # same | keep (the best is within seed noise of the kit's rate) | update
    write_json(out / "kit_lr.json", results)
    (out / "kit_lr.md").write_text("\n".join(lines))
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
