"""The model file: an ``.npz`` archive holding W, b, V, b2, the activation name and a format version; nothing else.

``save_model`` writes it atomically (temp file + rename); ``read_model_file`` reads it back with
``allow_pickle=False`` (loading a model never runs code) and refuses, as ``ModelFileError``, anything that is not
exactly such a file: a missing path, something that is not a zip archive, a truncated or corrupt archive, missing or
unknown arrays, another format version, pickled (object) arrays. ``TwoLayerNet.save`` and ``TwoLayerNet.load``
delegate here; the weights' own checks (shapes, NaN, exactness) are the constructor's.

This module knows the file, not the network: it takes any object with ``W, b, V, b2`` and ``activation``, and it
returns plain arrays, so ``network.py`` imports it and not the other way round.
"""

from __future__ import annotations

import os
import tempfile
import zipfile
import zlib
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ModelFileError, SdpcertError

__all__ = ["MODEL_FORMAT_VERSION", "WEIGHT_NAMES", "FILE_KEYS", "save_model", "read_model_file"]

#: Stored in every model file; bump it when the layout changes so old readers refuse new files.
MODEL_FORMAT_VERSION = "sdpcert-twolayer-1"

#: The weight arrays, in the constructor's order (and the model file's array names).
WEIGHT_NAMES = ("W", "b", "V", "b2")
#: Every array a model file holds, no more and no fewer.
FILE_KEYS = (*WEIGHT_NAMES, "activation", "format_version")
# A .npz is a zip archive: local file header, or end-of-central-directory record for an empty archive.
_ZIP_MAGICS = (b"PK\x03\x04", b"PK\x05\x06")


def save_model(net: Any, path: str | os.PathLike, compact: bool = False) -> Path:
    """Write ``net`` (a ``TwoLayerNet``) to ``path``; see ``TwoLayerNet.save``. Returns the path."""
    path = Path(path)
    weights = {name: getattr(net, name) for name in WEIGHT_NAMES}
    writer = np.savez
    if compact:
        single = {key: value.astype(np.float32) for key, value in weights.items()}
        inexact = [key for key, value in weights.items() if not np.array_equal(single[key], value)]
        if inexact:
            raise SdpcertError(f"compact=True stores float32 weights, but {inexact} are not exactly float32 "
                               f"values: the saved model would differ; save it with compact=False")
        weights, writer = single, np.savez_compressed
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            writer(
                handle,
                **weights,
                activation=np.array(net.activation),
                format_version=np.array(MODEL_FORMAT_VERSION),
            )
        os.replace(tmp_name, path)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise
    return path


def read_model_file(path: str | os.PathLike) -> tuple[dict[str, np.ndarray], str]:
    """``(arrays, activation)`` of the model file at ``path``: the four weight arrays as stored, and the activation
    name. Never unpickles; every problem with the file is a ``ModelFileError``."""
    path = Path(path)
    if not path.exists():
        raise ModelFileError(f"model file {path} does not exist")
    if not path.is_file():
        raise ModelFileError(f"model file {path} is not a regular file")
    # We open the file ourselves: np.load(path) leaks its handle when the zip directory is unreadable.
    with path.open("rb") as handle:
        head = handle.read(4)
        if head not in _ZIP_MAGICS:
            raise ModelFileError(
                f"model file {path} is not an .npz (zip) archive: it starts with {head!r}, not b'PK\\x03\\x04'"
            )
        handle.seek(0)
        try:
            archive = np.load(handle, allow_pickle=False)
        except (zipfile.BadZipFile, EOFError, OSError, ValueError, zlib.error) as exc:
            raise ModelFileError(
                f"model file {path} is truncated or corrupt: {type(exc).__name__}: {exc}"
            ) from exc
        with archive:
            missing = [key for key in FILE_KEYS if key not in archive.files]
            if missing:
                raise ModelFileError(
                    f"model file {path} lacks array(s) {missing}; it holds {sorted(archive.files)}, "
                    f"a model file needs {list(FILE_KEYS)}"
                )
            # Refused rather than ignored: an extra array (a second layer's weights, a scaling, ...) means the
            # file describes some other network than the one that would be certified.
            unknown = sorted(key for key in archive.files if key not in FILE_KEYS)
            if unknown:
                raise ModelFileError(
                    f"model file {path} holds unknown array(s) {unknown}; a model file holds exactly "
                    f"{list(FILE_KEYS)}"
                )
            arrays = {key: _read_member(archive, key, path) for key in FILE_KEYS}
    version = _read_string(arrays["format_version"], "format_version", path)
    if version != MODEL_FORMAT_VERSION:
        raise ModelFileError(
            f"model file {path} has format version {version!r}; this sdpcert reads {MODEL_FORMAT_VERSION!r}"
        )
    activation = _read_string(arrays["activation"], "activation", path)
    return {name: arrays[name] for name in WEIGHT_NAMES}, activation


def _read_member(archive: Any, key: str, path: Path) -> np.ndarray:
    try:
        return archive[key]
    except ValueError as exc:
        if "pickle" in str(exc).lower():  # numpy refuses object arrays when allow_pickle=False
            raise ModelFileError(
                f"model file {path}: array {key!r} holds pickled Python objects (object dtype); "
                f"refusing to unpickle it, sdpcert model files contain only numeric arrays"
            ) from exc
        raise ModelFileError(f"model file {path}: array {key!r} is corrupt: {exc}") from exc
    except (zipfile.BadZipFile, EOFError, OSError, zlib.error) as exc:
        raise ModelFileError(f"model file {path}: array {key!r} is truncated or corrupt: {exc}") from exc


def _read_string(arr: np.ndarray, key: str, path: Path) -> str:
    if arr.ndim != 0 or arr.dtype.kind != "U":
        raise ModelFileError(
            f"model file {path}: {key!r} must be a 0-d unicode string array; got dtype {arr.dtype}, shape {arr.shape}"
        )
    return str(arr[()])
