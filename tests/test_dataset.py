"""sdpcert.data.load_dataset: any IDX folder (Fashion-MNIST, KMNIST, EMNIST names) or .npz, checked; files made here."""

from __future__ import annotations

import gzip
import hashlib
import shutil
import struct
from pathlib import Path

import numpy as np
import pytest

from sdpcert.data import MNIST_SIZES, Dataset, load_dataset
from sdpcert.errors import DataIntegrityError, SdpcertError


def idx_bytes(array: np.ndarray, magic: int) -> bytes:
    array = np.asarray(array, dtype=np.uint8)
    return struct.pack(">I", magic) + struct.pack(f">{array.ndim}I", *array.shape) + array.tobytes()


def write_split(folder: Path, prefix: str, images: np.ndarray, labels: np.ndarray, gz: bool = False) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for stem, data in ((f"{prefix}-images-idx3-ubyte", idx_bytes(images, 2051)),
                       (f"{prefix}-labels-idx1-ubyte", idx_bytes(labels, 2049))):
        if gz:
            (folder / f"{stem}.gz").write_bytes(gzip.compress(data))
        else:
            (folder / stem).write_bytes(data)


def fake(n: int, rows: int = 28, cols: int = 28, k: int = 10, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, size=(n, rows, cols)), np.arange(n) % k


def one_line_error(exc_info) -> str:
    message = str(exc_info.value)
    assert "\n" not in message
    return message


@pytest.mark.parametrize("gz", [False, True])
def test_an_idx_folder_of_another_data_set(tmp_path, gz):
    folder = tmp_path / "fashion-mnist"
    images, labels = fake(30, seed=1)
    write_split(folder, "train", images, labels, gz)
    write_split(folder, "t10k", *fake(12, seed=2), gz)
    ds = load_dataset(folder, "train")
    assert isinstance(ds, Dataset) and (ds.n, ds.d, ds.k) == (30, 784, 10)
    X, y = ds
    assert X.dtype == np.float32 and X.min() >= 0 and X.max() <= 1 and y.dtype == np.int64
    np.testing.assert_array_equal(X * 255, images.reshape(30, -1))
    np.testing.assert_array_equal(y, labels)
    combined = hashlib.sha256(idx_bytes(images, 2051) + idx_bytes(labels, 2049)).hexdigest()
    assert ds.sha256 == combined and ds.name == "fashion-mnist" and ds.verified == "structure"
    info = ds.info()
    assert info["n"] == 30 and info["k"] == 10 and info["split"] == "train" and len(info["files"]) == 2
    assert "fashion-mnist (train): 30 examples, 784 inputs, 10 classes" in ds.describe()
    test = load_dataset(folder, "test", name="my-data", limit=5, dtype=np.float64)
    assert test.n == 5 and test.X.dtype == np.float64 and test.name == "my-data"


def test_input_size_and_classes_follow_the_data(tmp_path):
    write_split(tmp_path / "small", "t10k", *fake(20, rows=5, cols=4, k=3))
    ds = load_dataset(tmp_path / "small", "test")
    assert (ds.d, ds.k) == (20, 3)
    assert load_dataset(tmp_path / "small", "test", k=7).k == 7
    with pytest.raises(DataIntegrityError, match=r"labels outside 0..1") as exc:
        load_dataset(tmp_path / "small", "test", k=2)
    one_line_error(exc)


def test_emnist_names_and_variants(tmp_path):
    folder = tmp_path / "emnist"
    write_split(folder, "emnist-letters-train", *fake(10, k=27, seed=3), gz=True)
    write_split(folder, "emnist-letters-test", *fake(8, k=27, seed=4), gz=True)
    ds = load_dataset(folder, "test")
    assert ds.name == "emnist-letters" and ds.n == 8 and ds.k == 8  # labels 0..7 here
    write_split(folder, "emnist-digits-test", *fake(6, seed=5))
    with pytest.raises(SdpcertError, match="digits, letters: pass variant") as exc:
        load_dataset(folder, "test")
    one_line_error(exc)
    assert load_dataset(folder, "test", variant="digits").n == 6
    with pytest.raises(DataIntegrityError, match="no EMNIST variant 'byclass'"):
        load_dataset(folder, "test", variant="byclass")


def test_files_that_claim_to_be_mnist_must_have_its_md5(tmp_path):
    n = (MNIST_SIZES["t10k-labels-idx1-ubyte"] - 8)
    images, labels = fake(n, seed=6)
    # MNIST's names and sizes in a folder called mnist: a claim, checked
    write_split(tmp_path / "mnist", "t10k", images, labels)
    with pytest.raises(DataIntegrityError, match="md5 .* claim to be MNIST") as exc:
        load_dataset(tmp_path / "mnist", "test")
    one_line_error(exc)
    # the same files elsewhere are a variant (as Fashion-MNIST and KMNIST are) ... unless named mnist
    write_split(tmp_path / "kmnist", "t10k", images, labels, gz=True)
    assert load_dataset(tmp_path / "kmnist", "test").verified == "structure"
    with pytest.raises(DataIntegrityError, match="md5"):
        load_dataset(tmp_path / "kmnist", "test", name="mnist")


def test_real_mnist_and_a_corrupt_copy(mnist_dir, tmp_path):
    ds = load_dataset(mnist_dir, "test")
    assert ds.name == "mnist" and ds.verified == "md5 (MNIST)" and (ds.n, ds.d, ds.k) == (10000, 784, 10)
    # MNIST's real labels next to other images of MNIST's size: one md5 matches, so it is a corrupt MNIST
    folder = tmp_path / "copy"
    folder.mkdir()
    labels = next(p for p in (mnist_dir / "t10k-labels-idx1-ubyte.gz", mnist_dir / "t10k-labels-idx1-ubyte")
                  if p.is_file())
    shutil.copy(labels, folder / labels.name)
    images, _ = fake(10000, seed=7)
    (folder / "t10k-images-idx3-ubyte").write_bytes(idx_bytes(images, 2051))
    with pytest.raises(DataIntegrityError, match="t10k-images-idx3-ubyte: md5") as exc:
        load_dataset(folder, "test")
    one_line_error(exc)


@pytest.mark.parametrize("damage, match", [
    (lambda b: b[:-5], "truncated"),
    (lambda b: b + b"\0\0", "trailing bytes"),
    (lambda b: b"\0\0\x08\x04" + b[4:], "bad IDX magic"),
    (lambda b: b[:10], "truncated inside the IDX header"),
])
def test_damaged_idx_files(tmp_path, damage, match):
    folder = tmp_path / "d"
    write_split(folder, "train", *fake(5))
    path = folder / "train-images-idx3-ubyte"
    path.write_bytes(damage(path.read_bytes()))
    with pytest.raises(DataIntegrityError, match=match) as exc:
        load_dataset(folder, "train")
    one_line_error(exc)


def test_idx_folder_errors(tmp_path):
    folder = tmp_path / "d"
    images, labels = fake(5)
    write_split(folder, "train", images, labels[:4])
    with pytest.raises(DataIntegrityError, match="holds 5 images but"):
        load_dataset(folder, "train")
    with pytest.raises(SdpcertError, match="pass split='train' or 'test'"):
        load_dataset(folder)
    with pytest.raises(SdpcertError, match="unknown split"):
        load_dataset(folder, "validation")
    with pytest.raises(DataIntegrityError, match="no IDX files for the test split"):
        load_dataset(folder, "test")
    with pytest.raises(DataIntegrityError, match="no such folder or file"):
        load_dataset(tmp_path / "nowhere", "test")
    (folder / "t10k-images-idx3-ubyte.gz").write_bytes(b"not gzip")
    (folder / "t10k-labels-idx1-ubyte").write_bytes(idx_bytes(labels, 2049))
    with pytest.raises(DataIntegrityError, match="not a valid gzip file"):
        load_dataset(folder, "test")
    write_split(tmp_path / "one", "train", fake(4)[0], np.zeros(4))
    with pytest.raises(DataIntegrityError, match="fewer than 2 classes"):
        load_dataset(tmp_path / "one", "train")


def test_npz(tmp_path):
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(40, 7)), rng.integers(0, 4, size=40)
    path = tmp_path / "blobs.npz"
    np.savez(path, X=X, y=y)
    ds = load_dataset(path)
    assert (ds.name, ds.n, ds.d, ds.k, ds.split) == ("blobs", 40, 7, int(y.max()) + 1, None)
    np.testing.assert_array_equal(ds.X, X)
    assert ds.X.dtype == np.float64 and ds.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    assert load_dataset(path, "test", k=9).k == 9
    np.savez(path, X=X.astype(np.float32), y=y.astype(np.uint8))
    assert load_dataset(path).X.dtype == np.float32 and load_dataset(path, dtype=np.float64).X.dtype == np.float64
    np.savez(path, X=X, y=y)
    with pytest.raises(DataIntegrityError, match="not exactly representable as float32"):
        load_dataset(path, dtype=np.float32)


@pytest.mark.parametrize("arrays, match", [
    ({"X": np.ones((4, 3), dtype=np.int64), "y": np.arange(4) % 2}, "X must hold floats"),
    ({"X": np.ones((4, 3)), "y": np.arange(4.0) % 2}, "y must hold integers"),
    ({"X": np.ones(4), "y": np.arange(4) % 2}, r"X must have shape \(n, d\)"),
    ({"X": np.ones((0, 3)), "y": np.zeros(0, dtype=int)}, r"X must have shape \(n, d\)"),
    ({"X": np.ones((4, 3)), "y": np.arange(5) % 2}, r"y must have shape \(4,\)"),
    ({"X": np.ones((4, 3)), "y": (np.arange(4) % 2)[:, None]}, r"y must have shape \(4,\)"),
    ({"X": np.array([[1.0, np.nan], [0, 0]]), "y": np.array([0, 1])}, r"1 NaN/inf values, first at \[0, 1\]"),
    ({"X": np.array([[1.0, 0], [np.inf, 0]]), "y": np.array([0, 1])}, r"first at \[1, 0\]"),
    ({"X": np.ones((2, 3)), "y": np.array([0, -1])}, "labels must be >= 0"),
    ({"X": np.ones((2, 3)), "y": np.array([0, 1]), "w": np.ones(2)}, r"unknown arrays \['w'\]"),
    ({"X": np.ones((2, 3))}, r"missing \['y'\]"),
    ({"X": np.ones((2, 3)), "y": np.array([{"a": 1}, 2], dtype=object)}, "not a plain .npz"),
])
def test_bad_npz(tmp_path, arrays, match):
    path = tmp_path / "bad.npz"
    np.savez(path, **arrays)
    with pytest.raises(DataIntegrityError, match=match) as exc:
        load_dataset(path)
    one_line_error(exc)


def test_bad_npz_files(tmp_path):
    path = tmp_path / "x.npz"
    path.write_bytes(b"garbage")
    with pytest.raises(DataIntegrityError, match="x.npz") as exc:
        load_dataset(path)
    one_line_error(exc)
    np.save(tmp_path / "a.npy", np.ones(3))
    (tmp_path / "a.npy").rename(path)
    with pytest.raises(DataIntegrityError, match="not an .npz archive"):
        load_dataset(path)
    np.savez(path, X=np.ones((3, 2)), y=np.array([0, 1, 5]))
    with pytest.raises(DataIntegrityError, match=r"labels outside 0..2, first label 5 at index 2"):
        load_dataset(path, k=3)
    (tmp_path / "data.csv").write_text("1,2\n")
    with pytest.raises(DataIntegrityError, match="not a folder of IDX files or an .npz"):
        load_dataset(tmp_path / "data.csv")
    with pytest.raises(SdpcertError, match="path must be"):
        load_dataset(3)
    with pytest.raises(SdpcertError, match="dtype must be a floating type"):
        load_dataset(path, dtype=np.int32)
    with pytest.raises(SdpcertError, match="k must be >= 2"):
        load_dataset(path, k=1)
