"""Datasets that need no download: scikit-learn's bundled digits, and CIFAR-10 from a local copy.

Both loaders return :class:`DataSplits` with ``X_train, y_train, X_val, y_val, X_test, y_test``.
Features are ``float32``; labels are ``int64``. Normalisation statistics come from the training
split only, so nothing about validation or test data leaks into training.
"""
from __future__ import annotations

import pickle
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from sklearn.datasets import load_digits as _sklearn_digits
from sklearn.model_selection import train_test_split

from .validation import check_unit_interval

__all__ = ["DataSplits", "load_digits", "load_cifar10", "CIFAR10_CLASSES"]

CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
_CIFAR10_TRAIN_FILES = tuple(f"data_batch_{i}" for i in range(1, 6))
_CIFAR10_TEST_FILE = "test_batch"


@dataclass(frozen=True)
class DataSplits:
    """Train / validation / test arrays of one dataset."""

    X_train: np.ndarray
    y_train: np.ndarray
    X_val: np.ndarray
    y_val: np.ndarray
    X_test: np.ndarray
    y_test: np.ndarray
    class_names: tuple[str, ...]

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def __repr__(self) -> str:
        sizes = ", ".join(f"{name}={getattr(self, 'X_' + name).shape}" for name in ("train", "val", "test"))
        return f"DataSplits({sizes}, classes={self.num_classes})"


def _standardize(splits: list[np.ndarray]) -> list[np.ndarray]:
    """Subtract the training mean (per feature) and divide by the training std (one scalar)."""
    train = splits[0]
    mean = train.mean(axis=0, keepdims=True)
    std = train.std() + 1e-8
    return [((x - mean) / std).astype(np.float32) for x in splits]


def load_digits(
    val_fraction: float = 0.2,
    test_fraction: float = 0.2,
    seed: int = 0,
    normalize: bool = True,
    as_images: bool = False,
) -> DataSplits:
    """scikit-learn's bundled 8x8 handwritten digits (1,797 images, 10 classes), stratified splits.

    ``as_images=True`` gives ``X`` of shape ``(N, 1, 8, 8)`` for convolutional nets, otherwise
    ``(N, 64)``. ``normalize`` standardises with training-split statistics; without it pixels are
    scaled from [0, 16] to [0, 1].
    """
    val_fraction = check_unit_interval(val_fraction, "val_fraction")
    test_fraction = check_unit_interval(test_fraction, "test_fraction")
    if val_fraction + test_fraction >= 1:
        raise ValueError(f"val_fraction + test_fraction must be < 1, got {val_fraction + test_fraction}")
    digits = _sklearn_digits()
    X = (digits.data / 16.0).astype(np.float32)
    y = digits.target.astype(np.int64)
    X_rest, X_test, y_rest, y_test = _split(X, y, test_fraction, seed)
    X_train, X_val, y_train, y_val = _split(X_rest, y_rest, val_fraction / (1 - test_fraction), seed + 1)
    parts = [X_train, X_val, X_test]
    if normalize:
        parts = _standardize(parts)
    if as_images:
        parts = [x.reshape(-1, 1, 8, 8) for x in parts]
    names = tuple(str(n) for n in digits.target_names)
    return DataSplits(parts[0], y_train, parts[1], y_val, parts[2], y_test, names)


def _split(X: np.ndarray, y: np.ndarray, fraction: float, seed: int):
    if fraction == 0:
        return X, X[:0], y, y[:0]
    return train_test_split(X, y, test_size=fraction, random_state=seed, stratify=y)


def _read_cifar_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """One CIFAR-10 python batch: ``data`` (N, 3072) uint8 rows in CHW order, ``labels`` (N,)."""
    with path.open("rb") as handle:
        batch = pickle.load(handle, encoding="bytes")
    try:
        data, labels = batch[b"data"], batch[b"labels"]
    except (KeyError, TypeError) as error:
        raise ValueError(f"{path} is not a CIFAR-10 python batch (needs keys b'data' and b'labels')") from error
    data = np.asarray(data, dtype=np.uint8)
    if data.ndim != 2 or data.shape[1] != 3 * 32 * 32 or data.shape[0] != len(labels):
        raise ValueError(f"{path}: data must have shape (N, 3072) with N labels, got {data.shape}, {len(labels)} labels")
    return data.reshape(-1, 3, 32, 32), np.asarray(labels, dtype=np.int64)


def load_cifar10(
    root: str | Path, num_validation: int = 1000, normalize: bool = True, channels_last: bool = False
) -> DataSplits:
    """CIFAR-10 from the standard python-pickle batches in ``root`` (``data_batch_1`` .. ``_5``,
    ``test_batch``, as in ``cifar-10-batches-py``). Nothing is downloaded.

    The last ``num_validation`` training images become the validation split. Images are
    ``(N, 3, 32, 32)``, or ``(N, 32, 32, 3)`` with ``channels_last``.
    """
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(
            f"root: no CIFAR-10 directory at {root}; download cifar-10-python.tar.gz yourself and pass "
            "the extracted cifar-10-batches-py folder"
        )
    missing = [name for name in (*_CIFAR10_TRAIN_FILES, _CIFAR10_TEST_FILE) if not (root / name).is_file()]
    if missing:
        raise FileNotFoundError(f"root: {root} lacks CIFAR-10 batch file(s) {missing}")
    train = [_read_cifar_batch(root / name) for name in _CIFAR10_TRAIN_FILES]
    X_all = np.concatenate([x for x, _ in train]).astype(np.float32) / 255.0
    y_all = np.concatenate([y for _, y in train])
    if isinstance(num_validation, bool) or not isinstance(num_validation, (int, np.integer)):
        raise ValueError(f"num_validation must be an integer, got {num_validation!r}")
    if not 0 <= num_validation < len(X_all):
        raise ValueError(f"num_validation must lie in [0, {len(X_all)}), got {num_validation}")
    X_test, y_test = _read_cifar_batch(root / _CIFAR10_TEST_FILE)
    cut = len(X_all) - num_validation
    parts = [X_all[:cut], X_all[cut:], X_test.astype(np.float32) / 255.0]
    if normalize:
        parts = _standardize(parts)
    if channels_last:
        parts = [x.transpose(0, 2, 3, 1) for x in parts]
    return DataSplits(parts[0], y_all[:cut], parts[1], y_all[cut:], parts[2], y_test, CIFAR10_CLASSES)
