"""Training: one ``fit`` for head-only, AdapterTune and full fine-tuning.

Defaults follow the official AdapterTune recipe: AdamW (lr 1e-3, weight decay 0.05), linear
warm-up for 10 % of training (5 of 50 epochs) then cosine decay to zero, gradient clipping at
1.0. On a GPU it uses bf16 autocast and fused AdamW, and never syncs with the host inside the
step loop: losses and correct counts stay on the device until the epoch ends.

Train and eval mode, in one place: ``fit`` trains in train mode (as the official code does,
so dropout and drop-path of a frozen backbone stay active if the model has any), while
``evaluate`` and ``cache_features`` run in eval mode. Head-only training runs the frozen backbone
once over the data in eval mode, caches the pooled features, and trains the head on them, many
times faster than a backbone pass every step. The kit backbones have no dropout or drop-path
(and LayerNorm keeps no running statistics), so for them both modes compute the same function
and cached head-only training equals the step-by-step kind; a timm ViT built with
``drop_path_rate > 0`` differs, and ``cache_head_features=False`` gives the step-by-step kind.
"""

from __future__ import annotations

import contextlib
import copy
import math
import time
from dataclasses import asdict, dataclass, field
from typing import Callable, Sequence

import torch
import torch.nn.functional as F
import torch.utils.checkpoint
from torch import nn
from torch.utils.data import DataLoader, Dataset, TensorDataset
from tqdm.auto import tqdm

from .adapters import residual_hook
from .backbones import extract_features
from .data import decode_all, nbytes_of
from .params import count_parameters, set_trainable
from .recipes import OFFICIAL_RECIPE
from .runtime import PeakMemory, get_device, seed_everything, use_cpu_threads


@dataclass
class FitResult:
    """What a training run produced. ``history['loss']`` and ``history['lr']`` have one entry per
    optimiser step; ``history['train_acc']`` (and ``val_acc`` with ``eval_each_epoch``) one per epoch.
    ``peak_memory_mb`` is the peak memory this run added on its device (``memory_kind`` says how it
    was measured; see :class:`~adaptertune_lite.runtime.PeakMemory`)."""

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
    """AdamW with weight decay on matrices only (not on biases, norms, tokens); fused on CUDA."""
    params = [p for p in params if p.requires_grad]
    decay = [p for p in params if p.ndim >= 2]
    no_decay = [p for p in params if p.ndim < 2]
    groups = [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=lr, fused=device.type == "cuda")


def iterate(dataset: Dataset, batch_size: int, shuffle: bool, device: torch.device, generator: torch.Generator | None = None):
    """Batches ``(x, y)`` on ``device``. In-memory ``TensorDataset``s are sliced directly (no
    per-sample Python); other datasets go through a ``DataLoader``, in the same order for the same generator."""
    if isinstance(dataset, TensorDataset):
        x_all, y_all = (t.to(device, non_blocking=True) for t in dataset.tensors[:2])
        n = len(y_all)
        order = torch.randperm(n, generator=generator).to(device) if shuffle else torch.arange(n, device=device)
        for i in range(0, n, batch_size):
            idx = order[i : i + batch_size]
            yield x_all[idx], y_all[idx]
        return
    order = torch.randperm(len(dataset), generator=generator).tolist() if shuffle else None  # the same order as above
    loader = DataLoader(dataset, batch_size=batch_size, sampler=order, num_workers=2,
                        pin_memory=device.type == "cuda", persistent_workers=False)
    for x, y in loader:
        yield x.to(device, non_blocking=True), y.to(device, non_blocking=True)


def on_device(dataset: Dataset, device: torch.device) -> Dataset:
    """An in-memory dataset with its tensors moved to ``device`` once (other datasets unchanged)."""
    if isinstance(dataset, TensorDataset) and dataset.tensors[0].device != device:
        moved = copy.copy(dataset)  # keeps transform and classes
        moved.tensors = tuple(t.to(device) for t in dataset.tensors)
        return moved
    return dataset


def _should_preload(dataset: Dataset, device: torch.device, preload: bool | None) -> bool:
    """Whether ``fit`` decodes a file-backed split into memory once: as asked, or (``None``) when its uint8
    images take at most half the free memory of ``device``."""
    if isinstance(dataset, TensorDataset) or preload is False:
        return False
    if preload:
        return True
    if device.type == "cuda":
        free = torch.cuda.mem_get_info(device)[0]
    else:
        import psutil

        free = psutil.virtual_memory().available
    return nbytes_of(dataset) <= free / 2


def _transform_of(dataset: Dataset):
    return getattr(dataset, "transform", None) or (lambda x: x)


@torch.no_grad()
def evaluate(model: nn.Module, dataset: Dataset, batch_size: int = 256, device: torch.device | str | None = None) -> float:
    """Top-1 accuracy of ``model`` on ``dataset`` (in eval mode; restores the previous mode)."""
    device = get_device(device) if not isinstance(device, torch.device) else device
    was_training = model.training
    model.eval().to(device)
    tf = _transform_of(dataset)
    correct = torch.zeros((), device=device, dtype=torch.long)
    n = 0
    with autocast(device):
        for x, y in iterate(dataset, batch_size, False, device):
            correct += (model(tf(x)).argmax(-1) == y).sum()
            n += len(y)
    model.train(was_training)
    return correct.item() / max(n, 1)


@torch.no_grad()
def _run_frozen(model: nn.Module, dataset: Dataset, fn, batch_size: int, device: torch.device) -> TensorDataset:
    """One pass over ``dataset`` in eval mode: ``TensorDataset(fn(images) (N, ...), labels (N,))`` on ``device``."""
    model.eval().to(device)
    tf = _transform_of(dataset)
    outputs, labels = [], []
    with autocast(device):
        for x, y in iterate(dataset, batch_size, False, device):
            outputs.append(fn(tf(x)).float())
            labels.append(y)
    return TensorDataset(torch.cat(outputs), torch.cat(labels))


def cache_features(model: nn.Module, dataset: Dataset, batch_size: int = 256, device: torch.device | None = None) -> TensorDataset:
    """Run the frozen backbone once: ``TensorDataset(features (N, embed_dim), labels (N,))`` on the CPU."""
    features = _run_frozen(model, dataset, lambda x: extract_features(model, x), batch_size, device or get_device())
    return TensorDataset(*(t.cpu() for t in features.tensors))


def frozen_prefix_depth(model: nn.Module) -> int:
    """How many leading blocks of ``model`` train nothing (nor does anything before them): their output
    never changes during training, so it can be computed once. 0 when the embedding trains."""
    if any(p.requires_grad for m in (model.patch_embed, model.norm_pre) for p in m.parameters()) or any(
        getattr(model, name, None) is not None and getattr(model, name).requires_grad for name in ("cls_token", "pos_embed", "reg_token")
    ):
        return 0
    for i, block in enumerate(model.blocks):
        if any(p.requires_grad for p in block.parameters()):
            return i
    return len(model.blocks)


def frozen_body(block: nn.Module) -> bool:
    """Whether ``block``'s only trainable part is a post-block adapter (``block.adapter``, applied by a hook to
    the block's output): the block's own output, before its adapter, then never changes either."""
    adapter = getattr(block, "adapter", None)
    if adapter is None:
        return False
    own = {id(p) for p in adapter.parameters()}
    return not any(p.requires_grad for p in block.parameters() if id(p) not in own)


def _prefix(model: nn.Module, x: torch.Tensor, depth: int, body: bool) -> torch.Tensor:
    """Images ``(B, 3, H, W)`` -> tokens ``(B, T, D)`` after the first ``depth`` blocks (timm's forward_features
    order) and, with ``body``, after block ``depth`` itself without its hooks: its output before its adapter."""
    x = model.norm_pre(model.patch_drop(model._pos_embed(model.patch_embed(x))))
    for block in model.blocks[:depth]:
        x = block(x)
    return model.blocks[depth].forward(x) if body else x


class Suffix(nn.Module):
    """The part of a ViT after a cached prefix: tokens ``(B, T, D)`` -> logits ``(B, classes)``. With
    ``body``, the tokens are block ``start``'s output before its post-block adapter, which comes first."""

    def __init__(self, model: nn.Module, start: int, body: bool = False):
        super().__init__()
        self.model, self.start, self.body = model, start, body

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        blocks = list(self.model.blocks[self.start :])
        if self.body:
            tokens = residual_hook(blocks.pop(0), (), tokens)  # the adapter, as its hook applies it
        for block in blocks:
            if getattr(self.model, "grad_checkpointing", False) and torch.is_grad_enabled():
                tokens = torch.utils.checkpoint.checkpoint(block, tokens, use_reentrant=False)  # as timm does
            else:
                tokens = block(tokens)
        return self.model.forward_head(self.model.norm(tokens))


def cache_prefix(model: nn.Module, dataset: Dataset, depth: int, body: bool = False, batch_size: int = 256,
                 device: torch.device | None = None) -> TensorDataset:
    """Run the frozen prefix (embedding, the first ``depth`` blocks, and with ``body`` block ``depth`` before
    its adapter) once, in eval mode: ``TensorDataset(tokens (N, T, D), labels (N,))`` on ``device``."""
    return _run_frozen(model, dataset, lambda x: _prefix(model, x, depth, body), batch_size, device or get_device())


@contextlib.contextmanager
def checkpointing(model: nn.Module, enabled: bool):
    """Gradient checkpointing of ``model``'s blocks on or off inside the block (timm's
    ``set_grad_checkpointing``), and the model's own setting restored after it."""
    was = getattr(model, "grad_checkpointing", False)
    model.set_grad_checkpointing(enabled)
    try:
        yield model
    finally:
        model.set_grad_checkpointing(was)


def autocast(device: torch.device):
    """bf16 autocast on CUDA (the kit's mixed precision); plain fp32 elsewhere."""
    return torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda" else torch.autocast("cpu", enabled=False)


def optimizer_step(net: nn.Module, opt, sched, x: torch.Tensor, y: torch.Tensor, *, transform: Callable,
                   params: Sequence[nn.Parameter], grad_clip: float | None, label_smoothing: float,
                   device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """One training step, the only one in the kit (``fit`` and ``pretrain`` both call it).

    ``x``: a batch as stored (e.g. uint8 ``(B, 3, H, W)``), ``transform`` makes it the model's input;
    ``y``: ``(B,)`` labels. Forward (bf16 autocast on CUDA), cross-entropy, backward, gradient clipping
    of ``params``, optimiser and schedule step. Returns ``(loss, logits)``, the loss detached, on the
    device (no host sync).
    """
    with autocast(device):
        logits = net(transform(x))
        loss = F.cross_entropy(logits.float(), y, label_smoothing=label_smoothing)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    if grad_clip:
        torch.nn.utils.clip_grad_norm_(params, grad_clip)
    opt.step()
    sched.step()
    return loss.detach(), logits


def fit(
    model: nn.Module,
    train: Dataset,
    val: Dataset | None = None,
    *,
    method: str = "adapter_tune",
    epochs: int = OFFICIAL_RECIPE["epochs"],
    lr: float = OFFICIAL_RECIPE["lr"],
    weight_decay: float = OFFICIAL_RECIPE["weight_decay"],
    warmup_epochs: float | None = None,
    batch_size: int = OFFICIAL_RECIPE["batch_size"],
    grad_clip: float | None = OFFICIAL_RECIPE["grad_clip"],
    label_smoothing: float = 0.0,
    seed: int = 0,
    device: torch.device | str | None = None,
    cache_head_features: bool = True,
    cache_frozen_prefix: bool = False,
    augment: Callable[[torch.Tensor], torch.Tensor] | None = None,
    preload: bool | None = None,
    grad_checkpointing: bool = False,
    compile: bool | str = False,
    eval_each_epoch: bool = False,
    progress: bool = True,
    deterministic: bool = False,
    callbacks: Sequence[Callable[[dict], None]] = (),
) -> FitResult:
    """Train ``model`` with ``method`` (``head_only``, ``adapter_tune`` or ``full_finetune``).

    Args:
        model: a timm ViT; for ``adapter_tune`` with adapters already added.
        train, val: datasets of ``(image, label)``; an in-memory dataset from ``load_dataset`` carries
            the input ``transform`` its backbone expects, applied to each batch on the device.
        epochs, lr, weight_decay, batch_size, grad_clip: the optimisation recipe (defaults: ``recipes.OFFICIAL_RECIPE``).
        warmup_epochs: linear warm-up length; ``None`` means 10 % of ``epochs`` (5 of 50, as official).
        label_smoothing: cross-entropy label smoothing.
        seed: seeds initialisation order, shuffling and dropout; the same seed repeats exactly on CPU.
        cache_head_features: for ``head_only``, train the head on cached backbone features.
        cache_frozen_prefix: for ``adapter_tune`` with adapters only in later blocks (e.g. ``last_k(2)``), run
            the frozen blocks before them once (eval mode) and train on their cached output; with a post-block
            adapter the first adapted block's own computation is frozen too and is cached with them. Exact
            for backbones without dropout / drop-path in those blocks (the kit's), and much faster.
        augment: a batch augmentation applied to training batches after the transform, on the device
            (e.g. :class:`~adaptertune_lite.data.RandomResizedCropFlip`); never to evaluation batches.
        preload: decode a file-backed dataset (torchvision) once into uint8 tensors held on the device,
            instead of decoding every image every epoch. ``None``: when it takes at most half the free memory.
        grad_checkpointing: keep only each block's input during the forward pass and recompute the rest in
            the backward pass: much less activation memory for about one extra forward pass of compute.
        compile: ``torch.compile`` the training forward (``True``, or a backend name such as
            ``"aot_eager"``). The model itself is not replaced, so its checkpoint keys stay clean.
        eval_each_epoch: also record validation accuracy after every epoch.
        callbacks: functions called after every optimiser step with ``{"step", "epoch", "loss", "lr"}``
            (as minGPT's ``on_batch_end``): e.g. to stream a live loss curve. ``loss`` is a 0-dim tensor on
            the device; calling ``.item()`` on it syncs with the host, so a callback that plots should do it
            every few steps, not every step.

    Returns a :class:`FitResult`.
    """
    if epochs < 1 or batch_size < 1:
        raise ValueError(f"epochs and batch_size must be >= 1 (got epochs={epochs}, batch_size={batch_size}).")
    device = device if isinstance(device, torch.device) else get_device(device)
    if device.type == "cpu":
        use_cpu_threads()
    seed_everything(seed, deterministic)
    set_trainable(model, method)
    model.to(device)
    start = time.perf_counter()
    # PeakMemory: what this run adds (data copies, features, gradients, optimiser state, activations)
    with PeakMemory(device) as memory, checkpointing(model, grad_checkpointing):
        train, val = (decode_all(d, progress=progress) if d is not None and _should_preload(d, device, preload) else d
                      for d in (train, val))
        net, train_data, val_data = model, on_device(train, device), on_device(val, device) if val is not None else None
        if method == "head_only" and cache_head_features:
            train_data = on_device(cache_features(model, train_data, device=device), device)
            val_data = on_device(cache_features(model, val_data, device=device), device) if val is not None else None
            net = model.get_classifier()
        elif method == "adapter_tune" and cache_frozen_prefix and (depth := frozen_prefix_depth(model)) < len(model.blocks):
            body = frozen_body(model.blocks[depth])
            if depth > 0 or body:
                train_data = cache_prefix(model, train_data, depth, body, device=device)
                val_data = cache_prefix(model, val_data, depth, body, device=device) if val is not None else None
                net = Suffix(model, depth, body)
        tf = _transform_of(train_data)
        if augment is not None:
            tf = lambda x, tf=tf: augment(tf(x))  # noqa: E731  (training batches only)
        step_net = net if not compile else torch.compile(net, **({} if compile is True else {"backend": compile}))

        steps_per_epoch = math.ceil(len(train_data) / batch_size)
        total = epochs * steps_per_epoch
        warmup = round((0.1 * epochs if warmup_epochs is None else warmup_epochs) * steps_per_epoch)
        opt = make_optimizer(net.parameters(), lr, weight_decay, device)
        sched = torch.optim.lr_scheduler.LambdaLR(opt, warmup_cosine(total, max(warmup, 1)))
        trainable = [p for p in net.parameters() if p.requires_grad]

        losses = torch.zeros(total, device=device)
        lrs: list[float] = []
        history = {"loss": [], "lr": lrs, "train_acc": [], "val_acc": []}
        gen = torch.Generator().manual_seed(seed)
        bar = tqdm(total=total, desc=method, disable=not progress, leave=False)
        step = 0
        for epoch in range(epochs):
            net.train()  # a frozen backbone stays in train mode, as in the official code
            correct = torch.zeros((), device=device, dtype=torch.long)
            for x, y in iterate(train_data, batch_size, True, device, gen):
                lrs.append(sched.get_last_lr()[0])  # the rate this step uses
                losses[step], logits = optimizer_step(step_net, opt, sched, x, y, transform=tf, params=trainable,
                                                      grad_clip=grad_clip, label_smoothing=label_smoothing, device=device)
                correct += (logits.argmax(-1) == y).sum()
                for callback in callbacks:
                    callback({"step": step, "epoch": epoch, "loss": losses[step], "lr": lrs[-1]})
                step += 1
                bar.update()
            history["train_acc"].append(correct.item() / len(train_data))  # one host sync per epoch
            if eval_each_epoch and val_data is not None:
                history["val_acc"].append(evaluate(net, val_data, device=device))
            bar.set_postfix(loss=f"{losses[step - 1].item():.3f}", train_acc=f"{history['train_acc'][-1]:.3f}")
        bar.close()
        history["loss"] = losses.cpu().tolist()
        val_acc = None
        if val_data is not None:
            val_acc = history["val_acc"][-1] if history["val_acc"] else evaluate(net, val_data, device=device)
    counts = count_parameters(model)
    return FitResult(
        method=method,
        epochs=epochs,
        steps=total,
        train_acc=history["train_acc"][-1],
        val_acc=val_acc,
        trainable_params=counts.trainable,
        total_params=counts.total,
        wall_time_s=time.perf_counter() - start,
        peak_memory_mb=memory.mb,
        memory_kind=memory.kind,
        device=str(device),
        history=history,
    )
