"""adaptertune_lite: a small teaching package for AdapterTune (zero-initialised residual adapters in a frozen ViT).

Read it top to bottom, one module per concept:

* ``runtime``     – device, seeds, FAST mode, CPU threads, precision, versions
* ``meters``      – how much memory a block of code takes (sampled peak; exact tensor count)
* ``storage``     – atomic writes
* ``backbones``   – timm ViTs and the kit's own offline-pretrained ViT
* ``procedural``  – formula-driven images (fractals, glyphs) that pretrain the kit backbone
* ``transforms``  – batch transforms on the device: the backbone's input, augmentation
* ``targets``     – the composed offline targets that need adaptation (left_digit, max_digit)
* ``data``        – offline and torchvision datasets, and batches of them on the device
* ``adapters``    – the Adapter module; adding adapters to a timm ViT and removing them
* ``lora``        – LoRA from scratch: a low-rank update inside a frozen linear layer, and merging it away
* ``checkpoints`` – saving / loading adapters and head only (safetensors)
* ``params``      – which parameters train (head_only / adapter_tune / full_finetune / lora / bitfit), counting them
* ``recipes``     – ``Recipe``: how a run trains; the kit's recipes, budgets, and the course profiles (kit | paper)
* ``shortcuts``   – training on cached features or a cached frozen prefix
* ``train``       – ``fit``, ``train_step``, ``evaluate``, ``Speedups``
* ``cost``        – what a training step costs: memory by what holds it, FLOPs
* ``experiments`` – run configs, resumable sweeps with a result cache
* ``baselines``   – a reference point that is not a method: logistic regression on the raw pixels
* ``stats``       – paired differences over seeds: a t interval, and "no difference detected" when it says so
* ``claims``      – a notebook's claims checked on its own numbers and printed (✓ / ✗), never asserted
* ``elbow``       – the elbow of accuracy against rank: a fitted power law and a stated rule
* ``drift``       – how far adapted features move from the pretrained ones
* ``plots``       – the course's figure style and every figure function
* ``widgets``     – the explorers and the lecture demo (ipywidgets over experiments and plots)
* ``pretrain``    – the recipe behind the shipped kit weights
* ``twins``       – percent ``.py`` notebooks and their ``.ipynb`` twins
* ``cli``         – the ``adaptertune-lite`` command
* ``grading``     – self-checks, the exercise build, the sandboxed batch grader
"""

__version__ = "0.1.0"  # before the imports: experiments keys results by it

from .adapters import (
    INITS,
    PLACEMENTS,
    Adapter,
    AdapterConfig,
    adapters_of,
    add_adapters,
    every_k,
    first_k,
    last_k,
    num_adapter_params,
    remove_adapters,
    resolve_blocks,
)
from .backbones import KIT_BACKBONES, extract_features, kit_provenance, load_backbone
from .checkpoints import load_adapters, save_adapters
from .cost import MemoryBreakdown, memory_breakdown, step_flops
from .data import OFFLINE_DATASETS, ONLINE_DATASETS, DataSplits, load_dataset
from .elbow import ElbowFit, RobustElbow, fit_elbow, robust_elbow
from .experiments import RunConfig, grid, run, sweep
from .lora import SCALINGS, LoRALinear, add_lora, lora_layers, merge_lora
from .params import METHODS, ParamCount, count_parameters, set_trainable
from .recipes import Profile, Recipe, profile
from .runtime import by_mode, describe_device, fast_mode, get_device, seed_everything, versions
from .train import FitResult, Speedups, evaluate, fit, train_step

__all__ = [
    "INITS", "PLACEMENTS", "Adapter", "AdapterConfig", "add_adapters", "adapters_of", "every_k", "first_k", "last_k",
    "load_adapters", "num_adapter_params", "remove_adapters", "resolve_blocks", "save_adapters",
    "KIT_BACKBONES", "extract_features", "kit_provenance", "load_backbone",
    "OFFLINE_DATASETS", "ONLINE_DATASETS", "DataSplits", "load_dataset",
    "METHODS", "ParamCount", "count_parameters", "set_trainable",
    "by_mode", "describe_device", "fast_mode", "get_device", "seed_everything", "versions",
    "FitResult", "MemoryBreakdown", "Profile", "Recipe", "profile", "Speedups", "evaluate", "fit", "memory_breakdown", "step_flops", "train_step",
    "ElbowFit", "RobustElbow", "RunConfig", "fit_elbow", "grid", "robust_elbow", "run", "sweep",
    "SCALINGS", "LoRALinear", "add_lora", "lora_layers", "merge_lora",
]

from . import baselines, claims, data, elbow, experiments, lora, plots, recipes, shortcuts, stats, targets, transforms, widgets  # noqa: E402, F401  (namespaces: at.plots.use_style())
