"""The ``adaptertune-lite`` command: ``doctor`` checks a setup, ``pretrain`` builds the kit backbone,
``sweep`` runs (or resumes) a grid of experiments, ``figures`` exports the key figures from cached results,
``build-exercises`` writes exercises/ and solutions/ from their masters, ``grade`` grades a class."""

from __future__ import annotations

import argparse
import datetime as dt
import json
import platform
import shlex
import sys
from dataclasses import fields
from pathlib import Path

import huggingface_hub.constants as hf_constants
import matplotlib
import matplotlib.pyplot as plt

from .. import backbones, data, methods, params, train
from ..engine import runtime
from ..engine.storage import write_json
from ..grading import build, grader
from . import experiments, plots, profiles
from .pretrain import PretrainConfig, pretrain


def doctor() -> int:
    """Print what the course needs and whether it is here. Returns 0 when everything needed is present."""
    problems = []
    print("adaptertune_lite doctor")
    for pkg, ver in runtime.versions().items():
        print(f"  {pkg:<18} {ver}")
        if ver == "not installed" and pkg != "adaptertune_lite":
            problems.append(f"{pkg} is not installed")
    print(f"  device             {runtime.describe_device()}")
    print(f"  FAST mode          {'on' if runtime.fast_mode() else 'off'} (set ADAPTERTUNE_FAST=0/1 to choose)")
    prof = profiles.profile()
    print(f"  profile            {prof.name}: {prof.backbone} on {prof.dataset}, because {prof.why} "
          f"(set {profiles.PROFILE_ENV}=kit/paper to choose)")
    print("offline assets")
    for name in backbones.KIT_BACKBONES:
        try:
            backbones.load_backbone(name, num_classes=10)
            prov = backbones.kit_provenance(name)
            print(f"  [ok] {name}: weights verified (sha256 {prov['sha256'][:12]}..., pretraining held-out acc {prov['heldout_accuracy']:.3f})")
        except (FileNotFoundError, ValueError) as err:
            print(f"  [missing] {name}: {err}")
            problems.append(f"kit backbone {name}")
    for name in ("mnist5k", "digits"):
        try:
            splits = data.load_dataset(name)
            print(f"  [ok] {splits}")
        except Exception as err:  # report every failure, never crash the doctor
            print(f"  [missing] {name}: {type(err).__name__}: {err}")
            problems.append(f"dataset {name}")
    root = data.data_root()
    present = sorted(p.name for p in root.iterdir()) if root.is_dir() else []
    print(f"downloaded data in {root}: {', '.join(present) or 'none'}")
    cached = backbones.cached_models()
    print(f"timm weights in the Hugging Face cache ({hf_constants.HF_HUB_CACHE}): {', '.join(cached) or 'none'}")
    online = backbones.hub_reachable()
    print(f"online (huggingface.co reachable): {'yes' if online else 'no: use the kit backbone and offline datasets'}")
    if problems:
        print("\nMISSING: " + "; ".join(problems) + ". Run `make lab` (or `pip install -e .`) in the repository to repair.")
        return 1
    print("\nAll set.")
    return 0


def _csv(kind):
    return lambda text: [kind(v) for v in text.split(",") if v]


def sweep_command(args) -> int:
    """Run the grid the flags describe; print one line per run; results stay in OUT/runs/."""
    fast = {"fast": True, "full": False, "auto": None}[args.budget]
    changes = {k: v for k, v in (("epochs", args.epochs), ("lr", args.lr), ("n_train", args.n_train),
                                 ("augment", args.augment)) if v is not None}
    speedups = train.Speedups(cache_frozen_prefix=args.cache_prefix, grad_checkpointing=args.grad_checkpointing,
                              compile=args.compile)
    prof = profiles.profile(args.profile, fast)
    if args.backbone is None and args.dataset is None:  # the profile's setting, with its budget
        base = experiments.RunConfig.for_profile(args.method, prof, **changes)
    else:
        base = experiments.RunConfig.from_recipe(args.method, args.dataset or prof.dataset, fast=prof.fast,
                                                 backbone=args.backbone or prof.backbone, **changes)
    print(f"{prof}; running {base.backbone} on {base.dataset}", file=sys.stderr)
    settings = methods.method(args.method).settings  # what the method's runs vary (LoRA: s = 1 at each rank)
    axes = {"seed": args.seeds}
    for name, values in (("rank", args.ranks), ("placement", args.placements), ("blocks", args.blocks)):
        if name in settings:
            axes[name] = values
    configs = experiments.grid(base, **axes)
    executor = None
    if args.executor == "slurm":
        try:
            import submitit  # noqa: PLC0415  (an optional extra: adaptertune_lite[cluster])
        except ImportError:
            print("--executor slurm needs submitit: pip install 'adaptertune_lite[cluster]'", file=sys.stderr)
            return 2
        executor = submitit.AutoExecutor(folder=f"{args.out}/submitit")
        executor.update_parameters(timeout_min=args.timeout_min, gpus_per_node=args.gpus_per_job,
                                   slurm_partition=args.partition, slurm_array_parallelism=args.parallel)
    results = experiments.sweep(configs, args.out, progress=sys.stderr.isatty(), executor=executor, speedups=speedups)
    print(f"{'rank':>4} {'placement':<10} {'blocks':<8} {'seed':>4} {'val %':>6} {'test %':>6} {'time s':>7}")
    for c, r in zip(configs, results):
        print(f"{c.rank:>4} {c.placement:<10} {str(c.blocks):<8} {c.seed:>4} {100 * r['val_acc']:>6.1f} "
              f"{100 * r['test_acc']:>6.1f} {r['wall_time_s']:>7.1f}")
    print(f"{len(results)} runs; results in {args.out}/runs/")
    _write_provenance(args.out, len(results), args.argv)
    return 0


def _write_provenance(out: str, n_runs: int, argv: list[str]) -> None:
    """``OUT/provenance.json``: the command that produced the results, where, when, with which versions."""
    write_json(f"{out}/provenance.json", {
        "command": "adaptertune-lite " + shlex.join(argv),
        "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "machine": f"{platform.machine()}, {platform.system()}, {runtime.describe_device()}",
        "versions": runtime.versions(),
        "runs": n_runs,
    })


def _settings(runs: list[dict], varying: tuple[str, ...]) -> int:
    """How many distinct values of the config fields ``varying`` the ``runs`` have."""
    return len({tuple(str(r["config"][k]) for k in varying) for r in runs})


def _largest_sweep(results: list[dict], varying: tuple[str, ...]) -> list[dict]:
    """The runs of the sweep over ``varying`` (and seeds) with the most settings among ``results``: the runs are
    grouped by every other config field, and the group with the most distinct values of ``varying`` wins."""
    groups: dict[str, list[dict]] = {}
    for r in results:
        rest = {k: v for k, v in r["config"].items() if k not in (*varying, "seed")}
        groups.setdefault(json.dumps(rest, sort_keys=True, default=str), []).append(r)
    return max(groups.values(), key=lambda runs: _settings(runs, varying), default=[])


def figures_command(out: str, runs: str | None) -> int:
    """Export the course's key figures (PNG and SVG) from cached results: the shipped lecture sweep, and the
    notebooks' sweeps where they have run (``runs``: their results root, default the notebooks' cache)."""
    matplotlib.use("Agg")  # files only, no window
    plots.use_style()
    root = Path(runs) if runs else experiments.runs_root()
    figures = {}
    lecture = experiments.load_results(experiments.SHIPPED / "lecture_elbow", method="adapter_tune")
    full = params.count_parameters(backbones.load_backbone("kit_vit_tiny", num_classes=10)).total  # what full FT trains
    figures["lecture_elbow"] = plots.lecture_figure(lecture, 16, full, "AdapterTune on left_digit: accuracy vs rank")
    cached = experiments.load_results(root, method="adapter_tune")
    elbow = _largest_sweep([r for r in cached if r["config"]["placement"] == "post_block" and r["config"]["blocks"] == "all"],
                           varying=("rank",))
    if elbow:  # notebook 05's sweep: the most ranks over one setting
        c = elbow[0]["config"]
        figures["rank_elbow"] = plots.elbow_figure(elbow, title=f"rank elbow, {c['n_train'] or 'all'} training images, {c['epochs']} epochs")
    where = ("placement", "blocks", "scale")
    placement = _largest_sweep(cached, varying=where)
    if _settings(placement, where) > 1:  # notebook 06's sweep: more than one place for the adapters
        figures["placement"] = plots.placement_figure(placement)
    Path(out).mkdir(parents=True, exist_ok=True)
    for name, fig in figures.items():
        for ext in ("png", "svg"):
            fig.savefig(Path(out) / f"{name}.{ext}", dpi=150)
        plt.close(fig)
        print(f"wrote {out}/{name}.png and .svg")
    missing = {"rank_elbow", "placement"} - set(figures)
    if missing:
        print(f"no cached results for {', '.join(sorted(missing))} under {root}: run notebooks 05 / 06 first")
    return 0


def build_exercises_command(root: str, check: bool) -> int:
    """Write (or with ``check``, only verify) exercises/ and solutions/ from exercises/src/ under ``root``."""
    try:
        import jupytext  # noqa: F401, PLC0415  (an optional extra: adaptertune_lite[lab])
    except ImportError:
        print("build-exercises needs jupytext: pip install 'adaptertune_lite[lab]' (make lab installs it).", file=sys.stderr)
        return 2
    if not build.masters(Path(root)):
        print(f"no exercise masters in {Path(root) / 'exercises' / 'src'}: run this in the repository "
              "(or pass --root).", file=sys.stderr)
        return 2
    try:
        stale = build.build(Path(root), check=check)
    except build.MarkerError as err:
        print(f"malformed solution markers: {err}", file=sys.stderr)
        return 2
    for p in stale:
        print(f"{'stale' if check else 'wrote'} {p.relative_to(Path(root).resolve()) if p.is_absolute() else p}")
    if check and stale:
        print("Out of date: run `adaptertune-lite build-exercises`.", file=sys.stderr)
        return 1
    return 0


def grade_command(args) -> int:
    """Grade every submission under ``args.submissions``; print a per-student total."""
    try:
        limits = grader.Limits(memory_mb=args.memory_mb, max_procs=args.max_procs, cpu_s=args.cpu_s)
        table = grader.grade(args.submissions, args.out, tests=args.tests, timeout=args.timeout, jobs=args.jobs,
                             sandbox=args.sandbox, feedback_dir=args.feedback, progress=sys.stderr.isatty(),
                             limits=limits)
    except (FileNotFoundError, RuntimeError, ValueError) as err:
        print(f"grade: {err}", file=sys.stderr)
        return 2
    totals: dict[str, list[float]] = {}
    for row in table:
        got = totals.setdefault(row["student"], [0.0, 0.0])
        got[0] += float(row["points"])
        got[1] += float(row["max"])
    for student, (got, out_of) in sorted(totals.items()):
        print(f"{student:<24} {got:>6g} / {out_of:g}")
    sandboxes = sorted({row["sandbox"] for row in table})
    print(f"{len(table)} rows in {args.out} (sandbox: {', '.join(sandboxes) or 'none'})")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="adaptertune-lite", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("doctor", help="check versions, device, FAST mode, offline assets and connectivity")
    p = sub.add_parser("pretrain", help="pretrain a kit backbone on procedural images")
    for f in fields(PretrainConfig):
        p.add_argument(f"--{f.name.replace('_', '-')}", type=type(f.default), default=f.default, help=f"(default {f.default})")
    p.add_argument("--out", default=None, help="output folder (default: the package's weights folder)")
    p.add_argument("--device", default=None, help="cpu or cuda (default: cuda when available)")
    s = sub.add_parser("sweep", help="run a grid of experiments; finished runs are reused, so a killed sweep resumes")
    s.add_argument("--profile", choices=profiles.PROFILES, default=None,
                   help="the course scale (default: $ADAPTERTUNE_PROFILE, else kit, or paper on a GPU with the Hub)")
    s.add_argument("--backbone", default=None, help="kit or timm backbone name (default: the profile's)")
    s.add_argument("--dataset", default=None, help="dataset name (default: the profile's)")
    s.add_argument("--method", default="adapter_tune", choices=list(methods.METHODS))
    s.add_argument("--ranks", type=_csv(int), default=[16], help="comma-separated, e.g. 1,2,4,8")
    s.add_argument("--placements", type=_csv(str), default=["post_block"], help="e.g. post_block,houlsby")
    s.add_argument("--blocks", type=_csv(str), default=["all"], help="e.g. all,last:2,every:2")
    s.add_argument("--seeds", type=_csv(int), default=[0], help="e.g. 0,1,2")
    s.add_argument("--budget", choices=("auto", "fast", "full"), default="auto", help="kit recipe budget (auto: FAST mode decides)")
    s.add_argument("--epochs", type=int, default=None, help="override the recipe's epochs")
    s.add_argument("--lr", type=float, default=None, help="override the recipe's learning rate")
    s.add_argument("--n-train", type=int, default=None, help="override the recipe's training images")
    s.add_argument("--augment", choices=("crop_flip", "crop"), default=None, help="augment training batches (a recipe field)")
    s.add_argument("--cache-prefix", action="store_true", help="speed: cache the frozen blocks before the first adapter")
    s.add_argument("--grad-checkpointing", action="store_true", help="speed: recompute activations to save memory")
    s.add_argument("--compile", action="store_true", help="speed: torch.compile the training forward")
    s.add_argument("--out", required=True, help="results folder (runs/<key>.json inside)")
    s.add_argument("--executor", choices=("local", "slurm"), default="local",
                   help="local: runs here one after another; slurm: one job per missing run (needs submitit)")
    s.add_argument("--partition", default=None, help="slurm partition")
    s.add_argument("--gpus-per-job", type=int, default=1, help="slurm: GPUs per run")
    s.add_argument("--timeout-min", type=int, default=60, help="slurm: minutes per run")
    s.add_argument("--parallel", type=int, default=32, help="slurm: runs at once")
    f = sub.add_parser("figures", help="export the course's key figures (PNG and SVG) from cached results")
    f.add_argument("--out", default="figures", help="folder for the figures (default: figures)")
    f.add_argument("--runs", default=None, help="results root of the notebooks' sweeps (default: $ADAPTERTUNE_RUNS)")
    b = sub.add_parser("build-exercises", help="write exercises/ (stubs) and solutions/ from exercises/src/ masters")
    b.add_argument("--root", default=".", help="the repository (default: the current folder)")
    b.add_argument("--check", action="store_true", help="only check; exit 1 if a generated file is stale")
    g = sub.add_parser("grade", help="grade a folder of submissions: CSV + per-student feedback")
    g.add_argument("submissions", help="folder with one sub-folder (or one .ipynb) per student")
    g.add_argument("--out", default="grades.csv", help="CSV to write (default: grades.csv)")
    g.add_argument("--tests", default=None, help="folder of hidden-test .py files (see README)")
    g.add_argument("--timeout", type=float, default=120.0, help="seconds per submission (default: 120)")
    g.add_argument("--jobs", type=int, default=None, help="submissions at once (default: CPU cores)")
    g.add_argument("--sandbox", choices=("auto", "bwrap", "none"), default="auto",
                   help="auto: bubblewrap when installed; bwrap: require it; none: run unconfined")
    g.add_argument("--feedback", default=None, help="folder for STUDENT.md feedback (default: next to the CSV)")
    g.add_argument("--memory-mb", type=int, default=4096, help="memory cap per submission in MB (default: 4096)")
    g.add_argument("--max-procs", type=int, default=64,
                   help="processes + threads per submission, in the sandbox (default: 64)")
    g.add_argument("--cpu-s", type=int, default=None, help=f"CPU seconds per submission (default: {grader.CPU_RULE})")
    args = parser.parse_args(argv)

    if args.command == "build-exercises":
        return build_exercises_command(args.root, args.check)
    if args.command == "grade":
        return grade_command(args)
    if args.command == "figures":
        return figures_command(args.out, args.runs)
    if args.command == "doctor":
        return doctor()
    if args.command == "sweep":
        args.argv = sys.argv[1:] if argv is None else list(argv)
        return sweep_command(args)
    cfg = PretrainConfig(**{f.name: getattr(args, f.name) for f in fields(PretrainConfig)})
    prov = pretrain(cfg, out_dir=args.out, device=args.device, progress=sys.stderr.isatty())
    print(f"wrote {cfg.backbone}: held-out accuracy {prov['heldout_accuracy']:.3f} after {prov['images_seen']:,} images, {prov['wall_time_s']} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
