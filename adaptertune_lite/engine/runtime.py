"""Where the code runs: device choice, seeding, FAST mode, CPU threads, precision and version reporting."""

from __future__ import annotations

import contextlib
import functools
import importlib.metadata as md
import os
import platform
import random
from dataclasses import dataclass
from typing import TypeVar

import numpy as np
import torch

T = TypeVar("T")


def get_device(prefer: str | None = None) -> torch.device:
    """CUDA when available, else CPU. Apple's MPS is used only when asked for (``prefer="mps"``).

    ``prefer`` may also be ``"cpu"`` or ``"cuda"`` to force a choice; the environment variable
    ``ADAPTERTUNE_DEVICE`` does the same for a whole session.
    """
    prefer = prefer or os.environ.get("ADAPTERTUNE_DEVICE") or None
    if prefer is not None:
        if prefer == "cuda" and not torch.cuda.is_available():
            raise ValueError("device 'cuda' was asked for but no CUDA GPU is visible: use 'cpu' or unset it.")
        if prefer == "mps" and not (hasattr(torch.backends, "mps") and torch.backends.mps.is_available()):
            raise ValueError("device 'mps' was asked for but MPS is not available: use 'cpu' or unset it.")
        return torch.device(prefer)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def seed_everything(seed: int, deterministic: bool = False) -> None:
    """Seed Python, NumPy and torch (all devices). ``deterministic=True`` also asks torch for
    deterministic kernels (slower on GPU; CPU runs with the same seed already repeat exactly)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    if deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.benchmark = False


def fast_mode() -> bool:
    """Whether to run the small FAST configuration.

    ``ADAPTERTUNE_FAST=1`` / ``=0`` decides when set. Otherwise FAST is on in CI (``CI`` set)
    and whenever no CUDA GPU is present, so every notebook finishes in minutes on a laptop CPU.
    """
    flag = os.environ.get("ADAPTERTUNE_FAST", "").strip().lower()
    if flag in ("1", "true", "yes", "on"):
        return True
    if flag in ("0", "false", "no", "off"):
        return False
    if flag:
        raise ValueError(f"ADAPTERTUNE_FAST={flag!r} is not understood: set it to 1 or 0.")
    if os.environ.get("CI"):
        return True
    return not torch.cuda.is_available()


def by_mode(fast: T, full: T) -> T:
    """Pick the FAST-mode value or the full-run value: ``epochs = by_mode(3, 50)``."""
    return fast if fast_mode() else full


def versions() -> dict[str, str]:
    """Versions of Python and the libraries the course depends on."""
    out = {"python": platform.python_version()}
    for pkg in ("adaptertune_lite", "torch", "torchvision", "timm", "numpy", "ipywidgets", "matplotlib"):
        try:
            out[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            out[pkg] = "not installed"
    return out


def cpu_threads() -> int:
    """The CPU cores this process may really use: the smaller of its CPU affinity and the container's
    CPU quota (cgroup v2 ``cpu.max``). ``os.cpu_count()`` reports the host's cores, and a torch that
    runs that many threads in a 2-core container slows down instead of speeding up."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    try:
        quota, period = open("/sys/fs/cgroup/cpu.max").read().split()[:2]
        if quota != "max":
            cores = min(cores, max(1, int(int(quota) / int(period))))
    except (OSError, ValueError):
        pass
    return cores


def use_cpu_threads() -> int:
    """Cap torch's CPU threads at :func:`cpu_threads` (never raises a lower setting); returns the count used."""
    cores = cpu_threads()
    if torch.get_num_threads() > cores:
        torch.set_num_threads(cores)
    return torch.get_num_threads()


def describe_device(device: torch.device | None = None) -> str:
    """One line naming the device, e.g. ``'cuda: NVIDIA H100 80GB HBM3'`` or ``'cpu: 2 threads'``."""
    device = device or get_device()
    if device.type == "cuda":
        return f"cuda: {torch.cuda.get_device_name(device)}"
    return f"{device.type}: {torch.get_num_threads()} threads"


@dataclass(frozen=True)
class Precision:
    """How a device trains: the autocast compute dtype (``float32``: no autocast), whether the loss needs a
    gradient scaler (fp16's narrow range underflows small gradients), and why."""

    dtype: torch.dtype
    scaler: bool
    reason: str


_EMULATED: list[Precision] = []  # set by ``emulate_precision``: the policy every device gets while it is active


def precision(device: torch.device) -> Precision:
    """The kit's mixed-precision policy for ``device``, with the reason:

    * CUDA with bf16 tensor cores (compute capability >= 8.0: A100, H100, H200, RTX 30xx/40xx, L4):
      bf16 autocast, no scaler (bf16 has fp32's exponent range).
    * other CUDA GPUs (T4, V100: compute capability 7.x): fp16 autocast with a ``GradScaler``; bf16 would
      run without tensor cores there.
    * CPU (and MPS): fp32.

    On a GPU, ``train.fit`` also stores the frozen matmul weights in the compute dtype
    (:func:`frozen_weights_in`). Inside :func:`emulate_precision` every device gets the emulated policy.
    """
    return _EMULATED[-1] if _EMULATED else _policy(device)


@contextlib.contextmanager
def emulate_precision(dtype: torch.dtype):
    """Train and evaluate in ``dtype`` on any device while inside, e.g. bf16 on a CPU: what a GPU run computes,
    measured where there is no GPU (``benchmarks/precision_check.py``). No gradient scaler: a CPU has no fp16 path."""
    _EMULATED.append(Precision(dtype, False, f"emulated {str(dtype).removeprefix('torch.')} (emulate_precision)"))
    try:
        yield _EMULATED[-1]
    finally:
        _EMULATED.pop()


@contextlib.contextmanager
def frozen_weights_in(model: torch.nn.Module, dtype: torch.dtype):
    """Store the frozen weights and biases of ``model``'s ``Linear`` and ``Conv2d`` layers in ``dtype`` while inside;
    put the originals back, bit for bit, on exit.

    Under autocast to ``dtype`` this computes exactly what fp32 storage computes: autocast casts those tensors to
    ``dtype`` for every matmul anyway, and, because they do not require grad, it does so again on every use and
    keeps each copy for the backward pass. Stored in ``dtype`` they need neither. Norms, position embeddings and
    tokens stay fp32, because autocast runs them in fp32; trained parameters stay fp32 for the optimiser. The
    fp32 originals wait on the host, so the device holds only the ``dtype`` copy. ``dtype=float32``: nothing changes.
    """
    saved: list[tuple[torch.nn.Parameter, torch.Tensor]] = []
    if dtype != torch.float32:
        for module in model.modules():
            if isinstance(module, (torch.nn.Linear, torch.nn.Conv2d)):
                for p in module.parameters(recurse=False):
                    if not p.requires_grad and p.dtype == torch.float32:
                        saved.append((p, p.data.to("cpu", copy=True)))
                        p.data = p.data.to(dtype)
    try:
        yield model
    finally:
        for p, original in saved:
            p.data = original.to(p.device)


@functools.lru_cache(maxsize=None)
def _policy(device: torch.device) -> Precision:
    if device.type != "cuda":
        return Precision(torch.float32, False, f"{device.type}: fp32")
    major, minor = torch.cuda.get_device_capability(device)
    name = torch.cuda.get_device_name(device)
    if major >= 8:
        return Precision(torch.bfloat16, False, f"{name} (compute capability {major}.{minor}) has bf16 tensor cores: bf16 autocast")
    return Precision(torch.float16, True, f"{name} (compute capability {major}.{minor}) has no bf16 tensor cores: "
                                          "fp16 autocast with a gradient scaler")


def autocast(device: torch.device):
    """Autocast to the compute dtype :func:`precision` chooses for ``device`` (none on a CPU)."""
    dtype = precision(device).dtype
    return torch.autocast("cuda" if device.type == "cuda" else "cpu", dtype=dtype, enabled=dtype != torch.float32)
