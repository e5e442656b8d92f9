"""Top eigenpairs of ``M(v_p) - diag c_p`` for a batch of class pairs: the solve behind the training penalty.

Backends: CPU tensors go through the compiled batched Lanczos (``sdpcert._core.top_eigenpairs``, float64, warm
started from the previous eigenvectors via :class:`EigenWarmStart`; M is never formed). CUDA tensors -- or any
tensors with ``backend="torch"`` -- go through a dense torch path (M built in torch, ``torch.linalg.eigh``).

The values are Ritz values: ESTIMATES (lower bounds on lambda_max up to rounding), for training only. Proven upper
bounds come from :func:`sdpcert.torch.certified_dual_bounds` (docs/design.md §2 and §4).
"""

from __future__ import annotations

import json
from typing import Any, NamedTuple, Optional

import numpy as np
import torch

from .._checks import INT32_MAX, check_threads, int_in_range
from ..errors import SdpcertError, ShapeError, core_arguments
from .checks import check_inputs

try:  # the compiled core; the torch backend works without it
    from .. import _core
except ImportError:  # pragma: no cover - exercised only in builds without the extension
    _core = None

__all__ = ["EigenWarmStart", "Eigenpairs", "top_eigenpairs", "top_eigenpairs_torch", "pair_matrix_torch",
           "choose_backend", "require_core", "BACKENDS"]

BACKENDS = ("auto", "core", "torch")


def require_core(who: str) -> Any:
    """The compiled extension ``sdpcert._core``, or an SdpcertError saying that ``who`` needs it."""
    if _core is None:
        raise SdpcertError(f"{who} the compiled extension sdpcert._core, which is not available")
    return _core


# ----------------------------------------------------------------------------------------------------------------
# Warm starts
# ----------------------------------------------------------------------------------------------------------------

class EigenWarmStart:
    """Keeps the last top eigenvector per pair key (i, j) to start the next Lanczos run from it.

    Also records the last run's statuses, iterations and residuals (``last_status``, ``last_iterations``,
    ``last_residuals``) for logging. 'dense_small' / 'dense_fallback' statuses are normal (small D, or a small
    eigen-gap where Lanczos handed over to the dense solver). :meth:`state_dict` / :meth:`load_state_dict` save and
    restore the stored vectors and the random stream (a resumed training run then continues bit for bit)."""

    def __init__(self, seed: int = 0) -> None:
        self._vectors: dict[tuple[int, int], np.ndarray] = {}
        self._rng = np.random.default_rng(seed)
        self.last_status: list[str] = []
        self.last_iterations: Optional[np.ndarray] = None
        self.last_residuals: Optional[np.ndarray] = None
        self.calls = 0

    def __len__(self) -> int:
        return len(self._vectors)

    def clear(self) -> None:
        self._vectors.clear()

    def start_for(self, pairs: np.ndarray, D: int) -> Optional[np.ndarray]:
        """(P, D) start vectors, or None when no pair has a stored vector of length D (the core then picks its own)."""
        rows = [self._vectors.get((int(i), int(j))) for i, j in pairs]
        rows = [r if (r is not None and r.shape == (D,)) else None for r in rows]
        if all(r is None for r in rows):
            return None
        out = np.empty((len(rows), D))
        for p, r in enumerate(rows):
            out[p] = r if r is not None else self._rng.standard_normal(D)
        return out

    def update(self, pairs: np.ndarray, vectors: np.ndarray, info: dict[str, Any]) -> None:
        for (i, j), u in zip(pairs, vectors):
            self._vectors[(int(i), int(j))] = np.array(u, dtype=np.float64, copy=True)
        self.last_status = list(info.get("status", []))
        it = info.get("iterations")
        self.last_iterations = None if it is None else np.asarray(it).copy()
        res = info.get("residuals")
        self.last_residuals = None if res is None else np.asarray(res).copy()
        self.calls += 1

    def state_dict(self) -> dict[str, Any]:
        """``{"keys": (n, 2) int64 tensor, "vectors": (n, D) float64 tensor, "rng": JSON text}``: tensors and text
        only, so ``torch.load(weights_only=True)`` reads it back."""
        keys = list(self._vectors)
        vectors = (torch.from_numpy(np.stack([self._vectors[key] for key in keys])) if keys
                   else torch.zeros(0, 0, dtype=torch.float64))
        return {"keys": torch.tensor(keys, dtype=torch.int64).reshape(-1, 2), "vectors": vectors,
                "rng": json.dumps(self._rng.bit_generator.state)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`state_dict` returned (replacing every stored vector)."""
        keys, vectors = state["keys"], state["vectors"]
        if len(keys) != len(vectors):
            raise ShapeError(f"warm-start state: {len(keys)} pair keys but {len(vectors)} vectors")
        self._vectors = {}
        for key, vec in zip(torch.as_tensor(keys).tolist(), vectors):
            self._vectors[(int(key[0]), int(key[1]))] = torch.as_tensor(vec).numpy().astype(np.float64, copy=True)
        self._rng.bit_generator.state = json.loads(state["rng"])


# ----------------------------------------------------------------------------------------------------------------
# Eigen backends
# ----------------------------------------------------------------------------------------------------------------

def pair_matrix_torch(W: torch.Tensor, vs: torch.Tensor, c: Optional[torch.Tensor] = None) -> torch.Tensor:
    """Dense ``M(vs[p]) - diag(c[p])`` for a batch, shape (P, D, D), in W's dtype/device (docs/design.md §2;
    blocks ordered 1, s (m), t (d))."""
    m, d = W.shape
    P = vs.shape[0]
    D = 1 + m + d
    A = W.t().unsqueeze(0) * vs.unsqueeze(1)  # (P, d, m): A = W^T diag(v)
    M = W.new_zeros((P, D, D))
    a1 = A.sum(dim=2)  # (P, d): A 1
    M[:, 1 + m:, 0] = a1
    M[:, 0, 1 + m:] = a1
    M[:, 1 + m:, 1:1 + m] = A
    M[:, 1:1 + m, 1 + m:] = A.transpose(1, 2)
    if c is not None:
        M = M - torch.diag_embed(c)
    return M


def top_eigenpairs_torch(W: torch.Tensor, V: torch.Tensor, pairs: np.ndarray,
                         c: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, dict[str, Any]]:
    """Top eigenpair of each ``M_p - diag c_p`` by dense ``torch.linalg.eigh`` (any device), in W's dtype."""
    idx = torch.as_tensor(pairs, device=W.device)
    vs = V[idx[:, 0]] - V[idx[:, 1]]
    evals, evecs = torch.linalg.eigh(pair_matrix_torch(W, vs, c))
    P = pairs.shape[0]
    info = {"status": ["dense_torch"] * P, "iterations": np.zeros(P, dtype=np.int64), "residuals": None}
    return evals[:, -1], evecs[:, :, -1], info


def _top_eigenpairs_core(W: torch.Tensor, V: torch.Tensor, pairs: np.ndarray, c: torch.Tensor,
                         warm: Optional[EigenWarmStart], tol: float, max_iter: int,
                         dense_fallback: bool = True, exact_residuals: bool = True,
                         threads: int = 0, float32_matvecs: bool = False) -> tuple[torch.Tensor, torch.Tensor, dict[str, Any]]:
    # Fortran order: the core reads W in place instead of copying it (see pair_operator.hpp).
    W64 = np.asfortranarray(W.detach().numpy(), dtype=np.float64)
    V64 = V.detach().to(torch.float64).numpy()
    c64 = c.detach().to(torch.float64).numpy()
    D = c64.shape[1]
    start = warm.start_for(pairs, D) if warm is not None else None
    with core_arguments("the Lanczos eigensolver refused its arguments"):
        out = _core.top_eigenpairs(W64, V64, pairs, c64, tol=tol, max_iter=max_iter, start=start,
                                   dense_fallback=dense_fallback, exact_residuals=exact_residuals, threads=threads,
                                   float32_matvecs=float32_matvecs)
    vals = np.asarray(out["values"], dtype=np.float64)
    vecs = np.asarray(out["vectors"], dtype=np.float64)
    info = {"status": list(out["status"]), "iterations": np.asarray(out["iterations"]).copy(),
            "residuals": np.asarray(out["residuals"]).copy()}
    return (torch.from_numpy(vals.copy()).to(W.dtype), torch.from_numpy(vecs.copy()).to(W.dtype), info)


def choose_backend(backend: str, device: torch.device) -> str:
    """'core' or 'torch' for ``backend`` ('auto', 'core' or 'torch') and tensors on ``device``."""
    if backend not in BACKENDS:
        raise SdpcertError(f"backend must be 'auto', 'core' or 'torch'; got {backend!r}")
    if backend == "auto":
        return "core" if (device.type == "cpu" and _core is not None) else "torch"
    if backend == "core":
        require_core("backend='core' needs")
        if device.type != "cpu":
            raise SdpcertError(f"backend='core' runs on CPU tensors only; got device {device}")
    return backend


class Eigenpairs(NamedTuple):
    """Top eigenpairs of ``M_p - diag c_p`` for the pairs of one step: values (P,), unit vectors (P, D), solver info."""

    values: torch.Tensor
    vectors: torch.Tensor
    info: dict


def top_eigenpairs(W: torch.Tensor, V: torch.Tensor, c: torch.Tensor, pairs: Any, *, backend: str = "auto",
                   warm_start: Optional[EigenWarmStart] = None, tol: float = 1e-8, max_iter: int = 600,
                   dense_fallback: bool = True, exact_residuals: bool = True, threads: int = 0,
                   float32_matvecs: bool = False) -> Eigenpairs:
    """The eigen solve of :func:`~sdpcert.torch.pair_dual_penalty` on its own (no autograd): Ritz pairs in W's dtype
    and device.

    Split out so that a training step can run it on a worker thread while torch computes the task loss
    (:meth:`DualCertificateRegularizer.solve_async`); arguments as in :func:`pair_dual_penalty`, ``threads`` for
    the core's Lanczos (0: all cores) and ``float32_matvecs`` (core: the products with W in float32, about twice
    as fast; the values stay estimates either way)."""
    pairs_np, m, d, k = check_inputs(W, V, c, pairs)
    if isinstance(tol, (bool, np.bool_)) or not isinstance(tol, (int, float, np.integer, np.floating)) \
            or not (tol > 0 and np.isfinite(tol)):
        raise SdpcertError(f"tol must be positive and finite; got {tol!r}")
    # Integers only (nothing is truncated: 2.7 sweeps is a mistake, not 2); the core counts them in 32 bits.
    max_iter, threads = int_in_range("max_iter", max_iter, 1, INT32_MAX), check_threads(threads)
    which = choose_backend(backend, W.device)
    with torch.no_grad():
        if which == "core":
            lam, u, info = _top_eigenpairs_core(W, V, pairs_np, c, warm_start, float(tol), int(max_iter),
                                                bool(dense_fallback), bool(exact_residuals), int(threads),
                                                bool(float32_matvecs))
            if warm_start is not None:
                warm_start.update(pairs_np, u.to(torch.float64).numpy(), info)
        else:
            lam, u, info = top_eigenpairs_torch(W.detach(), V.detach(), pairs_np, c.detach())
            if warm_start is not None:
                warm_start.update(pairs_np, u.detach().to(torch.float64).cpu().numpy(), info)
    info = dict(info)
    info["values"] = lam.detach().to(torch.float64).cpu().numpy()
    info["backend"] = which
    info["pairs"] = pairs_np
    return Eigenpairs(lam.to(W.device), u.to(W.device), info)
