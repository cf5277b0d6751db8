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
from itertools import product
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
from torch import nn
from tqdm.auto import tqdm

import adaptertune_lite

from . import adapters, backbones, data, lora, params, recipes, runtime, train
from .recipes import DEFAULT_TARGET, RECIPE_FIELDS, Profile, Recipe, n_train_for, recipe_for
from .storage import write_json
from .train import Speedups

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
# The config fields a method's key keeps beyond the common ones (the others cannot change its result).
METHOD_FIELDS = {"adapter_tune": ("rank", "placement", "blocks", "init", "scale"), "lora": ("rank", "lora_alpha", "lora_scaling")}


@dataclasses.dataclass(frozen=True)
class RunConfig:
    """Everything one training run computes from. Frozen and hashable; :meth:`key` names its result.

    Args:
        backbone: a kit backbone or timm ViT name (:func:`~adaptertune_lite.backbones.load_backbone`).
        dataset: a dataset name (:func:`~adaptertune_lite.data.load_dataset`).
        method: one of :data:`~adaptertune_lite.params.METHODS` (``head_only``, ``adapter_tune``, ``full_finetune``,
            ``lora``, ``bitfit``).
        rank, placement, blocks, init, scale: the adapters (``adapter_tune`` only; see ``add_adapters``).
        rank, lora_alpha, lora_scaling: LoRA on every block's attention and MLP linears (``lora`` only; see
            ``lora.add_lora``).
        seed: initialisation and shuffling; with ``k_shot`` also which images are drawn.
        n_train / k_shot: training images overall or per class (``None``: the whole train split).
        recipe: how it trains (:class:`~adaptertune_lite.recipes.Recipe`); ``None`` takes the recipe of
            ``method`` on ``dataset`` from :func:`~adaptertune_lite.recipes.recipe_for`.
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

    def __post_init__(self):
        if isinstance(self.blocks, list):  # lists are not hashable; keep the config frozen and hashable
            object.__setattr__(self, "blocks", tuple(self.blocks))
        if self.recipe is None:
            object.__setattr__(self, "recipe", recipe_for(self.method, self.dataset))

    @classmethod
    def from_recipe(cls, method: str = "adapter_tune", dataset: str = DEFAULT_TARGET, fast: bool | None = None, **changes) -> "RunConfig":
        """A config with the recipe and training-set size for ``method`` on ``dataset`` (the kit's FAST or full
        budget on a kit dataset; the official recipe on a torchvision dataset), then ``changes`` (recipe fields
        such as ``epochs`` or ``lr`` included)."""
        base = cls(method=method, dataset=dataset, n_train=n_train_for(dataset, fast), recipe=recipe_for(method, dataset, fast))
        return base.replace(**changes)

    @classmethod
    def for_profile(cls, method: str = "adapter_tune", profile: Profile | str | None = None, fast: bool | None = None,
                    **changes) -> "RunConfig":
        """A config for ``method`` in a course profile (:func:`~adaptertune_lite.recipes.profile`; ``None``: the active
        one): its backbone, dataset, training images and recipe, then ``changes``. In the ``kit`` profile this is
        ``from_recipe(method)``, so results already on disk keep their keys."""
        p = profile if isinstance(profile, Profile) else recipes.profile(profile)
        base = cls(backbone=p.backbone, dataset=p.dataset, method=method, n_train=p.n_train(fast), recipe=p.recipe(method, fast))
        return base.replace(**changes)

    def replace(self, **changes) -> "RunConfig":
        """A copy with ``changes``; recipe fields (``epochs``, ``lr``, ...) change the recipe."""
        unknown = set(changes) - set(CONFIG_FIELDS) - set(RECIPE_FIELDS)
        if unknown:
            raise ValueError(f"Unknown RunConfig fields {sorted(unknown)}: choose from {list(CONFIG_FIELDS + RECIPE_FIELDS)}.")
        in_recipe = {k: changes.pop(k) for k in list(changes) if k in RECIPE_FIELDS}
        recipe = changes.pop("recipe", self.recipe).replace(**in_recipe)
        return dataclasses.replace(self, recipe=recipe, **changes)

    def to_dict(self) -> dict:
        """The config as JSON-ready data, the recipe's fields inline (as results store it)."""
        d = {name: getattr(self, name) for name in CONFIG_FIELDS
             if name != "recipe" and (name not in LATER_CONFIG_FIELDS or getattr(self, name) != LATER_CONFIG_FIELDS[name])}
        d["blocks"] = list(self.blocks) if isinstance(self.blocks, tuple) else self.blocks
        d.update({k: v for k, v in self.recipe.to_dict().items() if k not in LATER_RECIPE_FIELDS or v != LATER_RECIPE_FIELDS[k]})
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "RunConfig":
        """The config a result stored (the inverse of :meth:`to_dict`)."""
        recipe = Recipe(**{k: v for k, v in {**LATER_RECIPE_FIELDS, **d}.items() if k in RECIPE_FIELDS})
        return cls(**{k: v for k, v in d.items() if k not in RECIPE_FIELDS}, recipe=recipe)

    def key(self) -> str:
        """16 hex digits naming this run: a hash of the config and the kit version.

        Adapter and LoRA settings enter only the key of a method that uses them (:data:`METHOD_FIELDS`), so a
        head-only run is computed once however many ranks a sweep lists.
        """
        d = self.to_dict()
        for name in {n for fields in METHOD_FIELDS.values() for n in fields} - set(METHOD_FIELDS.get(self.method, ())):
            d.pop(name, None)
        text = json.dumps({"config": d, "kit": _kit_version()}, sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:16]


CONFIG_FIELDS = tuple(f.name for f in dataclasses.fields(RunConfig))


def attach_method(model: nn.Module, config: RunConfig) -> nn.Module:
    """Add what ``config.method`` trains besides the head and the backbone's own weights: its adapters
    (``adapter_tune``) or LoRA updates (``lora``). Returns ``model``."""
    if config.method == "adapter_tune":
        adapters.add_adapters(model, rank=config.rank, placement=config.placement, blocks=config.blocks,
                              init=config.init, scale=config.scale)
    if config.method == "lora":
        lora.add_lora(model, rank=config.rank, alpha=config.lora_alpha, scaling=config.lora_scaling)
    return model


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
    if config is not None:  # the stored config must be one with this key (adapter fields do not count without adapters)
        try:
            stored = RunConfig.from_dict(res["config"]).key()
        except (TypeError, ValueError, KeyError):
            return None
        if res["key"] != config.key() or stored != config.key():
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
    """``(ranks, accuracies (n_ranks, n_seeds))`` from AdapterTune results; every rank needs the same seeds."""
    table: dict[int, dict[int, float]] = {}
    for r in results:
        table.setdefault(r["config"]["rank"], {})[r["config"]["seed"]] = r[metric]
    ranks = sorted(table)
    seeds = sorted(set.intersection(*(set(v) for v in table.values()))) if table else []
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


KIT_REPORT = Path(__file__).resolve().parents[1] / "benchmarks" / "results" / "kit_vit_tiny.json"  # in a clone of the repo


def full_recipe_elbow(ranks: Sequence[int], seeds: Sequence[int] = (0, 1, 2), report: str | os.PathLike = KIT_REPORT) -> list[dict]:
    """The kit benchmark's AdapterTune runs at the kit profile's *full* recipe, every rank x seed, matched by key
    (config and kit version) in the committed report ``benchmarks/results/kit_vit_tiny.json``; ``[]`` when the
    report is not there (a pip install has no ``benchmarks/``) or lacks any of them. A CPU cannot run these in
    a lecture; they show what the curve looks like after full training."""
    path = Path(report)
    if not path.is_file():
        return []
    shipped = json.loads(path.read_text())["runs"]
    configs = grid(RunConfig.for_profile("adapter_tune", "kit", fast=False), rank=list(ranks), seed=list(seeds))
    found = [shipped[c.key()] for c in configs if c.key() in shipped]
    return found if len(found) == len(configs) else []
