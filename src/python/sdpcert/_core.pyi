"""Type stubs for the compiled core (src/cpp/bindings.cpp). Arrays are float64 unless noted; D = 1 + m + d."""

from typing import Any, Optional, Sequence

import numpy as np
import numpy.typing as npt

has_openmp: bool

def available_threads() -> int: ...
def pair_matrix(W: npt.ArrayLike, v: npt.ArrayLike, c: Optional[npt.ArrayLike] = None) -> np.ndarray:
    """Dense M(v) - diag(c), (D, D)."""

def apply_pair_operator(W: npt.ArrayLike, vs: npt.ArrayLike, cs: Optional[npt.ArrayLike], X: npt.ArrayLike) -> np.ndarray:
    """Row p: (M(vs[p]) - diag(cs[p])) @ X[p]; (P, D)."""

def top_eigenpairs(
    W: npt.ArrayLike,
    V: npt.ArrayLike,
    pairs: npt.ArrayLike,
    cs: npt.ArrayLike,
    tol: float = 1e-8,
    max_iter: int = 600,
    basis_size: int = 48,
    start: Optional[npt.ArrayLike] = None,
    seed: int = 0,
    threads: int = 0,
    dense_fallback: bool = True,
    exact_residuals: bool = True,
    float32_matvecs: bool = False,
) -> dict[str, Any]:
    """Batched Lanczos: values (P,), vectors (P, D), residuals, iterations, status (list of str). Estimates only."""

def pair_penalty_step(
    W: npt.ArrayLike,
    V: npt.ArrayLike,
    pairs: npt.ArrayLike,
    cs: npt.ArrayLike,
    g: npt.ArrayLike,
    start: Optional[npt.ArrayLike] = None,
    tol: float = 1e-6,
    max_iter: int = 8,
    seed: int = 0,
) -> dict[str, Any]:
    """One training step's penalty value and gradients (dW float32 (m, d), dV, dc), GIL released. Estimates."""

def lambda_max_upper_bounds(
    W: npt.ArrayLike, V: npt.ArrayLike, pairs: npt.ArrayLike, cs: npt.ArrayLike, threads: int = 0
) -> dict[str, np.ndarray]:
    """Proven lambda_max(M - diag c) bounds (lambda_bound) and pair SDP upper bounds from c (dual_bound), for weights
    of any magnitude (W and v are balanced by exact powers of two first); +inf where no proof was found or the bound
    exceeds the double range, never NaN."""

def spectral_norm_upper_bound(W: npt.ArrayLike, estimate: float) -> float:
    """Proven upper bound on ||W||_2 from an estimate of it (any finite estimate >= 0: a poor one only costs
    tightness); W of any magnitude (balanced by a power of two first); +inf if the norm exceeds the double range."""

def solve_pair_sdps(
    W: npt.ArrayLike,
    V: npt.ArrayLike,
    pairs: npt.ArrayLike,
    rel_tol: float = 1e-6,
    max_sweeps: int = 3000,
    rank: int = 8,
    seed: int = 0,
    warm: Optional[Sequence[npt.ArrayLike]] = None,
    threads: int = 0,
    return_factors: bool = False,
    relaxation: float = 1.8,
) -> dict[str, Any]:
    """Pair SDP values: lower, upper (proven), dual (P, D), lambda_bound, sweeps, rank, proof_attempts, seconds,
    status[, factors]. W and each V_i - V_j are balanced by exact powers of two for the solve (subnormal-scale and
    huge weights solve like ordinary ones) and the results scaled back, proven bounds rounded up; an upper bound
    beyond the double range is +inf with status 'not_certified' and a NaN dual row."""
