"""adaptertune_lite: a small teaching package for AdapterTune (zero-initialised residual adapters in a frozen ViT).

Read it top to bottom, one module per concept:

* ``adapters``   – the Adapter module and inserting adapters into a timm ViT
* ``checkpoints`` – saving / loading adapters and head only (safetensors)
* ``params``     – which parameters train (head_only / adapter_tune / full_finetune), counting them
* ``backbones``  – timm ViTs and the kit's own offline-pretrained ViT
* ``procedural`` – formula-driven images (fractals, glyphs) that pretrain the kit backbone
* ``data``       – offline and torchvision datasets with the backbone's input transform
* ``train``      – ``fit`` and ``evaluate``
* ``cost``       – what a training step costs: memory by what holds it, FLOPs
* ``experiments`` – run configs, resumable sweeps with a result cache, the elbow fit
* ``pretrain``   – the recipe behind the shipped kit weights
* ``recipes``    – the one place for training recipes and the default target
* ``runtime``    – device, seeds, FAST mode, versions
* ``storage``    – atomic writes
* ``twins``      – percent ``.py`` notebooks and their ``.ipynb`` twins
* ``grading``    – self-checks, the exercise build, the sandboxed batch grader
"""

from .adapters import (
    INITS,
    PLACEMENTS,
    Adapter,
    add_adapters,
    adapters_of,
    every_k,
    first_k,
    last_k,
    num_adapter_params,
    resolve_blocks,
)
from .backbones import KIT_BACKBONES, extract_features, kit_provenance, load_backbone
from .checkpoints import load_adapters, save_adapters
from .data import OFFLINE_DATASETS, ONLINE_DATASETS, DataSplits, load_dataset
from .experiments import ElbowFit, RunConfig, fit_elbow, grid, run, sweep
from .params import METHODS, ParamCount, count_parameters, set_trainable
from .runtime import by_mode, describe_device, fast_mode, get_device, seed_everything, versions
from .cost import MemoryBreakdown, memory_breakdown, step_flops
from .train import FitResult, evaluate, fit

__version__ = "0.1.0"

__all__ = [
    "INITS", "PLACEMENTS", "Adapter", "add_adapters", "adapters_of", "every_k", "first_k", "last_k",
    "load_adapters", "num_adapter_params", "resolve_blocks", "save_adapters",
    "KIT_BACKBONES", "extract_features", "kit_provenance", "load_backbone",
    "OFFLINE_DATASETS", "ONLINE_DATASETS", "DataSplits", "load_dataset",
    "METHODS", "ParamCount", "count_parameters", "set_trainable",
    "by_mode", "describe_device", "fast_mode", "get_device", "seed_everything", "versions",
    "FitResult", "MemoryBreakdown", "evaluate", "fit", "memory_breakdown", "step_flops",
    "ElbowFit", "RunConfig", "fit_elbow", "grid", "run", "sweep",
]

from . import experiments, plots, recipes, widgets  # noqa: E402  (modules used as namespaces: at.plots.use_style())
