"""One training run's state and steps: :class:`Trainer` (model, optimizer, regularizer, generator, checkpoints),
and the torch thread count of a run (:func:`threads_for`, :func:`torch_threads`). :func:`sdpcert.training.train`
drives it epoch by epoch.
"""

from __future__ import annotations

import contextlib
import json
from typing import Any, Iterator, Optional

import numpy as np

from ..errors import SdpcertError
from ..model import TwoLayerNet
from .config import RESUME_KEYS, TrainConfig
from .dual import certified_error_from_growth, dual_growth
from .objectives import batch_losses, sdp_hinge, spectral_norm_estimate

__all__ = ["Trainer", "threads_for", "torch_threads"]


def threads_for(config: TrainConfig) -> int:
    """torch's intra-op threads for a run: ``config.threads``, less one for the sdp objectives when there are two or
    more, since their eigen solve runs on a thread of its own (three busy threads on two cores made a step 17%
    slower than two, measured with benchmarks/train_step.py)."""
    if config.is_sdp and config.threads > 1:
        return config.threads - 1
    return config.threads


@contextlib.contextmanager
def torch_threads(n: int) -> Iterator[None]:
    """torch on ``n`` intra-op threads inside the block, the caller's count restored after. One thread gives a fixed
    float reduction order (determinism), and on a shared or 2-core machine the small GEMMs here run several times
    faster than with competing threads (measured: the demo's PGD 0.5 s vs 2.2 s)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _field_default(field: Any) -> Any:
    import dataclasses

    if field.default is not dataclasses.MISSING:
        return field.default
    return field.default_factory()


class Trainer:
    """The state of one run (model, optimizer, regularizer, generator) and its steps; :func:`train` drives it."""

    def __init__(self, config: TrainConfig, d: int = 784, k: int = 10) -> None:
        import torch
        from torch import nn

        from ..torch import DualCertificateRegularizer

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
        if config.has_sdp_penalty:
            # On a CUDA device the penalty's eigenpairs come from torch (backend 'auto'), on the CPU from the core.
            # crown-box weighs (and ramps) the penalty itself: weight 1 here.
            weight = config.sdp_lambda if config.is_sdp else 1.0
            self.reg = DualCertificateRegularizer(k=k, d=d, m=config.hidden, weight=weight,
                                                  max_iter=config.eig_iters).to(self.device)
            params += list(self.reg.parameters())
        self.optimizer = torch.optim.Adam(params, lr=config.lr)
        self.epoch = 0  # epochs completed
        self.progress = 0.0  # epochs completed, with the fraction of the current one (set by the loop every step)
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

    def certified_schedule(self, progress: Optional[float] = None) -> tuple[float, float]:
        """crown-box: ``(radius, kappa)`` after ``progress`` epochs (default: the current step's). Radius 0 and
        kappa = cert_kappa_start during the warm-up, then both move linearly (radius to eps_train, kappa to
        cert_kappa_end) over cert_ramp_epochs, and stay there."""
        cfg = self.config
        t = self.progress if progress is None else float(progress)
        if cfg.cert_ramp_epochs == 0:
            frac = 1.0 if t >= cfg.cert_warmup_epochs else 0.0
        else:
            frac = min(1.0, max(0.0, (t - cfg.cert_warmup_epochs) / cfg.cert_ramp_epochs))
        kappa = cfg.cert_kappa_start + frac * (cfg.cert_kappa_end - cfg.cert_kappa_start)
        return cfg.eps_train * frac, kappa

    def spectral_norm(self, name: str, M: Any, iterations: int = 3) -> Any:
        """spe: ``||M||_2`` by :func:`~sdpcert.training.objectives.spectral_norm_estimate`, warm-started at the
        previous step's left singular vector of ``name`` (kept in ``power_vectors`` and in the checkpoint)."""
        value, self.power_vectors[name] = spectral_norm_estimate(M, self.power_vectors.get(name), self.config.seed,
                                                                 iterations)
        return value

    def lr_for(self, epoch: int) -> float:
        return self.config.lr * 0.1 ** (epoch // self.config.lr_decay_every)

    def losses(self, xb: Any, yb: Any) -> dict:
        """The objective on one batch: dict(loss, and its parts as tensors) (:mod:`sdpcert.training.objectives`)."""
        return batch_losses(self, xb, yb)

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
            hinge = sdp_hinge(cfg)(self.model(xb), yb)
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
        the dual certificate is {i, j} (mean 1; see :mod:`sdpcert.training.objectives`); sets and returns them (``reg.pairs``
        order)."""
        net = self.net()
        G, _ = dual_growth(self.reg, net)
        cert = certified_error_from_growth(net, X, y, self.config.eps_train, G)
        counts = np.zeros((self.k, self.k))
        np.add.at(counts, (y, cert["worst_class"]), 1.0)
        counts = counts + counts.T
        w = np.array([counts[i, j] for i, j in self.reg.pairs]) / max(len(y), 1) * len(self.reg.pairs)
        self.reg.set_pair_weights(w)
        return w

    # ------------------------------------------------------------------------------------- checkpoints
    def state(self, history: list) -> dict:
        out = {"epoch": self.epoch, "config": json.dumps(self.config.to_dict()), "history": json.dumps(history),
               "model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
               "generator": self.generator.get_state()}
        if self.power_vectors:
            out["power_vectors"] = dict(self.power_vectors)
        if self.reg is not None:
            out["reg"] = self.reg.state_dict()
            warm = self.reg.warm_start.state_dict()  # the Lanczos warm starts: a resumed run continues bit for bit
            out["warm_keys"], out["warm_vectors"], out["warm_rng"] = warm["keys"], warm["vectors"], warm["rng"]
        return out

    def load_state(self, state: dict) -> list:
        saved = json.loads(state["config"])
        # a key a checkpoint lacks was written before the setting existed: it trained with the setting's default
        defaults = TrainConfig.__dataclass_fields__
        saved = {key: saved.get(key, _field_default(defaults[key])) for key in RESUME_KEYS}
        mismatch = [key for key in RESUME_KEYS if saved.get(key) != getattr(self.config, key)]
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
            self.reg.warm_start.load_state_dict({"keys": state["warm_keys"], "vectors": state["warm_vectors"],
                                                 "rng": state["warm_rng"]})
        self.epoch = int(state["epoch"])
        self.progress = float(self.epoch)
        return json.loads(state["history"])
