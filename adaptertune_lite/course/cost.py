"""What a training step costs: its memory, split by what holds it, and its FLOPs; and what a whole run would
cost on a GPU not at hand (an estimate from counted FLOPs, labelled as such).

Both are counted or measured exactly rather than sampled, so they are the same on every device and
repeat from run to run; ``benchmarks/speed.py`` adds the timings.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from ..engine.meters import TensorMemory
from ..engine.runtime import autocast, frozen_weights_in, precision
from ..params import set_trainable
from ..train import checkpointing


@dataclass(frozen=True)
class MemoryBreakdown:
    """Training memory of one step, in MiB, split by what holds it (AdamW)."""

    weights: float  # every parameter
    gradients: float  # one gradient per trainable parameter
    optimizer: float  # AdamW's two moments per trainable parameter
    activations: float  # peak of what forward + backward create: saved activations and the working memory of a layer

    @property
    def total(self) -> float:
        return self.weights + self.gradients + self.optimizer + self.activations


def memory_breakdown(model: nn.Module, x: torch.Tensor, method: str | None = None, *,
                     grad_checkpointing: bool = False) -> MemoryBreakdown:
    """What one training step of ``method`` holds in memory for the batch ``x`` ``(B, 3, H, W)``.

    Parameters, their gradients and AdamW's two moments are counted from their sizes. Activations are
    measured, exactly rather than sampled, by running one forward and backward pass (in train mode, bf16
    autocast on CUDA, as in ``train.train_step``) under :class:`~adaptertune_lite.engine.meters.TensorMemory`:
    the peak of the tensors the step creates, its parameter gradients left out. The same answer on every
    device. Frozen matmul weights are stored as ``fit`` stores them there (``runtime.frozen_weights_in``: in bf16
    or fp16 on a GPU), so ``weights`` counts them at that size and autocast keeps no per-step copies of them.
    ``grad_checkpointing=True`` measures the step with gradient checkpointing of the blocks (each block keeps
    only its input and recomputes the rest during the backward pass). ``method=None`` keeps the model's
    trainable flags (e.g. a peft model); otherwise they are set for ``method`` and left so.
    """
    if method is not None:
        set_trainable(model, method)
    params = list(model.parameters())
    trainable = [p for p in params if p.requires_grad]
    was_training = model.training
    model.train().zero_grad(set_to_none=True)
    try:
        with frozen_weights_in(model, precision(x.device).dtype):
            weight_bytes = sum(p.numel() * p.element_size() for p in params)
            with checkpointing(model, grad_checkpointing), TensorMemory() as memory, autocast(x.device):
                logits = model(x)
                F.cross_entropy(logits.float(), torch.zeros(len(x), dtype=torch.long, device=x.device)).backward()
        activations = memory.peak(exclude=tuple(p.grad for p in trainable if p.grad is not None))
    finally:
        model.zero_grad(set_to_none=True)
        model.train(was_training)
    mib = lambda n: n / 2**20  # noqa: E731
    trainable_bytes = sum(p.numel() * p.element_size() for p in trainable)
    return MemoryBreakdown(
        weights=mib(weight_bytes),
        gradients=mib(trainable_bytes),
        optimizer=mib(2 * trainable_bytes),
        activations=mib(activations),
    )


def step_flops(model: nn.Module, x: torch.Tensor, method: str | None = None, *, grad_checkpointing: bool = False) -> int:
    """FLOPs of one training step's forward and backward pass on the batch ``x`` ``(B, 3, H, W)``, counted
    by ``torch.utils.flop_counter`` as executed: a frozen weight gets no weight-gradient matmul, but its
    input gradient is computed wherever a trainable parameter sits before it. ``method`` and
    ``grad_checkpointing`` (which adds the recomputed forward passes) as in :func:`memory_breakdown`."""
    if method is not None:
        set_trainable(model, method)
    was_training = model.training
    model.train()
    try:
        with checkpointing(model, grad_checkpointing), FlopCounterMode(display=False) as counter, autocast(x.device):
            F.cross_entropy(model(x).float(), torch.zeros(len(x), dtype=torch.long, device=x.device)).backward()
    finally:
        model.zero_grad(set_to_none=True)
        model.train(was_training)
    return counter.get_total_flops()


# ----------------------------------------------------------------------------- estimates for GPUs not at hand
# Published dense peak rates in TFLOP/s (NVIDIA data sheets) for the dtype the kit trains in there (runtime.precision):
# T4 fp16 tensor cores 65; A100 bf16 312; H100 SXM bf16 989.
PEAK_TFLOPS = {"Colab T4 (fp16)": 65.0, "A100 (bf16)": 312.0, "H100 SXM (bf16)": 989.0}
ASSUMED_UTILISATION = 0.3  # an assumption, not a measurement: the fraction of peak a ViT training step reaches


def forward_flops(model: nn.Module, x: torch.Tensor) -> int:
    """FLOPs of one inference forward pass on the batch ``x`` ``(B, 3, H, W)``, counted as executed."""
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            model(x)
    finally:
        model.train(was_training)
    return counter.get_total_flops()


def run_flops(model: nn.Module, method: str, n_train: int, epochs: int, n_eval: int, image_size: int = 224) -> float:
    """FLOPs of one whole run of ``method``: ``epochs`` training passes over ``n_train`` images (one backbone forward
    pass over them for ``head_only``, whose head then trains on cached features at a negligible cost), plus a forward
    pass over ``n_eval`` validation and test images. ``model`` is a throwaway: its trainable flags change."""
    x = torch.zeros(1, 3, image_size, image_size)
    forward = forward_flops(model, x)
    if method == "head_only":
        return (n_train + n_eval) * forward
    return epochs * n_train * step_flops(model, x, method) + n_eval * forward


def gpu_seconds(flops: float, utilisation: float = ASSUMED_UTILISATION) -> dict[str, float]:
    """Estimated seconds for ``flops`` on each GPU of :data:`PEAK_TFLOPS` at ``utilisation`` of its peak rate.
    An estimate: data loading, evaluation overheads and the real utilisation are not in it."""
    return {gpu: flops / (peak * 1e12 * utilisation) for gpu, peak in PEAK_TFLOPS.items()}
