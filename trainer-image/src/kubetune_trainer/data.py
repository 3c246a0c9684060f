"""Datasets for the trainer: scikit-learn's digits, an .npz of arrays, or an image folder.

Everything here is numpy (no torch), so it loads fast and is tested without a model. Loading
reads files; splitting and fitting the normaliser are pure. A dataset that cannot be used
raises :class:`DataError` (a ``ValueError``) naming the path, what is wrong and the fix, before
any training starts.

Images are kept raw (as loaded) in ``(N, C, H, W)`` float32; flat data in ``(N, D)``. The
normaliser is fitted on the training split only and applied per batch after augmentation, so
augmentation pads with the raw background (0) rather than with the mean.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

__all__ = [
    "IMAGE_SUFFIXES",
    "SPLIT_SEED",
    "DataError",
    "Dataset",
    "fit_normalizer",
    "load_arrays",
    "load_dataset",
    "load_image_folder",
    "read_image_with_pil",
    "stratified_split",
]

# The validation split does not depend on the trial's seed, so every trial is judged on the
# same held-out examples and their objectives are comparable.
SPLIT_SEED = 20240901

IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".pgm", ".ppm",
                            ".tif", ".tiff"})

ImageReader = Callable[[Path, int], np.ndarray]


class DataError(ValueError):
    """The dataset cannot be used; the message names the path and the fix."""


@dataclass(frozen=True)
class Dataset:
    """Train and validation arrays, raw, with the normaliser fitted on the training split."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    n_classes: int
    shift: np.ndarray  # normalised = (x - shift) / scale, broadcast per channel or feature
    scale: np.ndarray
    source: str

    @property
    def is_image(self) -> bool:
        return self.x_train.ndim == 4

    @property
    def sample_shape(self) -> tuple[int, ...]:
        return tuple(self.x_train.shape[1:])


def _labels(y: np.ndarray, where: str) -> tuple[np.ndarray, int]:
    """Labels as 0..K-1 (any label values are mapped in sorted order)."""
    if y.ndim != 1:
        raise DataError(f"{where}: y must be one label per example (1-D), got shape {y.shape}")
    if y.dtype.kind not in "iuUSb" and not (y.dtype.kind == "f" and np.all(y == np.round(y))):
        raise DataError(
            f"{where}: y must hold class labels (integers or strings), got dtype {y.dtype}"
        )
    classes, index = np.unique(y, return_inverse=True)
    if len(classes) < 2:
        raise DataError(f"{where}: y has {len(classes)} class; a classifier needs at least 2")
    return index.astype(np.int64), len(classes)


def _as_samples(x: np.ndarray, where: str) -> np.ndarray:
    """x as float32 (N, D) or (N, C, H, W); (N, H, W) gains a channel, NHWC is transposed."""
    if x.dtype.kind not in "iufb":
        raise DataError(f"{where}: x must be numeric, got dtype {x.dtype}")
    if x.ndim == 3:
        x = x[:, None, :, :]
    elif x.ndim == 4 and x.shape[1] not in (1, 3, 4) and x.shape[3] in (1, 3, 4):
        x = np.transpose(x, (0, 3, 1, 2))
    elif x.ndim not in (2, 4):
        raise DataError(
            f"{where}: x must be (N, D) features or (N, H, W) / (N, C, H, W) / (N, H, W, C) "
            f"images, got shape {x.shape}"
        )
    x = np.ascontiguousarray(x, dtype=np.float32)
    if not np.all(np.isfinite(x)):
        raise DataError(f"{where}: x holds NaN or infinite values; clean the data first")
    return x


def load_arrays(data: str, image_size: int = 0,
                read_image: ImageReader | None = None) -> tuple[np.ndarray, np.ndarray, int]:
    """(x, y, n_classes) from ``data``: 'digits', an .npz path, or an image folder path."""
    if data == "digits":
        from sklearn.datasets import load_digits  # bundled with scikit-learn: no download

        digits = load_digits()
        y, k = _labels(np.asarray(digits.target), "digits")
        return _as_samples(np.asarray(digits.images), "digits"), y, k
    path = Path(data)
    if not path.exists():
        raise DataError(
            f"data={data!r}: no such file or folder; mount the dataset there, or use "
            "data=digits"
        )
    if path.is_dir():
        return load_image_folder(path, image_size, read_image)
    if path.suffix != ".npz":
        raise DataError(
            f"data={data!r}: expected 'digits', an .npz file with arrays x and y, or a folder "
            "with one subfolder of images per class"
        )
    return _load_npz(path)


def _load_npz(path: Path) -> tuple[np.ndarray, np.ndarray, int]:
    where = f"data={str(path)!r}"
    try:
        with np.load(path, allow_pickle=False) as archive:
            arrays = {name: archive[name] for name in archive.files}
    except (OSError, ValueError) as exc:
        raise DataError(
            f"{where}: cannot read the .npz ({exc}); write it with numpy.savez"
        ) from None
    x = arrays.get("x", arrays.get("X"))
    y = arrays.get("y", arrays.get("Y"))
    if x is None or y is None:
        raise DataError(
            f"{where}: needs arrays named x and y, found {sorted(arrays)}; "
            "write it with numpy.savez(path, x=..., y=...)"
        )
    if len(x) != len(y):
        raise DataError(f"{where}: x has {len(x)} examples but y has {len(y)}")
    labels, k = _labels(np.asarray(y), where)
    return _as_samples(np.asarray(x), where), labels, k


def read_image_with_pil(path: Path, size: int) -> np.ndarray:
    """One image as (H, W) for greyscale or (H, W, 3) for colour, resized when size > 0."""
    try:
        from PIL import Image
    except ImportError:
        raise DataError(
            f"data={str(path.parent.parent)!r} is an image folder, but Pillow is not installed; "
            "install it (pip install pillow) or convert the images to an .npz of arrays x, y"
        ) from None
    with Image.open(path) as image:
        grey = image.mode in ("1", "L", "LA", "I", "I;16", "F")
        converted = image.convert("L" if grey else "RGB")
        if size > 0:
            converted = converted.resize((size, size))
        return np.asarray(converted)


def load_image_folder(root: Path, image_size: int = 0,
                      read_image: ImageReader | None = None
                      ) -> tuple[np.ndarray, np.ndarray, int]:
    """Images from ``root/<class>/<file>``; classes in sorted order of their folder names."""
    reader = read_image or read_image_with_pil
    where = f"data={str(root)!r}"
    classes = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if len(classes) < 2:
        raise DataError(
            f"{where}: an image folder needs one subfolder per class (at least 2), "
            f"found {len(classes)}"
        )
    images: list[np.ndarray] = []
    labels: list[int] = []
    for label, folder in enumerate(classes):
        files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if not files:
            raise DataError(f"{where}: class folder {folder.name!r} holds no images "
                            f"({', '.join(sorted(IMAGE_SUFFIXES))})")
        for file in files:
            array = np.asarray(reader(file, image_size))
            images.append(array[:, :, None] if array.ndim == 2 else array)
            labels.append(label)
    shapes = {a.shape[:2] for a in images}
    if len(shapes) > 1:
        raise DataError(
            f"{where}: images differ in size ({sorted(shapes)[:3]}...); set image_size "
            "to resize them to one square size"
        )
    odd = [a.shape for a in images if a.shape[2] not in (1, 3)]
    if odd:
        raise DataError(f"{where}: images must be greyscale or RGB, got shape {odd[0]}")
    channels = max(a.shape[2] for a in images)
    # Mixed greyscale and colour: greyscale images are repeated to 3 channels.
    stacked = np.stack([np.repeat(a, channels // a.shape[2], axis=2) for a in images])
    x = _as_samples(np.transpose(stacked, (0, 3, 1, 2)), where)
    return x, np.asarray(labels, dtype=np.int64), len(classes)


def stratified_split(y: np.ndarray, val_fraction: float,
                     seed: int = SPLIT_SEED) -> tuple[np.ndarray, np.ndarray]:
    """(train indices, validation indices), stratified by class, fixed by ``seed``. Pure.

    Each class with at least 2 examples gives round(n * val_fraction) of them, at least one
    and never all, to validation.
    """
    rng = np.random.default_rng(seed)
    train: list[np.ndarray] = []
    val: list[np.ndarray] = []
    for label in np.unique(y):
        members = rng.permutation(np.flatnonzero(y == label))
        n_val = round(len(members) * val_fraction) if len(members) > 1 else 0
        n_val = min(max(n_val, 1 if len(members) > 1 else 0), len(members) - 1)
        val.append(members[:n_val])
        train.append(members[n_val:])
    train_idx, val_idx = np.sort(np.concatenate(train)), np.sort(np.concatenate(val))
    if len(val_idx) == 0:
        raise DataError(
            f"val_fraction={val_fraction}: the validation split is empty; every class has a "
            "single example. Provide more data"
        )
    return train_idx, val_idx


def fit_normalizer(x_train: np.ndarray, kind: str) -> tuple[np.ndarray, np.ndarray]:
    """(shift, scale) so that (x - shift) / scale is normalised; per channel or feature. Pure."""
    axes = (0, 2, 3) if x_train.ndim == 4 else (0,)
    keep = (1, -1, 1, 1) if x_train.ndim == 4 else (1, -1)
    if kind == "standard":
        shift = x_train.mean(axis=axes)
        scale = x_train.std(axis=axes)
    elif kind == "minmax":
        shift = x_train.min(axis=axes)
        scale = x_train.max(axis=axes) - shift
    elif kind == "none":
        width = x_train.shape[1]
        shift, scale = np.zeros(width), np.ones(width)
    else:
        raise DataError(f"normalize={kind!r}: expected standard, minmax or none")
    # A constant channel or feature would divide by zero; leave it unscaled.
    scale = np.where(scale > 1e-12, scale, 1.0)
    return (shift.reshape(keep).astype(np.float32), scale.reshape(keep).astype(np.float32))


def load_dataset(data: str, *, val_fraction: float, normalize: str, image_size: int = 0,
                 read_image: ImageReader | None = None) -> Dataset:
    """Load ``data``, split it with the fixed seed, and fit the normaliser on the train split."""
    x, y, n_classes = load_arrays(data, image_size, read_image)
    train_idx, val_idx = stratified_split(y, val_fraction)
    shift, scale = fit_normalizer(x[train_idx], normalize)
    return Dataset(
        x_train=x[train_idx], y_train=y[train_idx], x_val=x[val_idx], y_val=y[val_idx],
        n_classes=n_classes, shift=shift, scale=scale, source=data,
    )
