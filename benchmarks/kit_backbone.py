"""Measure the kit backbone's quality and speed bars, and write a report.

    python benchmarks/kit_backbone.py                 # the bars, 3 seeds (tens of minutes on 2 CPU cores)
    python benchmarks/kit_backbone.py --quick         # a tiny smoke run (the test suite runs this)

    python benchmarks/kit_backbone.py --backbone kit_vit_tiny_glyphs

Writes ``<out>/<backbone>.md`` (table, bars, machine, date), ``<backbone>.json`` (every run)
and ``<backbone>_elbow.png``. Each finished run is stored in the JSON at once (atomically), so
a killed benchmark resumes where it stopped. Every figure in the report is measured here.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import platform
import time
from pathlib import Path

import numpy as np
import torch

import adaptertune_lite as at
from adaptertune_lite.recipes import KIT_RECIPES, kit_n_train, kit_recipe
from adaptertune_lite.storage import write_json

RANKS = [1, 2, 4, 8, 16, 32, 64]
SWEEP_RANKS = [1, 2, 4, 8, 16, 32]  # the live 6-rank sweep a lecturer runs
BAR_EPOCHS = 4  # epochs per run for the quality bars (the speed bar uses the FAST recipe)
BAR_N_TRAIN = 2000  # training images per dataset for the quality bars (digits: at most its split)


def splits(cfg: dict, model, data_cache: dict):
    """The dataset's splits with ``n_train`` training images, loaded once per benchmark (every method uses them)."""
    key = (cfg["dataset"], cfg["n_train"])
    if key not in data_cache:
        data_cache[key] = at.load_dataset(cfg["dataset"], model, n_train=cfg["n_train"])
    return data_cache[key]


def pixel_logreg(cfg: dict, data_cache: dict) -> dict:
    """Reference point, not a method of the course: logistic regression on the raw 32x32 grey pixels of
    the same training subset. A linear probe on a backbone's features is judged against it."""
    from sklearn.linear_model import LogisticRegression

    data = splits(cfg, at.load_backbone(cfg["backbone"], pretrained=False), data_cache)  # the methods' training subset
    flat = lambda split: split.images[:, 0].flatten(1).float().numpy() / 255  # noqa: E731  (N, 1024): one grey channel
    start = time.perf_counter()
    clf = LogisticRegression(max_iter=2000).fit(flat(data.train), data.train.labels.numpy())
    return {"test_acc": float(clf.score(flat(data.test), data.test.labels.numpy())), "wall_time_s": time.perf_counter() - start}


def run_one(cfg: dict, data_cache: dict, test: bool = True) -> dict:
    """Train one configuration; return its accuracy (test split unless ``test=False``), parameters and time."""
    at.seed_everything(cfg["seed"])  # the new head and the adapters are initialised from this seed
    model = at.load_backbone(cfg["backbone"], num_classes=10, pretrained=cfg["pretrained"])
    data = splits(cfg, model, data_cache)
    if cfg["method"] == "adapter_tune":
        at.add_adapters(model, rank=cfg["rank"])
    recipe = {**cfg["recipe"], "epochs": cfg["epochs"]}
    result = at.fit(model, data.train, data.val, method=cfg["method"], seed=cfg["seed"], progress=False, **recipe)
    counts = at.count_parameters(model)
    return {
        "test_acc": at.evaluate(model, data.test) if test else None,
        "val_acc": result.val_acc,
        "trainable": counts.trainable,
        "fraction_of_full": counts.fraction_of_full,
        "wall_time_s": result.wall_time_s,
    }


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--backbone", default="kit_vit_tiny")
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--epochs", type=int, default=BAR_EPOCHS, help=f"epochs per run (default {BAR_EPOCHS})")
    p.add_argument("--n-train", type=int, default=BAR_N_TRAIN, help="training images per dataset (digits: at most its split)")
    p.add_argument("--out", default=str(Path(__file__).parent / "results"))
    p.add_argument("--quick", action="store_true", help="tiny smoke configuration: proves the script runs, measures nothing")
    args = p.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    store = out / f"{args.backbone}.json"
    ranks, sweep_ranks, seeds = RANKS, SWEEP_RANKS, list(range(args.seeds))
    epochs = args.epochs
    n_train = {"mnist5k": args.n_train, "digits": min(args.n_train, 1258)}
    if args.quick:
        ranks, sweep_ranks, seeds, epochs, n_train = [1, 4], [1, 4], [0], 1, {"mnist5k": 64, "digits": 64}

    runs = json.loads(store.read_text())["runs"] if store.is_file() else {}
    data_cache: dict = {}

    def measure(**cfg) -> dict:
        cfg = {"backbone": args.backbone, "pretrained": True, "rank": 16, "epochs": epochs, **cfg}
        cfg["n_train"] = n_train[cfg["dataset"]]
        cfg["recipe"] = KIT_RECIPES.get(cfg["method"], {})  # part of the key: a changed recipe is measured afresh
        key = json.dumps(cfg, sort_keys=True)
        if key not in runs:
            run = pixel_logreg if cfg["method"] == "pixel_logreg" else run_one
            runs[key] = {"config": cfg, **run(cfg, data_cache)}
            write_json(store, {"runs": runs})
            print(f"{cfg['dataset']:8} {cfg['method']:13} r={cfg['rank']:<3} pretrained={cfg['pretrained']!s:5} "
                  f"seed={cfg['seed']}: test acc {runs[key]['test_acc']:.3f} ({runs[key]['wall_time_s']:.1f} s)", flush=True)
        return runs[key]

    def accs(**cfg) -> np.ndarray:
        return np.array([measure(seed=s, **cfg)["test_acc"] for s in seeds])

    res = {}
    for ds in ("mnist5k", "digits"):
        res[ds] = {
            "head_only": accs(dataset=ds, method="head_only"),
            "adapter_tune": accs(dataset=ds, method="adapter_tune"),
            "full_finetune": accs(dataset=ds, method="full_finetune"),
            # reference with no backbone at all; deterministic, so one fit
            "pixel_logreg": np.array([measure(dataset=ds, method="pixel_logreg", seed=0)["test_acc"]]),
        }
    # The same three methods on a randomly initialised backbone: what pretraining buys each of them.
    for method in ("head_only", "adapter_tune", "full_finetune"):
        res["mnist5k"][f"{method}_random"] = accs(dataset="mnist5k", method=method, pretrained=False)
    elbow = np.stack([accs(dataset="mnist5k", method="adapter_tune", rank=r) for r in ranks])

    # Speed: the live 6-rank sweep as a lecturer runs it: FAST recipe, one seed, validation accuracy per
    # rank, timed end to end (backbone and data loading included).
    fast, sweep_n = kit_recipe("adapter_tune", fast=True), 64 if args.quick else kit_n_train(fast=True)
    start = time.perf_counter()
    sweep_cache: dict = {}
    sweep_val = []
    for r in sweep_ranks:
        sweep_val.append(run_one({"backbone": args.backbone, "pretrained": True, "dataset": "mnist5k",
                                  "method": "adapter_tune", "rank": r, "seed": 0, "epochs": fast["epochs"],
                                  "recipe": fast, "n_train": sweep_n},
                                 sweep_cache, test=False)["val_acc"])
    sweep_s = time.perf_counter() - start

    m = lambda a: 100 * float(np.mean(a))  # noqa: E731  (percent)
    s = lambda a: 100 * float(np.std(a))  # noqa: E731
    frac = measure(dataset="mnist5k", method="adapter_tune", seed=seeds[0])["fraction_of_full"]  # cached run
    em, es = 100 * elbow.mean(1), 100 * elbow.std(1)
    i8, i32 = (ranks.index(8), ranks.index(32)) if 8 in ranks and 32 in ranks else (0, len(ranks) - 1)
    gain_8_32 = em[i32] - em[i8]
    gain_32_64 = em[-1] - em[i32]
    monotone = all(em[i + 1] >= em[i] - (es[i] + es[i + 1]) for i in range(len(ranks) - 1))
    gap_full = min(m(res[d]["full_finetune"]) - m(res[d]["adapter_tune"]) for d in ("mnist5k", "digits"))
    bars = [  # (what, measured, comparison, target)
        ("head-only on mnist5k: pretrained minus random backbone (points)",
         m(res["mnist5k"]["head_only"]) - m(res["mnist5k"]["head_only_random"]), ">=", 15),
        ("AdapterTune r=16 minus head-only on mnist5k (points)", m(res["mnist5k"]["adapter_tune"]) - m(res["mnist5k"]["head_only"]), ">=", 10),
        ("AdapterTune r=16 minus head-only on digits (points)", m(res["digits"]["adapter_tune"]) - m(res["digits"]["head_only"]), ">=", 10),
        ("elbow: gain(8->32) minus 3 x gain(32->64) (points)", gain_8_32 - 3 * gain_32_64, ">=", 0),
        ("elbow: mean non-decreasing over ranks within seed noise (1 = yes)", float(monotone), ">=", 1),
        ("full FT minus AdapterTune r=16 on the closer target (points)", gap_full, "<=", 3),
        ("AdapterTune r=16 trainable parameters, % of full FT", 100 * frac, "<=", 5),
        ("6-rank FAST sweep on mnist5k, one seed (seconds)", sweep_s, "<=", 60),
    ]

    at.plots.use_style()
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots()
    at.plots.plot_elbow(ranks, elbow, ax=ax, references={
        "head-only": float(np.mean(res["mnist5k"]["head_only"])),
        "full fine-tuning": float(np.mean(res["mnist5k"]["full_finetune"])),
    })
    ax.set_title(f"{args.backbone} on mnist5k\n{n_train['mnist5k']} training images, {epochs} epochs, {len(seeds)} seeds")
    fig.tight_layout()
    fig.savefig(out / f"{args.backbone}_elbow.png", dpi=120)

    prov = at.kit_provenance(args.backbone) if not args.quick else {}
    lines = [
        f"# Kit backbone report: {args.backbone}",
        "",
        f"Measured by `benchmarks/kit_backbone.py` on {dt.date.today().isoformat()}, machine: {platform.machine()}, "
        f"{at.describe_device()}, torch {torch.__version__}. Seeds: {seeds}. Recipe per method: "
        f"`adaptertune_lite.recipes.KIT_RECIPES`, {epochs} epochs, training images {n_train}; accuracy on each "
        "dataset's fixed test split." + (" **QUICK SMOKE RUN: these numbers measure nothing.**" if args.quick else ""),
        "",
        f"Backbone provenance: {prov.get('images_seen', 'n/a'):,} procedural images seen in pretraining, held-out pretraining "
        f"accuracy {prov.get('heldout_accuracy', 'n/a')}, sha256 `{prov.get('sha256', 'n/a')[:16]}...`." if prov else "",
        "",
        "| dataset | method | test accuracy % (mean ± std) |",
        "| --- | --- | --- |",
    ]
    for ds, methods in res.items():
        for name, a in methods.items():
            lines.append(f"| {ds} | {name} | {m(a):.1f} ± {s(a):.1f} |")
    lines += ["", "`pixel_logreg` is a reference point, not a method of the course: logistic regression (scikit-learn, "
              "default settings) on the raw 32x32 grey pixels of the same training images, one deterministic fit. "
              "`*_random` rows use the same architecture with random weights instead of the pretrained ones."]

    def closed(d: str) -> str:  # meaningful only where full FT beats head-only
        gap = m(res[d]["full_finetune"]) - m(res[d]["head_only"])
        if gap <= 0:
            return f"{d} n/a (full FT does not beat head-only)"
        return f"{d} {100 * (m(res[d]['adapter_tune']) - m(res[d]['head_only'])) / gap:.0f} %"

    lines += ["", "Share of the head-only to full-FT gap that AdapterTune r=16 closes (reported, not a bar): "
              + ", ".join(closed(d) for d in ("mnist5k", "digits")) + "."]
    lines += ["", "Elbow on mnist5k (AdapterTune, post_block, all blocks):", "", "| rank | test accuracy % |", "| --- | --- |"]
    lines += [f"| {r} | {em[i]:.1f} ± {es[i]:.1f} |" for i, r in enumerate(ranks)]
    lines += ["", f"Live 6-rank sweep (FAST recipe: {fast['epochs']} epochs, {sweep_n} images, seed 0), "
              f"validation accuracy %: " + ", ".join(f"r={r}: {100 * v:.1f}" for r, v in zip(sweep_ranks, sweep_val))]
    lines += ["", "| bar | measured | target | pass |", "| --- | --- | --- | --- |"]
    ok = lambda v, op, t: v >= t if op == ">=" else v <= t  # noqa: E731
    lines += [f"| {name} | {value:.2f} | {op} {target} | {'yes' if ok(value, op, target) else 'NO'} |" for name, value, op, target in bars]
    lines += ["", f"![elbow]({args.backbone}_elbow.png)", ""]
    (out / f"{args.backbone}.md").write_text("\n".join(lines))
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
