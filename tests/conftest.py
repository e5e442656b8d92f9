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
    import torch

    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


@pytest.fixture
def random_net():
    """Factory for small seeded TwoLayerNets: ``random_net(d=6, m=5, k=3, activation="relu", seed=0)``."""
    from sdpcert.network import TwoLayerNet

    def make(d: int = 6, m: int = 5, k: int = 3, activation: str = "relu", seed: int = 0) -> TwoLayerNet:
        rng = np.random.default_rng(seed)
        return TwoLayerNet(rng.normal(size=(m, d)), rng.normal(size=m), rng.normal(size=(k, m)),
                           rng.normal(size=k), activation=activation)

    return make


def train_small_mnist_net(hidden: int = 30, epochs: int = 15, seed: int = 0, penalty: float = 0.05):
    """A 784-hidden-10 ReLU net trained for a few seconds on the packaged slice (CE + Frobenius penalty), one torch
    thread, seeded, leaving the caller's RNG and thread count alone. Shared by the certificate and attack tests."""
    import torch
    from torch import nn

    from sdpcert import TwoLayerNet, load_mnist_sample

    X, y = load_mnist_sample("train")
    X_t, y_t = torch.from_numpy(X), torch.from_numpy(y)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            model = nn.Sequential(nn.Linear(784, hidden), nn.ReLU(), nn.Linear(hidden, 10))
            opt = torch.optim.Adam(model.parameters(), lr=2e-3)
            gen = torch.Generator().manual_seed(seed)
            for _ in range(epochs):
                order = torch.randperm(len(y_t), generator=gen)
                for lo in range(0, len(order), 100):
                    idx = order[lo:lo + 100]
                    loss = nn.functional.cross_entropy(model(X_t[idx]), y_t[idx])
                    loss = loss + penalty * (model[0].weight.norm() + model[2].weight.norm())
                    opt.zero_grad()
                    loss.backward()
                    opt.step()
    finally:
        torch.set_num_threads(threads)
    return TwoLayerNet.from_torch(model)
