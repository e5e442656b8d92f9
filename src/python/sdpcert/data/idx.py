"""The IDX file format of MNIST, read with every byte checked: header, payload length, gzip, md5.

``parse_idx`` decodes one IDX file of unsigned bytes; ``read_idx_file`` reads one from disk (raw or ``.gz``), checks
its structure first (so a truncated file says so, not just "checksum mismatch") and then its md5 against the
published value (``MNIST_MD5``). Every problem is a ``DataIntegrityError`` naming the file.
"""

from __future__ import annotations

import gzip
import hashlib
import struct
import zlib
from pathlib import Path

import numpy as np

from ..errors import DataIntegrityError

__all__ = ["parse_idx", "read_idx_file", "read_file_bytes", "check_md5", "MNIST_MD5", "IMAGES_MAGIC",
           "LABELS_MAGIC"]

IMAGES_MAGIC = 2051  # 0x00000803: unsigned bytes, 3 dimensions (n, rows, cols)
LABELS_MAGIC = 2049  # 0x00000801: unsigned bytes, 1 dimension (n,)

#: md5 of the *decompressed* files: public facts of the dataset, identical on every mirror.
MNIST_MD5: dict[str, str] = {
    "train-images-idx3-ubyte": "6bbc9ace898e44ae57da46a324031adb",
    "train-labels-idx1-ubyte": "a25bea736e30d166cdddb491f175f624",
    "t10k-images-idx3-ubyte": "2646ac647ad5339dbf082846283269ea",
    "t10k-labels-idx1-ubyte": "27ae3e4e09519cfbb04c329615203637",
}


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


def read_file_bytes(path: Path) -> bytes:
    """The file's content, decompressed when the name ends in ``.gz``."""
    raw = path.read_bytes()
    if path.suffix != ".gz":
        return raw
    try:
        return gzip.decompress(raw)
    except (OSError, EOFError, zlib.error) as exc:  # BadGzipFile is an OSError; a cut-off stream is EOFError
        raise DataIntegrityError(f"{path}: not a valid gzip file ({type(exc).__name__}: {exc})") from exc


def check_md5(name: str, data: bytes, source: str) -> None:
    """``DataIntegrityError`` unless the decompressed ``data`` of MNIST file ``name`` has its published md5."""
    expected = MNIST_MD5[name]
    got = hashlib.md5(data, usedforsecurity=False).hexdigest()
    if got != expected:
        raise DataIntegrityError(
            f"{source}: md5 of the decompressed content is {got}, expected {expected} for {name} "
            f"(the file is corrupt or not the original MNIST; pass verify=False only for a deliberate variant)"
        )


def read_idx_file(path: Path, name: str, expected_magic: int, verify: bool) -> np.ndarray:
    """The array in the IDX file ``path`` (MNIST file ``name``), checked; with ``verify`` also its md5."""
    data = read_file_bytes(path)
    # Structure first: a truncated file gets a message that says so, not just a checksum mismatch.
    array = parse_idx(data, expected_magic, str(path))
    if verify:
        check_md5(name, data, str(path))
    return array
