"""MNIST from the original IDX files (raw or .gz): where the files are, fetching them, loading a split.

Where the files are looked for, in order: the ``folder`` argument, the ``SDPCERT_MNIST_DIR`` environment
variable, then ``~/.cache/sdpcert/mnist`` (where ``download=True`` puts them). Only the first of these that
is set is used, so a mistyped path fails loudly instead of silently falling back to another copy
(``resolve_mnist_folder`` is that rule, for every caller).

A certificate is only as good as the data it is computed on, so the loader refuses instead of guessing:
bad IDX headers, truncated files, trailing bytes (``idx.py``), out-of-range labels, image/label count mismatches and
md5 mismatches against the published checksums are all ``DataIntegrityError``.
"""

from __future__ import annotations

import gzip
import os
import tempfile
import urllib.request
import zlib
from pathlib import Path
from typing import Any

import numpy as np

from .._checks import nonnegative_int
from ..errors import DataIntegrityError, SdpcertError
from .idx import IMAGES_MAGIC, LABELS_MAGIC, MNIST_MD5, check_md5, read_idx_file

__all__ = [
    "load_mnist",
    "load_mnist_raw",
    "download_mnist",
    "resolve_mnist_folder",
    "default_cache_dir",
    "check_split",
    "check_float_dtype",
    "scale_pixels",
    "MNIST_FILES",
    "MNIST_MIRRORS",
    "MNIST_DIR_ENV",
    "IMAGE_SIDE",
    "NUM_CLASSES",
]

#: Environment variable naming a folder with the MNIST files.
MNIST_DIR_ENV = "SDPCERT_MNIST_DIR"

#: split -> (images file, labels file), the original names (a ``.gz`` suffix is also accepted).
MNIST_FILES: dict[str, tuple[str, str]] = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}

#: Mirrors serving ``<name>.gz`` for each file in ``MNIST_MD5``, tried in order by ``download_mnist``.
MNIST_MIRRORS: tuple[str, ...] = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
)

IMAGE_SIDE = 28
NUM_CLASSES = 10


# ----------------------------------------------------------------------------------------------- folders
def default_cache_dir() -> Path:
    """``~/.cache/sdpcert/mnist``: where ``download=True`` puts the files when no folder is given."""
    return Path.home() / ".cache" / "sdpcert" / "mnist"


def resolve_mnist_folder(folder: str | os.PathLike | None = None) -> tuple[Path, str]:
    """The folder to read MNIST from, and where that choice came from (for error messages): ``folder`` if given,
    else ``$SDPCERT_MNIST_DIR`` if set, else the default cache folder. The one rule for every caller."""
    if folder is not None:
        return Path(folder).expanduser(), "the folder= argument"
    env = os.environ.get(MNIST_DIR_ENV)
    if env:
        return Path(env).expanduser(), f"${MNIST_DIR_ENV}"
    return default_cache_dir(), "the default cache folder"


def _find_file(folder: Path, name: str) -> Path | None:
    for candidate in (folder / name, folder / f"{name}.gz"):
        if candidate.is_file():
            return candidate
    return None


def _not_found_error(split: str, folder: Path, origin: str, missing: list[str]) -> DataIntegrityError:
    where = f"{folder} ({origin})" + ("" if folder.is_dir() else ", which does not exist")
    return DataIntegrityError(
        f"MNIST {split} files not found: looked for {', '.join(f'{n}[.gz]' for n in missing)} in {where}. "
        f"Fix: pass folder='path/to/mnist', set {MNIST_DIR_ENV}=path/to/mnist, "
        f"or use download=True when online (saves to {default_cache_dir()} unless a folder is given)."
    )


# ----------------------------------------------------------------------------------------------- download
def download_mnist(folder: str | os.PathLike | None = None, mirrors: tuple[str, ...] = MNIST_MIRRORS) -> Path:
    """Fetch the four ``.gz`` files that are missing from ``folder`` (default ``~/.cache/sdpcert/mnist``).

    Each download is checked against ``MNIST_MD5`` before an atomic rename puts it in place, so the folder
    never holds a partial or wrong file. Needs internet access; returns the folder.
    """
    target = Path(folder).expanduser() if folder is not None else default_cache_dir()
    target.mkdir(parents=True, exist_ok=True)
    for name in MNIST_MD5:
        if _find_file(target, name) is None:
            _download_one(name, target, mirrors)
    return target


def _download_one(name: str, target: Path, mirrors: tuple[str, ...]) -> None:
    failures = []
    for mirror in mirrors:
        url = f"{mirror}{name}.gz"
        try:
            with urllib.request.urlopen(url, timeout=60) as response:
                payload = response.read()
            check_md5(name, gzip.decompress(payload), url)
        except (OSError, EOFError, zlib.error, DataIntegrityError) as exc:  # URLError is an OSError
            failures.append(f"{url}: {exc}")
            continue
        fd, tmp_name = tempfile.mkstemp(prefix=f".{name}.", suffix=".part", dir=target)
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(payload)
            os.replace(tmp_name, target / f"{name}.gz")
        except BaseException:
            Path(tmp_name).unlink(missing_ok=True)
            raise
        return
    raise DataIntegrityError(f"could not download {name}.gz from any mirror:\n  " + "\n  ".join(failures))


# ----------------------------------------------------------------------------------------------- loaders
def check_split(split: str) -> None:
    """``SdpcertError`` unless ``split`` is ``"train"`` or ``"test"``."""
    if split not in MNIST_FILES:
        raise SdpcertError(f"unknown MNIST split {split!r}; use 'train' or 'test'")


def check_float_dtype(dtype: Any) -> np.dtype:
    """``dtype`` as a numpy floating dtype (the pixels are scaled to [0, 1]); ``SdpcertError`` otherwise."""
    resolved = np.dtype(dtype)
    if resolved.kind != "f":
        raise SdpcertError(f"dtype must be a floating type (pixels are scaled to [0, 1]); got {resolved}")
    return resolved


def _check_images_and_labels(images: np.ndarray, labels: np.ndarray, images_src: str, labels_src: str) -> None:
    if images.ndim != 3 or images.shape[1:] != (IMAGE_SIDE, IMAGE_SIDE):
        raise DataIntegrityError(f"{images_src}: images have dims {images.shape}, expected (n, 28, 28)")
    if labels.ndim != 1:
        raise DataIntegrityError(f"{labels_src}: labels have dims {labels.shape}, expected (n,)")
    if images.shape[0] != labels.shape[0]:
        raise DataIntegrityError(
            f"{images_src} holds {images.shape[0]} images but {labels_src} holds {labels.shape[0]} labels"
        )
    bad = np.flatnonzero(labels >= NUM_CLASSES)
    if bad.size:
        raise DataIntegrityError(
            f"{labels_src}: {bad.size} labels outside 0..9, first label {labels[bad[0]]} at index {bad[0]}"
        )


def load_mnist_raw(
    split: str = "train",
    folder: str | os.PathLike | None = None,
    limit: int | None = None,
    download: bool = False,
    verify: bool = True,
) -> tuple[np.ndarray, np.ndarray]:
    """Like :func:`load_mnist` but returns the raw pixels: ``(images uint8 (n, 784) in 0..255, labels int64 (n,))``."""
    check_split(split)
    limit = nonnegative_int("limit", limit, optional=True)
    directory, origin = resolve_mnist_folder(folder)
    names = MNIST_FILES[split]
    missing = [name for name in names if _find_file(directory, name) is None]
    if missing and download:
        download_mnist(directory)
        missing = [name for name in names if _find_file(directory, name) is None]
    if missing:
        raise _not_found_error(split, directory, origin, missing)
    images_path, labels_path = (_find_file(directory, name) for name in names)
    images = read_idx_file(images_path, names[0], IMAGES_MAGIC, verify)
    labels = read_idx_file(labels_path, names[1], LABELS_MAGIC, verify)
    _check_images_and_labels(images, labels, str(images_path), str(labels_path))
    n = len(labels) if limit is None else min(limit, len(labels))
    return images[:n].reshape(n, IMAGE_SIDE * IMAGE_SIDE).copy(), labels[:n].astype(np.int64)


def load_mnist(
    split: str = "train",
    folder: str | os.PathLike | None = None,
    limit: int | None = None,
    download: bool = False,
    dtype: Any = np.float32,
    verify: bool = True,
) -> tuple[np.ndarray, np.ndarray]:
    """Load an MNIST split: ``X`` of shape ``(n, 784)`` scaled to [0, 1] (``dtype``), ``y`` int64 ``(n,)``.

    Parameters
    ----------
    split
        ``"train"`` (60000 images) or ``"test"`` (10000).
    folder
        Folder holding the IDX files (``name`` or ``name.gz``). Default: ``$SDPCERT_MNIST_DIR``, else
        ``~/.cache/sdpcert/mnist``.
    limit
        Keep only the first ``limit`` examples (all of them if the split has fewer). The whole file is
        still read and checked.
    download
        Fetch missing files from the usual mirrors into the folder (needs internet access).
    dtype
        Floating dtype of ``X``.
    verify
        Check the md5 of each decompressed file against the published value.

    Example
    -------
    >>> X, y = load_mnist("test", folder="../shared/data/mnist", limit=100)  # doctest: +SKIP
    >>> X.shape, X.dtype, y[:5]                                                # doctest: +SKIP
    ((100, 784), dtype('float32'), array([7, 2, 1, 0, 4]))
    """
    dtype = check_float_dtype(dtype)
    images, labels = load_mnist_raw(split, folder=folder, limit=limit, download=download, verify=verify)
    return scale_pixels(images, dtype), labels


def scale_pixels(images: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """uint8 pixels 0..255 as ``dtype`` in [0, 1]."""
    X = images.astype(dtype)
    X /= 255  # 255/255 is exactly 1, so the range is exactly [0, 1]
    return X
