"""Shared fixtures: where the MNIST files are, and small random networks."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
MNIST_FILE_STEMS = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte",
                    "t10k-labels-idx1-ubyte")


def _has_mnist_files(folder: Path) -> bool:
    return all((folder / s).is_file() or (folder / f"{s}.gz").is_file() for s in MNIST_FILE_STEMS)


@pytest.fixture(scope="session")
def mnist_dir() -> Path:
    """The full MNIST folder: $SDPCERT_MNIST_DIR, else ../shared/data/mnist beside the repository; skip if absent."""
    env = os.environ.get("SDPCERT_MNIST_DIR")
    folder = Path(env) if env else REPO_ROOT.parent / "shared" / "data" / "mnist"
    if not _has_mnist_files(folder):
        pytest.skip(f"full MNIST not found in {folder}; set SDPCERT_MNIST_DIR to a folder with the 4 IDX files")
    return folder


@pytest.fixture
def one_torch_thread():
    """torch on one thread for the test, restored after (a fixed reduction order; faster small GEMMs here)."""
    from sdpcert.training import torch_threads

    with torch_threads(1):
        yield


@pytest.fixture
def random_net():
    """Factory for small seeded TwoLayerNets: ``random_net(d=6, m=5, k=3, activation="relu", seed=0)``."""
    from sdpcert.model import TwoLayerNet

    def make(d: int = 6, m: int = 5, k: int = 3, activation: str = "relu", seed: int = 0) -> TwoLayerNet:
        rng = np.random.default_rng(seed)
        return TwoLayerNet(rng.normal(size=(m, d)), rng.normal(size=m), rng.normal(size=(k, m)),
                           rng.normal(size=k), activation=activation)

    return make
