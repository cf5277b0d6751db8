"""Where the code runs: device choice, seeding, FAST mode and version reporting."""

from __future__ import annotations

import os
import platform
import random
import threading
from typing import TypeVar

import numpy as np
import torch
from torch.multiprocessing.reductions import StorageWeakRef
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten

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
    import importlib.metadata as md

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


class PeakMemory:
    """The peak memory a block of code adds on ``device``, in MiB, measured for that block alone.

    * CUDA: torch's peak allocated bytes during the block minus those allocated at its start.
    * CPU: the process's resident set size (RSS), sampled every ``interval`` seconds by a
      background thread, peak minus the level at the start. Spikes shorter than ``interval``
      can be missed, and memory the allocator kept from earlier work is reused without
      showing, so compare runs of one process by what each *adds*, not by absolute size.

    >>> with PeakMemory(torch.device("cpu")) as mem:
    ...     x = torch.ones(2**20)
    >>> mem.kind, mem.mb >= 0
    ('cpu_rss_above_start', True)
    """

    def __init__(self, device: torch.device, interval: float = 0.005):
        self.device, self.interval, self.mb = device, interval, 0.0
        self.kind = "cuda_allocated_above_start" if device.type == "cuda" else "cpu_rss_above_start"

    def __enter__(self) -> "PeakMemory":
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
            self._start = torch.cuda.memory_allocated(self.device)
            return self
        import psutil

        self._proc = psutil.Process()
        self._start = self._peak = self._proc.memory_info().rss
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self) -> None:
        while not self._stop.wait(self.interval):
            self._peak = max(self._peak, self._proc.memory_info().rss)

    def __exit__(self, *exc) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            peak = torch.cuda.max_memory_allocated(self.device)
        else:
            self._stop.set()
            self._thread.join()
            peak = max(self._peak, self._proc.memory_info().rss)
        self.mb = max(0, peak - self._start) / 2**20


class TensorMemory(TorchDispatchMode):
    """Exact peak of the tensor memory created inside a block of code, on any device.

    Every tensor an operation returns is recorded with its storage size; a storage counts until it is
    freed. Unlike :class:`PeakMemory` this is not a sample of the process: it sees exactly the tensors the
    code creates (activations, gradients, temporaries of one layer), the same on CPU and GPU, and it sees
    what gradient checkpointing frees and recomputes. It does not see scratch space an operation uses
    internally and never returns (e.g. a fused kernel's workspace), nor tensors created before the block.
    (torch's own ``MemTracker`` does more, but refuses models with frozen parameters.)

    >>> with TensorMemory() as mem:
    ...     x = torch.ones(2**18)  # 1 MiB of float32
    >>> mem.peak() / 2**20
    1.0
    """

    def __init__(self):
        super().__init__()
        self._clock = 0
        self._records: list[list] = []  # [weak ref, storage id, bytes, created at, freed at or None]
        self._alive: dict[int, list] = {}

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        self._clock += 1
        for key, record in list(self._alive.items()):
            if record[0].expired():
                record[4] = self._clock
                del self._alive[key]
        for t in tree_flatten(out)[0]:
            if isinstance(t, torch.Tensor):
                storage = t.untyped_storage()
                if storage._cdata not in self._alive and storage.nbytes():
                    record = [StorageWeakRef(storage), storage._cdata, storage.nbytes(), self._clock, None]
                    self._alive[storage._cdata] = record
                    self._records.append(record)
        return out

    def peak(self, exclude: tuple[torch.Tensor, ...] = ()) -> int:
        """Peak bytes held at once, leaving out tensors in ``exclude`` that are still alive (e.g. the
        parameter gradients, to count them separately)."""
        skip = {t.untyped_storage()._cdata for t in exclude}
        events = []
        for _, key, nbytes, born, freed in self._records:
            if freed is None and key in skip:
                continue
            events.append((born, nbytes))
            if freed is not None:
                events.append((freed, -nbytes))
        now = peak = 0
        for _, delta in sorted(events):  # at one tick, frees (negative) come before new tensors
            now += delta
            peak = max(peak, now)
        return peak
