"""The GPU check, one command: everything a GPU session must measure, in one run of at most 8 minutes, one report.

    python benchmarks/gpu_check.py --out "$OUT"        # on one H100/H200 with no internet (the device tool's machine)
    python benchmarks/gpu_check.py --smoke --out /tmp/g    # the same code on a CPU, tiny settings (the test suite runs this)

Sections, each measured in this run:

1. ``benchmarks/speed.py`` at the issue's setting (ViT-B/16, 224 px, r = 16, batch 128, ``--compile``; random weights
   and synthetic uint8 data on the device): ``fit`` against the naive official-style loop (fp32 and TF32), images/s,
   MFU against the measured bf16 matmul rate, memory per method with and without checkpointing (counted exactly and,
   on CUDA, the allocator's peak, side by side), host syncs during one epoch of ``fit``.
2. Graphs compiled per sweep: three compiled ``fit`` runs of one architecture and batch shape that differ in seed and
   learning rate, as a sweep's runs do; ``torch._dynamo``'s count of unique graphs before and after (target: one).
3. The kit's full recipe (``left_digit``, AdapterTune r = 16, seed 0) on this device against the committed CPU result
   of the same config (``benchmarks/results/kit_vit_tiny.json``, matched by the run's key).
4. The ``paper`` profile's cost per notebook on a Colab T4, an A100 and an H100, estimated from counted FLOPs
   (``benchmarks/paper_profile_cost.py``; an estimate, labelled so).

Writes ``<out>/gpu_<device>.md`` and ``.json`` (plus speed.py's and the cost script's own reports). A section that
fails is reported with its error and the rest still run.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import subprocess
import sys
import time
import traceback
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # the kit from this checkout, installed or not
import adaptertune_lite as at  # noqa: E402
from adaptertune_lite.engine.storage import write_json  # noqa: E402


def device_slug() -> str:
    """``cuda_nvidia_h200`` or ``cpu``: the report's name."""
    if not torch.cuda.is_available():
        return "cpu"
    return "cuda_" + "".join(c if c.isalnum() else "_" for c in torch.cuda.get_device_name().lower()).strip("_")


def speed_section(out: Path, smoke: bool) -> dict:
    args = ["--quick"] if smoke else ["--model", "vit_base_patch16_224", "--batch", "128", "--steps", "10", "--compile"]
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "speed.py"), *args, "--out", str(out)],
                          capture_output=True, text=True, timeout=420)
    if done.returncode != 0:
        raise RuntimeError(f"speed.py exited {done.returncode}: {done.stderr[-1500:]}")
    report = json.loads(next(out.glob("speed_*.json")).read_text())
    return {"report": next(out.glob("speed_*.md")).name, "fit_vs_naive": report["fit_vs_naive"], "mfu": report["mfu"],
            "memory_ratios": report["memory_ratios"], "host_syncs": report.get("host_syncs", "not measured (no CUDA)"),
            "methods": report["methods"]}


def graphs_section(smoke: bool) -> dict:
    """Unique graphs torch.compile builds over three fits of one shape (a sweep's runs)."""
    from torch._dynamo.utils import counters  # noqa: PLC0415

    data = at.load_dataset("procedural", at.load_backbone("kit_vit_tiny"), n_train=256 if smoke else None)
    before = counters["stats"]["unique_graphs"]
    for seed, lr in ((0, 5e-3), (1, 5e-3), (0, 1e-2)):
        model = at.add_adapters(at.load_backbone("kit_vit_tiny", num_classes=data.num_classes), rank=16)
        at.fit(model, data.train, data.val, recipe=at.Recipe(lr=lr, epochs=2), seed=seed, progress=False,
               speedups=at.Speedups(compile="aot_eager" if smoke else True))
    graphs = counters["stats"]["unique_graphs"] - before
    return {"fits": 3, "unique_graphs": graphs, "graphs_per_fit": graphs / 3}


def kit_section(smoke: bool) -> dict:
    """The kit's full recipe here against the committed CPU run of the same config."""
    config = at.RunConfig.from_recipe("adapter_tune", fast=smoke, seed=0)
    shipped = json.loads((ROOT / "benchmarks" / "results" / "kit_vit_tiny.json").read_text())["runs"].get(config.key())
    here = at.run(config, progress=False)
    out = {"config": config.to_dict(), "test_acc_here": here["test_acc"], "device_here": here["device"],
           "train_wall_time_s_here": here["train_wall_time_s"]}
    if shipped is None:
        return out | {"committed": f"no committed result with key {config.key()} (smoke runs use the FAST budget)"}
    return out | {"test_acc_committed": shipped["test_acc"], "difference_points": 100 * (here["test_acc"] - shipped["test_acc"]),
                  "train_wall_time_s_committed": shipped["train_wall_time_s"]}


def cost_section(out: Path, smoke: bool) -> dict:
    sys.path.insert(0, str(ROOT / "benchmarks"))
    import paper_profile_cost  # noqa: PLC0415

    paper_profile_cost.main(["--out", str(out)] + (["--backbone", "deit_tiny_patch16_224"] if smoke else []))
    return json.loads((out / "paper_profile_cost.json").read_text())


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results"), help="report folder")
    parser.add_argument("--smoke", action="store_true", help="tiny settings, for a CPU: checks the script, measures nothing")
    args = parser.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    device = at.get_device()
    results: dict = {"device": at.describe_device(device), "precision": at.engine.runtime.precision(device).reason,
                     "versions": at.versions(), "smoke": args.smoke, "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")}
    for name, section in (("speed", lambda: speed_section(out, args.smoke)), ("graphs_per_sweep", lambda: graphs_section(args.smoke)),
                          ("kit_full_recipe", lambda: kit_section(args.smoke)), ("paper_profile_cost", lambda: cost_section(out, args.smoke))):
        start = time.perf_counter()
        try:
            results[name] = section()
        except Exception as err:  # report it; the other sections still run
            results[name] = {"error": f"{type(err).__name__}: {err}", "trace": traceback.format_exc()[-3000:]}
        results[name]["section_s"] = round(time.perf_counter() - start, 1)
        print(f"{name}: {json.dumps(results[name], default=str)[:400]}", flush=True)
        write_json(out / f"gpu_{device_slug()}.json", results)  # after every section: a timeout loses nothing done

    lines = [f"# GPU check: {results['device']}", "",
             f"Written by `benchmarks/gpu_check.py`{' --smoke (tiny settings: checks the script, measures nothing)' if args.smoke else ''} "
             f"on {results['date'][:10]}. Precision: {results['precision']}. torch {results['versions']['torch']}.", ""]
    for name in ("speed", "graphs_per_sweep", "kit_full_recipe", "paper_profile_cost"):
        r = results[name]
        lines += [f"## {name.replace('_', ' ')}", ""]
        if "error" in r:
            lines += [f"FAILED: `{r['error']}`", ""]
        elif name == "speed":
            naive, mfu, mem = r["fit_vs_naive"], r["mfu"], r["memory_ratios"]
            lines += [f"* `fit` {naive['fit_img_s']:.0f} images/s: {naive['ratio']:.2f}x the naive fp32 loop, "
                      f"{naive['ratio_tf32']:.2f}x the naive loop with TF32 (targets 2.0x and 1.3x)",
                      f"* MFU of an AdapterTune step: {100 * mfu['mfu']:.0f} % of the measured {mfu['dtype']} matmul rate (target 40 %)",
                      f"* step memory, AdapterTune over full FT: {mem['adapter']:.2f}, with checkpointing {mem['adapter_ckpt']:.2f} "
                      "(targets 0.60 and 0.15)", f"* host syncs in one epoch of `fit`: {r['host_syncs']} (target: none inside a step)",
                      f"* every number and the per-method table: {r['report']}", ""]
        elif name == "graphs_per_sweep":
            lines += [f"{r['unique_graphs']} unique graphs over {r['fits']} compiled fits of one shape ({r['graphs_per_fit']:.2f} per fit).", ""]
        elif name == "kit_full_recipe":
            lines += [f"test accuracy here {100 * r['test_acc_here']:.1f} % on {r['device_here']}"
                      + (f", committed CPU result {100 * r['test_acc_committed']:.1f} % ({r['difference_points']:+.1f} points)"
                         if "test_acc_committed" in r else f"; {r['committed']}") + ".", ""]
        else:
            lines += [f"{nb}: {row['runs']} runs, " + ", ".join(f"{g} {m:.0f} min" for g, m in row["minutes"].items())
                      for nb, row in r["notebooks"].items()] + ["", "(an estimate from counted FLOPs: see paper_profile_cost.md)", ""]
    (out / f"gpu_{device_slug()}.md").write_text("\n".join(lines) + "\n")
    print(f"wrote {out / f'gpu_{device_slug()}.md'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
