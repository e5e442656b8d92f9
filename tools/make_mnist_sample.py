"""Regenerate src/python/sdpcert/_data/mnist_sample.npz, the MNIST slice packaged with sdpcert.

The slice is the first 2000 training and the first 1000 test examples of real MNIST, read (and md5-checked)
by sdpcert's own loader, stored as uint8 pixels (n, 784) and uint8 labels (n,). The archive is written with a
fixed timestamp and fixed compression, so running this script twice gives byte-identical files.

It prints the sha256 of each array; they must equal ``SAMPLE_ARRAYS`` in ``sdpcert/data/sample.py`` (which checks
them on every load) and the table in ``_data/README.md``. With ``--check`` it only verifies the existing file.

Usage (from the repository root):
    python tools/make_mnist_sample.py [--folder ../shared/data/mnist] [--check]
"""

from __future__ import annotations

import argparse
import hashlib
import io
import os
import sys
import zipfile
from pathlib import Path

import numpy as np

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT / "src" / "python"))  # run from a checkout, no install needed

from sdpcert.data import SAMPLE_ARRAYS, load_mnist_raw  # noqa: E402

OUTPUT = REPO_ROOT / "src" / "python" / "sdpcert" / "_data" / "mnist_sample.npz"
COUNTS = {"train": 2000, "test": 1000}
FIXED_TIMESTAMP = (1980, 1, 1, 0, 0, 0)  # the zip epoch: no build time leaks into the file


def build_arrays(folder: Path) -> dict[str, np.ndarray]:
    arrays = {}
    for split, count in COUNTS.items():
        images, labels = load_mnist_raw(split, folder=folder, limit=count, verify=True)
        arrays[f"{split}_images"] = np.ascontiguousarray(images, dtype=np.uint8)
        arrays[f"{split}_labels"] = np.ascontiguousarray(labels, dtype=np.uint8)
    return arrays


def write_deterministic_npz(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """What np.savez_compressed writes, minus the current time in each member's header."""
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=9) as archive:
        for key, arr in arrays.items():
            buffer = io.BytesIO()
            np.lib.format.write_array(buffer, arr, allow_pickle=False)
            info = zipfile.ZipInfo(f"{key}.npy", date_time=FIXED_TIMESTAMP)
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, buffer.getvalue(), compresslevel=9)


def sha256_of(arr: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(arr).tobytes()).hexdigest()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default_folder = os.environ.get("SDPCERT_MNIST_DIR") or str(REPO_ROOT.parent / "shared" / "data" / "mnist")
    parser.add_argument("--folder", default=default_folder, help="MNIST IDX folder (default: %(default)s)")
    parser.add_argument("--check", action="store_true", help="verify the existing file instead of writing it")
    args = parser.parse_args()

    arrays = build_arrays(Path(args.folder))
    if args.check:
        with np.load(OUTPUT, allow_pickle=False) as stored:
            same = all(np.array_equal(stored[key], arr) for key, arr in arrays.items())
        print(f"{OUTPUT}: {'matches' if same else 'DIFFERS FROM'} the first {COUNTS} examples of {args.folder}")
    else:
        write_deterministic_npz(OUTPUT, arrays)
        same = True
        print(f"wrote {OUTPUT} ({OUTPUT.stat().st_size} bytes)")

    recorded_ok = True
    for key, arr in arrays.items():
        digest = sha256_of(arr)
        recorded = SAMPLE_ARRAYS[key][1]
        flag = "ok" if digest == recorded else "MISMATCH with sdpcert/data/sample.py SAMPLE_ARRAYS"
        recorded_ok &= digest == recorded
        print(f"{key:13s} {str(arr.shape):12s} sha256 {digest}  {flag}")
    print(f"file sha256 {hashlib.sha256(OUTPUT.read_bytes()).hexdigest()}")
    return 0 if same and recorded_ok else 1


if __name__ == "__main__":
    sys.exit(main())
