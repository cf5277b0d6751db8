"""adaptertune_lite: a small teaching package for AdapterTune (zero-initialised residual adapters in a frozen ViT).

Two layers, visible in the folders. **The core** is what a student reads, top to bottom, adapter first:

* ``adapters``    – the Adapter module; adding adapters to a timm ViT and removing them
* ``lora``        – LoRA from scratch: a low-rank update inside a frozen linear layer, and merging it away
* ``methods``     – one record per method (head_only, bitfit, adapter_tune, lora, full_finetune): what it adds and trains
* ``params``      – which parameters train (read from the method table), counting them
* ``train``       – ``fit``, ``train_step``, ``evaluate``, ``Speedups``
* ``checkpoints`` – saving / loading adapters and head only (safetensors)
* ``backbones``   – timm ViTs and the kit's own offline-pretrained ViT
* ``transforms``  – batch transforms on the device: the backbone's input, augmentation
* ``data``        – offline and torchvision datasets, and batches of them on the device
* ``targets``     – the composed offline targets that need adaptation (left_digit, max_digit)
* ``procedural``  – formula-driven images (fractals, glyphs) that pretrain the kit backbone
* ``recipes``     – ``Recipe``: how a run trains; the kit's measured recipes and budgets (no I/O, no hardware)
* ``baselines``   – a reference point that is not a method: logistic regression on the raw pixels
* ``stats``       – paired differences over seeds: a t interval, and "no difference detected" when it says so
* ``elbow``       – the elbow of accuracy against rank: a fitted power law and a stated rule
* ``drift``       – how far adapted features move from the pretrained ones

**The machinery** a student need not read, in sub-packages the core never imports (``make test`` checks it):

* ``engine``      – how runs go fast and safely: ``runtime`` (device, seeds, FAST mode, precision), ``meters``
  (memory), ``storage`` (atomic writes), ``shortcuts`` (training on cached features or a cached frozen prefix)
* ``course``      – what the notebooks and lecturers use: ``profiles`` (kit | paper), ``experiments`` (run configs,
  resumable sweeps, the shipped results), ``cost``, ``coupling``, ``claims``, ``plots``, ``widgets``, ``pretrain``, ``twins``, ``cli``
* ``grading``     – self-checks, the exercise build, the sandboxed batch grader
"""

__version__ = "0.1.0"  # before the imports: experiments keys results by it

# The core.
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
from .data import OFFLINE_DATASETS, ONLINE_DATASETS, DataSplits, load_dataset
from .elbow import ElbowFit, RobustElbow, fit_elbow, robust_elbow
from .lora import SCALINGS, LoRALinear, add_lora, lora_layers, merge_lora
from .methods import METHODS, Method, method  # noqa: F401  (the method table)
from .params import ParamCount, count_parameters, set_trainable
from .recipes import Recipe
from .train import FitResult, Speedups, evaluate, fit, train_step

# The machinery's names the notebooks use most, re-exported for them (the core modules above never import these).
from .engine.runtime import by_mode, describe_device, fast_mode, get_device, seed_everything, versions  # isort: skip
from .course.cost import MemoryBreakdown, memory_breakdown, step_flops  # isort: skip
from .course.experiments import RunConfig, grid, run, sweep  # isort: skip
from .course.profiles import Profile, profile  # isort: skip

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

from . import baselines, course, data, drift, elbow, engine, lora, recipes, stats, targets, transforms  # noqa: E402, F401  (namespaces)
