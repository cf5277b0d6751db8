"""Pretrain a kit backbone on procedural images (``adaptertune-lite pretrain``).

Every batch is freshly generated (an endless stream, deterministic from the seed), so the
network never sees the same image twice. The result is a safetensors file with the full model
(pretraining head included: the drift notebook uses it) and a provenance JSON with the
recipe, seed, generator version, accuracy on held-out procedural images, wall time, device
and the sha256 of the weights. Both files are written atomically.
"""

from __future__ import annotations

import datetime as dt
import platform
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from safetensors.torch import save_file
from tqdm.auto import tqdm

from ..backbones import KIT_BACKBONES, WEIGHTS_DIR, sha256_of
from ..engine.runtime import describe_device, get_device, seed_everything
from ..engine.storage import atomic_path, write_json
from ..procedural import GENERATOR_VERSION, ProceduralImages
from ..train import make_optimizer, train_step, warmup_cosine
from ..transforms import BatchTransform


@dataclass
class PretrainConfig:
    """The pretraining recipe; every field is recorded in the provenance JSON."""

    backbone: str = "kit_vit_tiny"
    n_fractal: int = 512  # fractal classes (IFS attractors)
    n_glyph: int = 0  # glyph classes (random Bézier strokes); kit_vit_tiny_glyphs: 256 + 256, 3000 steps, 250 warm-up
    steps: int = 2000  # optimiser steps; each sees a fresh batch
    batch_size: int = 256
    lr: float = 1e-3  # AdamW peak learning rate
    weight_decay: float = 0.05
    warmup_steps: int = 200
    label_smoothing: float = 0.1
    grad_clip: float = 1.0
    eval_per_class: int = 8  # held-out images per class for the reported accuracy
    eval_every: int = 500  # steps between held-out evaluations (progress only)
    seed: int = 0


@torch.no_grad()
def _accuracy(model, images, labels, normalise, batch: int = 512) -> float:
    model.eval()
    correct = sum(
        int((model(normalise(images[i : i + batch])).argmax(-1) == labels[i : i + batch]).sum())
        for i in range(0, len(labels), batch)
    )
    model.train()
    return correct / len(labels)


def pretrain(cfg: PretrainConfig, out_dir: str | Path | None = None, device: str | None = None, progress: bool = True) -> dict:
    """Run the recipe and write ``<backbone>.safetensors`` and ``<backbone>.json`` to ``out_dir``
    (default: the package's weights folder, where ``load_backbone`` finds them). Returns the provenance."""
    if cfg.backbone not in KIT_BACKBONES:
        raise ValueError(f"Unknown kit backbone {cfg.backbone!r}: choose one of {', '.join(KIT_BACKBONES)}.")
    kit = KIT_BACKBONES[cfg.backbone]
    n_classes = cfg.n_fractal + cfg.n_glyph
    out_dir = Path(out_dir) if out_dir is not None else WEIGHTS_DIR
    if out_dir.resolve() == WEIGHTS_DIR.resolve() and n_classes != kit.pretrain_classes:
        raise ValueError(
            f"{cfg.backbone} ships with a {kit.pretrain_classes}-class pretraining head; this recipe has {n_classes} "
            "classes. Write it elsewhere with --out DIR, or change the classes to match."
        )
    dev = get_device(device)
    seed_everything(cfg.seed)
    data = ProceduralImages(cfg.n_fractal, cfg.n_glyph, kit.img_size, seed=cfg.seed, device=dev)
    eval_x, eval_y = data.dataset(cfg.eval_per_class, seed=cfg.seed + 10_000)
    eval_x, eval_y = eval_x.to(dev), eval_y.to(dev)
    model = kit.build(num_classes=n_classes).to(dev)
    normalise = BatchTransform((3, kit.img_size, kit.img_size), kit.mean, kit.std).to(dev)  # uint8 -> model input
    opt = make_optimizer(model.parameters(), cfg.lr, cfg.weight_decay, dev)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, warmup_cosine(cfg.steps, cfg.warmup_steps))
    g = torch.Generator(device=dev).manual_seed(cfg.seed + 1)
    curve = []
    start = time.perf_counter()
    bar = tqdm(range(cfg.steps), desc=f"pretrain {cfg.backbone}", disable=not progress)
    for step in bar:
        x, y = data.sample(cfg.batch_size, g)  # a fresh batch from the generator: no epochs, no dataset
        loss, _ = train_step(model, x, y, opt, sched, transform=normalise, grad_clip=cfg.grad_clip,
                             label_smoothing=cfg.label_smoothing)
        if (step + 1) % cfg.eval_every == 0 or step + 1 == cfg.steps:
            acc = _accuracy(model, eval_x, eval_y, normalise)
            curve.append({"step": step + 1, "loss": round(loss.item(), 4), "heldout_acc": round(acc, 4),
                          "elapsed_s": round(time.perf_counter() - start, 1)})
            bar.set_postfix(loss=f"{loss.item():.3f}", heldout_acc=f"{acc:.3f}")
            if not progress:
                print(curve[-1], flush=True)
    wall = time.perf_counter() - start

    weights = out_dir / f"{cfg.backbone}.safetensors"
    with atomic_path(weights) as tmp:
        save_file({k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}, tmp)
    provenance = {
        "backbone": cfg.backbone,
        "architecture": {k: v for k, v in asdict(kit).items() if k != "extra"},
        "recipe": asdict(cfg),
        "generator": {"module": "adaptertune_lite.procedural", "version": GENERATOR_VERSION},
        "images_seen": cfg.steps * cfg.batch_size,
        "heldout_accuracy": curve[-1]["heldout_acc"],
        "heldout_images": int(len(eval_y)),
        "curve": curve,
        "wall_time_s": round(wall, 1),
        "device": describe_device(dev),
        "machine": f"{platform.machine()} {platform.processor() or ''}".strip(),
        "torch": torch.__version__,
        "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "sha256": sha256_of(weights),
    }
    write_json(out_dir / f"{cfg.backbone}.json", provenance)
    return provenance
