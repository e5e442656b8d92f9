"""Training the paper's networks (§6, DESIGN.md §4): ``train(TrainConfig(objective="sdp", epochs=...))``.

Objectives (``TrainConfig.objective``), f = the logits of a 784-m-10 ReLU net, hinge = the mean Weston-Watkins
multiclass hinge ``sum_{j != y} max(0, 1 + f_j - f_y)``:

* ``nt``  -- cross-entropy.
* ``fro`` -- hinge + fro_coef (||W||_F + ||V||_F)                      (paper: 0.08)
* ``spe`` -- hinge + spe_coef (||W||_2 + ||V||_2)                      (paper: 0.09)
* ``at``  -- CE + 0.5 CE on PGD examples (l_inf at_eps, at_steps sign steps of at_step, random start, clipped to
  [0, 1]; paper: 0.3 / 40 / 0.1). The PGD runs inside torch and takes gradients w.r.t. the inputs only.
* ``sdp`` -- sdp_loss_scale * hinge + sdp_lambda * sum_p w_p penalty_p over the k - 1 pairs sharing a random class
  (:class:`~sdpcert.torch_ops.DualCertificateRegularizer`, whose c_ij are trained by the same Adam).
* ``lp`` -- LP-NN (Wong & Kolter 2018): the robust cross-entropy of the LP bounds at the current radius
  (:func:`sdpcert.lp_bound.lp_robust_loss`, the margins' upper bounds over the l_inf ball used as logits); the
  radius grows linearly from eps_train / lp_eps_ramp_epochs to eps_train over the first lp_eps_ramp_epochs epochs
  (their schedule starts small: at the full radius from the first step the bounds are vacuous and the net collapses).
* ``sdp-weighted`` -- as ``sdp`` with w_ij proportional to the fraction of training points whose maximising pair in
  the (dual) certificate is {i, j}, scaled to mean 1 over the pairs (so the penalty's total weight is the unweighted
  one's, redistributed). Training starts unweighted (w = 1) and refreshes the weights at the start of every
  weight_refresh_every-th epoch after the first. The paper's "lambda_ij = w_ij lambda" leaves the scale open; with
  the bare fractions (summing to 1) the penalty was 45x weaker than the unweighted one at the same lambda, and the
  dual certificate stayed at 100% (mean S_ij 420-520 against 43-60 unweighted; measured). Weights taken from the
  random initial net were 0 for 29 of the 45 pairs, whose S_ij then grew unchecked (mean S_ij 140 -> 230 over 8
  epochs, dual certificate 100%; measured), hence no refresh at epoch 0.

Penalty scale (DESIGN.md §4): the paper's eq. (15) sums the loss over the N training points and adds the penalty
once; a minibatch loop with a *mean* loss must choose the relative scale. ``sdp_loss_scale`` multiplies the mean
hinge: 10 (the default) trained in the reference run, 1 collapsed (clean error 70-88%).

Every epoch logs the mean training loss (and its parts), the clean test error and, for the sdp objectives, the
*dual certificate* (eq. 16): the certified test error at eps_train from the CURRENT c_ij, made rigorous by
:meth:`DualCertificateRegularizer.certified_upper` (proven upper bounds on S_ij -- never a Lanczos estimate) and
:func:`certified_error_from_growth`, which repeats ``Certifier.certify_grid``'s per-example computation (float64
logits with their rounding-error bound). A feasible but non-optimal c can only make it worse than the exact SDP.

Reproducibility and resuming: the seed fixes the initial weights (drawn inside ``torch.random.fork_rng``), and one
``torch.Generator`` drives the minibatch order, the pair sampling and the PGD starts. After every epoch
``out_dir/checkpoint.pt`` holds the model, optimizer and regularizer state, the generator state, the Lanczos warm
starts and the log; ``resume=True`` continues from it (``torch.load(weights_only=True)``: tensors, numbers and
strings only) and gives the same weights as an uninterrupted run. Training runs on ``threads`` torch threads
(default 1: a fixed reduction order, and the fastest choice for these GEMMs on a small shared machine).
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import json
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Optional

import numpy as np

from . import bounds
from .certify import certify_with_growth
from .errors import SdpcertError
from .network import TwoLayerNet

__all__ = ["TrainConfig", "OBJECTIVES", "train", "Trainer", "load_split", "torch_threads", "certified_error_from_growth", "multiclass_hinge",
           "pgd_torch", "CHECKPOINT_NAME", "MODEL_NAME", "LOG_JSON_NAME", "LOG_CSV_NAME"]

OBJECTIVES = ("nt", "fro", "spe", "at", "sdp", "sdp-weighted", "lp")
CHECKPOINT_NAME = "checkpoint.pt"
MODEL_NAME = "model.npz"
LOG_JSON_NAME = "log.json"
LOG_CSV_NAME = "log.csv"
# Fields that must agree between a checkpoint and the config that resumes it (epochs, out_dir, resume may change).
_RESUME_KEYS = ("objective", "hidden", "batch_size", "lr", "lr_decay_every", "seed", "eps_train", "sdp_lambda",
                "sdp_loss_scale", "fro_coef", "spe_coef", "at_eps", "at_step", "at_steps", "weight_refresh_every",
                "lp_eps_ramp_epochs", "data", "limit", "test_limit")

LogFn = Callable[[str], None]


@dataclass
class TrainConfig:
    """Settings of one training run (paper defaults where the paper gives them; see the module docstring)."""

    objective: str = "sdp"
    hidden: int = 500
    epochs: int = 1
    batch_size: int = 100
    lr: float = 1e-3
    lr_decay_every: int = 30  # lr x 0.1 every this many epochs
    seed: int = 0
    eps_train: float = 0.1
    sdp_lambda: float = 0.05
    sdp_loss_scale: float = 10.0  # multiplies the mean hinge (DESIGN §4: x10 trained, x1 collapsed)
    fro_coef: float = 0.08
    spe_coef: float = 0.09
    at_eps: float = 0.3
    at_step: float = 0.1
    at_steps: int = 40
    weight_refresh_every: int = 20
    lp_eps_ramp_epochs: int = 5  # lp: the radius reaches eps_train after this many epochs
    snapshot_every: int = 0  # > 0: also keep out_dir/model_epochNNN.npz every this many epochs (Fig. 4b needs them)
    eig_iters: int = 8  # Lanczos matvecs per pair per step, warm started (sdp objectives; see the module docstring)
    data: Optional[str] = None  # folder with the MNIST IDX files; None: the packaged sample
    limit: Optional[int] = None  # first N training examples
    test_limit: Optional[int] = None  # first N test examples (clean error and dual certificate)
    out_dir: Optional[str] = None  # model.npz, log.json, log.csv, checkpoint.pt; None: write nothing
    resume: bool = False
    device: str = "cpu"  # torch device of the model and the steps, e.g. "cuda" (the sdp penalty then uses torch's eigh)
    threads: int = 1  # cores to use; the sdp objectives give one of them to the eigen-solve thread (torch_threads)

    def __post_init__(self) -> None:
        if self.objective not in OBJECTIVES:
            raise SdpcertError(f"unknown objective {self.objective!r}; choose one of {', '.join(OBJECTIVES)}")
        for name in ("hidden", "epochs", "batch_size", "lr_decay_every", "at_steps", "weight_refresh_every",
                     "threads", "eig_iters", "lp_eps_ramp_epochs"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
                raise SdpcertError(f"{name} must be a positive integer; got {value!r}")
        if isinstance(self.snapshot_every, bool) or not isinstance(self.snapshot_every, (int, np.integer)) \
                or self.snapshot_every < 0:
            raise SdpcertError(f"snapshot_every must be an integer >= 0; got {self.snapshot_every!r}")
        for name in ("limit", "test_limit"):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, (int, np.integer))
                                      or value < 1):
                raise SdpcertError(f"{name} must be a positive integer or None; got {value!r}")
        for name in ("lr", "eps_train", "sdp_lambda", "sdp_loss_scale", "fro_coef", "spe_coef", "at_eps",
                     "at_step"):
            value = getattr(self, name)
            try:
                value = float(value)
            except (TypeError, ValueError):
                raise SdpcertError(f"{name} must be a number; got {value!r}") from None
            if not math.isfinite(value) or value < 0:
                raise SdpcertError(f"{name} must be finite and >= 0; got {value!r}")
            setattr(self, name, value)
        self._check_device()
        if self.lr <= 0:
            raise SdpcertError(f"lr must be > 0; got {self.lr}")
        if self.resume and self.out_dir is None:
            raise SdpcertError("resume needs out_dir (the folder holding checkpoint.pt)")
        if self.data is not None:
            self.data = str(self.data)
        if self.out_dir is not None:
            self.out_dir = str(self.out_dir)

    def _check_device(self) -> None:
        """Refuse, before any work starts, a device that torch cannot parse or cannot use on this machine."""
        import torch

        try:
            device = torch.device(self.device)
        except (RuntimeError, TypeError, ValueError) as exc:
            raise SdpcertError(f"device must name a torch device such as 'cpu' or 'cuda'; got {self.device!r}") from exc
        if device.type == "cpu":
            return
        if device.type == "cuda":
            if not torch.cuda.is_available():
                raise SdpcertError(f"device {self.device!r}: torch finds no usable CUDA device on this machine "
                                   f"(torch.cuda.is_available() is False); use device 'cpu'")
            count = torch.cuda.device_count()
            if device.index is not None and device.index >= count:
                raise SdpcertError(f"device {self.device!r}: this machine has {count} CUDA device(s), numbered "
                                   f"0..{count - 1}")
            return
        if device.type == "meta":
            raise SdpcertError("device 'meta' holds no values: nothing can be trained on it; use 'cpu' or 'cuda'")
        try:  # any other kind (mps, xpu, ...): one tiny allocation tells whether this torch can use it here
            torch.zeros(1, device=device)
        except Exception as exc:  # torch raises RuntimeError, AssertionError, ... depending on the backend
            detail = str(exc).strip().splitlines()[0].split(". ")[0] if str(exc).strip() else type(exc).__name__
            raise SdpcertError(f"device {self.device!r} is not usable by torch on this machine: {detail}") from exc

    @property
    def is_sdp(self) -> bool:
        return self.objective in ("sdp", "sdp-weighted")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


# ----------------------------------------------------------------------------------------------- losses
def multiclass_hinge(logits: Any, labels: Any) -> Any:
    """Mean over the batch of the Weston-Watkins hinge ``sum_{j != y} max(0, 1 + f_j - f_y)``."""
    import torch

    true = logits.gather(1, labels[:, None])
    terms = torch.clamp(1.0 + logits - true, min=0.0)
    terms = terms.scatter(1, labels[:, None], 0.0)
    return terms.sum(dim=1).mean()


def pgd_torch(model: Any, x: Any, labels: Any, eps: float, step: float, steps: int, generator: Any) -> Any:
    """l_inf PGD on the cross-entropy for adversarial training: uniform random start in the ball, ``steps`` sign
    steps of size ``step``, each projected onto the ball and [0, 1]. Gradients w.r.t. the inputs only (the
    parameters' .grad are not touched). Returns the detached adversarial batch."""
    import torch

    lo = torch.clamp(x - eps, min=0.0)
    hi = torch.clamp(x + eps, max=1.0)
    noise = ((2 * torch.rand(x.shape, generator=generator, dtype=x.dtype) - 1) * eps).to(x.device)
    xa = torch.minimum(torch.maximum(x + noise, lo), hi)
    for _ in range(steps):
        xa = xa.detach().requires_grad_(True)
        loss = torch.nn.functional.cross_entropy(model(xa), labels, reduction="sum")
        (grad,) = torch.autograd.grad(loss, xa)
        xa = torch.minimum(torch.maximum(xa + step * grad.sign(), lo), hi)
    return xa.detach()


# ----------------------------------------------------------------------------------------------- certificates
def certified_error_from_growth(net: TwoLayerNet, X: Any, y: Any, eps: float, G: np.ndarray) -> dict:
    """Per-example certificates from a proven (k, k) growth matrix ``G`` -- the computation of
    ``Certifier.certify_grid`` for one radius, without solving any SDP (e.g. ``G = bounds.sdp_growth(net, S_upper)``
    with ``S_upper`` from ``DualCertificateRegularizer.certified_upper``).

    Returns dict(certified (n,) bool, worst_margin (n,), worst_class (n,), predicted (n,), clean_error,
    certified_error). ``G`` must be a proven upper bound for the result to be a certificate."""
    result = certify_with_growth(net, X, y, eps, G, method="dual")
    return {"certified": result.certified, "worst_margin": result.worst_margin, "worst_class": result.worst_class,
            "predicted": result.predicted, "clean_error": result.clean_error,
            "certified_error": result.certified_error}


def _dual_growth(reg: Any, net: TwoLayerNet) -> tuple[np.ndarray, np.ndarray]:
    """(G, S) from the regularizer's current c: S (k, k) proven upper bounds on S_ij, G = sdp_growth(net, S)."""
    s_upper = reg.certified_upper(net.W, net.V)
    S = np.zeros((net.k, net.k))
    for (i, j), s in zip(reg.pairs, s_upper):
        S[i, j] = S[j, i] = s
    return bounds.sdp_growth(net, S), S


# ----------------------------------------------------------------------------------------------- data
def load_split(data: Optional[str], split: str, limit: Optional[int]) -> tuple[np.ndarray, np.ndarray]:
    """``split`` of full MNIST from the folder ``data``, or of the packaged sample when ``data`` is None (float32)."""
    from .data import load_mnist, load_mnist_sample

    if data is not None:
        if not Path(data).is_dir():
            raise SdpcertError(f"data folder {data} does not exist (it should hold the MNIST IDX files)")
        return load_mnist(split, folder=data, limit=limit, dtype=np.float32)
    return load_mnist_sample(split, limit=limit, dtype=np.float32)


def torch_threads(config: TrainConfig) -> int:
    """torch's intra-op threads for a run: ``config.threads``, less one for the sdp objectives when there are two or
    more, since their eigen solve runs on a thread of its own (three busy threads on two cores made a step 17%
    slower than two, measured with benchmarks/train_step.py)."""
    if config.is_sdp and config.threads > 1:
        return config.threads - 1
    return config.threads


@contextlib.contextmanager
def _torch_threads(n: int) -> Iterator[None]:
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


# ----------------------------------------------------------------------------------------------- trainer
class Trainer:
    """The state of one run (model, optimizer, regularizer, generator) and its steps; :func:`train` drives it."""

    def __init__(self, config: TrainConfig, d: int = 784, k: int = 10) -> None:
        import torch
        from torch import nn

        from .torch_ops import DualCertificateRegularizer

        self.config = config
        self.d, self.k = d, k
        with torch.random.fork_rng(devices=[]):  # nn.Linear draws from the global RNG; leave the caller's alone
            torch.manual_seed(config.seed)
            self.model = nn.Sequential(nn.Linear(d, config.hidden), nn.ReLU(), nn.Linear(config.hidden, k))
        # The weights are drawn on the CPU (the same initial net on every device), then moved.
        self.device = torch.device(config.device)
        self.model.to(self.device)
        self.generator = torch.Generator().manual_seed(config.seed)  # CPU: batch order, pairs, PGD starts
        self.reg = None
        params = list(self.model.parameters())
        if config.is_sdp:
            # On a CUDA device the penalty's eigenpairs come from torch (backend 'auto'), on the CPU from the core.
            self.reg = DualCertificateRegularizer(k=k, d=d, m=config.hidden, weight=config.sdp_lambda,
                                                  max_iter=config.eig_iters).to(self.device)
            params += list(self.reg.parameters())
        self.optimizer = torch.optim.Adam(params, lr=config.lr)
        self.epoch = 0  # epochs completed
        self.power_vectors: dict[str, Any] = {}  # spe: warm-started left singular vectors of W and V

    # ------------------------------------------------------------------------------------- pieces
    @property
    def W(self) -> Any:
        return self.model[0].weight

    @property
    def V(self) -> Any:
        return self.model[2].weight

    def net(self) -> TwoLayerNet:
        return TwoLayerNet.from_torch(self.model)

    def lp_eps(self, epoch: Optional[int] = None) -> float:
        """lp objective: the training radius of ``epoch`` (default: the current one), ramped up linearly."""
        epoch = self.epoch if epoch is None else epoch
        ramp = self.config.lp_eps_ramp_epochs
        return self.config.eps_train * min(1.0, (epoch + 1) / ramp)

    def spectral_norm(self, name: str, M: Any, iterations: int = 3) -> Any:
        """spe: ``||M||_2`` as ``u^T M v`` with the top singular pair (u, v) from a power iteration warm-started at
        the previous step's u (``iterations`` rounds per step). Its gradient is ``u v^T``, the gradient of the
        spectral norm at a simple top singular value. A full SVD per step (``matrix_norm(ord=2)``) made a Spe-NN
        epoch 58 s against 3.4 s for Fro-NN (measured); the weights move little between steps, so a few rounds from
        the last u keep the estimate at the SVD's value (tested)."""
        import torch

        with torch.no_grad():
            u = self.power_vectors.get(name)
            if u is None or u.shape != (M.shape[0],):
                gen = torch.Generator().manual_seed(self.config.seed + 7919)  # fixed start, separate from batches
                u = torch.randn(M.shape[0], generator=gen, dtype=M.dtype).to(M.device)
            for _ in range(iterations):
                v = M.t() @ u
                v = v / v.norm().clamp_min(1e-30)
                u = M @ v
                u = u / u.norm().clamp_min(1e-30)
            v = M.t() @ u  # v from the final u: the value is ||M^T u|| (<= ||M||_2), the gradient u v^T
            v = v / v.norm().clamp_min(1e-30)
            self.power_vectors[name] = u
        return u @ (M @ v)

    def lr_for(self, epoch: int) -> float:
        return self.config.lr * 0.1 ** (epoch // self.config.lr_decay_every)

    def losses(self, xb: Any, yb: Any) -> dict:
        """The objective on one batch: dict(loss, and its parts as tensors)."""
        import torch
        import torch.nn.functional as F

        cfg = self.config
        logits = self.model(xb)
        out: dict[str, Any] = {}
        if cfg.objective == "nt":
            out["ce"] = F.cross_entropy(logits, yb)
            out["loss"] = out["ce"]
        elif cfg.objective == "fro":
            out["hinge"] = multiclass_hinge(logits, yb)
            out["reg"] = cfg.fro_coef * (torch.linalg.matrix_norm(self.W) + torch.linalg.matrix_norm(self.V))
            out["loss"] = out["hinge"] + out["reg"]
        elif cfg.objective == "spe":
            out["hinge"] = multiclass_hinge(logits, yb)
            out["reg"] = cfg.spe_coef * (self.spectral_norm("W", self.W) + self.spectral_norm("V", self.V))
            out["loss"] = out["hinge"] + out["reg"]
        elif cfg.objective == "lp":
            from .lp_bound import lp_robust_loss

            out["lp_robust_ce"] = lp_robust_loss(self.W, self.model[0].bias, self.V, self.model[2].bias, xb, yb,
                                                 self.lp_eps(), check=False)
            out["loss"] = out["lp_robust_ce"]
        elif cfg.objective == "at":
            out["ce"] = F.cross_entropy(logits, yb)
            xa = pgd_torch(self.model, xb, yb, cfg.at_eps, cfg.at_step, cfg.at_steps, self.generator)
            out["ce_adv"] = F.cross_entropy(self.model(xa), yb)
            out["loss"] = out["ce"] + 0.5 * out["ce_adv"]
        else:
            out["hinge"] = multiclass_hinge(logits, yb)
            pairs = self.reg.sample_pairs_sharing_class(self.generator)
            out["penalty"] = self.reg(self.W, self.V, pairs)  # includes sdp_lambda and the pair weights
            out["loss"] = cfg.sdp_loss_scale * out["hinge"] + out["penalty"]
        return out

    def step(self, xb: Any, yb: Any) -> dict:
        """One Adam step; returns the loss parts as floats."""
        if self.config.is_sdp:
            return self._sdp_step(xb, yb)
        parts = self.losses(xb, yb)
        loss = parts["loss"]
        if not bool(loss.isfinite()):
            raise SdpcertError(f"training diverged: the loss is {float(loss)} (try a smaller lr)")
        self.optimizer.zero_grad()
        loss.backward()
        self.optimizer.step()
        return {key: float(value.detach()) for key, value in parts.items()}

    def _sdp_step(self, xb: Any, yb: Any) -> dict:
        """The SDP objective's step: the same gradient as ``losses`` + backward, computed so that the penalty costs
        the main thread almost nothing. A worker thread runs the eigen solve (the C++ Lanczos releases the GIL) and
        the penalty's analytic gradient (``reg.value_and_grads``, the function the autograd op's backward uses) while
        torch computes the hinge and its backward here; the penalty's gradients are then added to .grad and Adam
        steps. Measured: ~3 ms of penalty forward/backward per step moved off the critical path."""
        import torch

        cfg = self.config
        pairs = self.reg.sample_pairs_sharing_class(self.generator)
        pending = self.reg.value_and_grads_async(self.W, self.V, pairs)
        try:
            hinge = multiclass_hinge(self.model(xb), yb)
            self.optimizer.zero_grad()
            (cfg.sdp_loss_scale * hinge).backward()
        finally:
            penalty, dW, dV, dc, rows = pending.result()  # never leave a solve running into the next step
        with torch.no_grad():
            self.W.grad.add_(dW)
            self.V.grad.add_(dV)
            c_grad = torch.zeros_like(self.reg.c)
            c_grad.index_add_(0, torch.as_tensor(rows, device=c_grad.device), dc.to(c_grad.dtype))
            self.reg.c.grad = c_grad
        loss = cfg.sdp_loss_scale * hinge.detach() + penalty
        if not bool(loss.isfinite()):
            raise SdpcertError(f"training diverged: the loss is {float(loss)} (try a smaller lr)")
        self.optimizer.step()
        return {"hinge": float(hinge.detach()), "penalty": float(penalty), "loss": float(loss)}

    def refresh_pair_weights(self, X: np.ndarray, y: np.ndarray) -> np.ndarray:
        """sdp-weighted: w_ij = (number of pairs) x the fraction of (X, y) whose maximising pair {y, worst class} in
        the dual certificate is {i, j} (mean 1; see the module docstring); sets and returns them (``reg.pairs``
        order)."""
        net = self.net()
        G, _ = _dual_growth(self.reg, net)
        cert = certified_error_from_growth(net, X, y, self.config.eps_train, G)
        counts = np.zeros((self.k, self.k))
        np.add.at(counts, (y, cert["worst_class"]), 1.0)
        counts = counts + counts.T
        w = np.array([counts[i, j] for i, j in self.reg.pairs]) / max(len(y), 1) * len(self.reg.pairs)
        self.reg.set_pair_weights(w)
        return w

    # ------------------------------------------------------------------------------------- checkpoints
    def state(self, history: list) -> dict:
        import torch

        out = {"epoch": self.epoch, "config": json.dumps(self.config.to_dict()), "history": json.dumps(history),
               "model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
               "generator": self.generator.get_state()}
        if self.power_vectors:
            out["power_vectors"] = dict(self.power_vectors)
        if self.reg is not None:
            warm = self.reg.warm_start
            keys = [tuple(int(a) for a in key) for key in warm._vectors]
            out["reg"] = self.reg.state_dict()
            out["warm_keys"] = torch.tensor(keys, dtype=torch.int64).reshape(-1, 2)
            out["warm_vectors"] = (torch.from_numpy(np.stack([warm._vectors[key] for key in keys]))
                                   if keys else torch.zeros(0, self.reg.D, dtype=torch.float64))
            out["warm_rng"] = json.dumps(warm._rng.bit_generator.state)
        return out

    def load_state(self, state: dict) -> list:
        saved = json.loads(state["config"])
        mismatch = [key for key in _RESUME_KEYS if saved.get(key) != getattr(self.config, key)]
        if mismatch:
            detail = ", ".join(f"{k}: checkpoint {saved.get(k)!r} vs now {getattr(self.config, k)!r}"
                               for k in mismatch)
            raise SdpcertError(f"the checkpoint was written with other settings ({detail})")
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.generator.set_state(state["generator"])
        self.power_vectors = dict(state.get("power_vectors", {}))
        if self.reg is not None:
            self.reg.load_state_dict(state["reg"])
            warm = self.reg.warm_start
            warm.clear()
            for key, vec in zip(state["warm_keys"].tolist(), state["warm_vectors"]):
                warm._vectors[(int(key[0]), int(key[1]))] = vec.numpy().copy()
            warm._rng.bit_generator.state = json.loads(state["warm_rng"])
        self.epoch = int(state["epoch"])
        return json.loads(state["history"])


# ----------------------------------------------------------------------------------------------- outputs
def _write_logs(out_dir: Path, config: TrainConfig, history: list) -> None:
    doc = {"config": config.to_dict(), "epochs": history}
    (out_dir / LOG_JSON_NAME).write_text(json.dumps(doc, indent=2, allow_nan=True) + "\n")
    fields: list[str] = []
    for row in history:
        for key in row:
            if key not in fields and not isinstance(row[key], (list, dict)):
                fields.append(key)
    with (out_dir / LOG_CSV_NAME).open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=fields, extrasaction="ignore")
        writer.writeheader()
        for row in history:
            writer.writerow(row)


def format_epoch(row: dict) -> str:
    """One human-readable line for an epoch's log row."""
    text = (f"epoch {row['epoch']:>3}  loss {row['train_loss']:.4f}  clean {100 * row['clean_error']:.2f}%")
    if "lp_certified_error" in row:
        text += f"  LP-cert {100 * row['lp_certified_error']:.2f}% (eps {row['eps_train']:g}; trained at {row['lp_eps']:g})"
    if "dual_certified_error" in row:
        text += (f"  dual-cert {100 * row['dual_certified_error']:.2f}% (eps {row['eps_train']:g}, "
                 f"mean S_ij <= {row['dual_S_mean']:.4g})")
    return text + f"  lr {row['lr']:.0e}  {row['seconds']:.1f} s"


# ----------------------------------------------------------------------------------------------- driver
def train(config: TrainConfig, progress: bool = True, log: Optional[LogFn] = None) -> dict:
    """Train as ``config`` says. Returns dict(net=TwoLayerNet, history=[per-epoch dicts], trainer=Trainer,
    paths={...} of the files written). ``log(line)`` receives one line per epoch; ``progress`` shows a rich bar."""
    import torch

    if not isinstance(config, TrainConfig):
        raise SdpcertError(f"train needs a TrainConfig; got {type(config).__name__}")
    X, y = load_split(config.data, "train", config.limit)
    X_test, y_test = load_split(config.data, "test", config.test_limit)
    out_dir = Path(config.out_dir) if config.out_dir is not None else None
    if out_dir is not None:
        out_dir.mkdir(parents=True, exist_ok=True)
    ckpt_path = out_dir / CHECKPOINT_NAME if out_dir is not None else None

    with _torch_threads(torch_threads(config)):
        trainer = Trainer(config, d=X.shape[1], k=10)
        history: list = []
        if config.resume:
            if not ckpt_path.is_file():
                raise SdpcertError(f"cannot resume: {ckpt_path} does not exist")
            history = trainer.load_state(torch.load(ckpt_path, weights_only=True, map_location=trainer.device))
            if trainer.epoch > config.epochs:
                raise SdpcertError(f"the checkpoint has {trainer.epoch} epochs done, more than epochs={config.epochs}")
        X_t, y_t = torch.from_numpy(X), torch.from_numpy(y)
        n = len(y)
        steps_per_epoch = math.ceil(n / config.batch_size)
        bar = None
        if progress:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

            bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                           transient=True)
            bar.start()
        try:
            while trainer.epoch < config.epochs:
                epoch = trainer.epoch
                t0 = time.perf_counter()
                lr = trainer.lr_for(epoch)
                for group in trainer.optimizer.param_groups:
                    group["lr"] = lr
                row: dict[str, Any] = {"epoch": epoch + 1, "lr": lr}
                if config.objective == "lp":
                    row["lp_eps"] = trainer.lp_eps(epoch)
                if config.objective == "sdp-weighted" and epoch > 0 and epoch % config.weight_refresh_every == 0:
                    w = trainer.refresh_pair_weights(X, y)
                    row["pair_weights"] = w.tolist()
                order = torch.randperm(n, generator=trainer.generator)
                sums: dict[str, float] = {}
                task = bar.add_task(f"epoch {epoch + 1}/{config.epochs}", total=steps_per_epoch) if bar else None
                for s in range(steps_per_epoch):
                    idx = order[s * config.batch_size:(s + 1) * config.batch_size]
                    parts = trainer.step(X_t[idx].to(trainer.device), y_t[idx].to(trainer.device))
                    for key, value in parts.items():
                        sums[key] = sums.get(key, 0.0) + value
                    if bar is not None:
                        bar.update(task, advance=1)
                if bar is not None:
                    bar.remove_task(task)
                row["train_loss"] = sums["loss"] / steps_per_epoch
                for key, value in sums.items():
                    if key != "loss":
                        row[f"train_{key}"] = value / steps_per_epoch
                row["train_seconds"] = time.perf_counter() - t0
                net = trainer.net()
                row["clean_error"] = float((net.predict(X_test) != y_test).mean())
                if config.is_sdp:
                    t1 = time.perf_counter()
                    G, S = _dual_growth(trainer.reg, net)
                    cert = certified_error_from_growth(net, X_test, y_test, config.eps_train, G)
                    upper = S[np.triu_indices(net.k, 1)]
                    row["eps_train"] = config.eps_train
                    row["dual_certified_error"] = cert["certified_error"]
                    row["dual_S_mean"] = float(upper.mean())
                    row["dual_S_max"] = float(upper.max())
                    row["dual_seconds"] = time.perf_counter() - t1
                if config.objective == "lp":  # the LP certificate the net is trained for, proven (lp_bound.py)
                    from .lp_bound import lp_worst_margins

                    t1 = time.perf_counter()
                    worst = lp_worst_margins(net, X_test, y_test, config.eps_train)
                    row["eps_train"] = config.eps_train
                    row["lp_certified_error"] = float((worst >= 0).mean())
                    row["lp_seconds"] = time.perf_counter() - t1
                trainer.epoch += 1
                row["seconds"] = time.perf_counter() - t0
                history.append(row)
                if out_dir is not None:
                    net.save(out_dir / MODEL_NAME)
                    if config.snapshot_every and trainer.epoch % config.snapshot_every == 0:
                        net.save(out_dir / f"model_epoch{trainer.epoch:03d}.npz")
                    _write_logs(out_dir, config, history)
                    tmp = ckpt_path.with_suffix(".pt.tmp")
                    torch.save(trainer.state(history), tmp)
                    tmp.replace(ckpt_path)
                if log is not None:
                    log(format_epoch(row))
        finally:
            if bar is not None:
                bar.stop()
        net = trainer.net()
        paths = {}
        if out_dir is not None:
            net.save(out_dir / MODEL_NAME)
            _write_logs(out_dir, config, history)
            paths = {"model": str(out_dir / MODEL_NAME), "log_json": str(out_dir / LOG_JSON_NAME),
                     "log_csv": str(out_dir / LOG_CSV_NAME), "checkpoint": str(ckpt_path)}
    return {"net": net, "history": history, "trainer": trainer, "paths": paths}
