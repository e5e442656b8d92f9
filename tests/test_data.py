"""MNIST loader on the real files, its refusal of damaged files, and the packaged sample."""

from __future__ import annotations

import gzip
import shutil
from pathlib import Path

import numpy as np
import pytest

from sdpcert import data
from sdpcert.data import load_mnist, load_mnist_raw, load_mnist_sample, parse_idx
from sdpcert.errors import DataIntegrityError, SdpcertError

# From ../shared/data/mnist/README.md (and every MNIST description since 1998).
TEST_LABEL_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
TRAIN_LABEL_COUNTS = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
FIRST_TRAIN_LABELS = [5, 0, 4, 1, 9, 2, 1, 3, 1, 4]
FIRST_TEST_LABELS = [7, 2, 1, 0, 4, 1, 4, 9, 5, 9]

IMAGES = "t10k-images-idx3-ubyte"
LABELS = "t10k-labels-idx1-ubyte"
HEADER = {IMAGES: 16, LABELS: 8}  # magic + one uint32 per dimension


@pytest.fixture
def test_split_copy(tmp_path, mnist_dir) -> Path:
    """A private folder with the test split decompressed (raw IDX names), for the tests to damage."""
    folder = tmp_path / "mnist"
    folder.mkdir()
    for name in (IMAGES, LABELS):
        with gzip.open(mnist_dir / f"{name}.gz", "rb") as src, open(folder / name, "wb") as dst:
            shutil.copyfileobj(src, dst)
    return folder


def edit_file(path: Path, edit) -> None:
    path.write_bytes(bytes(edit(bytearray(path.read_bytes()))))


# --------------------------------------------------------------------------------------------- the real data
def test_test_split_label_counts_and_ranges(mnist_dir):
    X, y = load_mnist("test", folder=mnist_dir)
    assert X.shape == (10000, 784) and X.dtype == np.float32
    assert y.shape == (10000,) and y.dtype == np.int64
    assert X.min() == 0.0 and X.max() == 1.0
    assert np.bincount(y, minlength=10).tolist() == TEST_LABEL_COUNTS
    assert y[:10].tolist() == FIRST_TEST_LABELS


def test_train_split_with_limit(mnist_dir):
    X, y = load_mnist("train", folder=mnist_dir, limit=300, dtype=np.float64)
    assert X.shape == (300, 784) and X.dtype == np.float64
    assert y[:10].tolist() == FIRST_TRAIN_LABELS
    # pixels are the raw bytes / 255, nothing else
    raw, raw_labels = load_mnist_raw("train", folder=mnist_dir, limit=300)
    assert raw.dtype == np.uint8
    np.testing.assert_array_equal(X * 255, raw.astype(np.float64))
    np.testing.assert_array_equal(raw_labels, y)


@pytest.mark.slow
def test_train_split_label_counts(mnist_dir):
    _, y = load_mnist("train", folder=mnist_dir)
    assert np.bincount(y, minlength=10).tolist() == TRAIN_LABEL_COUNTS


def test_folder_from_environment_variable(mnist_dir, monkeypatch):
    monkeypatch.setenv(data.MNIST_DIR_ENV, str(mnist_dir))
    _, y = load_mnist("test", limit=10)
    assert y.tolist() == FIRST_TEST_LABELS


def test_decompressed_files_are_read_too(test_split_copy):
    X, y = load_mnist("test", folder=test_split_copy, limit=10)
    assert y.tolist() == FIRST_TEST_LABELS and X.shape == (10, 784)


# --------------------------------------------------------------------------------------------- damaged files
def test_flipped_pixel_fails_the_checksum(test_split_copy):
    def flip(b):
        b[HEADER[IMAGES] + 1000] ^= 0xFF
        return b

    edit_file(test_split_copy / IMAGES, flip)
    with pytest.raises(DataIntegrityError, match=rf"{IMAGES}: md5 .* is [0-9a-f]{{32}}, expected 2646ac64"):
        load_mnist("test", folder=test_split_copy)
    # structurally valid, so it loads when the caller opts out of the checksum (a deliberate variant)
    X, _ = load_mnist("test", folder=test_split_copy, verify=False, limit=2)
    assert X.shape == (2, 784)


def test_changed_label_fails_the_checksum(test_split_copy):
    def relabel(b):
        b[HEADER[LABELS]] = 3  # the first test digit is a 7
        return b

    edit_file(test_split_copy / LABELS, relabel)
    with pytest.raises(DataIntegrityError, match=rf"{LABELS}: md5 .* expected 27ae3e4e"):
        load_mnist("test", folder=test_split_copy, limit=1)


@pytest.mark.parametrize("verify", [True, False])
def test_truncated_file(test_split_copy, verify):
    edit_file(test_split_copy / IMAGES, lambda b: b[:-1])
    with pytest.raises(DataIntegrityError, match=rf"{IMAGES}: truncated: .*7840000 data bytes, but only 7839999"):
        load_mnist("test", folder=test_split_copy, verify=verify)


@pytest.mark.parametrize("verify", [True, False])
def test_trailing_bytes(test_split_copy, verify):
    edit_file(test_split_copy / LABELS, lambda b: b + b"\x00\x00\x00")
    with pytest.raises(DataIntegrityError, match=rf"{LABELS}: 3 trailing bytes after the 10000 data bytes"):
        load_mnist("test", folder=test_split_copy, verify=verify)


def test_bad_magic(test_split_copy):
    def swap_magic(b):
        b[3] = 0x01  # images header claiming to be a labels file (2049)
        return b

    edit_file(test_split_copy / IMAGES, swap_magic)
    with pytest.raises(DataIntegrityError, match=rf"{IMAGES}: bad IDX magic number 2049 .*expected 2051"):
        load_mnist("test", folder=test_split_copy, verify=False)


def test_label_out_of_range(test_split_copy):
    def bad_label(b):
        b[HEADER[LABELS] + 5] = 10
        return b

    edit_file(test_split_copy / LABELS, bad_label)
    with pytest.raises(DataIntegrityError, match=r"1 labels outside 0\.\.9, first label 10 at index 5"):
        load_mnist("test", folder=test_split_copy, verify=False)


def test_image_and_label_counts_must_agree(test_split_copy):
    def drop_last_label(b):
        b[4:8] = (9999).to_bytes(4, "big")
        return b[:-1]

    edit_file(test_split_copy / LABELS, drop_last_label)
    with pytest.raises(DataIntegrityError, match=r"holds 10000 images but .* holds 9999 labels"):
        load_mnist("test", folder=test_split_copy, verify=False)


def test_corrupt_and_truncated_gzip(test_split_copy, mnist_dir):
    labels_gz = test_split_copy / f"{LABELS}.gz"
    (test_split_copy / LABELS).unlink()
    labels_gz.write_bytes(b"this is not gzip data at all")
    with pytest.raises(DataIntegrityError, match=rf"{LABELS}\.gz: not a valid gzip file"):
        load_mnist("test", folder=test_split_copy)
    labels_gz.write_bytes((mnist_dir / f"{LABELS}.gz").read_bytes()[:-20])
    with pytest.raises(DataIntegrityError, match=rf"{LABELS}\.gz: not a valid gzip file"):
        load_mnist("test", folder=test_split_copy)


def test_parse_idx_on_tiny_inputs():
    labels = bytes([0, 0, 8, 1, 0, 0, 0, 3, 1, 2, 3])
    assert parse_idx(labels, data.LABELS_MAGIC).tolist() == [1, 2, 3]
    with pytest.raises(DataIntegrityError, match=r"x\.idx: truncated: 2 bytes"):
        parse_idx(labels[:2], data.LABELS_MAGIC, "x.idx")
    with pytest.raises(DataIntegrityError, match=r"truncated inside the IDX header"):
        parse_idx(labels[:6], data.LABELS_MAGIC)


# --------------------------------------------------------------------------------------------- where to look
def test_missing_folder_says_where_it_looked_and_how_to_fix(tmp_path):
    missing = tmp_path / "no-such-dir"
    with pytest.raises(DataIntegrityError) as info:
        load_mnist("test", folder=missing)
    message = str(info.value)
    for needed in (str(missing), "does not exist", "t10k-images-idx3-ubyte[.gz]", "folder=", "SDPCERT_MNIST_DIR",
                   "download=True"):
        assert needed in message


def test_default_cache_folder_is_the_last_resort(tmp_path, monkeypatch):
    monkeypatch.delenv(data.MNIST_DIR_ENV, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    with pytest.raises(DataIntegrityError, match=r"\.cache/sdpcert/mnist \(the default cache folder\)"):
        load_mnist("train")


def test_half_present_split_names_the_missing_file(tmp_path, mnist_dir):
    shutil.copy(mnist_dir / f"{IMAGES}.gz", tmp_path)
    with pytest.raises(DataIntegrityError, match=rf"looked for {LABELS}\[\.gz\] in {tmp_path}"):
        load_mnist("test", folder=tmp_path)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"split": "validation"}, r"unknown MNIST split 'validation'"),
        ({"limit": -1}, r"limit must be a non-negative integer"),
        ({"limit": 2.5}, r"limit must be a non-negative integer"),
        ({"dtype": np.uint8}, r"dtype must be a floating type"),
    ],
)
def test_bad_arguments(tmp_path, kwargs, message):
    with pytest.raises(SdpcertError, match=message):
        load_mnist(folder=tmp_path, **kwargs)
    with pytest.raises(SdpcertError, match=message):
        load_mnist_sample(**kwargs)


# --------------------------------------------------------------------------------------------- packaged sample
@pytest.mark.parametrize("split, n", [("train", 2000), ("test", 1000)])
def test_sample_shapes_and_ranges(split, n):
    X, y = load_mnist_sample(split)
    assert X.shape == (n, 784) and X.dtype == np.float32
    assert y.shape == (n,) and y.dtype == np.int64
    assert X.min() == 0.0 and X.max() == 1.0
    assert set(np.unique(y).tolist()) == set(range(10))
    assert y[:10].tolist() == (FIRST_TRAIN_LABELS if split == "train" else FIRST_TEST_LABELS)
    X64, _ = load_mnist_sample(split, limit=7, dtype=np.float64)
    assert X64.shape == (7, 784) and X64.dtype == np.float64


@pytest.mark.parametrize("split, n", [("train", 2000), ("test", 1000)])
def test_sample_is_the_head_of_the_full_data(mnist_dir, split, n):
    X_full, y_full = load_mnist(split, folder=mnist_dir, limit=n)
    X, y = load_mnist_sample(split)
    np.testing.assert_array_equal(y, y_full)
    np.testing.assert_array_equal(X, X_full)


def test_sample_checksum_is_enforced(monkeypatch):
    shape, sha256 = data.SAMPLE_ARRAYS["test_labels"]
    wrong = sha256[:-1] + ("0" if sha256[-1] != "0" else "1")
    monkeypatch.setitem(data.SAMPLE_ARRAYS, "test_labels", (shape, wrong))
    with pytest.raises(DataIntegrityError, match=r"sha256 of test_labels is [0-9a-f]{64}, expected"):
        load_mnist_sample("test")
