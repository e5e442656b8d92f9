"""The SDP dual penalty as a differentiable torch op, and the proven bounds for reporting.

For a class pair (i, j), ``v = V[i] - V[j]`` and the symmetric ``D x D`` matrix ``M(v)`` of docs/design.md §2
(``D = 1 + m + d``, blocks ordered 1, s (m), t (d)), the dual of the pair SDP gives, for every ``c`` in R^D,

    S_ij <= D * max(lambda_max(M - diag c), 0) + sum_k max(c_k, 0)                      (eq. 16 of the paper)

:func:`pair_dual_penalty` returns the right-hand side for a batch of pairs as a differentiable function of W, V and
c. Its backward is analytic (docs/design.md §2): with ``u = [u0; us; ut]`` the top unit eigenvector of
``M - diag c``,

    d lambda / d v = 2 (W ut) * (u0 + us),   d lambda / d W = 2 (v * (u0 + us)) ut^T,   d lambda / d c = -u * u,

times D where lambda > 0 (0 otherwise), plus the indicator 1[c > 0] from ``sum max(c, 0)``; ``dv`` flows to V[i]
with + and to V[j] with -. When the top eigenvalue is repeated, ``u`` is one vector of the eigenspace and the result
is a (Clarke) subgradient, not a gradient. At lambda == 0 exactly the max(., 0) kink takes the 0 branch.
The eigenpairs come from :mod:`.eigen` (compiled Lanczos for CPU tensors, torch eigh otherwise).

SOUNDNESS: the value returned here is an ESTIMATE for training. A Lanczos Ritz value is a *lower* bound on
lambda_max (up to rounding), so the penalty value may be slightly *below* the true dual objective for this c and must
never be reported as a certificate. For reporting use :func:`certified_dual_bounds` (or
:meth:`DualCertificateRegularizer.certified_upper`), which calls ``_core.lambda_max_upper_bounds``: a proven upper
bound on lambda_max (shifted Cholesky with a rounding margin) and hence a proven upper bound on S_ij.
"""

from __future__ import annotations

import concurrent.futures
import threading
from typing import Any, Optional

import numpy as np
import torch

from ..errors import NonFiniteError, SdpcertError, ShapeError, core_arguments
from .._checks import check_pairs
from .checks import check_inputs
from .eigen import EigenWarmStart, Eigenpairs, require_core, top_eigenpairs
from .threads import single_torch_thread

__all__ = ["pair_dual_penalty", "certified_dual_bounds", "penalty_values", "penalty_gradients", "eigen_worker",
           "weighted_pair_penalty", "check_eigenpairs"]


# One worker thread for the eigen solves of training steps (the C++ core releases the GIL while it computes).
_WORKER_LOCK = threading.Lock()
_WORKER: Optional[concurrent.futures.ThreadPoolExecutor] = None


def eigen_worker() -> concurrent.futures.ThreadPoolExecutor:
    """The one worker thread (created on first use) that runs the eigen solves of training steps."""
    global _WORKER
    with _WORKER_LOCK:
        if _WORKER is None:
            _WORKER = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="sdpcert-eigen")
        return _WORKER


def penalty_values(c: torch.Tensor, lam: torch.Tensor) -> torch.Tensor:
    """``D * max(lam, 0) + sum max(c, 0)`` per pair, from the top eigenvalues ``lam`` (P,) and ``c`` (P, D)."""
    D = c.shape[1]
    return D * torch.clamp(lam, min=0.0) + torch.clamp(c, min=0.0).sum(dim=1)


def penalty_gradients(W: torch.Tensor, V: torch.Tensor, c: torch.Tensor, pairs_idx: torch.Tensor,
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
        return penalty_values(c, lam)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, g):
        W, V, c, pairs_idx, lam, u = ctx.saved_tensors
        # A few small products: on one torch thread, whatever the caller set (sdpcert.torch.threads).
        with single_torch_thread(W.device.type == "cpu"):
            dW, dV, dc = penalty_gradients(W, V, c, pairs_idx, lam, u, g, tuple(ctx.needs_input_grad[:3]))
        return dW, dV, dc, None, None, None


class _WeightedPairPenalty(torch.autograd.Function):
    """``weight * sum_p w_p penalty_p`` over the rows ``rows_t`` of the full ``c``: the gather of c's rows, the pair
    weights and the sum in one node, so that the penalty's whole backward (including the scatter into c's gradient)
    runs inside it on one torch thread -- as separate autograd nodes they ran on torch's team, which stalls on
    oversubscribed cores (measured: 30-110 ms instead of 1.5 ms per step on 2 busy cores)."""

    @staticmethod
    def forward(ctx, W, V, c_full, rows_t, pairs_idx, lam, u, w, weight):  # noqa: D401 - autograd signature
        with single_torch_thread(W.device.type == "cpu"):
            c = c_full.index_select(0, rows_t).to(device=W.device, dtype=W.dtype)
            values = penalty_values(c, lam)
            w = w.to(values.device, values.dtype)
            ctx.save_for_backward(W, V, c, rows_t, pairs_idx, lam, u, w)
            ctx.weight = weight
            ctx.c_full = (tuple(c_full.shape), c_full.dtype, c_full.device)
            return weight * (w * values).sum()

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, g_out):
        W, V, c, rows_t, pairs_idx, lam, u, w = ctx.saved_tensors
        with single_torch_thread(W.device.type == "cpu"):
            g = (g_out * ctx.weight) * w  # the chain rule through weight * sum(w * values), in autograd's order
            dW, dV, dc = penalty_gradients(W, V, c, pairs_idx, lam, u, g, tuple(ctx.needs_input_grad[:3]))
            if dc is not None:
                shape, dtype, device = ctx.c_full
                dc = torch.zeros(shape, dtype=dtype, device=device).index_add_(0, rows_t, dc.to(device, dtype))
        return dW, dV, dc, None, None, None, None, None, None


def weighted_pair_penalty(W: torch.Tensor, V: torch.Tensor, c_full: torch.Tensor, rows: Any, pairs: Any,
                          eigenpairs: Eigenpairs, w: torch.Tensor, weight: float) -> torch.Tensor:
    """``weight * sum_p w_p * (D max(lambda_p, 0) + sum max(c_p, 0))`` with ``c_p = c_full[rows[p]]`` for the class
    pairs ``pairs`` (P, 2) and their precomputed ``eigenpairs`` (see :func:`check_eigenpairs`); differentiable
    w.r.t. W, V and c_full in one autograd node (:class:`_WeightedPairPenalty`). ``w`` (P,): pair weights. The
    regularizer's forward. An ESTIMATE for training, like :func:`pair_dual_penalty`."""
    rows_t = torch.as_tensor(np.asarray(rows, dtype=np.int64), device=c_full.device)
    pairs_idx = torch.as_tensor(np.asarray(pairs, dtype=np.int64), device=W.device)
    lam, u = eigenpairs.values.to(W.device, W.dtype), eigenpairs.vectors.to(W.device, W.dtype)
    return _WeightedPairPenalty.apply(W, V, c_full, rows_t, pairs_idx, lam, u, w, float(weight))


def check_eigenpairs(W: Any, V: Any, c: Any, pairs: Any, eigenpairs: Any) -> np.ndarray:
    """The (P, 2) pairs once ``eigenpairs`` is an :class:`Eigenpairs` from :func:`top_eigenpairs` for exactly these
    pairs and a c of this shape (W, V, c: shapes, dtypes and devices only; the solve checked the values)."""
    pairs_np, m, d, k = check_inputs(W, V, c, pairs, values=False)
    if not isinstance(eigenpairs, Eigenpairs):
        raise SdpcertError(f"eigenpairs must come from top_eigenpairs; got {type(eigenpairs).__name__}")
    if not np.array_equal(eigenpairs.info.get("pairs"), pairs_np) or \
            tuple(eigenpairs.vectors.shape) != tuple(c.shape):
        raise SdpcertError("eigenpairs were computed for other pairs than the ones given")
    return pairs_np


def pair_dual_penalty(W: torch.Tensor, V: torch.Tensor, c: torch.Tensor, pairs: Any, *, backend: str = "auto",
                      warm_start: Optional[EigenWarmStart] = None, tol: float = 1e-8, max_iter: int = 600,
                      info: Optional[dict] = None, dense_fallback: bool = True,
                      exact_residuals: bool = True, eigenpairs: Optional[Eigenpairs] = None,
                      threads: int = 1) -> torch.Tensor:
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
    threads: core threads of the eigen solve (default 1: no OpenMP team to stall on oversubscribed cores; 0: all).
    The op's own torch work runs on one torch thread whatever ``torch.set_num_threads`` says
    (:mod:`sdpcert.torch.threads`).

    The value is an estimate (a Lanczos value is a lower bound on lambda_max): NOT a certificate -- use
    :func:`certified_dual_bounds` for reporting.
    """
    if eigenpairs is None:
        with single_torch_thread(isinstance(W, torch.Tensor) and W.device.type == "cpu"):
            eigenpairs = top_eigenpairs(W, V, c, pairs, backend=backend, warm_start=warm_start, tol=tol,
                                        max_iter=max_iter, dense_fallback=dense_fallback,
                                        exact_residuals=exact_residuals, threads=threads)
        pairs_np = eigenpairs.info["pairs"]
    else:
        # Values were checked by the solve that produced eigenpairs; here shapes, dtypes, devices and pairs only.
        pairs_np = check_eigenpairs(W, V, c, pairs, eigenpairs)
    lam, u = eigenpairs.values, eigenpairs.vectors
    if info is not None:
        info.update(eigenpairs.info)
    pairs_idx = torch.as_tensor(pairs_np, device=W.device)
    return _PairDualPenalty.apply(W, V, c, pairs_idx, lam.to(W.device, W.dtype), u.to(W.device, W.dtype))


def certified_dual_bounds(W: Any, V: Any, c: Any, pairs: Any) -> dict[str, np.ndarray]:
    """PROVEN bounds for reporting: dict(lambda_bound (P,) >= lambda_max(M_p - diag c_p), dual_bound (P,) >= S_p).

    Runs the core's rigorous check in float64 (shifted Cholesky with Rump's rounding margin); inf where no proof was
    found. Accepts tensors or arrays."""
    core = require_core("certified bounds need")

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
    pairs_np = check_pairs(pairs, V64.shape[0])
    with core_arguments("the certified eigenvalue bound refused its arguments"):
        out = core.lambda_max_upper_bounds(W64, V64, pairs_np, c64)
    return {"lambda_bound": np.asarray(out["lambda_bound"]), "dual_bound": np.asarray(out["dual_bound"])}
