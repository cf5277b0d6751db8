"""Experiments: one run is a frozen config; a sweep runs the configs whose results are missing.

* :class:`RunConfig` names everything a run depends on; its :meth:`~RunConfig.key` (a hash of the
  config and the kit version) names its result file, ``OUT/runs/<key>.json``.
* :func:`run` trains and evaluates one config through :func:`~adaptertune_lite.train.fit`.
* :func:`sweep` runs what is missing and reuses what is there. Each result is written atomically
  as soon as its run ends, so a sweep killed mid-way resumes without recomputing anything that
  finished; a corrupt or partial result file is detected and recomputed, never used.

Runs are independent and idempotent, so a long sweep can be split over processes, GPUs or
machines that share ``OUT``: each writes only its own runs' files.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import json
import os
import time
import warnings
from itertools import product
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
from torch import nn
from tqdm.auto import tqdm

import adaptertune_lite

from .. import backbones, data, methods, params, train
from ..engine import runtime
from ..engine.storage import write_json
from ..recipes import DEFAULT_TARGET, RECIPE_FIELDS, Recipe, n_train_for, recipe_for
from ..train import Speedups
from .profiles import Profile

RESULT_FORMAT = "adaptertune_lite.run/1"
RUNS_ENV = "ADAPTERTUNE_RUNS"
SHIPPED = Path(__file__).parent / "results"  # sweeps shipped with the kit (each folder has a provenance.json)


def runs_root() -> Path:
    """Where notebooks keep sweep results: ``$ADAPTERTUNE_RUNS`` or ``~/.cache/adaptertune_lite/runs``."""
    return Path(os.environ.get(RUNS_ENV) or Path.home() / ".cache" / "adaptertune_lite" / "runs")


def _kit_version() -> str:
    return adaptertune_lite.__version__  # read when asked (a test may set it)


# Recipe fields added after results were shipped, with the value every earlier run used: a run's key
# names them only when they differ, so the shipped results keep their keys.
LATER_RECIPE_FIELDS = {"warmup_epochs": None, "grad_clip": 1.0, "label_smoothing": 0.0, "augment": None}
LATER_CONFIG_FIELDS = {"lora_alpha": None, "lora_scaling": "alpha/r"}  # the same for config fields
@dataclasses.dataclass(frozen=True)
class RunConfig:
    """Everything one training run computes from. Frozen and hashable; :meth:`key` names its result.

    A config means the same run in every process: building one reads neither the environment nor the hardware
    (FAST mode and the profile are decided once, by ``course.profiles.profile``, and passed in as ``fast``).

    Args:
        backbone: a kit backbone or timm ViT name (:func:`~adaptertune_lite.backbones.load_backbone`).
        dataset: a dataset name (:func:`~adaptertune_lite.data.load_dataset`).
        method: one of :data:`~adaptertune_lite.methods.METHODS` (``head_only``, ``adapter_tune``, ``full_finetune``,
            ``lora``, ``bitfit``).
        rank, placement, blocks, init, scale: the adapters (``adapter_tune`` only; see ``add_adapters``).
        rank, lora_alpha, lora_scaling: LoRA on every block's attention and MLP linears (``lora`` only; see
            ``lora.add_lora``).
        seed: initialisation and shuffling; with ``k_shot`` also which images are drawn.
        n_train / k_shot: training images overall or per class (``None``: the whole train split).
        recipe: how it trains (:class:`~adaptertune_lite.recipes.Recipe`). ``None``: the method's recipe on
            ``dataset`` at the ``fast`` or full budget (``recipes.recipe_for``), and it *follows the method*: a copy
            with another method gets that method's recipe. A recipe set here, or changed through :meth:`replace`
            (``lr=...``), is kept whatever the method.
        fast: which budget a recipe that follows its method takes (it enters no key: the recipe it picks does).
        pretrained: pretrained backbone weights (``False``: random initialisation).

    How fast a run goes (``train.Speedups``) is not part of it: pass it to :func:`run` / :func:`sweep`.
    """

    backbone: str = "kit_vit_tiny"
    dataset: str = DEFAULT_TARGET
    method: str = "adapter_tune"
    rank: int = 16
    placement: str = "post_block"
    blocks: str | tuple[int, ...] = "all"
    init: str = "zero"
    scale: float = 1.0
    seed: int = 0
    n_train: int | None = None
    k_shot: int | None = None
    recipe: Recipe | None = None
    pretrained: bool = True
    lora_alpha: float | None = None
    lora_scaling: str = "alpha/r"
    fast: bool = True
    # Whether ``recipe`` was set (kept) or follows the method; None: set exactly when a recipe is given.
    recipe_set: bool | None = dataclasses.field(default=None, repr=False, compare=False)

    def __post_init__(self):
        if isinstance(self.blocks, list):  # lists are not hashable; keep the config frozen and hashable
            object.__setattr__(self, "blocks", tuple(self.blocks))
        methods.method(self.method)  # a clear error for an unknown method
        recipe_set = self.recipe is not None if self.recipe_set is None else self.recipe_set
        object.__setattr__(self, "recipe_set", recipe_set)
        if not recipe_set:  # follows the method (also after dataclasses.replace with another method)
            object.__setattr__(self, "recipe", recipe_for(self.method, self.dataset, fast=self.fast))
        object.__setattr__(self, "_key", _key_of(self))  # computed once

    @classmethod
    def from_recipe(cls, method: str = "adapter_tune", dataset: str = DEFAULT_TARGET, *, fast: bool, **changes) -> "RunConfig":
        """A config for ``method`` on ``dataset`` at the FAST (``fast=True``) or full budget: its training images and
        the method's recipe (which follows the method), then ``changes`` (recipe fields such as ``epochs`` or ``lr``
        included; they keep the recipe)."""
        return cls(method=method, dataset=dataset, n_train=n_train_for(dataset, fast=fast), fast=fast).replace(**changes)

    @classmethod
    def for_profile(cls, method: str, profile: Profile, **changes) -> "RunConfig":
        """A config for ``method`` in a course profile (from ``course.profiles.profile()``, the one call that reads
        FAST mode): its backbone, dataset, training images and budget, then ``changes``. In the ``kit`` profile this
        is ``from_recipe(method, fast=profile.fast)``, so results already on disk keep their keys."""
        if not isinstance(profile, Profile):
            raise TypeError(f"for_profile takes a Profile (adaptertune_lite.profile()), not {profile!r}: the profile and "
                            "FAST mode are decided once, by that call.")
        base = cls(backbone=profile.backbone, dataset=profile.dataset, method=method, n_train=profile.n_train(), fast=profile.fast)
        return base.replace(**changes)

    def replace(self, **changes) -> "RunConfig":
        """A copy with ``changes``. Recipe fields (``epochs``, ``lr``, ...) change the recipe and keep it from then on;
        another ``method`` brings its own recipe unless the recipe was set (then a warning says it is kept)."""
        unknown = set(changes) - set(CONFIG_FIELDS) - set(RECIPE_FIELDS) - {"recipe_set"}
        if unknown:
            raise ValueError(f"Unknown RunConfig fields {sorted(unknown)}: choose from {list(CONFIG_FIELDS + RECIPE_FIELDS)}.")
        in_recipe = {k: changes.pop(k) for k in list(changes) if k in RECIPE_FIELDS}
        if "recipe" in changes:
            changes.setdefault("recipe_set", changes["recipe"] is not None)
        elif in_recipe:
            changes.update(recipe=self.recipe.replace(**in_recipe), recipe_set=True)
        elif self.recipe_set and changes.get("method", self.method) != self.method:
            warnings.warn(f"RunConfig: method {changes['method']!r} keeps the recipe that was set for {self.method!r} "
                          f"(lr={self.recipe.lr:g}, epochs={self.recipe.epochs}); pass recipe=None for {changes['method']!r}'s own.",
                          stacklevel=2)
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict:
        """The config as JSON-ready data, the recipe's fields inline (as results store it)."""
        d = {name: getattr(self, name) for name in CONFIG_FIELDS
             if name not in ("recipe", "fast") and (name not in LATER_CONFIG_FIELDS or getattr(self, name) != LATER_CONFIG_FIELDS[name])}
        d["blocks"] = list(self.blocks) if isinstance(self.blocks, tuple) else self.blocks
        d.update({k: v for k, v in self.recipe.to_dict().items() if k not in LATER_RECIPE_FIELDS or v != LATER_RECIPE_FIELDS[k]})
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "RunConfig":
        """The config a result stored (the inverse of :meth:`to_dict`; its recipe is set)."""
        recipe = Recipe(**{k: v for k, v in {**LATER_RECIPE_FIELDS, **d}.items() if k in RECIPE_FIELDS})
        return cls(**{k: v for k, v in d.items() if k not in RECIPE_FIELDS}, recipe=recipe)

    def key(self) -> str:
        """16 hex digits naming this run: a hash of the config and the kit version, computed when it was built.

        Adapter and LoRA settings enter only the key of a method that uses them (its record's ``settings``), so a
        head-only run is computed once however many ranks a sweep lists.
        """
        return self._key


CONFIG_FIELDS = tuple(f.name for f in dataclasses.fields(RunConfig) if f.name != "recipe_set")
SETTINGS = {name for m in methods.METHODS.values() for name in m.settings}  # every method-specific field


def _keyed(d: dict) -> dict:
    """A config's dict without the settings its method does not use (they cannot change its result)."""
    unused = SETTINGS - set(methods.method(d["method"]).settings)
    return {k: v for k, v in d.items() if k not in unused}


def _key_of(config: RunConfig) -> str:
    text = json.dumps({"config": _keyed(config.to_dict()), "kit": _kit_version()}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def attach_method(model: nn.Module, config: RunConfig) -> nn.Module:
    """Add what ``config.method`` trains besides the head and the backbone's own weights (its record's
    ``attach``: adapters for ``adapter_tune``, LoRA updates for ``lora``). Returns ``model``."""
    return methods.method(config.method).attach(model, **{name: getattr(config, name) for name in SETTINGS})


def run(config: RunConfig, data_cache: dict | None = None, progress: bool = True, device=None, callbacks=(),
        speedups: Speedups | None = None) -> dict:
    """Train and evaluate one config. Returns its result as a JSON-ready dict.

    ``data_cache`` (a dict) lets the runs of one process share loaded datasets; ``speedups`` choose how
    fast ``fit`` goes (:class:`~adaptertune_lite.train.Speedups`), never what the result is.
    """
    start = time.perf_counter()
    runtime.seed_everything(config.seed)  # the new head and the adapters are initialised from this seed
    model = backbones.load_backbone(config.backbone, num_classes=None, pretrained=config.pretrained)
    subset_seed = config.seed if config.k_shot else 0  # an n_train subset is the same for every seed
    cache_key = (config.backbone, config.dataset, config.n_train, config.k_shot, subset_seed)
    cache = data_cache if data_cache is not None else {}
    if cache_key not in cache:
        cache[cache_key] = data.load_dataset(config.dataset, model, n_train=config.n_train, k_shot=config.k_shot, seed=subset_seed)
    splits = cache[cache_key]
    model.reset_classifier(splits.num_classes)
    attach_method(model, config)
    result = train.fit(model, splits.train, splits.val, method=config.method, recipe=config.recipe, seed=config.seed,
                       device=device, speedups=speedups, progress=progress, callbacks=callbacks)
    counts = params.count_parameters(model)
    return {
        "format": RESULT_FORMAT,
        "key": config.key(),
        "config": config.to_dict(),
        "kit_version": _kit_version(),
        "val_acc": result.val_acc,
        "test_acc": train.evaluate(model, splits.test, device=result.device),
        "trainable_params": counts.trainable,
        "fraction_of_full": counts.fraction_of_full,
        "train_wall_time_s": result.wall_time_s,
        "wall_time_s": time.perf_counter() - start,
        "peak_memory_mb": result.peak_memory_mb,
        "memory_kind": result.memory_kind,
        "device": result.device,
        "loss": result.history["loss"],
        "finished": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
    }


def result_path(out_dir: str | os.PathLike, config: RunConfig) -> Path:
    """Where ``config``'s result lives: ``out_dir/runs/<key>.json``."""
    return Path(out_dir) / "runs" / f"{config.key()}.json"


def load_result(path: str | os.PathLike, config: RunConfig | None = None) -> dict | None:
    """A finished run's result, or ``None`` if the file is missing, unreadable, partial, or not ``config``'s."""
    try:
        res = json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None
    required = ("format", "key", "config", "val_acc", "test_acc", "wall_time_s")
    if not isinstance(res, dict) or res.get("format") != RESULT_FORMAT or any(k not in res for k in required):
        return None
    if config is not None:  # the stored config must be this one (settings its method does not use aside)
        try:
            same = _keyed(res["config"]) == _keyed(config.to_dict())
        except (TypeError, ValueError, KeyError):  # not a config dict, or an unknown method: not this run's
            return None
        if res["key"] != config.key() or not same:
            return None
    return res


def run_and_save(config: RunConfig, out_dir: str | os.PathLike, device=None, progress: bool = False,
                 speedups: Speedups | None = None) -> dict:
    """Run ``config`` and write its result atomically to :func:`result_path`: one job of a distributed sweep."""
    res = run(config, progress=progress, device=device, speedups=speedups)
    write_json(result_path(out_dir, config), res)
    return res


def sweep(configs: Iterable[RunConfig], out_dir: str | os.PathLike, progress: bool = True, device=None,
          executor=None, speedups: Speedups | None = None) -> list[dict]:
    """Run every config whose result is not in ``out_dir/runs/`` yet; return all results in ``configs``' order.

    A progress bar counts runs (each run's own bar nests below it). Each result file is written
    atomically when its run ends: kill the sweep at any moment and run it again to resume.
    Duplicate configs (same key) are run once.

    ``executor``: a submitit executor (``pip install adaptertune_lite[cluster]``), e.g.
    ``submitit.AutoExecutor(folder=...)`` set up for Slurm: each missing run becomes one job of an
    array, which writes its own result file, so a cancelled array also resumes. ``speedups``
    (:class:`~adaptertune_lite.train.Speedups`) go to every run and never change a result's key.
    """
    configs = list(configs)
    unique = {}
    for c in configs:  # configs with the same key run once
        unique.setdefault(c.key(), c)
    results = {key: found for key, c in unique.items() if (found := load_result(result_path(out_dir, c), c)) is not None}
    todo = [c for key, c in unique.items() if key not in results]
    desc = f"sweep: {len(todo)} to run, {len(results)} cached"
    if executor is not None and todo:
        n = len(todo)
        jobs = executor.map_array(run_and_save, todo, [out_dir] * n, [device] * n, [False] * n, [speedups] * n)
        for c, job in zip(todo, tqdm(jobs, desc=desc + f" as {len(jobs)} jobs", disable=not progress)):
            results[c.key()] = job.result()  # waits; a failed job raises with its log's path
        return [results[c.key()] for c in configs]
    data_cache: dict = {}
    for c in tqdm(todo, desc=desc, disable=not progress or not todo):
        res = run(c, data_cache, progress=progress, device=device, speedups=speedups)
        write_json(result_path(out_dir, c), res)
        results[c.key()] = res
    return [results[c.key()] for c in configs]


def load_results(out_dir: str | os.PathLike, **match) -> list[dict]:
    """Every valid result under ``out_dir/runs/`` whose config has the values in ``match``, whatever
    kit version wrote it (e.g. results shipped with the kit): ``load_results(d, dataset="left_digit")``."""
    found = []
    for path in sorted((Path(out_dir) / "runs").glob("*.json")):
        res = load_result(path)
        if res is not None and all(res["config"].get(k) == v for k, v in match.items()):
            found.append(res)
    return found


def by_rank(results: Iterable[dict], metric: str = "test_acc") -> tuple[list[int], np.ndarray]:
    """``(ranks, accuracies (n_ranks, n_seeds))`` from AdapterTune results, over the seeds every rank has. Seeds that
    only some ranks have are left out with a warning that names them; no seed shared by all ranks is an error."""
    table: dict[int, dict[int, float]] = {}
    for r in results:
        table.setdefault(r["config"]["rank"], {})[r["config"]["seed"]] = r[metric]
    ranks = sorted(table)
    seeds = sorted(set.intersection(*(set(v) for v in table.values()))) if table else []
    if table and not seeds:
        raise ValueError("by_rank: no seed was run at every rank (" + "; ".join(f"r={r}: seeds {sorted(table[r])}" for r in ranks)
                         + "): run the missing seeds, or pass results of one seed set.")
    dropped = {r: sorted(set(table[r]) - set(seeds)) for r in ranks if set(table[r]) - set(seeds)}
    if dropped:
        warnings.warn(f"by_rank: only seeds {seeds} were run at every rank; left out: "
                      + ", ".join(f"r={r} seeds {s}" for r, s in dropped.items()), stacklevel=2)
    return ranks, np.array([[table[r][s] for s in seeds] for r in ranks]).reshape(len(ranks), len(seeds))


def grid(base: RunConfig, **axes: Sequence) -> list[RunConfig]:
    """Every combination of ``axes`` applied to ``base``: ``grid(base, rank=[1, 4], seed=[0, 1])`` is 4 configs.
    Recipe fields are axes too: ``grid(base, lr=[1e-3, 3e-3])``."""
    names = list(axes)
    return [base.replace(**dict(zip(names, values))) for values in product(*(axes[n] for n in names))]


def run_elbow(base: RunConfig, ranks: Sequence[int], seeds: Sequence[int], out_dir: str | os.PathLike,
              progress: bool = True) -> list[dict]:
    """Run (or load from ``out_dir``) AdapterTune at every rank x seed of ``base``; results in grid order."""
    return sweep(grid(base, rank=list(ranks), seed=list(seeds)), out_dir, progress=progress)


FULL_RECIPE = SHIPPED / "kit_full_recipe"  # the kit report's AdapterTune runs at the full recipe, shipped in the package
FULL_RECIPE_RANKS = (1, 2, 4, 8, 16, 32, 64)


def full_recipe_configs(ranks: Sequence[int] = FULL_RECIPE_RANKS, seeds: Sequence[int] = (0, 1, 2)) -> list[RunConfig]:
    """AdapterTune on the default target at the kit's full recipe (15 epochs, the whole train split), rank x seed."""
    return grid(RunConfig.from_recipe("adapter_tune", DEFAULT_TARGET, fast=False), rank=list(ranks), seed=list(seeds))


def full_recipe_elbow(ranks: Sequence[int], seeds: Sequence[int] = (0, 1, 2), shipped: str | os.PathLike = FULL_RECIPE) -> list[dict]:
    """The kit benchmark's AdapterTune runs at the full recipe, every rank x seed, found by key in the package's
    ``course/results/kit_full_recipe/`` (``benchmarks/kit_backbone.py`` writes it beside its report, so a pip install
    has them); ``[]`` when any is missing. A CPU cannot run these in a lecture; they show the curve after full training."""
    configs = full_recipe_configs(ranks, seeds)
    found = [res for c in configs if (res := load_result(result_path(shipped, c), c)) is not None]
    return found if len(found) == len(configs) else []


def ship_results(results: Iterable[dict], out_dir: str | os.PathLike, provenance: dict) -> None:
    """Write ``results`` as a shipped sweep: ``out_dir/runs/<key>.json`` each (without the per-step loss, which no
    notebook reads from them) and ``out_dir/provenance.json``; runs already there that are not in ``results`` go."""
    runs = Path(out_dir) / "runs"
    results = {r["key"]: {k: v for k, v in r.items() if k != "loss"} for r in results}
    for stale in runs.glob("*.json") if runs.is_dir() else ():
        if stale.stem not in results:
            stale.unlink()
    for key, res in results.items():
        write_json(runs / f"{key}.json", res)
    write_json(Path(out_dir) / "provenance.json", {**provenance, "runs": len(results)})
