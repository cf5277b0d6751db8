"""Estimate what each notebook costs in the ``paper`` profile on a GPU, from counted FLOPs; write a report.

    python benchmarks/paper_profile_cost.py                       # ViT-S/16 on Pets, the paper profile's default
    python benchmarks/paper_profile_cost.py --backbone deit_tiny_patch16_224 --out /tmp/cost   # another backbone

Every run the notebooks make outside FAST mode in the paper profile (the grids below are theirs) is counted
with ``at.course.cost.run_flops`` on the real architecture with random weights (no download), and turned into minutes with
``at.course.cost.gpu_seconds``: each GPU's published peak rate at an *assumed* utilisation. The result is an estimate, and
the report says so; data loading and Python overheads are not in it. Writes ``<out>/paper_profile_cost.md`` and
``.json``.
"""

from __future__ import annotations

import argparse
import datetime as dt
from collections import defaultdict
from pathlib import Path

import adaptertune_lite as at
from adaptertune_lite.course.experiments import RunConfig, attach_method
from adaptertune_lite.engine.storage import write_json

SEEDS = [0, 1, 2]
RANKS = [1, 2, 4, 8, 16, 32, 64]  # notebook 05
BLOCKS = ["all", at.every_k(2), at.first_k(2), at.last_k(2)]  # notebook 06
METHODS = ["head_only", "adapter_tune", "full_finetune"]
LR_TRIALS = 3  # notebook 07: three learning rates per trained method at seed 0
HEAD_TRIALS = 2  # notebook 07: head-only at 1x and 4x its epochs (each one backbone pass: the same FLOPs)


def notebook_runs(profile: at.Profile, n_train: int) -> dict[str, list[RunConfig]]:
    """Every run each notebook makes in ``profile`` at the full budget (FAST off), as configs."""
    def cfg(method: str, **changes) -> RunConfig:
        return RunConfig.for_profile(method, profile, **changes)

    official = at.recipes.OFFICIAL_RECIPE.epochs  # notebook 07 trains the row at the official 50 epochs
    return {
        "04_transfer_methods": [cfg(m, seed=s, pretrained=p) for p in (True, False) for m in METHODS for s in SEEDS],
        "05_rank_elbow": [cfg("adapter_tune", rank=r, seed=s, n_train=n) for n in (None, n_train // 4) for r in RANKS for s in SEEDS],
        "06_placement": [cfg("adapter_tune", placement=p, blocks=b, seed=s) for p in at.PLACEMENTS for b in BLOCKS for s in SEEDS]
        + [cfg("adapter_tune", blocks=at.last_k(2), augment=None)] * 2,  # the cached-prefix timing (counted uncached)
        "07_paper_setting": [cfg("head_only")] * (HEAD_TRIALS + len(SEEDS) - 1)
        + [cfg(m, epochs=official) for m in ("adapter_tune", "full_finetune") for _ in range(LR_TRIALS + len(SEEDS) - 1)],
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backbone", default=at.course.profiles.PAPER_BACKBONE, help="timm name (default: the paper profile's)")
    parser.add_argument("--dataset", default=at.course.profiles.PAPER_DATASET, choices=sorted(at.data.SPLIT_SIZES))
    parser.add_argument("--out", default=str(Path(__file__).parent / "results"), help="report folder")
    args = parser.parse_args(argv)

    profile = at.Profile("paper", args.backbone, args.dataset, fast=False, why="benchmarks/paper_profile_cost.py")
    n_split, n_test = at.data.SPLIT_SIZES[args.dataset]
    n_val = round(0.1 * n_split)  # carved from train, as load_dataset does
    n_train = n_split - n_val
    classes = at.data.NUM_CLASSES[args.dataset]
    flops_of: dict[tuple, float] = {}  # FLOPs per run, by what changes them
    per_notebook: dict[str, dict] = {}
    for notebook, configs in notebook_runs(profile, n_train).items():
        total = 0.0
        for c in configs:
            n = c.n_train or n_train
            shape = (c.method, c.rank, c.placement, c.blocks, n, c.recipe.epochs)
            if c.method != "adapter_tune":
                shape = (c.method, None, None, None, n, c.recipe.epochs)
            if shape not in flops_of:
                model = attach_method(at.load_backbone(c.backbone, num_classes=classes, pretrained=False), c)
                size = model.pretrained_cfg["input_size"][-1]
                flops_of[shape] = at.course.cost.run_flops(model, c.method, n, c.recipe.epochs, n_val + n_test, image_size=size)
            total += flops_of[shape]
        per_notebook[notebook] = {"runs": len(configs), "pflop": total / 1e15,
                                  "minutes": {gpu: s / 60 for gpu, s in at.course.cost.gpu_seconds(total).items()}}
        print(f"{notebook}: {len(configs)} runs, {total / 1e15:.1f} PFLOP, "
              + ", ".join(f"{gpu} {m:.0f} min" for gpu, m in per_notebook[notebook]["minutes"].items()))

    gpus = list(at.course.cost.PEAK_TFLOPS)
    lines = [
        "# The paper profile's cost per notebook (an estimate)", "",
        f"Written by `benchmarks/paper_profile_cost.py` on {dt.date.today().isoformat()}: {args.backbone} on {args.dataset} "
        f"({n_train} training, {n_val} validation, {n_test} test images), the paper profile's full budget "
        f"({at.recipes.TORCHVISION_BUDGET['full']['epochs']} epochs; notebook 07's row the official "
        f"{at.recipes.OFFICIAL_RECIPE.epochs}). FLOPs are counted (`at.course.cost.run_flops`); minutes are an **estimate**: "
        f"the FLOPs over each GPU's published peak rate ({', '.join(f'{g} {t:g} TFLOP/s' for g, t in at.course.cost.PEAK_TFLOPS.items())}) "
        f"at an assumed {100 * at.course.cost.ASSUMED_UTILISATION:.0f} % utilisation, without data loading.", "",
        "| notebook | runs | PFLOP | " + " | ".join(f"{g}, min" for g in gpus) + " |",
        "| --- | --- | --- | " + " | ".join("---" for _ in gpus) + " |",
    ]
    totals = defaultdict(float)
    for notebook, row in per_notebook.items():
        lines.append(f"| {notebook} | {row['runs']} | {row['pflop']:.1f} | " + " | ".join(f"{row['minutes'][g]:.0f}" for g in gpus) + " |")
        for g in gpus:
            totals[g] += row["minutes"][g]
    lines.append("| all four | | | " + " | ".join(f"{totals[g]:.0f}" for g in gpus) + " |")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "paper_profile_cost.md").write_text("\n".join(lines) + "\n")
    write_json(out / "paper_profile_cost.json", {"backbone": args.backbone, "dataset": args.dataset, "notebooks": per_notebook,
                                                 "peak_tflops": at.course.cost.PEAK_TFLOPS, "utilisation": at.course.cost.ASSUMED_UTILISATION})
    print(f"wrote {out / 'paper_profile_cost.md'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
