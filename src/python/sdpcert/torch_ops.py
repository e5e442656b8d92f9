"""PyTorch side of the SDP dual certificate: a differentiable per-pair penalty and a regularizer module.

For a class pair (i, j), ``v = V[i] - V[j]`` and the symmetric ``D x D`` matrix ``M(v)`` of DESIGN.md §1
(``D = 1 + m + d``, blocks ordered 1, s (m), t (d)), the dual of the pair SDP gives, for every ``c`` in R^D,

    S_ij <= D * max(lambda_max(M - diag c), 0) + sum_k max(c_k, 0)                      (eq. 16 of the paper)

:func:`pair_dual_penalty` returns the right-hand side for a batch of pairs as a differentiable function of W, V and
c. Its backward is analytic (DESIGN §1): with ``u = [u0; us; ut]`` the top unit eigenvector of ``M - diag c``,

    d lambda / d v = 2 (W ut) * (u0 + us),   d lambda / d W = 2 (v * (u0 + us)) ut^T,   d lambda / d c = -u * u,

times D where lambda > 0 (0 otherwise), plus the indicator 1[c > 0] from ``sum max(c, 0)``; ``dv`` flows to V[i]
with + and to V[j] with -. When the top eigenvalue is repeated, ``u`` is one vector of the eigenspace and the result
is a (Clarke) subgradient, not a gradient. At lambda == 0 exactly the max(., 0) kink takes the 0 branch.

Backends: CPU tensors go through the compiled batched Lanczos (``sdpcert._core.top_eigenpairs``, float64, warm
started from the previous eigenvectors via :class:`EigenWarmStart`; M is never formed). CUDA tensors -- or any
tensors with ``backend="torch"`` -- go through a dense torch path (M built in torch, ``torch.linalg.eigh``) with the
same backward.

SOUNDNESS: the value returned here is an ESTIMATE for training. A Lanczos Ritz value is a *lower* bound on
lambda_max (up to rounding), so the penalty value may be slightly *below* the true dual objective for this c and must
never be reported as a certificate. For reporting use :meth:`DualCertificateRegularizer.certified_upper` (or
:func:`certified_dual_bounds`), which calls ``_core.lambda_max_upper_bounds``: a proven upper bound on lambda_max
(shifted Cholesky with a rounding margin) and hence a proven upper bound on S_ij.
"""

from __future__ import annotations

import concurrent.futures
import itertools
import threading
from typing import Any, NamedTuple, Optional

import numpy as np
import torch

from .errors import NonFiniteError, SdpcertError, ShapeError, core_arguments

try:  # the compiled core; the torch backend works without it
    from . import _core
except ImportError:  # pragma: no cover - exercised only in builds without the extension
    _core = None

__all__ = [
    "EigenWarmStart",
    "Eigenpairs",
    "top_eigenpairs",
    "pair_dual_penalty",
    "pair_matrix_torch",
    "top_eigenpairs_torch",
    "certified_dual_bounds",
    "DualCertificateRegularizer",
]

_FLOAT_DTYPES = (torch.float32, torch.float64)


# ----------------------------------------------------------------------------------------------------------------
# Input checks
# ----------------------------------------------------------------------------------------------------------------

def _as_pairs(pairs: Any, k: int) -> np.ndarray:
    """(P, 2) int64 array of class pairs with entries in [0, k) and i != j; clear errors otherwise."""
    if isinstance(pairs, torch.Tensor):
        if pairs.is_floating_point() or pairs.is_complex():
            raise SdpcertError(f"pairs must be integers; got a tensor of dtype {pairs.dtype}")
        arr = pairs.detach().cpu().numpy()
    else:
        try:
            arr = np.asarray(pairs)
        except (TypeError, ValueError) as exc:
            raise ShapeError(f"pairs cannot be turned into an integer array of shape (P, 2): {exc}") from exc
    if arr.size == 0:
        arr = arr.reshape(0, 2) if arr.ndim != 2 else arr
    if arr.dtype.kind not in "iu":
        raise SdpcertError(f"pairs must be integers of shape (P, 2); got dtype {arr.dtype}")
    if arr.ndim != 2 or arr.shape[1] != 2:
        raise ShapeError(f"pairs must have shape (P, 2); got shape {arr.shape}")
    arr = arr.astype(np.int64)
    if arr.shape[0] == 0:
        raise ShapeError("pairs is empty: need at least one class pair")
    bad = (arr < 0) | (arr >= k)
    if bad.any():
        p = int(np.argwhere(bad.any(axis=1))[0, 0])
        raise SdpcertError(f"pairs[{p}] = {arr[p].tolist()} refers to a class outside 0..{k - 1}")
    same = arr[:, 0] == arr[:, 1]
    if same.any():
        p = int(np.argmax(same))
        raise SdpcertError(f"pairs[{p}] = {arr[p].tolist()}: a pair needs two different classes")
    return arr


def _check_tensor(name: str, t: Any, ndim: int, values: bool = True) -> torch.Tensor:
    if not isinstance(t, torch.Tensor):
        raise SdpcertError(f"{name} must be a torch.Tensor; got {type(t).__name__}")
    if t.dtype not in _FLOAT_DTYPES:
        raise SdpcertError(f"{name} must be float32 or float64; got {t.dtype}")
    if t.ndim != ndim:
        raise ShapeError(f"{name} must be a {ndim}-D tensor; got shape {tuple(t.shape)}")
    # A NaN or inf entry makes the sum NaN or inf, so a finite sum proves every entry finite; the elementwise
    # isfinite (1.7 ms for a 500 x 784 W, a quarter of a training step) runs only when the sum is not finite.
    if values and not bool(torch.isfinite(t.detach().sum())):
        n_bad = int((~torch.isfinite(t.detach())).sum())
        if n_bad:
            raise NonFiniteError(f"{name} holds {n_bad} NaN/inf entr{'y' if n_bad == 1 else 'ies'}")
    return t


def _check_inputs(W: Any, V: Any, c: Any, pairs: Any, values: bool = True) -> tuple[np.ndarray, int, int, int]:
    W = _check_tensor("W", W, 2, values)
    V = _check_tensor("V", V, 2, values)
    c = _check_tensor("c", c, 2, values)
    m, d = W.shape
    if m < 1 or d < 1:
        raise ShapeError(f"W must have shape (m, d) with m, d >= 1; got {tuple(W.shape)}")
    if V.shape[1] != m:
        raise ShapeError(f"V must have shape (k, m) with m = W.shape[0] = {m}; got {tuple(V.shape)}")
    k = V.shape[0]
    if k < 2:
        raise ShapeError(f"V has shape {tuple(V.shape)}: need k >= 2 classes")
    pairs_np = _as_pairs(pairs, k)
    D = 1 + m + d
    if tuple(c.shape) != (pairs_np.shape[0], D):
        raise ShapeError(f"c must have shape (P, D) = ({pairs_np.shape[0]}, {D}); got {tuple(c.shape)}")
    if not (W.dtype == V.dtype == c.dtype):
        raise SdpcertError(f"W, V and c must share one dtype; got {W.dtype}, {V.dtype}, {c.dtype}")
    if not (W.device == V.device == c.device):
        raise SdpcertError(f"W, V and c must be on one device; got {W.device}, {V.device}, {c.device}")
    return pairs_np, m, d, k


# ----------------------------------------------------------------------------------------------------------------
# Warm starts
# ----------------------------------------------------------------------------------------------------------------

class EigenWarmStart:
    """Keeps the last top eigenvector per pair key (i, j) to start the next Lanczos run from it.

    Also records the last run's statuses, iterations and residuals (``last_status``, ``last_iterations``,
    ``last_residuals``) for logging. 'dense_small' / 'dense_fallback' statuses are normal (small D, or a small
    eigen-gap where Lanczos handed over to the dense solver)."""

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


# ----------------------------------------------------------------------------------------------------------------
# Eigen backends
# ----------------------------------------------------------------------------------------------------------------

def pair_matrix_torch(W: torch.Tensor, vs: torch.Tensor, c: Optional[torch.Tensor] = None) -> torch.Tensor:
    """Dense ``M(vs[p]) - diag(c[p])`` for a batch, shape (P, D, D), in W's dtype/device (DESIGN §1 layout)."""
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


def _choose_backend(backend: str, device: torch.device) -> str:
    if backend not in ("auto", "core", "torch"):
        raise SdpcertError(f"backend must be 'auto', 'core' or 'torch'; got {backend!r}")
    if backend == "auto":
        return "core" if (device.type == "cpu" and _core is not None) else "torch"
    if backend == "core":
        if _core is None:
            raise SdpcertError("backend='core' needs the compiled extension sdpcert._core, which is not available")
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
    """The eigen solve of :func:`pair_dual_penalty` on its own (no autograd): Ritz pairs in W's dtype and device.

    Split out so that a training step can run it on a worker thread while torch computes the task loss
    (:meth:`DualCertificateRegularizer.solve_async`); arguments as in :func:`pair_dual_penalty`, ``threads`` for
    the core's Lanczos (0: all cores) and ``float32_matvecs`` (core: the products with W in float32, about twice
    as fast; the values stay estimates either way)."""
    pairs_np, m, d, k = _check_inputs(W, V, c, pairs)
    if isinstance(tol, (bool, np.bool_)) or not isinstance(tol, (int, float, np.integer, np.floating)) \
            or not (tol > 0 and np.isfinite(tol)):
        raise SdpcertError(f"tol must be positive and finite; got {tol!r}")
    # Integers only (nothing is truncated: 2.7 sweeps is a mistake, not 2); the core counts them in 32 bits.
    for name, value, low in (("max_iter", max_iter, 1), ("threads", threads, 0)):
        if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)) \
                or not low <= value <= 2 ** 31 - 1:
            raise SdpcertError(f"{name} must be an integer in [{low}, {2 ** 31 - 1}]; got {value!r}")
    which = _choose_backend(backend, W.device)
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


# One worker thread for the eigen solves of training steps (the C++ core releases the GIL while it computes).
_WORKER_LOCK = threading.Lock()
_WORKER: Optional[concurrent.futures.ThreadPoolExecutor] = None


def _eigen_worker() -> concurrent.futures.ThreadPoolExecutor:
    global _WORKER
    with _WORKER_LOCK:
        if _WORKER is None:
            _WORKER = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="sdpcert-eigen")
        return _WORKER


# ----------------------------------------------------------------------------------------------------------------
# The autograd op
# ----------------------------------------------------------------------------------------------------------------

def _penalty_values(c: torch.Tensor, lam: torch.Tensor) -> torch.Tensor:
    D = c.shape[1]
    return D * torch.clamp(lam, min=0.0) + torch.clamp(c, min=0.0).sum(dim=1)


def _penalty_gradients(W: torch.Tensor, V: torch.Tensor, c: torch.Tensor, pairs_idx: torch.Tensor,
                       lam: torch.Tensor, u: torch.Tensor, g: torch.Tensor,
                       needs: tuple[bool, bool, bool] = (True, True, True)) -> tuple:
    """(dW, dV, dc) of ``sum_p g_p * penalty_p`` (module docstring); None where ``needs`` says not wanted. The
    autograd backward and the training step's off-thread path (``DualCertificateRegularizer.value_and_grads``)
    both use this one function."""
    m, d = W.shape
    D = 1 + m + d
    i_idx, j_idx = pairs_idx[:, 0], pairs_idx[:, 1]
    scale = g * D * (lam > 0).to(g.dtype)  # (P,)
    u0 = u[:, :1]
    us = u[:, 1:1 + m]
    ut = u[:, 1 + m:].contiguous()
    a2 = (u0 + us) * (2.0 * scale)[:, None]  # (P, m); the factor 2 and the scale ride on the small factor
    dW = dV = dc = None
    if needs[0]:
        vs = V[i_idx] - V[j_idx]  # (P, m)
        dW = (vs * a2).t() @ ut  # (m, d)
    if needs[1]:
        dv = (ut @ W.t()) * a2  # (P, m)
        dV = torch.zeros_like(V).index_add_(0, i_idx, dv).index_add_(0, j_idx, -dv)
    if needs[2]:
        dc = -(u * u) * scale[:, None] + g[:, None] * (c > 0).to(g.dtype)
    return dW, dV, dc


class _PairDualPenalty(torch.autograd.Function):
    @staticmethod
    def forward(ctx, W, V, c, pairs_idx, lam, u):  # noqa: D401 - autograd signature
        # lam (P,), u (P, D) are the precomputed top eigenpairs (no gradient through them; the backward is analytic).
        ctx.save_for_backward(W, V, c, pairs_idx, lam, u)
        return _penalty_values(c, lam)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, g):
        W, V, c, pairs_idx, lam, u = ctx.saved_tensors
        dW, dV, dc = _penalty_gradients(W, V, c, pairs_idx, lam, u, g, tuple(ctx.needs_input_grad[:3]))
        return dW, dV, dc, None, None, None


def pair_dual_penalty(W: torch.Tensor, V: torch.Tensor, c: torch.Tensor, pairs: Any, *, backend: str = "auto",
                      warm_start: Optional[EigenWarmStart] = None, tol: float = 1e-8, max_iter: int = 600,
                      info: Optional[dict] = None, dense_fallback: bool = True,
                      exact_residuals: bool = True, eigenpairs: Optional[Eigenpairs] = None) -> torch.Tensor:
    """Per-pair dual objective ``D * max(lambda_max(M_p - diag c_p), 0) + sum_k max(c_pk, 0)``, shape (P,).

    W: (m, d), V: (k, m), c: (P, D) with D = 1 + m + d, pairs: (P, 2) integer class pairs (i, j), v = V[i] - V[j].
    Differentiable w.r.t. W, V and c (analytic backward, see the module docstring). float32 and float64; the core
    backend computes in float64 and returns the input dtype.

    backend: 'auto' (core Lanczos for CPU tensors, torch eigh otherwise), 'core', or 'torch'.
    warm_start: an :class:`EigenWarmStart` (core backend) that supplies and receives eigenvectors per pair.
    info: optional dict that receives 'values', 'status', 'iterations', 'residuals' of the eigen solve.
    dense_fallback: False bounds the cost of a step: a pair not converged after max_iter Lanczos steps keeps its
    last Ritz pair (status 'not_converged') instead of a dense D x D eigensolve (seconds at D = 1285).
    exact_residuals: False reports the Lanczos residual estimates instead of recomputing ||A u - lambda u|| with
    one more batched matvec (core backend; training uses False).
    eigenpairs: the result of :func:`top_eigenpairs` for exactly these W, V, c and pairs, computed earlier (e.g. on
    a worker thread); the solve is then skipped.

    The value is an estimate (a Lanczos value is a lower bound on lambda_max): NOT a certificate -- use
    :func:`certified_dual_bounds` for reporting.
    """
    if eigenpairs is None:
        eigenpairs = top_eigenpairs(W, V, c, pairs, backend=backend, warm_start=warm_start, tol=tol,
                                    max_iter=max_iter, dense_fallback=dense_fallback, exact_residuals=exact_residuals)
        pairs_np = eigenpairs.info["pairs"]
    else:
        # Values were checked by the solve that produced eigenpairs; here shapes, dtypes, devices and pairs only.
        pairs_np, m, d, k = _check_inputs(W, V, c, pairs, values=False)
        if not isinstance(eigenpairs, Eigenpairs):
            raise SdpcertError(f"eigenpairs must come from top_eigenpairs; got {type(eigenpairs).__name__}")
        if not np.array_equal(eigenpairs.info.get("pairs"), pairs_np) or \
                tuple(eigenpairs.vectors.shape) != tuple(c.shape):
            raise SdpcertError("eigenpairs were computed for other pairs than the ones given")
    lam, u = eigenpairs.values, eigenpairs.vectors
    if info is not None:
        info.update(eigenpairs.info)
    pairs_idx = torch.as_tensor(pairs_np, device=W.device)
    return _PairDualPenalty.apply(W, V, c, pairs_idx, lam.to(W.device, W.dtype), u.to(W.device, W.dtype))


def certified_dual_bounds(W: Any, V: Any, c: Any, pairs: Any) -> dict[str, np.ndarray]:
    """PROVEN bounds for reporting: dict(lambda_bound (P,) >= lambda_max(M_p - diag c_p), dual_bound (P,) >= S_p).

    Runs the core's rigorous check in float64 (shifted Cholesky with Rump's rounding margin); inf where no proof was
    found. Accepts tensors or arrays."""
    if _core is None:
        raise SdpcertError("certified bounds need the compiled extension sdpcert._core, which is not available")

    def f64(name: str, x: Any) -> np.ndarray:
        if isinstance(x, torch.Tensor):
            x = x.detach().cpu().to(torch.float64).numpy()
        arr = np.asarray(x, dtype=np.float64)
        if arr.ndim != 2:
            raise ShapeError(f"{name} must be 2-D; got shape {arr.shape}")
        if not np.isfinite(arr).all():
            raise NonFiniteError(f"{name} holds NaN/inf entries")
        return np.ascontiguousarray(arr)

    W64, V64, c64 = f64("W", W), f64("V", V), f64("c", c)
    pairs_np = _as_pairs(pairs, V64.shape[0])
    with core_arguments("the certified eigenvalue bound refused its arguments"):
        out = _core.lambda_max_upper_bounds(W64, V64, pairs_np, c64)
    return {"lambda_bound": np.asarray(out["lambda_bound"]), "dual_bound": np.asarray(out["dual_bound"])}


# ----------------------------------------------------------------------------------------------------------------
# The regularizer module
# ----------------------------------------------------------------------------------------------------------------

class DualCertificateRegularizer(torch.nn.Module):
    """Owns the dual variables c_ij (one row of length D per class pair) and computes the SDP-NN penalty

        weight * sum_p w_p * (D * max(lambda_max(M_p - diag c_p), 0) + sum_k max(c_pk, 0))

    Usage: ``loss = task_loss + reg(model[0].weight, model[2].weight)`` (W: (m, d), V: (k, m)); put
    ``reg.parameters()`` in the optimizer so c is trained with the weights. Pairs are unordered (S_ij = S_ji with
    the same c, since flipping the sign of the t block is a similarity): ``(j, i)`` uses the row of ``(i, j)``.
    ``forward(W, V, pairs_subset)`` restricts to some pairs, e.g. ``reg.sample_pairs_sharing_class(gen)``
    (the paper's step: k - 1 pairs sharing a random class).

    The forward value is a training estimate. Report :meth:`certified_upper` instead (proven bounds).
    """

    def __init__(self, k: int, d: int, m: int, pairs: Any = "all", weight: float = 0.05, init_c: float = 0.0,
                 backend: str = "auto", tol: float = 1e-6, max_iter: int = 200, dense_fallback: bool = False) -> None:
        super().__init__()
        for name, val in (("k", k), ("d", d), ("m", m)):
            if not isinstance(val, (int, np.integer)) or isinstance(val, bool) or val < 1:
                raise SdpcertError(f"{name} must be a positive integer; got {val!r}")
        if k < 2:
            raise SdpcertError(f"k must be >= 2 classes; got {k}")
        for name, val in (("weight", weight), ("init_c", init_c), ("tol", tol)):
            if isinstance(val, (bool, np.bool_)) or not isinstance(val, (int, float, np.integer, np.floating)):
                raise SdpcertError(f"{name} must be a real number; got {val!r}")
        if not np.isfinite(weight) or weight < 0:
            raise SdpcertError(f"weight must be finite and >= 0; got {weight!r}")
        if not np.isfinite(init_c):
            raise NonFiniteError(f"init_c must be finite; got {init_c!r}")
        if not (np.isfinite(tol) and tol > 0):
            raise SdpcertError(f"tol must be positive and finite; got {tol!r}")
        if isinstance(max_iter, (bool, np.bool_)) or not isinstance(max_iter, (int, np.integer)) \
                or not 1 <= max_iter <= 2 ** 31 - 1:
            raise SdpcertError(f"max_iter must be an integer in [1, {2 ** 31 - 1}]; got {max_iter!r}")
        if backend not in ("auto", "core", "torch"):
            raise SdpcertError(f"backend must be 'auto', 'core' or 'torch'; got {backend!r}")
        self.k, self.d, self.m = int(k), int(d), int(m)
        self.D = 1 + self.m + self.d
        if isinstance(pairs, str):
            if pairs != "all":
                raise SdpcertError(f"pairs must be 'all' or a list of (i, j); got {pairs!r}")
            pair_arr = np.array(list(itertools.combinations(range(self.k), 2)), dtype=np.int64)
        else:
            pair_arr = _as_pairs(pairs, self.k)
        keys = [tuple(sorted((int(i), int(j)))) for i, j in pair_arr]
        if len(set(keys)) != len(keys):
            raise SdpcertError("pairs lists the same unordered class pair twice")
        self.pairs = np.array(keys, dtype=np.int64)  # canonical order i < j
        self._row = {key: r for r, key in enumerate(keys)}
        self.weight = float(weight)
        self.backend = backend
        self.tol = float(tol)
        self.max_iter = int(max_iter)
        # Training needs a good ascent direction each step, not an exact eigenpair: a bounded Lanczos run (warm
        # started from the previous step) keeps the step cost bounded as training clusters the top of the spectrum,
        # where a dense fallback cost seconds per pair (measured in an SDP-NN run). Reported numbers never come from
        # here (certified_upper).
        self.dense_fallback = bool(dense_fallback)
        # The step needs an ascent direction, not digits: float32 products with W halve the cost of a Lanczos step.
        self.float32_matvecs = True
        self.c = torch.nn.Parameter(torch.full((len(keys), self.D), float(init_c)))
        self.register_buffer("pair_weights", torch.ones(len(keys)))
        self.warm_start = EigenWarmStart()
        self.last_info: dict[str, Any] = {}

    @property
    def num_pairs(self) -> int:
        return int(self.pairs.shape[0])

    def rows_for(self, pairs: Any) -> np.ndarray:
        """Row indices of c for the given (i, j) pairs (either order); error for pairs the module does not own."""
        arr = _as_pairs(pairs, self.k)
        rows = []
        for i, j in arr:
            key = (min(int(i), int(j)), max(int(i), int(j)))
            if key not in self._row:
                raise SdpcertError(f"pair {key} is not one of this regularizer's pairs")
            rows.append(self._row[key])
        return np.array(rows, dtype=np.int64)

    def set_pair_weights(self, weights: Any) -> None:
        """Per-pair weights w_p: a (P,) array in the order of ``self.pairs``, or a dict {(i, j): w}."""
        if isinstance(weights, dict):
            w = self.pair_weights.detach().clone()
            for key, val in weights.items():
                w[int(self.rows_for([key])[0])] = float(val)
        else:
            w = torch.as_tensor(np.asarray(weights, dtype=np.float64), dtype=self.pair_weights.dtype)
            if tuple(w.shape) != (self.num_pairs,):
                raise ShapeError(f"pair weights must have shape ({self.num_pairs},); got {tuple(w.shape)}")
        if not bool(torch.isfinite(w).all()) or bool((w < 0).any()):
            raise SdpcertError("pair weights must be finite and >= 0")
        self.pair_weights.copy_(w.to(self.pair_weights.device))

    def sample_pairs_sharing_class(self, generator: Optional[torch.Generator] = None) -> list[tuple[int, int]]:
        """The k - 1 pairs (i, j), j != i, sharing a class i drawn uniformly (pairs this module doesn't own dropped)."""
        i = int(torch.randint(self.k, (1,), generator=generator).item())
        out = []
        for j in range(self.k):
            if j != i and (min(i, j), max(i, j)) in self._row:
                out.append((i, j))
        return out

    def _check_weights(self, W: torch.Tensor, V: torch.Tensor) -> None:
        if not isinstance(W, torch.Tensor) or not isinstance(V, torch.Tensor):
            raise SdpcertError("W and V must be torch tensors")
        if tuple(W.shape) != (self.m, self.d):
            raise ShapeError(f"W must have shape (m, d) = ({self.m}, {self.d}); got {tuple(W.shape)}")
        if tuple(V.shape) != (self.k, self.m):
            raise ShapeError(f"V must have shape (k, m) = ({self.k}, {self.m}); got {tuple(V.shape)}")

    def _solve(self, W: torch.Tensor, V: torch.Tensor, rows: np.ndarray, threads: int = 0) -> Eigenpairs:
        with torch.no_grad():
            c = self.c.detach().index_select(0, torch.as_tensor(rows, device=self.c.device))
            c = c.to(device=W.device, dtype=W.dtype)
        return top_eigenpairs(W.detach(), V.detach(), c, self.pairs[rows], backend=self.backend,
                              warm_start=self.warm_start, tol=self.tol, max_iter=self.max_iter,
                              dense_fallback=self.dense_fallback, exact_residuals=False, threads=threads,
                              float32_matvecs=self.float32_matvecs)

    def solve_async(self, W: torch.Tensor, V: torch.Tensor,
                    pairs_subset: Any = None) -> "concurrent.futures.Future[Eigenpairs]":
        """Start this step's eigen solve on a worker thread; pass the future to ``forward(..., eigenpairs=...)``.

        On a machine with a spare core the solve then costs (almost) nothing: the C++ Lanczos releases the GIL and
        runs while torch computes the task loss and its backward. W, V and c must not change in place before the
        result is used (an optimizer step belongs after the forward). The torch backend (CUDA) solves at once."""
        self._check_weights(W, V)
        rows = np.arange(self.num_pairs) if pairs_subset is None else self.rows_for(pairs_subset)
        return self._submit(W.device, self._solve, W, V, rows)

    def value_and_grads(self, W: torch.Tensor, V: torch.Tensor, pairs_subset: Any = None,
                        threads: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, np.ndarray]:
        """``(value, dW, dV, dc, rows)``: this module's forward value and its gradients w.r.t. W, V and c[rows],
        without autograd -- the same numbers as ``forward(...).backward()`` (one shared gradient function), for a
        training step that computes them on a worker thread (:meth:`value_and_grads_async`) and adds them to the
        .grad fields itself. No graph is built and nothing is written to any .grad here."""
        self._check_weights(W, V)
        rows = np.arange(self.num_pairs) if pairs_subset is None else self.rows_for(pairs_subset)
        if self._fused_step_applies(W):
            return self._value_and_grads_core(W, V, rows)
        eig = self._solve(W, V, rows, threads)
        with torch.no_grad():
            rows_t = torch.as_tensor(rows, device=self.c.device)
            c = self.c.detach().index_select(0, rows_t).to(device=W.device, dtype=W.dtype)
            w = self.pair_weights.index_select(0, rows_t).to(device=W.device, dtype=W.dtype)
            g = self.weight * w
            lam, u = eig.values.to(W.device, W.dtype), eig.vectors.to(W.device, W.dtype)
            pairs_idx = torch.as_tensor(self.pairs[rows], device=W.device)
            value = (g * _penalty_values(c, lam)).sum()
            dW, dV, dc = _penalty_gradients(W.detach(), V.detach(), c, pairs_idx, lam, u, g)
        self.last_info = dict(eig.info)
        return value, dW, dV, dc, rows

    def _fused_step_applies(self, W: torch.Tensor) -> bool:
        """The one-call C++ path: core backend, float32 CPU weights, float32 products, no dense fallback."""
        return (_choose_backend(self.backend, W.device) == "core" and W.dtype == torch.float32
                and self.float32_matvecs and not self.dense_fallback)

    def _value_and_grads_core(self, W: torch.Tensor, V: torch.Tensor, rows: np.ndarray) -> tuple:
        # Inputs are gathered with a handful of small ops; everything else is one C++ call without the GIL.
        pairs = self.pairs[rows]
        with torch.no_grad():
            rows_t = torch.as_tensor(rows, device=self.c.device)
            c64 = self.c.detach().index_select(0, rows_t).to(torch.float64).numpy()
            g = (self.weight * self.pair_weights.index_select(0, rows_t)).to(torch.float64).numpy()
            W32 = W.detach().contiguous().numpy()
            V64 = V.detach().to(torch.float64).numpy()
        start = self.warm_start.start_for(pairs, self.D)
        out = _core.pair_penalty_step(W32, V64, pairs, c64, g, start=start, tol=self.tol, max_iter=self.max_iter)
        info = {"status": list(out["status"]), "iterations": np.asarray(out["iterations"]),
                "residuals": np.asarray(out["residuals"]), "values": np.asarray(out["values"]), "backend": "core",
                "pairs": pairs}
        self.warm_start.update(pairs, np.asarray(out["vectors"]), info)
        self.last_info = info
        value = torch.tensor(float(out["value"]), dtype=W.dtype)
        dW = torch.from_numpy(np.asarray(out["dW"]))
        dV = torch.from_numpy(np.asarray(out["dV"])).to(V.dtype)
        dc = torch.from_numpy(np.asarray(out["dc"])).to(self.c.dtype)
        return value, dW, dV, dc, rows

    def _submit(self, device: torch.device, fn: Any, *args: Any) -> "concurrent.futures.Future":
        """``fn(*args, threads)`` on the worker thread with one Lanczos thread (the other core is torch's), or at
        once, as a completed future, for the torch backend (CUDA kernels are asynchronous anyway)."""
        if _choose_backend(self.backend, device) != "core":
            done: concurrent.futures.Future = concurrent.futures.Future()
            done.set_result(fn(*args, 0))
            return done
        return _eigen_worker().submit(fn, *args, 1)

    def value_and_grads_async(self, W: torch.Tensor, V: torch.Tensor,
                              pairs_subset: Any = None) -> "concurrent.futures.Future":
        """:meth:`value_and_grads` on the worker thread (one Lanczos thread: the other core is torch's). W, V, c and
        the pair weights must not change in place before the result is used."""
        return self._submit(W.device, self.value_and_grads, W, V, pairs_subset)

    def per_pair(self, W: torch.Tensor, V: torch.Tensor, pairs_subset: Any = None,
                 eigenpairs: Any = None) -> tuple[torch.Tensor, np.ndarray]:
        """(values (Q,), rows (Q,)) of the unweighted penalty for the chosen pairs (all owned pairs by default).

        eigenpairs: an :class:`Eigenpairs` or the future from :meth:`solve_async` for the same pairs."""
        self._check_weights(W, V)
        rows = np.arange(self.num_pairs) if pairs_subset is None else self.rows_for(pairs_subset)
        if isinstance(eigenpairs, concurrent.futures.Future):
            eigenpairs = eigenpairs.result()
        if eigenpairs is None:
            eigenpairs = self._solve(W, V, rows)
        rows_t = torch.as_tensor(rows, device=self.c.device)
        c = self.c.index_select(0, rows_t).to(device=W.device, dtype=W.dtype)
        info: dict[str, Any] = {}
        values = pair_dual_penalty(W, V, c, self.pairs[rows], info=info, eigenpairs=eigenpairs)
        self.last_info = info
        return values, rows

    def forward(self, W: torch.Tensor, V: torch.Tensor, pairs_subset: Any = None,
                eigenpairs: Any = None) -> torch.Tensor:
        values, rows = self.per_pair(W, V, pairs_subset, eigenpairs)
        w = self.pair_weights[torch.as_tensor(rows, device=self.pair_weights.device)].to(values.device, values.dtype)
        return self.weight * (w * values).sum()

    def certified_upper(self, W: Any, V: Any, pairs_subset: Any = None) -> np.ndarray:
        """PROVEN upper bounds on the pair SDP values S_ij from the current c (float64 numpy, (Q,)).

        This is the rigorous "dual certificate" of eq. 16: lambda_max is bounded above by the core's shifted
        Cholesky proof, never by the Lanczos estimate used in training. inf where no proof was found."""
        rows = np.arange(self.num_pairs) if pairs_subset is None else self.rows_for(pairs_subset)
        c = self.c.detach()[torch.as_tensor(rows, device=self.c.device)]
        return certified_dual_bounds(W, V, c, self.pairs[rows])["dual_bound"]
