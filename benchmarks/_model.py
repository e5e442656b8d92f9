"""The benchmark network: a 784-500-10 ReLU net trained briefly on MNIST, cached as .npz outside git.

Shared by ``benchmarks/compare.py`` and the asv suite. Training (torch, CPU, Adam lr 1e-3, batch 100,
cross-entropy, seed 0, 3 epochs) takes about a minute on a 2-core machine; the weights are cached under
``$SDPCERT_BENCH_CACHE`` (default ``~/.cache/sdpcert/bench``) in a file named by the settings, so later runs load
them instantly. A trained net matters for the numbers: its pair SDPs and eigen-gaps are not those of a random net.

MNIST is read from ``$SDPCERT_MNIST_DIR`` if set, else from ``../shared/data/mnist`` next to the repository.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np

from sdpcert import TwoLayerNet
from sdpcert.data import MNIST_DIR_ENV, load_mnist

REPO_ROOT = Path(__file__).resolve().parents[1]

#: Training settings of the benchmark network (they name the cache file).
SETTINGS = dict(hidden=500, epochs=3, batch=100, lr=1e-3, seed=0)


def mnist_folder() -> Path:
    """``$SDPCERT_MNIST_DIR``, else the repo-relative ``../shared/data/mnist``."""
    env = os.environ.get(MNIST_DIR_ENV)
    return Path(env) if env else REPO_ROOT.parent / "shared" / "data" / "mnist"


def have_mnist() -> bool:
    folder = mnist_folder()
    return folder.is_dir() and any(folder.glob("t10k-images-idx3-ubyte*"))


def cache_dir() -> Path:
    return Path(os.environ.get("SDPCERT_BENCH_CACHE", Path.home() / ".cache" / "sdpcert" / "bench"))


def cache_path(hidden: int = SETTINGS["hidden"], epochs: int = SETTINGS["epochs"], batch: int = SETTINGS["batch"],
               lr: float = SETTINGS["lr"], seed: int = SETTINGS["seed"]) -> Path:
    return cache_dir() / f"mnist-relu-784-{hidden}-10_ce_adam{lr:g}_b{batch}_e{epochs}_s{seed}.npz"


def train(hidden: int = SETTINGS["hidden"], epochs: int = SETTINGS["epochs"], batch: int = SETTINGS["batch"],
          lr: float = SETTINGS["lr"], seed: int = SETTINGS["seed"], verbose: bool = True) -> TwoLayerNet:
    """Train the benchmark network with plain cross-entropy (the paper's NT-NN, shortened to a few epochs)."""
    import torch
    from torch import nn

    X, y = load_mnist("train", folder=mnist_folder())
    torch.manual_seed(seed)
    Xt, yt = torch.from_numpy(X), torch.from_numpy(y)
    model = nn.Sequential(nn.Linear(X.shape[1], hidden), nn.ReLU(), nn.Linear(hidden, 10))
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    loss_fn = nn.CrossEntropyLoss()
    gen = torch.Generator().manual_seed(seed)
    t0 = time.perf_counter()
    for epoch in range(epochs):
        order = torch.randperm(len(Xt), generator=gen)
        total = 0.0
        for start in range(0, len(Xt), batch):
            idx = order[start:start + batch]
            opt.zero_grad()
            loss = loss_fn(model(Xt[idx]), yt[idx])
            loss.backward()
            opt.step()
            total += loss.item() * len(idx)
        if verbose:
            print(f"  [bench net] epoch {epoch + 1}/{epochs}: loss {total / len(Xt):.4f} "
                  f"({time.perf_counter() - t0:.1f} s)", flush=True)
    return TwoLayerNet.from_torch(model)


def benchmark_net(allow_train: bool = True, verbose: bool = True) -> TwoLayerNet | None:
    """The cached trained network; trains and caches it if missing (``allow_train``), else returns None."""
    path = cache_path()
    if path.exists():
        return TwoLayerNet.load(path)
    if not allow_train or not have_mnist():
        return None
    if verbose:
        print(f"  [bench net] training {path.name} (cached for later runs)", flush=True)
    net = train(verbose=verbose)
    path.parent.mkdir(parents=True, exist_ok=True)
    net.save(path)
    return net


def random_net(hidden: int = SETTINGS["hidden"], d: int = 784, k: int = 10, seed: int = 0) -> TwoLayerNet:
    """A random net of MNIST shape (PyTorch's default init scale), for when no trained net is cached."""
    rng = np.random.default_rng(seed)
    W = rng.uniform(-1, 1, size=(hidden, d)) / np.sqrt(d)
    V = rng.uniform(-1, 1, size=(k, hidden)) / np.sqrt(hidden)
    return TwoLayerNet(W, np.zeros(hidden), V, np.zeros(k))


def net_for_asv(hidden: int = SETTINGS["hidden"]) -> tuple[TwoLayerNet, str]:
    """The cached trained net (first ``hidden`` units) if present, else a random net; never trains."""
    net = benchmark_net(allow_train=False)
    if net is None:
        return random_net(hidden), "random"
    return slice_net(net, hidden), "trained"


def slice_net(net: TwoLayerNet, hidden: int, inputs: int | None = None) -> TwoLayerNet:
    """The first ``hidden`` hidden units (and first ``inputs`` inputs) of ``net``: a smaller problem of the same kind."""
    d = net.d if inputs is None else inputs
    return TwoLayerNet(net.W[:hidden, :d], net.b[:hidden], net.V[:, :hidden], net.b2, activation=net.activation)


def all_pairs(k: int = 10) -> np.ndarray:
    """The k(k-1)/2 pairs (i, j), i < j, as an int64 (P, 2) array (S_ij = S_ji, docs/design.md §2)."""
    return np.array([(i, j) for i in range(k) for j in range(i + 1, k)], dtype=np.int64)
