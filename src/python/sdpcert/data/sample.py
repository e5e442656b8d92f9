"""The packaged MNIST slice: the first 2000 training and first 1000 test images, for tests, examples and demos.

``load_mnist_sample`` needs no files: the arrays ship in ``sdpcert/_data/mnist_sample.npz`` (see
``_data/README.md``; made by ``tools/make_mnist_sample.py``) and are checked against their recorded sha256
(``SAMPLE_ARRAYS``) on every call. ``sample_dataset`` is the same split as a :class:`~sdpcert.data.Dataset` (name,
size, sha256), for reports that name the data they were computed on.
"""

from __future__ import annotations

import hashlib
import io
from importlib import resources
from typing import Any

import numpy as np

from .._checks import nonnegative_int
from ..errors import DataIntegrityError
from .dataset import Dataset
from .mnist import NUM_CLASSES, check_float_dtype, check_split, scale_pixels

__all__ = ["load_mnist_sample", "sample_dataset", "SAMPLE_ARRAYS", "SAMPLE_NAME"]

#: The name reports give the packaged slice.
SAMPLE_NAME = "mnist-sample"

#: The archive, in the package's data folder ``sdpcert/_data``.
_SAMPLE_RESOURCE = "mnist_sample.npz"
#: Shape and sha256 of the raw uint8 bytes of each array in the packaged slice (tools/make_mnist_sample.py).
SAMPLE_ARRAYS: dict[str, tuple[tuple[int, ...], str]] = {
    "train_images": ((2000, 784), "4d1e2862007bab5908d814e74806c6c8f7c4a4f32b5875d195406d4d1dbe4946"),
    "train_labels": ((2000,), "e1be9271eae282fe1479074d79e9b9523ada775ebb01e19299727123e3acca5e"),
    "test_images": ((1000, 784), "f8f3c5a608a9f7d4bd5e9d69b90c53932b8b99371d9db26121b42f62f3abcd56"),
    "test_labels": ((1000,), "d14ba0a1a3818edefa35518ed001ece84b7ac0eabe9394551c73928493175d3f"),
}


def _read_sample_archive() -> dict[str, np.ndarray]:
    resource = resources.files("sdpcert") / "_data" / _SAMPLE_RESOURCE
    try:
        payload = resource.read_bytes()
    except OSError as exc:
        raise DataIntegrityError(f"packaged MNIST sample {_SAMPLE_RESOURCE} is missing: {exc}") from exc
    try:
        with np.load(io.BytesIO(payload), allow_pickle=False) as archive:
            arrays = {key: archive[key] for key in SAMPLE_ARRAYS}
    except Exception as exc:  # any failure here means the packaged file is damaged
        raise DataIntegrityError(f"packaged MNIST sample {_SAMPLE_RESOURCE} is unreadable: {exc}") from exc
    for key, (shape, sha256) in SAMPLE_ARRAYS.items():
        arr = arrays[key]
        if arr.dtype != np.uint8 or arr.shape != shape:
            raise DataIntegrityError(
                f"packaged MNIST sample: {key} is {arr.dtype} {arr.shape}, expected uint8 {shape}"
            )
        got = hashlib.sha256(np.ascontiguousarray(arr).tobytes()).hexdigest()
        if got != sha256:
            raise DataIntegrityError(f"packaged MNIST sample: sha256 of {key} is {got}, expected {sha256}")
    return arrays


def load_mnist_sample(
    split: str = "train", limit: int | None = None, dtype: Any = np.float32
) -> tuple[np.ndarray, np.ndarray]:
    """The packaged slice of real MNIST: the first 2000 training or first 1000 test examples.

    Same conventions as :func:`~sdpcert.data.load_mnist` (``X`` ``(n, 784)`` in [0, 1], ``y`` int64), no files
    needed. The arrays are checked against their recorded sha256 on every call.

    >>> X, y = load_mnist_sample("test", limit=5)
    >>> X.shape, X.dtype, y.tolist()
    ((5, 784), dtype('float32'), [7, 2, 1, 0, 4])
    """
    check_split(split)
    limit = nonnegative_int("limit", limit, optional=True)
    dtype = check_float_dtype(dtype)
    arrays = _read_sample_archive()
    images, labels = arrays[f"{split}_images"], arrays[f"{split}_labels"]
    n = len(labels) if limit is None else min(limit, len(labels))
    return scale_pixels(images[:n], dtype), labels[:n].astype(np.int64)


def sample_dataset(split: str = "test", limit: int | None = None, dtype: Any = np.float32) -> Dataset:
    """The packaged slice's ``split`` as a :class:`~sdpcert.data.Dataset`: ``X``, ``y`` as :func:`load_mnist_sample`
    gives them, named ``mnist-sample``, with k = 10 and the sha256 of the split's raw image bytes then label bytes
    (both checked against ``SAMPLE_ARRAYS`` on the way: ``verified`` says so). The checksum is of the whole split,
    whatever ``limit`` keeps, as :func:`~sdpcert.data.load_dataset` does for files."""
    check_split(split)
    limit = nonnegative_int("limit", limit, optional=True)
    dtype = check_float_dtype(dtype)
    arrays = _read_sample_archive()
    images, labels = arrays[f"{split}_images"], arrays[f"{split}_labels"]
    combined = hashlib.sha256(np.ascontiguousarray(images).tobytes())
    combined.update(np.ascontiguousarray(labels).tobytes())
    n = len(labels) if limit is None else min(limit, len(labels))
    files = {f"{_SAMPLE_RESOURCE}:{split}_{part}": SAMPLE_ARRAYS[f"{split}_{part}"][1] for part in ("images", "labels")}
    return Dataset(X=scale_pixels(images[:n], dtype), y=labels[:n].astype(np.int64), name=SAMPLE_NAME, split=split,
                   source=f"packaged MNIST sample ({split})", k=NUM_CLASSES, sha256=combined.hexdigest(), files=files,
                   verified="sha256 (packaged)")
