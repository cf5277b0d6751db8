"""Meters: how much memory a block of code takes.

* :class:`PeakMemory` samples the process (CPU RSS) or asks the CUDA allocator: what ``fit`` reports.
* :class:`TensorMemory` counts every tensor the code creates, exactly, on any device: what ``cost`` uses.
"""

from __future__ import annotations

import ctypes
import threading

import psutil
import torch
from torch.multiprocessing.reductions import StorageWeakRef
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten


def _return_free_heap() -> None:
    """Ask glibc to give freed heap memory back to the OS (``malloc_trim``); a no-op elsewhere. Without it a block
    that reuses memory freed by earlier work adds nothing to the RSS, and its peak reads as about 0."""
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not Linux with glibc (macOS, Windows, musl)
        pass


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
        _return_free_heap()  # memory freed by earlier work goes back to the OS, so this block's allocations show in RSS
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
