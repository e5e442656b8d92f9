"""MNIST, read from the original IDX files (raw or .gz), with every byte checked.

Where the files are looked for, in order: the ``folder`` argument, the ``SDPCERT_MNIST_DIR`` environment
variable, then ``~/.cache/sdpcert/mnist`` (where ``download=True`` puts them). Only the first of these that
is set is used, so a mistyped path fails loudly instead of silently falling back to another copy.

A certificate is only as good as the data it is computed on, so the loader refuses instead of guessing:
bad IDX headers, truncated files, trailing bytes, out-of-range labels, image/label count mismatches and
md5 mismatches against the published checksums are all ``DataIntegrityError``.

``load_mnist_sample`` needs no files at all: a packaged slice of the first 2000 training and first 1000
test images (see ``_data/README.md``), for tests, examples and demos.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import operator
import os
import struct
import tempfile
import urllib.request
import zlib
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from .errors import DataIntegrityError, SdpcertError

__all__ = [
    "load_mnist",
    "load_mnist_raw",
    "load_mnist_sample",
    "download_mnist",
    "parse_idx",
    "MNIST_FILES",
    "MNIST_MD5",
    "MNIST_MIRRORS",
    "MNIST_DIR_ENV",
]

#: Environment variable naming a folder with the MNIST files.
MNIST_DIR_ENV = "SDPCERT_MNIST_DIR"

#: split -> (images file, labels file), the original names (a ``.gz`` suffix is also accepted).
MNIST_FILES: dict[str, tuple[str, str]] = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}

#: md5 of the *decompressed* files: public facts of the dataset, identical on every mirror.
MNIST_MD5: dict[str, str] = {
    "train-images-idx3-ubyte": "6bbc9ace898e44ae57da46a324031adb",
    "train-labels-idx1-ubyte": "a25bea736e30d166cdddb491f175f624",
    "t10k-images-idx3-ubyte": "2646ac647ad5339dbf082846283269ea",
    "t10k-labels-idx1-ubyte": "27ae3e4e09519cfbb04c329615203637",
}

#: Mirrors serving ``<name>.gz`` for each file in ``MNIST_MD5``, tried in order by ``download_mnist``.
MNIST_MIRRORS: tuple[str, ...] = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
)

IMAGES_MAGIC = 2051  # 0x00000803: unsigned bytes, 3 dimensions (n, rows, cols)
LABELS_MAGIC = 2049  # 0x00000801: unsigned bytes, 1 dimension (n,)
IMAGE_SIDE = 28
NUM_CLASSES = 10

_SAMPLE_RESOURCE = "mnist_sample.npz"
#: Shape and sha256 of the raw uint8 bytes of each array in the packaged slice (tools/make_mnist_sample.py).
SAMPLE_ARRAYS: dict[str, tuple[tuple[int, ...], str]] = {
    "train_images": ((2000, 784), "4d1e2862007bab5908d814e74806c6c8f7c4a4f32b5875d195406d4d1dbe4946"),
    "train_labels": ((2000,), "e1be9271eae282fe1479074d79e9b9523ada775ebb01e19299727123e3acca5e"),
    "test_images": ((1000, 784), "f8f3c5a608a9f7d4bd5e9d69b90c53932b8b99371d9db26121b42f62f3abcd56"),
    "test_labels": ((1000,), "d14ba0a1a3818edefa35518ed001ece84b7ac0eabe9394551c73928493175d3f"),
}


# ----------------------------------------------------------------------------------------------- IDX format
def parse_idx(data: bytes, expected_magic: int, source: str = "<bytes>") -> np.ndarray:
    """Decode one IDX file of unsigned bytes: big-endian magic, one uint32 per dimension, then the payload.

    The payload must be exactly as long as the header says: a short file is truncated, a long one has
    trailing bytes, and both are ``DataIntegrityError`` naming ``source``. Returns a read-only uint8 view.

    >>> parse_idx(bytes([0, 0, 8, 1, 0, 0, 0, 2, 7, 3]), LABELS_MAGIC)
    array([7, 3], dtype=uint8)
    """
    if len(data) < 4:
        raise DataIntegrityError(f"{source}: truncated: {len(data)} bytes, too short for an IDX header")
    magic = int.from_bytes(data[:4], "big")
    if magic != expected_magic:
        kind = "images" if expected_magic == IMAGES_MAGIC else "labels"
        raise DataIntegrityError(
            f"{source}: bad IDX magic number {magic} (0x{magic:08x}); expected {expected_magic} "
            f"(0x{expected_magic:08x}) for an MNIST {kind} file"
        )
    ndim = data[3]
    header_size = 4 + 4 * ndim
    if len(data) < header_size:
        raise DataIntegrityError(f"{source}: truncated inside the IDX header ({len(data)} < {header_size} bytes)")
    dims = struct.unpack(f">{ndim}I", data[4:header_size])
    expected_size = int(np.prod(dims, dtype=np.int64))
    actual_size = len(data) - header_size
    if actual_size < expected_size:
        raise DataIntegrityError(
            f"{source}: truncated: the header says dims {dims}, i.e. {expected_size} data bytes, "
            f"but only {actual_size} are present"
        )
    if actual_size > expected_size:
        raise DataIntegrityError(
            f"{source}: {actual_size - expected_size} trailing bytes after the {expected_size} data bytes "
            f"that the header (dims {dims}) describes"
        )
    return np.frombuffer(data, dtype=np.uint8, offset=header_size).reshape(dims)


def _read_file_bytes(path: Path) -> bytes:
    """The file's content, decompressed when the name ends in ``.gz``."""
    raw = path.read_bytes()
    if path.suffix != ".gz":
        return raw
    try:
        return gzip.decompress(raw)
    except (OSError, EOFError, zlib.error) as exc:  # BadGzipFile is an OSError; a cut-off stream is EOFError
        raise DataIntegrityError(f"{path}: not a valid gzip file ({type(exc).__name__}: {exc})") from exc


def _check_md5(name: str, data: bytes, source: str) -> None:
    expected = MNIST_MD5[name]
    got = hashlib.md5(data, usedforsecurity=False).hexdigest()
    if got != expected:
        raise DataIntegrityError(
            f"{source}: md5 of the decompressed content is {got}, expected {expected} for {name} "
            f"(the file is corrupt or not the original MNIST; pass verify=False only for a deliberate variant)"
        )


def _read_idx_file(path: Path, name: str, expected_magic: int, verify: bool) -> np.ndarray:
    data = _read_file_bytes(path)
    # Structure first: a truncated file gets a message that says so, not just a checksum mismatch.
    array = parse_idx(data, expected_magic, str(path))
    if verify:
        _check_md5(name, data, str(path))
    return array


# ----------------------------------------------------------------------------------------------- folders
def _default_cache_dir() -> Path:
    return Path.home() / ".cache" / "sdpcert" / "mnist"


def _resolve_folder(folder: str | os.PathLike | None) -> tuple[Path, str]:
    """The folder to read, and where that choice came from (for error messages)."""
    if folder is not None:
        return Path(folder).expanduser(), "the folder= argument"
    env = os.environ.get(MNIST_DIR_ENV)
    if env:
        return Path(env).expanduser(), f"${MNIST_DIR_ENV}"
    return _default_cache_dir(), "the default cache folder"


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
        f"or use download=True when online (saves to {_default_cache_dir()} unless a folder is given)."
    )


# ----------------------------------------------------------------------------------------------- download
def download_mnist(folder: str | os.PathLike | None = None, mirrors: tuple[str, ...] = MNIST_MIRRORS) -> Path:
    """Fetch the four ``.gz`` files that are missing from ``folder`` (default ``~/.cache/sdpcert/mnist``).

    Each download is checked against ``MNIST_MD5`` before an atomic rename puts it in place, so the folder
    never holds a partial or wrong file. Needs internet access; returns the folder.
    """
    target = Path(folder).expanduser() if folder is not None else _default_cache_dir()
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
            _check_md5(name, gzip.decompress(payload), url)
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
def _check_split(split: str) -> None:
    if split not in MNIST_FILES:
        raise SdpcertError(f"unknown MNIST split {split!r}; use 'train' or 'test'")


def _check_limit(limit: Any) -> int | None:
    if limit is None:
        return None
    if isinstance(limit, (bool, np.bool_)):
        raise SdpcertError(f"limit must be a non-negative integer or None; got {limit!r}")
    try:
        value = operator.index(limit)
    except TypeError:
        raise SdpcertError(f"limit must be a non-negative integer or None; got {limit!r}") from None
    if value < 0:
        raise SdpcertError(f"limit must be a non-negative integer or None; got {limit!r}")
    return value


def _check_float_dtype(dtype: Any) -> np.dtype:
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
    _check_split(split)
    limit = _check_limit(limit)
    directory, origin = _resolve_folder(folder)
    names = MNIST_FILES[split]
    missing = [name for name in names if _find_file(directory, name) is None]
    if missing and download:
        download_mnist(directory)
        missing = [name for name in names if _find_file(directory, name) is None]
    if missing:
        raise _not_found_error(split, directory, origin, missing)
    images_path, labels_path = (_find_file(directory, name) for name in names)
    images = _read_idx_file(images_path, names[0], IMAGES_MAGIC, verify)
    labels = _read_idx_file(labels_path, names[1], LABELS_MAGIC, verify)
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
    dtype = _check_float_dtype(dtype)
    images, labels = load_mnist_raw(split, folder=folder, limit=limit, download=download, verify=verify)
    return _scale_pixels(images, dtype), labels


def _scale_pixels(images: np.ndarray, dtype: np.dtype) -> np.ndarray:
    X = images.astype(dtype)
    X /= 255  # 255/255 is exactly 1, so the range is exactly [0, 1]
    return X


def _read_sample_archive() -> dict[str, np.ndarray]:
    resource = resources.files(__package__) / "_data" / _SAMPLE_RESOURCE
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

    Same conventions as :func:`load_mnist` (``X`` ``(n, 784)`` in [0, 1], ``y`` int64), no files needed.
    The arrays are checked against their recorded sha256 on every call.

    >>> X, y = load_mnist_sample("test", limit=5)
    >>> X.shape, X.dtype, y.tolist()
    ((5, 784), dtype('float32'), [7, 2, 1, 0, 4])
    """
    _check_split(split)
    limit = _check_limit(limit)
    dtype = _check_float_dtype(dtype)
    arrays = _read_sample_archive()
    images, labels = arrays[f"{split}_images"], arrays[f"{split}_labels"]
    n = len(labels) if limit is None else min(limit, len(labels))
    return _scale_pixels(images[:n], dtype), labels[:n].astype(np.int64)
