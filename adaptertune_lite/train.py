"""Training: one ``fit`` for head-only, AdapterTune and full fine-tuning, and its one ``train_step``.

``fit`` reads three things: *what* trains (``method``), *how* (a :class:`~adaptertune_lite.recipes.Recipe`:
AdamW, linear warm-up then cosine decay to zero, gradient clipping; ``Recipe()`` is the official
AdapterTune recipe) and *how fast* (:class:`Speedups`, which never change what is computed beyond
float rounding). On a GPU it uses the device's mixed precision (``runtime.precision``: bf16, or fp16 with a
gradient scaler) and fused AdamW, and never syncs with the host inside the step loop (bf16): losses and
correct counts stay on the device until the epoch ends.

Train and eval mode, in one place: ``fit`` trains in train mode (as the official code does, so
dropout and drop-path of a frozen backbone stay active if the model has any), while ``evaluate`` and
the caches of ``adaptertune_lite.engine.shortcuts`` run in eval mode. The kit backbones have no dropout or
drop-path, so for them both modes compute the same function and the shortcuts are exact.
"""

from __future__ import annotations

import contextlib
import functools
import math
import time
from dataclasses import asdict, dataclass, field
from typing import Callable, Sequence

import torch
import torch.nn.functional as F
import torch.utils.checkpoint
from torch import nn
from torch.utils.data import Dataset
from tqdm.auto import tqdm

from .data import decode_all, iterate, should_preload, transform_of
from .engine.meters import PeakMemory
from .engine.runtime import autocast, frozen_weights_in, get_device, precision, seed_everything, use_cpu_threads
from .engine.shortcuts import shortcut
from .params import count_parameters, set_trainable
from .recipes import Recipe
from .transforms import augmentation


@dataclass(frozen=True)
class Speedups:
    """How fast ``fit`` runs; none of these changes what a run computes (beyond float rounding), so none
    enters a run's result key.

    Args:
        cache_head_features: for ``head_only``, train the head on backbone features computed once
            (``adaptertune_lite.engine.shortcuts``), many times faster than a backbone pass every step.
        cache_frozen_prefix: for ``adapter_tune`` with adapters only in later blocks (e.g. ``last_k(2)``),
            compute the frozen blocks before them once and train on their output.
        preload: decode a file-backed dataset (torchvision) once into uint8 tensors held on the device,
            instead of every image every epoch. ``None``: when it fits in half the free memory.
        grad_checkpointing: keep only each block's input in the forward pass and recompute the rest in the
            backward pass: much less activation memory for about one extra forward pass of compute.
        compile: ``torch.compile`` the training forward (``True``, or a backend name such as ``"aot_eager"``).
            The model itself is not replaced, so its checkpoint keys stay clean. Only full batches run compiled (the
            last, partial batch of an epoch runs eager), so a fit compiles one graph, and the next fit of a sweep on
            the same architecture and batch shape reuses it.
    """

    cache_head_features: bool = True
    cache_frozen_prefix: bool = False
    preload: bool | None = None
    grad_checkpointing: bool = False
    compile: bool | str = False


@dataclass
class FitResult:
    """What a training run produced. ``history['loss']`` and ``history['lr']`` have one entry per
    optimiser step; ``history['train_acc']`` (and ``val_acc`` with ``eval_each_epoch``) one per epoch.
    ``peak_memory_mb`` is the peak memory this run added on its device (``memory_kind`` says how it
    was measured; see :class:`~adaptertune_lite.engine.runtime.PeakMemory`)."""

    method: str
    epochs: int
    steps: int
    train_acc: float
    val_acc: float | None
    trainable_params: int
    total_params: int
    wall_time_s: float
    peak_memory_mb: float
    memory_kind: str
    device: str
    history: dict = field(default_factory=dict)

    def summary(self) -> str:
        val = "n/a" if self.val_acc is None else f"{self.val_acc:.3f}"
        return (
            f"{self.method}: val acc {val}, train acc {self.train_acc:.3f}, trainable {self.trainable_params:,} "
            f"params, {self.wall_time_s:.1f} s on {self.device}"
        )

    def to_dict(self) -> dict:
        return asdict(self)


def warmup_cosine(total_steps: int, warmup_steps: int):
    """Learning-rate multiplier: linear warm-up from ~0 to 1, then cosine decay to 0 at ``total_steps``."""

    def factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / warmup_steps
        progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
        return 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))

    return factor


def make_optimizer(params, lr: float, weight_decay: float, device: torch.device) -> torch.optim.AdamW:
    """AdamW with weight decay on tensors of two or more dimensions (weight matrices, the patch embedding, the [CLS]
    token and position embedding), not on biases and LayerNorm weights; fused on CUDA. The official AdapterTune code
    decays every trainable tensor; the kit follows the common practice of sparing biases and norms (a departure the
    recipes state)."""
    params = [p for p in params if p.requires_grad]
    decay = [p for p in params if p.ndim >= 2]
    no_decay = [p for p in params if p.ndim < 2]
    groups = [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=lr, fused=device.type == "cuda")


@torch.no_grad()
def evaluate(model: nn.Module, dataset: Dataset, batch_size: int = 256, device: torch.device | str | None = None) -> float:
    """Top-1 accuracy of ``model`` on ``dataset`` (in eval mode; restores the previous mode)."""
    device = get_device(device) if not isinstance(device, torch.device) else device
    was_training = model.training
    model.eval().to(device)
    tf = transform_of(dataset, device)
    correct = torch.zeros((), device=device, dtype=torch.long)
    n = 0
    with autocast(device):
        for x, y in iterate(dataset, batch_size, False, device):
            correct += (model(tf(x)).argmax(-1) == y).sum()
            n += len(y)
    model.train(was_training)
    return correct.item() / max(n, 1)



@contextlib.contextmanager
def checkpointing(model: nn.Module, enabled: bool):
    """Gradient checkpointing of each of ``model``'s blocks while inside: a block keeps only its input during the
    forward pass and recomputes the rest in the backward pass. Always torch's non-reentrant kind, whatever timm is
    set to: the reentrant kind (``timm.layers.set_reentrant_ckpt(True)``, the default of older timm 1.0.x) computes
    no gradient for parameters of a block whose input needs none, so the adapters of a frozen backbone would
    silently never train. A post-block adapter runs after its block's checkpoint (its hook is outside it)."""
    blocks = list(model.blocks) if enabled else []
    for block in blocks:  # an instance attribute shadows the class's forward; deleting it restores that
        block.forward = functools.partial(_checkpointed, type(block).forward, block)
    try:
        yield model
    finally:
        for block in blocks:
            del block.forward


def _checkpointed(forward: Callable, block: nn.Module, *args, **kwargs):
    if not torch.is_grad_enabled():
        return forward(block, *args, **kwargs)
    return torch.utils.checkpoint.checkpoint(forward, block, *args, use_reentrant=False, **kwargs)


def train_step(net: nn.Module, x: torch.Tensor, y: torch.Tensor, opt: torch.optim.Optimizer, sched=None, *,
               transform: Callable | None = None, grad_clip: float | None = None, label_smoothing: float = 0.0,
               scaler: torch.amp.GradScaler | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """One training step, the only one in the kit (``fit`` and ``pretrain`` call it).

    ``x``: a batch as stored (e.g. uint8 ``(B, 3, H, W)``), ``transform`` makes it the model's input;
    ``y``: ``(B,)`` labels. Forward (the device's mixed precision, ``runtime.precision``), cross-entropy,
    backward, gradient clipping of the trainable parameters, optimiser step and (if given) schedule step.
    With fp16, ``scaler`` scales the loss so small gradients do not underflow, and unscales the gradients
    before they are clipped. Returns ``(loss, logits)``, the loss detached, on the device (no host sync
    without a scaler; a scaler checks for infinities once per step).
    """
    with autocast(x.device):
        logits = net(transform(x) if transform is not None else x)
        loss = F.cross_entropy(logits.float(), y, label_smoothing=label_smoothing)
    opt.zero_grad(set_to_none=True)
    (loss if scaler is None else scaler.scale(loss)).backward()
    if scaler is not None:
        scaler.unscale_(opt)  # clip the true gradients, not the scaled ones
    if grad_clip:
        torch.nn.utils.clip_grad_norm_([p for p in net.parameters() if p.requires_grad], grad_clip)
    if scaler is None:
        opt.step()
    else:
        scaler.step(opt)  # skips the step if a gradient overflowed
        scaler.update()
    if sched is not None:
        sched.step()
    return loss.detach(), logits


def _training_transform(dataset: Dataset, augment: str | None, device: torch.device) -> Callable:
    """The transform ``dataset`` carries, on ``device``, then the recipe's augmentation (training batches only)."""
    tf, aug = transform_of(dataset, device), augmentation(augment)
    return tf if aug is None else (lambda x: aug(tf(x)))  # the augmentation draws on x's device


def fit(model: nn.Module, train: Dataset, val: Dataset | None = None, *, method: str = "adapter_tune",
        recipe: Recipe | None = None, seed: int = 0, device: torch.device | str | None = None,
        speedups: Speedups | None = None, eval_each_epoch: bool = False, progress: bool = True,
        callbacks: Sequence[Callable[[dict], None]] = (), deterministic: bool = False) -> FitResult:
    """Train ``model`` (for ``adapter_tune`` with adapters added) with ``method`` (``head_only``, ``adapter_tune``,
    ``full_finetune``) by ``recipe`` (default ``Recipe()``); returns a :class:`FitResult`. ``train``/``val`` hold
    ``(uint8 image, label)`` and the ``transform`` their backbone expects. ``seed`` fixes initialisation, shuffling
    and dropout (repeats exactly on a CPU). ``callbacks`` get ``{"step", "epoch", "loss", "lr"}`` after every step
    (``loss`` stays on the device: ``.item()`` syncs). ``eval_each_epoch`` also validates after every epoch."""
    recipe, speed = recipe or Recipe(), speedups or Speedups()
    # 1. Set-up: the device, the seed, which parameters train.
    device = device if isinstance(device, torch.device) else get_device(device)
    if device.type == "cpu":
        use_cpu_threads()
    seed_everything(seed, deterministic)
    set_trainable(model, method)
    model.to(device)
    start = time.perf_counter()
    # Frozen matmul weights in the compute dtype on a GPU (runtime.frozen_weights_in: exact; no-op in fp32).
    with PeakMemory(device) as memory, checkpointing(model, speed.grad_checkpointing), frozen_weights_in(model, precision(device).dtype):
        # 2. What the loop trains on: the model on images, the head on cached features, or the suffix on cached
        #    tokens (augmented images change every epoch, so nothing is cached when the recipe augments).
        train, val = (decode_all(d, progress=progress) if d is not None and should_preload(d, device, speed.preload)
                      else d for d in (train, val))
        cache = recipe.augment is None
        net, train, val = shortcut(model, method, train, val, device, head_features=cache and speed.cache_head_features,
                                   frozen_prefix=cache and speed.cache_frozen_prefix)
        transform = _training_transform(train, recipe.augment, device)
        step_net = torch.compile(net, **({} if speed.compile is True else {"backend": speed.compile})) if speed.compile else net
        # 3. The optimiser: AdamW, linear warm-up then cosine decay, stepped once per batch.
        steps_per_epoch = math.ceil(len(train) / recipe.batch_size)
        total = recipe.epochs * steps_per_epoch
        opt = make_optimizer(net.parameters(), recipe.lr, recipe.weight_decay, device)
        scaler = torch.amp.GradScaler(device.type) if precision(device).scaler else None  # fp16 only
        sched = torch.optim.lr_scheduler.LambdaLR(opt, warmup_cosine(total, max(round(recipe.warmup * steps_per_epoch), 1)))
        # 4. The loop: losses and correct counts stay on the device, one host sync per epoch.
        losses, history = torch.zeros(total, device=device), {"loss": [], "lr": [], "train_acc": [], "val_acc": []}
        gen, bar, step = torch.Generator().manual_seed(seed), tqdm(total=total, desc=method, disable=not progress, leave=False), 0
        for epoch in range(recipe.epochs):
            net.train()  # a frozen backbone stays in train mode, as in the official code
            correct = torch.zeros((), device=device, dtype=torch.long)
            for x, y in iterate(train, recipe.batch_size, True, device, gen):
                history["lr"].append(sched.get_last_lr()[0])  # the rate this step uses
                losses[step], logits = train_step(step_net if len(y) == recipe.batch_size else net, x, y, opt, sched,  # one graph
                                                  transform=transform, grad_clip=recipe.grad_clip,
                                                  label_smoothing=recipe.label_smoothing, scaler=scaler)
                correct += (logits.argmax(-1) == y).sum()
                _trigger(callbacks, {"step": step, "epoch": epoch, "loss": losses[step], "lr": history["lr"][-1]})
                step += 1
                bar.update()
            history["train_acc"].append(correct.item() / len(train))
            if eval_each_epoch and val is not None:
                history["val_acc"].append(evaluate(net, val, device=device))
            bar.set_postfix(loss=f"{losses[step - 1].item():.3f}", train_acc=f"{history['train_acc'][-1]:.3f}")
        bar.close()
        history["loss"] = losses.cpu().tolist()
        val_acc = None if val is None else (history["val_acc"] or [evaluate(net, val, device=device)])[-1]
    return FitResult(method, recipe.epochs, total, history["train_acc"][-1], val_acc, *_counts(model),
                     time.perf_counter() - start, memory.mb, memory.kind, str(device), history)


def _trigger(callbacks: Sequence[Callable[[dict], None]], event: dict) -> None:
    """Call every callback with ``event`` (minGPT's ``trigger_callbacks``)."""
    for callback in callbacks:
        callback(event)


def _counts(model: nn.Module) -> tuple[int, int]:
    counts = count_parameters(model)
    return counts.trainable, counts.total
