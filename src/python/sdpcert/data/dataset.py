"""Any data set in MNIST's IDX format (MNIST, Fashion-MNIST, KMNIST, EMNIST splits) or an ``.npz`` with ``X`` and
``y``: :func:`load_dataset`, every byte checked, with the data set's name, size and sha256 (:class:`Dataset`).

What is checked:

- IDX folder: the images/labels pair of the split (``train-images-idx3-ubyte`` / ``t10k-images-idx3-ubyte`` etc.,
  raw or ``.gz``; ``test-`` for ``t10k-`` also accepted; EMNIST's ``emnist-<variant>-train-images-idx3-ubyte``
  names), magic numbers, header dims against the payload (truncated or trailing bytes), images (n, rows, cols),
  labels (n,) with the same n. Pixels are unsigned bytes, scaled to [0, 1]. When the files claim to be MNIST --
  MNIST's names and sizes, and the folder is called ``mnist``, or ``name="mnist"`` is passed, or either file has
  MNIST's md5 -- both md5s must be MNIST's (a corrupt MNIST is refused, not taken for a variant). Fashion-MNIST and
  KMNIST have MNIST's names and sizes but other md5s: they load as what they are, named after their folder.
- ``.npz``: exactly the arrays ``X`` (n, d), floating, finite, and ``y`` (n,), integer (no pickled objects:
  ``allow_pickle=False``).
- Labels: in 0..k-1, with k = max label + 1 (at least 2 classes) or the ``k`` passed.

Every problem is a one-line ``DataIntegrityError`` naming the file. EMNIST stores its images transposed; that
changes nothing for certification (a fixed permutation of the inputs), but a plot of them needs ``.T``.
"""

from __future__ import annotations

import hashlib
import os
import re
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Optional

import numpy as np

from .._checks import nonnegative_int
from ..errors import DataIntegrityError, SdpcertError
from .idx import IMAGES_MAGIC, LABELS_MAGIC, MNIST_MD5, parse_idx, read_file_bytes

__all__ = ["Dataset", "load_dataset", "MNIST_SIZES"]

#: Decompressed sizes of the four MNIST files (Fashion-MNIST and KMNIST share them).
MNIST_SIZES: dict[str, int] = {
    "train-images-idx3-ubyte": 16 + 60000 * 784,
    "train-labels-idx1-ubyte": 8 + 60000,
    "t10k-images-idx3-ubyte": 16 + 10000 * 784,
    "t10k-labels-idx1-ubyte": 8 + 10000,
}

_SPLITS = ("train", "test")


@dataclass(frozen=True)
class Dataset:
    """A loaded, checked data set: ``X`` (n, d) floats, ``y`` (n,) int64 in 0..k-1, and where they came from.

    ``X, y = load_dataset(...)`` unpacks it. ``sha256``: of the decompressed IDX images then labels bytes, or of the
    ``.npz`` file; ``files``: the sha256 of each file read; ``verified``: "md5 (MNIST)" when MNIST's published md5s
    were checked, else "structure" (header, sizes, ranges)."""

    X: np.ndarray
    y: np.ndarray
    name: str
    split: Optional[str]
    source: str
    k: int
    sha256: str
    files: dict = field(default_factory=dict)
    verified: str = "structure"

    def __iter__(self) -> Iterator[np.ndarray]:
        yield self.X
        yield self.y

    @property
    def n(self) -> int:
        return int(self.X.shape[0])

    @property
    def d(self) -> int:
        return int(self.X.shape[1])

    def info(self) -> dict:
        """What a report prints: name, split, n, d, k, sha256, verified, source, files."""
        return {"name": self.name, "split": self.split, "n": self.n, "d": self.d, "k": self.k, "sha256": self.sha256,
                "verified": self.verified, "source": self.source, "files": dict(self.files)}

    def describe(self) -> str:
        """One line: ``name (split): n examples, d inputs, k classes, sha256 abcdef012345…``."""
        split = f" ({self.split})" if self.split else ""
        return (f"{self.name}{split}: {self.n} examples, {self.d} inputs, {self.k} classes, "
                f"sha256 {self.sha256[:16]}, checked: {self.verified}")


def load_dataset(path: str | os.PathLike, split: Optional[str] = None, *, name: Optional[str] = None,
                 k: Optional[int] = None, limit: Optional[int] = None, dtype: Any = None,
                 variant: Optional[str] = None) -> Dataset:
    """Load and check a data set (module docstring): a folder of IDX files, or an ``.npz`` with ``X`` and ``y``.

    split: "train" or "test" -- required for an IDX folder (it holds both); for an ``.npz`` only recorded.
    name: the data set's name for reports (default: the folder's or file's name; "mnist" demands MNIST's md5s).
    k: the number of classes (default: max label + 1). limit: keep the first ``limit`` examples (all are checked).
    dtype: of X (default float32 for IDX pixels, the stored dtype for an ``.npz``). variant: the EMNIST split
    ("balanced", "letters", ...) when the folder holds several.
    """
    if not isinstance(path, (str, os.PathLike)):
        raise SdpcertError(f"path must be a folder or an .npz file; got {type(path).__name__}")
    path = Path(path)
    limit = nonnegative_int("limit", limit, optional=True)
    if k is not None:
        k = nonnegative_int("k", k)
        if k < 2:
            raise SdpcertError(f"k must be >= 2 classes; got {k}")
    if split is not None and split not in _SPLITS:
        raise SdpcertError(f"unknown split {split!r}; use 'train' or 'test'")
    if dtype is not None:
        dtype = np.dtype(dtype)
        if dtype.kind != "f":
            raise SdpcertError(f"dtype must be a floating type; got {dtype}")
    if path.is_dir():
        ds = _load_idx_folder(path, split, name, variant, dtype or np.dtype(np.float32))
    elif path.is_file():
        if path.suffix != ".npz":
            raise DataIntegrityError(f"{path}: not a folder of IDX files or an .npz file")
        ds = _load_npz(path, split, name, dtype)
    else:
        raise DataIntegrityError(f"{path}: no such folder or file")
    labels_k = _check_labels(ds["y"], k, ds["labels_source"])
    X, y = ds["X"], ds["y"]
    if limit is not None:
        X, y = X[:limit], y[:limit]
    return Dataset(X=X, y=y.astype(np.int64), name=ds["name"], split=split, source=str(path), k=labels_k,
                   sha256=ds["sha256"], files=ds["files"], verified=ds["verified"])


# ----------------------------------------------------------------------------------------------- IDX folders
def _find(folder: Path, stem: str) -> Optional[Path]:
    for candidate in (folder / stem, folder / f"{stem}.gz"):
        if candidate.is_file():
            return candidate
    return None


def _idx_pair(folder: Path, split: str, variant: Optional[str]) -> tuple[Path, Path, str, Optional[str]]:
    """(images, labels, images stem, EMNIST variant) of the split."""
    prefixes = ("train",) if split == "train" else ("t10k", "test")
    for prefix in prefixes:
        images, labels = _find(folder, f"{prefix}-images-idx3-ubyte"), _find(folder, f"{prefix}-labels-idx1-ubyte")
        if images is not None and labels is not None and variant is None:
            return images, labels, f"{prefix}-images-idx3-ubyte", None
    pattern = re.compile(rf"^emnist-([a-z0-9]+)-{split}-images-idx3-ubyte(\.gz)?$")
    variants = sorted({m.group(1) for p in folder.iterdir() if (m := pattern.match(p.name))})
    if variant is not None:
        if variant not in variants:
            raise DataIntegrityError(f"{folder}: no EMNIST variant {variant!r} for the {split} split "
                                     f"(found: {', '.join(variants) or 'none'})")
        variants = [variant]
    if len(variants) > 1:
        raise SdpcertError(f"{folder} holds the EMNIST variants {', '.join(variants)}: pass variant=... to "
                           f"load_dataset, or give a folder that holds one variant's files")
    if variants:
        stem = f"emnist-{variants[0]}-{split}"
        images, labels = _find(folder, f"{stem}-images-idx3-ubyte"), _find(folder, f"{stem}-labels-idx1-ubyte")
        if images is None or labels is None:
            raise DataIntegrityError(f"{folder}: {stem}-images-idx3-ubyte found but not {stem}-labels-idx1-ubyte")
        return images, labels, f"{stem}-images-idx3-ubyte", variants[0]
    want = " or ".join(f"{p}-images-idx3-ubyte[.gz] + {p}-labels-idx1-ubyte[.gz]" for p in prefixes)
    raise DataIntegrityError(f"{folder}: no IDX files for the {split} split: MNIST {split} files not found ({want}, "
                             f"the names Fashion-MNIST and KMNIST use too), nor EMNIST's "
                             f"emnist-<variant>-{split}-images-idx3-ubyte")


def _load_idx_folder(folder: Path, split: Optional[str], name: Optional[str], variant: Optional[str],
                     dtype: np.dtype) -> dict:
    if split is None:
        raise SdpcertError(f"{folder} is a folder of IDX files with a train and a test split: pass split='train' "
                           f"or 'test'")
    images_path, labels_path, images_stem, emnist = _idx_pair(folder, split, variant)
    labels_stem = images_stem.replace("-images-idx3-", "-labels-idx1-")
    images_bytes, labels_bytes = read_file_bytes(images_path), read_file_bytes(labels_path)
    images = parse_idx(images_bytes, IMAGES_MAGIC, str(images_path))
    labels = parse_idx(labels_bytes, LABELS_MAGIC, str(labels_path))
    if images.ndim != 3 or min(images.shape) < 1:
        raise DataIntegrityError(f"{images_path}: images have dims {images.shape}, expected (n, rows, cols) >= 1")
    if labels.ndim != 1 or labels.shape[0] != images.shape[0]:
        raise DataIntegrityError(f"{images_path} holds {images.shape[0]} images but {labels_path} holds "
                                 f"{labels.shape} labels")
    verified = "structure"
    default_name = f"emnist-{emnist}" if emnist else folder.resolve().name
    if _claims_mnist(images_stem, labels_stem, images_bytes, labels_bytes, name, folder):
        for stem, data, src in ((images_stem, images_bytes, images_path), (labels_stem, labels_bytes, labels_path)):
            got = hashlib.md5(data, usedforsecurity=False).hexdigest()
            if got != MNIST_MD5[stem]:
                raise DataIntegrityError(
                    f"{src}: md5 of the decompressed content is {got}, expected {MNIST_MD5[stem]} for MNIST's "
                    f"{stem} (the files have MNIST's names and sizes and claim to be MNIST: corrupt, or a variant "
                    f"in a folder named mnist; name the data set with name=...)")
        verified, default_name = "md5 (MNIST)", "mnist"
    h_images, h_labels = hashlib.sha256(images_bytes).hexdigest(), hashlib.sha256(labels_bytes).hexdigest()
    combined = hashlib.sha256(images_bytes)
    combined.update(labels_bytes)
    n = images.shape[0]
    X = images.reshape(n, -1).astype(dtype)
    X /= 255  # 255/255 is exactly 1: the range is exactly [0, 1]
    return {"X": X, "y": labels, "name": name or default_name, "sha256": combined.hexdigest(),
            "files": {images_path.name: h_images, labels_path.name: h_labels}, "verified": verified,
            "labels_source": str(labels_path)}


def _claims_mnist(images_stem: str, labels_stem: str, images_bytes: bytes, labels_bytes: bytes,
                  name: Optional[str], folder: Path) -> bool:
    if images_stem not in MNIST_MD5 or labels_stem not in MNIST_MD5:
        return False
    if len(images_bytes) != MNIST_SIZES[images_stem] or len(labels_bytes) != MNIST_SIZES[labels_stem]:
        return False
    if (name or "").lower() == "mnist" or folder.resolve().name.lower() == "mnist":
        return True
    return any(hashlib.md5(data, usedforsecurity=False).hexdigest() == MNIST_MD5[stem]
               for stem, data in ((images_stem, images_bytes), (labels_stem, labels_bytes)))


# ----------------------------------------------------------------------------------------------- .npz files
def _load_npz(path: Path, split: Optional[str], name: Optional[str], dtype: Optional[np.dtype]) -> dict:
    raw = path.read_bytes()
    try:
        archive = np.load(path, allow_pickle=False)
        if not isinstance(archive, np.lib.npyio.NpzFile):
            raise DataIntegrityError(f"{path}: not an .npz archive (a single array; save X and y with np.savez)")
        with archive:
            keys = set(archive.files)
            if keys != {"X", "y"}:
                extra, missing = sorted(keys - {"X", "y"}), sorted({"X", "y"} - keys)
                what = "; ".join(s for s in (f"unknown arrays {extra}" if extra else "",
                                             f"missing {missing}" if missing else "") if s)
                raise DataIntegrityError(f"{path}: an .npz data set holds exactly the arrays X and y ({what})")
            X, y = archive["X"], archive["y"]
    except DataIntegrityError:
        raise
    except ValueError as exc:  # pickled object arrays (allow_pickle=False), bad headers
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise DataIntegrityError(f"{path}: not a plain .npz of numeric arrays ({first})") from exc
    except (OSError, EOFError, zipfile.BadZipFile, zlib.error) as exc:
        raise DataIntegrityError(f"{path}: not a readable .npz file ({type(exc).__name__})") from exc
    if X.dtype.kind != "f":
        raise DataIntegrityError(f"{path}: X must hold floats; got dtype {X.dtype}")
    if X.ndim != 2 or X.shape[0] < 1 or X.shape[1] < 1:
        raise DataIntegrityError(f"{path}: X must have shape (n, d) with n, d >= 1; got {X.shape}")
    if y.dtype.kind not in "iu":
        raise DataIntegrityError(f"{path}: y must hold integers; got dtype {y.dtype}")
    if y.shape != (X.shape[0],):
        raise DataIntegrityError(f"{path}: y must have shape ({X.shape[0]},) to match X {X.shape}; got {y.shape}")
    bad = ~np.isfinite(X)
    if bad.any():
        row, col = np.argwhere(bad)[0]
        raise DataIntegrityError(f"{path}: X holds {int(bad.sum())} NaN/inf values, first at [{row}, {col}]")
    if dtype is not None and dtype != X.dtype:
        converted = X.astype(dtype)
        if not np.array_equal(converted.astype(X.dtype), X) or not np.isfinite(converted).all():
            raise DataIntegrityError(f"{path}: X ({X.dtype}) is not exactly representable as {dtype}")
        X = converted
    return {"X": np.array(X), "y": y, "name": name or path.stem,
            "sha256": hashlib.sha256(raw).hexdigest(), "files": {path.name: hashlib.sha256(raw).hexdigest()},
            "verified": "structure", "labels_source": str(path)}


def _check_labels(y: np.ndarray, k: Optional[int], source: str) -> int:
    if y.size and int(y.min()) < 0:
        raise DataIntegrityError(f"{source}: labels must be >= 0; got {int(y.min())}")
    top = int(y.max()) if y.size else -1
    if k is None:
        k = top + 1
        if k < 2:
            raise DataIntegrityError(f"{source}: labels hold fewer than 2 classes (max label {top})")
    elif top >= k:
        bad = np.flatnonzero(y >= k)
        raise DataIntegrityError(f"{source}: {bad.size} labels outside 0..{k - 1}, first label {int(y[bad[0]])} at "
                                 f"index {int(bad[0])}")
    return int(k)
