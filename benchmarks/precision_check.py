"""What bf16 costs in accuracy: the kit's full recipe in fp32 against the same runs in bf16, emulated on a CPU.

    python benchmarks/precision_check.py            # AdapterTune r=16, full recipe, 3 seeds (about 10 minutes, 2 cores)
    python benchmarks/precision_check.py --quick    # a tiny smoke run (the test suite runs this)

A bf16 GPU (A100, H100, H200) trains with bf16 autocast and the frozen matmul weights stored in bf16
(``runtime.precision``, ``runtime.frozen_weights_in``). ``runtime.emulate_precision(torch.bfloat16)`` makes a
CPU run the same arithmetic: bf16 autocast, the same weights in bf16, evaluation in bf16. Each seed runs in
both precisions from the same data and initialisation, so the per-seed differences are paired; the report
gives their mean with a t interval (``stats.paired_difference``). Runs are not cached: the engine's run key
does not name the precision. Writes ``<out>/precision_cpu_bf16.md`` and ``.json``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import platform
from pathlib import Path

import torch

import adaptertune_lite as at
from adaptertune_lite.course.experiments import RunConfig
from adaptertune_lite.engine.runtime import emulate_precision
from adaptertune_lite.engine.storage import write_json
from adaptertune_lite.recipes import DEFAULT_TARGET
from adaptertune_lite.stats import paired_difference


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--out", default=str(Path(__file__).parent / "results"))
    p.add_argument("--quick", action="store_true", help="tiny smoke configuration: proves the script runs, measures nothing")
    args = p.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    base = RunConfig.from_recipe("adapter_tune", DEFAULT_TARGET, fast=False)  # the kit's full recipe, r = 16
    if args.quick:
        base = base.replace(n_train=64, epochs=1)
    seeds = list(range(args.seeds))
    cache: dict = {}
    results = {"fp32": [], "bf16": []}
    for seed in seeds:
        config = base.replace(seed=seed)
        results["fp32"].append(at.run(config, cache, progress=False))
        with emulate_precision(torch.bfloat16):
            results["bf16"].append(at.run(config, cache, progress=False))
        print(f"seed {seed}: " + ", ".join(f"{k} test {100 * v[-1]['test_acc']:.1f} % ({v[-1]['wall_time_s']:.0f} s)"
                                            for k, v in results.items()), flush=True)
    acc = {k: [r["test_acc"] for r in v] for k, v in results.items()}
    diff = paired_difference(acc["bf16"], acc["fp32"])
    same = sum(a == b for a, b in zip(acc["bf16"], acc["fp32"]))
    machine = f"{platform.machine()}, {at.describe_device()}, torch {torch.__version__}"
    lines = [
        "# bf16 against fp32 on the kit's full recipe (bf16 emulated on a CPU)", "",
        f"Measured by `benchmarks/precision_check.py` on {dt.date.today().isoformat()}, {machine}."
        + (" **QUICK SMOKE RUN: these numbers measure nothing.**" if args.quick else ""), "",
        f"Run: AdapterTune r = {base.rank}, {base.placement}, `{base.backbone}` on {base.dataset}, "
        f"{base.n_train or 'all'} training images, {base.recipe.epochs} epochs, lr {base.recipe.lr:g}. bf16 means what "
        "`fit` does on a bf16 GPU: bf16 autocast, frozen Linear/Conv weights stored in bf16, evaluation in bf16 "
        "(`runtime.emulate_precision`). Test accuracy %.", "",
        "| seed | fp32 | bf16 | bf16 − fp32 (points) |", "| --- | --- | --- | --- |",
    ]
    lines += [f"| {s} | {100 * a:.1f} | {100 * b:.1f} | {100 * (b - a):+.1f} |" for s, a, b in zip(seeds, acc["fp32"], acc["bf16"])]
    verb = "gives" if same == 1 else "give"
    lines += ["", f"Paired over seeds: {diff.sentence('bf16', 'fp32')} {same} of {len(seeds)} seeds {verb} the same test accuracy "
              "in both precisions.", "",
              "What this does not measure: the GPU's bf16 kernels round like the CPU's only up to accumulation order, so a "
              "GPU run differs from both columns by float noise; the GPU check (`benchmarks/gpu_check.py`) compares a GPU run "
              "with the committed fp32 result."]
    write_json(out / "precision_cpu_bf16.json", {"machine": machine, "config": base.to_dict(), "seeds": seeds, "test_acc": acc,
                                                 "val_acc": {k: [r["val_acc"] for r in v] for k, v in results.items()},
                                                 "wall_time_s": {k: [r["wall_time_s"] for r in v] for k, v in results.items()},
                                                 "difference": {"mean": diff.mean, "low": diff.low, "high": diff.high,
                                                                "detected": diff.detected}})
    (out / "precision_cpu_bf16.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
