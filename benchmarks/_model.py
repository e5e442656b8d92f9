"""The benchmark networks: 784-500-10 ReLU nets on MNIST, cached outside git.

Three nets (``NETS``), because the pair SDPs are hardest exactly on the robust nets people certify:
  - ``nt``: trained briefly with cross-entropy (below; the paper's NT-NN, shortened);
  - ``at``: PGD-trained (``sdpcert train --objective at --epochs 3``, eps 0.3, 40 steps of 0.1; about 5-8 min on
    2 cores, run once and cached in a folder named by its settings);
  - ``sdp-nn``: the packaged SDP-NN (``sdpcert.model.load_pretrained("sdp-nn")``, nothing to train).

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


#: The benchmark nets, in the order compare.py and asv report them.
NETS = ("nt", "at", "sdp-nn")

#: Settings of the PGD-trained net (they name its cache folder).
AT_SETTINGS = dict(hidden=500, epochs=3, batch=100, lr=1e-3, seed=0, at_eps=0.3, at_step=0.1, at_steps=40)


def at_cache_dir(s: dict = AT_SETTINGS) -> Path:
    return cache_dir() / (f"mnist-relu-784-{s['hidden']}-10_at_eps{s['at_eps']:g}_step{s['at_step']:g}"
                          f"_steps{s['at_steps']}_adam{s['lr']:g}_b{s['batch']}_e{s['epochs']}_s{s['seed']}")


def at_net(allow_train: bool = True, verbose: bool = True) -> TwoLayerNet | None:
    """The cached PGD-trained net; trains it with ``sdpcert train --objective at`` if missing (``allow_train``)."""
    folder = at_cache_dir()
    path = folder / "model.npz"
    if path.exists():
        return TwoLayerNet.load(path)
    if not allow_train or not have_mnist():
        return None
    import subprocess
    import sys

    s = AT_SETTINGS
    if verbose:
        print(f"  [bench net] PGD-training {folder.name} (several minutes; cached for later runs)", flush=True)
    subprocess.run([sys.executable, "-m", "sdpcert", "train", "--objective", "at", "--epochs", str(s["epochs"]),
                    "--hidden", str(s["hidden"]), "--batch-size", str(s["batch"]), "--lr", str(s["lr"]),
                    "--seed", str(s["seed"]), "--at-eps", str(s["at_eps"]), "--at-step", str(s["at_step"]),
                    "--at-steps", str(s["at_steps"]), "--data", str(mnist_folder()), "--out", str(folder),
                    "--no-progress"], check=True)
    return TwoLayerNet.load(path)


def named_net(name: str, allow_train: bool = True, verbose: bool = True) -> TwoLayerNet | None:
    """One of ``NETS`` (None when it is not cached and may not or cannot be trained)."""
    if name == "nt":
        return benchmark_net(allow_train=allow_train, verbose=verbose)
    if name == "at":
        return at_net(allow_train=allow_train, verbose=verbose)
    if name == "sdp-nn":
        from sdpcert.model import load_pretrained

        return load_pretrained("sdp-nn")
    raise ValueError(f"unknown benchmark net {name!r} (one of {', '.join(NETS)})")


def random_net(hidden: int = SETTINGS["hidden"], d: int = 784, k: int = 10, seed: int = 0) -> TwoLayerNet:
    """A random net of MNIST shape (PyTorch's default init scale), for when no trained net is cached."""
    rng = np.random.default_rng(seed)
    W = rng.uniform(-1, 1, size=(hidden, d)) / np.sqrt(d)
    V = rng.uniform(-1, 1, size=(k, hidden)) / np.sqrt(hidden)
    return TwoLayerNet(W, np.zeros(hidden), V, np.zeros(k))


def net_for_asv(hidden: int = SETTINGS["hidden"], name: str = "nt") -> tuple[TwoLayerNet, str]:
    """The benchmark net ``name`` (first ``hidden`` units) if cached or packaged, else a random net; never trains."""
    net = named_net(name, allow_train=False, verbose=False)
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
