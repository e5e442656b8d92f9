"""The quick-start job behind ``sdpcert demo``: train, certify, attack, in about a minute on a laptop CPU.

Nothing to download. Part 1: a 784-100-10 ReLU network is trained with torch on the packaged MNIST slice
(``load_mnist_sample``: 2000 training images) with cross-entropy plus a Frobenius-norm penalty
``0.05 (||W||_F + ||V||_F)`` (a small version of the paper's Fro-NN, which keeps the certificate non-trivial), then
certified on the 1000 packaged test images at a few small l_inf radii with the SDP, spectral and Frobenius bounds.

The certificate is then checked against an attack: a 20-step PGD (random start, margin loss, float64, projected
onto the eps-ball and [0, 1]) runs on every test image, and any certified image that PGD misclassifies is a broken
certificate. ``run_demo`` reports the count (``broken_total``); ``sdpcert demo`` prints it and exits non-zero when
it is not 0.

Part 2: the SDP-NN that ships with the package (``sdpcert.model.pretrained``, trained with the paper's recipe at eps 0.1)
is certified and attacked the same way at eps 0.1 on the same images: what training for the certificate buys.

``data`` (``sdpcert demo --data``): part 1 on another data set instead -- a folder of MNIST-format IDX files (trained
on its train split, certified on its test split) or an ``.npz`` (both on all of it), read by
:func:`sdpcert.training.load_split`; the net's d and k follow the data, whose inputs must lie in [0, 1] (the attack's
box). Part 2 then runs only on MNIST itself (md5-checked), the data the packaged SDP-NN is for.

Determinism: the seed fixes the initial weights, the minibatch order, the PGD starts and the SDP solver; training
runs on one torch thread so that float reductions have a fixed order. Training stops after ``epochs`` epochs or at
the first epoch boundary after ``seconds`` have passed, whichever comes first; the summary records which, and with
the same number of epochs the same seed gives bit-identical results.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

import numpy as np

from .. import attacks
from .._checks import check_eps, positive_float, positive_int
from ..certify import METHODS, Certifier, methods_for
from ..errors import SdpcertError
from ..model import TwoLayerNet, load_pretrained, pretrained_info
from ..training import load_split, torch_threads
from .soundness import soundness_entry

__all__ = ["run_demo", "pgd_attack", "DEFAULT_EPS", "PACKAGED_EPS"]

#: Radius at which the packaged SDP-NN (trained at 0.1) is certified and attacked.
PACKAGED_EPS = 0.1

#: Radii the demo certifies at (the demo net is trained in a minute on 2000 images; eps = 0.1 needs SDP training).
DEFAULT_EPS = (0.01, 0.02, 0.05)

ProgressFn = Callable[[str, int, int], None]
LogFn = Callable[[str], None]


def pgd_attack(net: TwoLayerNet, X: np.ndarray, y: np.ndarray, eps: float, steps: int = 20, seed: int = 0,
               model: Any = None) -> tuple[np.ndarray, np.ndarray]:
    """l_inf PGD on the margin ``max_{j != y} f_j - f_y``, in float64, inside ``[x - eps, x + eps] ∩ [0, 1]``.

    The demo's settings of :func:`sdpcert.attacks.pgd`: random start, step ``2.5 eps / steps``, one restart.
    ``model`` (optional) is a torch copy of ``net`` to attack instead of building one. Returns ``(fooled, X_adv)``;
    ``fooled`` holds only counterexamples re-checked with the float64 numpy forward and against the ball.
    """
    X_adv, fooled = attacks.pgd(net if model is None else model, X, y, eps, steps=steps, restarts=1,
                                random_start=True, loss="margin", seed=seed)
    return fooled, X_adv


def _method_entries(per_method: dict, fooled: np.ndarray) -> dict:
    """Per certification method: certified error and count, and the certified points that PGD broke."""
    return {method: soundness_entry(result, fooled) for method, result in per_method.items()}


def _packaged_sdp_nn(X: np.ndarray, y: np.ndarray, rel_tol: float, seed: int, pgd_steps: int,
                     progress: Optional[ProgressFn], say: LogFn) -> dict:
    """The second half of the demo: the packaged SDP-NN (sdpcert.model.pretrained), certified and attacked at
    PACKAGED_EPS on the same test images -- what a network trained for its certificate gets, with no training."""
    net = load_pretrained("sdp-nn")
    say(f"certifying the packaged SDP-NN (784-500-10, trained with the paper's recipe) at eps {PACKAGED_EPS:g}")
    t0 = time.perf_counter()
    certifier = Certifier(net, rel_tol=rel_tol, seed=seed)
    certifier.pair_bounds(progress=(lambda done, total: progress("SDP-NN pairs", done, total))
                          if progress is not None else None)
    per_method = {method: certifier.certify(X, y, PACKAGED_EPS, method) for method in methods_for(net)}
    with torch_threads(1):
        fooled, _ = pgd_attack(net, X, y, PACKAGED_EPS, steps=pgd_steps, seed=seed)
    entry = {"eps": PACKAGED_EPS, "n": int(len(y)), "fingerprint": net.fingerprint(),
             "clean_error": per_method["sdp"].clean_error, "pgd_error": float(fooled.mean()),
             "methods": _method_entries(per_method, fooled),
             "full_test_set": pretrained_info("sdp-nn")["evaluation"]}
    entry["broken_total"] = sum(m["broken"] for m in entry["methods"].values())
    entry["seconds"] = time.perf_counter() - t0
    return entry


def _train(X: np.ndarray, y: np.ndarray, k: int, seconds: float, epochs: int, hidden: int, penalty: float, seed: int,
           progress: Optional[ProgressFn]) -> tuple[TwoLayerNet, dict]:
    import torch
    from torch import nn

    X_t, y_t = torch.from_numpy(np.asarray(X, dtype=np.float32)), torch.from_numpy(y)
    batch = 100
    with torch_threads(1), torch.random.fork_rng(devices=[]):  # fork_rng: the caller's global RNG is untouched
        torch.manual_seed(seed)
        model = nn.Sequential(nn.Linear(X.shape[1], hidden), nn.ReLU(), nn.Linear(hidden, k))
        generator = torch.Generator().manual_seed(seed)
        optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
        start = time.perf_counter()
        done = 0
        loss_value = float("nan")
        out_of_time = False
        while done < epochs and not out_of_time:
            order = torch.randperm(len(y_t), generator=generator)
            for lo in range(0, len(order), batch):
                idx = order[lo:lo + batch]
                W, V = model[0].weight, model[2].weight
                loss = nn.functional.cross_entropy(model(X_t[idx]), y_t[idx]) + penalty * (W.norm() + V.norm())
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
            done += 1
            loss_value = float(loss.detach())
            out_of_time = time.perf_counter() - start >= seconds
            if progress is not None:  # a run cut short by the budget ends its bar at done/done
                progress("train", done, done if out_of_time else epochs)
        elapsed = time.perf_counter() - start
    info = {
        "epochs": done,
        "max_epochs": epochs,
        "stopped_by": "epochs" if done >= epochs else "time budget",
        "seconds": elapsed,
        "last_loss": loss_value,
        "hidden": hidden,
        "penalty": penalty,
        "batch": batch,
        "optimizer": "Adam(lr=1e-3)",
        "objective": f"cross-entropy + {penalty} (||W||_F + ||V||_F)",
        "train_images": int(len(y)),
    }
    return TwoLayerNet.from_torch(model), info


def _check_args(seconds: Any, eps_list: Any, epochs: Any, hidden: Any, pgd_steps: Any) -> tuple[float, list[float]]:
    seconds = positive_float("seconds", seconds, "a positive, finite training time budget")
    if isinstance(eps_list, (str, bytes)) or not isinstance(eps_list, Sequence) or len(eps_list) == 0:
        raise SdpcertError(f"eps_list must be a non-empty sequence of radii; got {eps_list!r}")
    eps_values = [check_eps(e) for e in eps_list]
    for name, value in (("epochs", epochs), ("hidden", hidden), ("pgd_steps", pgd_steps)):
        positive_int(name, value)
    return seconds, eps_values


def run_demo(seconds: float = 60.0, out_dir: str | Path = "sdpcert-demo", eps_list: Sequence[float] = DEFAULT_EPS,
             seed: int = 0, *, epochs: int = 300, hidden: int = 100, penalty: float = 0.05,
             rel_tol: float = 1e-6, pgd_steps: int = 20, progress: Optional[ProgressFn] = None,
             log: Optional[LogFn] = None, include_packaged: bool = True, data: Optional[str] = None) -> dict:
    """Train a small MNIST net on the packaged slice, certify it, attack the certified points; write the files.
    Then (``include_packaged``) the same for the packaged SDP-NN at eps 0.1 (``summary["packaged_sdp_nn"]``).

    Parameters: ``seconds``, training time budget (training also stops after ``epochs`` epochs); ``out_dir``,
    where ``model.npz`` and ``summary.json`` go (created if needed); ``eps_list``, the l_inf radii; ``seed``;
    ``progress(stage, done, total)`` with stage ``"train"`` or ``"pair SDPs"``; ``log(message)``; ``data``, another
    data set for part 1 (module docstring; None: the packaged MNIST sample).

    Returns the summary (also written to ``out_dir/summary.json``): ``training``, ``model``, ``pair_sdp``,
    ``results`` (one entry per eps: ``clean_error``, ``pgd_error``, per-method ``certified_error`` and ``broken``),
    ``broken_total`` (certified points that PGD broke; 0 unless a certificate is unsound), ``timings``.
    """
    t_start = time.perf_counter()
    seconds, eps_values = _check_args(seconds, eps_list, epochs, hidden, pgd_steps)
    seed = int(seed)
    say = log if log is not None else (lambda message: None)
    train_set, test_set = load_split(data, "train", None), load_split(data, "test", None)
    k = max(train_set.k, test_set.k)
    if train_set.d != test_set.d:
        raise SdpcertError(f"the demo's training data has d = {train_set.d} inputs but its test data {test_set.d}")
    for part in (train_set, test_set):
        if part.X.min() < 0 or part.X.max() > 1:
            raise SdpcertError(f"demo data {part.name}: its inputs lie in [{part.X.min():g}, {part.X.max():g}], but "
                               f"the demo's PGD check searches the ball intersected with [0, 1]: they must lie in it")
    out = Path(out_dir)  # created once the data is known to be good: bad data leaves nothing behind
    out.mkdir(parents=True, exist_ok=True)
    if data is not None:
        say(f"data: {train_set.describe()}; test: {test_set.describe()}")
    where = "the packaged MNIST slice" if data is None else train_set.name
    say(f"training a {train_set.d}-{hidden}-{k} ReLU net on {where} ({train_set.n} images), "
        f"up to {epochs} epochs or {seconds:g} s")
    net, training = _train(train_set.X, train_set.y, k, seconds, epochs, hidden, float(penalty), seed, progress)
    model_path = net.save(out / "model.npz")

    X, y = test_set.X, test_set.y
    certifier = Certifier(net, rel_tol=rel_tol, seed=seed)
    t0 = time.perf_counter()
    pairs = certifier.pair_bounds(progress=(lambda done, total: progress("pair SDPs", done, total))
                                  if progress is not None else None)
    t_pairs = time.perf_counter() - t0

    import torch

    model64 = net.to_torch(torch.float64)
    results = []
    t_certify = t_attack = 0.0
    broken_total = 0
    for index, eps in enumerate(eps_values):
        t0 = time.perf_counter()
        per_method = {method: certifier.certify(X, y, eps, method) for method in METHODS}
        t1 = time.perf_counter()
        with torch_threads(1):
            fooled, _ = pgd_attack(net, X, y, eps, steps=pgd_steps, seed=seed + index, model=model64)
        t2 = time.perf_counter()
        t_certify += t1 - t0
        t_attack += t2 - t1
        entry = {"eps": eps, "n": int(len(y)), "clean_error": per_method["sdp"].clean_error,
                 "pgd_error": float(fooled.mean()), "methods": _method_entries(per_method, fooled)}
        broken_total += sum(m["broken"] for m in entry["methods"].values())
        results.append(entry)

    # the packaged SDP-NN is a net for MNIST: on any other data its numbers would mean nothing
    on_mnist = data is None or test_set.verified == "md5 (MNIST)"
    if include_packaged and not on_mnist:
        say(f"skipping part 2: the packaged SDP-NN is an MNIST net, and {test_set.name} is not MNIST")
    packaged = _packaged_sdp_nn(X, y, rel_tol, seed, pgd_steps, progress, say) if include_packaged and on_mnist \
        else None
    if packaged is not None:
        broken_total += packaged["broken_total"]

    relative_gap = pairs.relative_gap
    summary = {
        "demo": "sdpcert demo",
        "seed": seed,
        "eps": eps_values,
        "training": training,
        "model": {"path": str(model_path), "fingerprint": net.fingerprint(), "d": net.d, "m": net.m, "k": net.k,
                  "activation": net.activation},
        "data": {"source": "packaged MNIST sample (load_mnist_sample('test'))" if data is None else str(data),
                 "n": int(len(y)), "train": train_set.info(), "test": test_set.info()},
        "pair_sdp": {"pairs": int(len(pairs.pairs)), "rel_tol": pairs.rel_tol, "seconds": t_pairs,
                     "max_relative_gap": float(relative_gap.max()), "status": sorted(set(pairs.status)),
                     "max_sweeps": int(pairs.sweeps.max()) if len(pairs.sweeps) else 0},
        "pgd": {"steps": pgd_steps, "step_size": "2.5 eps / steps", "loss": "margin", "restarts": 1,
                "random_start": True, "dtype": "float64"},
        "results": results,
        "packaged_sdp_nn": packaged,
        "broken_total": int(broken_total),
        "timings": {"train": training["seconds"], "pair_sdp": t_pairs, "certify": t_certify, "pgd": t_attack},
    }
    summary_path = out / "summary.json"
    summary["summary_path"] = str(summary_path)
    summary["timings"]["total"] = time.perf_counter() - t_start
    summary_path.write_text(json.dumps(summary, indent=2) + "\n")
    return summary
