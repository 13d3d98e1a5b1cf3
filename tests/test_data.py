"""Data loaders: digits splits (sizes, stratification, train-only normalisation) and CIFAR-10 from local pickles."""
from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
from sklearn.datasets import load_digits as sklearn_digits

from cs231n_utils import data


# ----------------------------------------------------------------------------------- digits
def rows(X: np.ndarray, y: np.ndarray) -> list[tuple[int, ...]]:
    """The sorted multiset of (16 * pixels, label) rows of a digits split."""
    return sorted(map(tuple, np.column_stack([np.round(X * 16), y]).astype(int).tolist()))


def test_digits_splits_partition_the_dataset_with_the_requested_fractions():
    splits = data.load_digits(val_fraction=0.2, test_fraction=0.2, seed=0)
    raw = sklearn_digits()
    sizes = [len(splits.X_train), len(splits.X_val), len(splits.X_test)]
    assert sum(sizes) == len(raw.target) == 1797
    assert sizes[2] == pytest.approx(0.2 * 1797, abs=1) and sizes[1] == pytest.approx(0.2 * 1797, abs=1)
    assert splits.X_train.shape[1:] == (64,) and splits.X_train.dtype == np.float32
    assert splits.y_train.dtype == np.int64 and splits.num_classes == 10
    # Every raw image lands in exactly one split: compare the multisets of (image, label) rows.
    unnormalized = data.load_digits(seed=0, normalize=False)
    combined = rows(np.concatenate([unnormalized.X_train, unnormalized.X_val, unnormalized.X_test]),
                    np.concatenate([unnormalized.y_train, unnormalized.y_val, unnormalized.y_test]))
    assert combined == rows(raw.data / 16, raw.target)


def test_digits_splits_are_stratified():
    splits = data.load_digits(seed=1)
    overall = np.bincount(sklearn_digits().target) / 1797
    for y in (splits.y_train, splits.y_val, splits.y_test):
        np.testing.assert_allclose(np.bincount(y, minlength=10) / len(y), overall, atol=1.5 / len(y))


def test_digits_normalisation_uses_training_statistics_only():
    raw = data.load_digits(seed=2, normalize=False)
    normalized = data.load_digits(seed=2, normalize=True)
    mean, std = raw.X_train.mean(axis=0, dtype=np.float64), raw.X_train.std(dtype=np.float64)
    for part in ("train", "val", "test"):
        expected = (getattr(raw, f"X_{part}") - mean) / std
        np.testing.assert_allclose(getattr(normalized, f"X_{part}"), expected, atol=1e-5)
    assert np.abs(normalized.X_train.mean(axis=0)).max() < 1e-5
    assert np.abs(normalized.X_val.mean(axis=0)).max() > 1e-3  # val statistics were not used


def test_digits_unnormalised_pixels_lie_in_the_unit_interval_and_images_have_shape():
    raw = data.load_digits(normalize=False, as_images=True)
    assert raw.X_train.shape[1:] == (1, 8, 8)
    assert raw.X_train.min() == 0.0 and raw.X_train.max() == 1.0


def test_digits_splits_are_reproducible_and_depend_on_the_seed():
    a, b, c = data.load_digits(seed=3), data.load_digits(seed=3), data.load_digits(seed=4)
    np.testing.assert_array_equal(a.X_train, b.X_train)
    assert not np.array_equal(a.y_train, c.y_train)


@pytest.mark.parametrize(
    "kwargs, message",
    [({"val_fraction": 1.2}, "val_fraction"), ({"test_fraction": -0.1}, "test_fraction"),
     ({"val_fraction": 0.5, "test_fraction": 0.5}, "val_fraction \\+ test_fraction")],
)
def test_digits_rejects_bad_fractions(kwargs, message):
    with pytest.raises(ValueError, match=message):
        data.load_digits(**kwargs)


# ---------------------------------------------------------------------------------- CIFAR-10
def _write_fake_cifar(root: Path, per_batch: int = 4) -> dict[str, tuple[np.ndarray, list[int]]]:
    """Write the six CIFAR-10 python batches with ``per_batch`` random images each."""
    rng = np.random.default_rng(0)
    root.mkdir(parents=True, exist_ok=True)
    batches = {}
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        images = rng.integers(0, 256, size=(per_batch, 3072), dtype=np.uint8)
        labels = rng.integers(0, 10, size=per_batch).tolist()
        with (root / name).open("wb") as handle:
            pickle.dump({b"data": images, b"labels": labels, b"batch_label": name.encode()}, handle)
        batches[name] = (images, labels)
    return batches


def test_cifar10_loads_a_fake_batch_exactly(tmp_path):
    batches = _write_fake_cifar(tmp_path)
    splits = data.load_cifar10(tmp_path, num_validation=3, normalize=False)
    train_rows = np.concatenate([batches[f"data_batch_{i}"][0] for i in range(1, 6)])
    train_labels = sum((batches[f"data_batch_{i}"][1] for i in range(1, 6)), [])
    assert splits.X_train.shape == (17, 3, 32, 32) and splits.X_val.shape == (3, 3, 32, 32)
    # Row layout of a CIFAR batch: 1024 red values, then 1024 green, then 1024 blue, each row-major.
    first = train_rows[0]
    np.testing.assert_allclose(splits.X_train[0, 1, 2, 5], first[1024 + 2 * 32 + 5] / 255.0)
    np.testing.assert_allclose(splits.X_val[-1].reshape(-1), train_rows[-1] / 255.0, rtol=1e-6)
    np.testing.assert_array_equal(np.concatenate([splits.y_train, splits.y_val]), train_labels)
    np.testing.assert_array_equal(splits.y_test, batches["test_batch"][1])
    assert splits.class_names[0] == "airplane" and splits.num_classes == 10


def test_cifar10_channels_last_and_normalisation(tmp_path):
    _write_fake_cifar(tmp_path)
    raw = data.load_cifar10(tmp_path, num_validation=2, normalize=False)
    last = data.load_cifar10(tmp_path, num_validation=2, normalize=False, channels_last=True)
    np.testing.assert_array_equal(last.X_train, raw.X_train.transpose(0, 2, 3, 1))
    normalized = data.load_cifar10(tmp_path, num_validation=2)
    mean, std = raw.X_train.mean(axis=0), raw.X_train.std()
    np.testing.assert_allclose(normalized.X_test, (raw.X_test - mean) / std, atol=1e-4)


def test_cifar10_missing_directory_or_file_raises(tmp_path):
    with pytest.raises(FileNotFoundError, match="no CIFAR-10 directory"):
        data.load_cifar10(tmp_path / "nowhere")
    _write_fake_cifar(tmp_path)
    (tmp_path / "data_batch_3").unlink()
    with pytest.raises(FileNotFoundError, match="data_batch_3"):
        data.load_cifar10(tmp_path)


def test_cifar10_rejects_corrupt_batches_and_bad_validation_size(tmp_path):
    _write_fake_cifar(tmp_path)
    with pytest.raises(ValueError, match="num_validation"):
        data.load_cifar10(tmp_path, num_validation=20)
    with (tmp_path / "test_batch").open("wb") as handle:
        pickle.dump({b"images": []}, handle)
    with pytest.raises(ValueError, match="not a CIFAR-10 python batch"):
        data.load_cifar10(tmp_path, num_validation=2)
    with (tmp_path / "test_batch").open("wb") as handle:
        pickle.dump({b"data": np.zeros((2, 100), dtype=np.uint8), b"labels": [0, 1]}, handle)
    with pytest.raises(ValueError, match=r"shape \(N, 3072\)"):
        data.load_cifar10(tmp_path, num_validation=2)
