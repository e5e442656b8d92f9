"""Type stubs for the compiled core (bindings in src/cpp/bindings/, numerics in src/cpp/include/sdpcert/).

Arrays are float64 unless noted; P = number of pairs, D = 1 + m + d. Every result is a plain dict: the TypedDicts
below name its keys (stable API) and value types; they exist for type checkers only (import them under
``typing.TYPE_CHECKING``)."""

from typing import List, Optional, Sequence, TypedDict

import numpy as np
import numpy.typing as npt

has_openmp: bool

class EigenpairsDict(TypedDict):
    """top_eigenpairs: the top Ritz pair of each pair operator (estimates, not bounds)."""

    values: np.ndarray  # (P,)
    vectors: np.ndarray  # (P, D), unit rows
    residuals: np.ndarray  # (P,) ||A x - theta x||
    iterations: np.ndarray  # (P,) int32, matvecs used
    status: List[str]  # 'converged' | 'dense_small' | 'dense_fallback' | 'not_converged'

class PenaltyStepDict(EigenpairsDict):
    """pair_penalty_step: the Lanczos result plus the penalty value and its gradients (estimates)."""

    value: float
    dW: np.ndarray  # (m, d) float32
    dV: np.ndarray  # (k, m)
    dc: np.ndarray  # (P, D)

class LambdaBoundsDict(TypedDict):
    """lambda_max_upper_bounds: proven bounds, +inf where no proof was found, never NaN."""

    lambda_bound: np.ndarray  # (P,) lambda_max(M - diag c) <= lambda_bound
    dual_bound: np.ndarray  # (P,) S_ij <= dual_bound

class _PairSdpRequired(TypedDict):
    lower: np.ndarray  # (P,) S_ij >= lower
    upper: np.ndarray  # (P,) proven S_ij <= upper (+inf: not certified)
    dual: np.ndarray  # (P, D) the certified dual vector c (NaN rows where none)
    lambda_bound: np.ndarray  # (P,) proven lambda_max(M - diag dual) <= lambda_bound
    sweeps: np.ndarray  # (P,) int32
    rank: np.ndarray  # (P,) int32
    proof_attempts: np.ndarray  # (P,) int32
    seconds: np.ndarray  # (P,)
    status: List[str]  # 'converged' | 'max_sweeps' | 'zero_pair' | 'not_certified'

class PairSdpDict(_PairSdpRequired, total=False):
    """solve_pair_sdps; 'factors' only with return_factors=True."""

    factors: List[np.ndarray]  # P factors (D, rank), unit rows

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
) -> EigenpairsDict:
    """Batched Lanczos: values (P,), vectors (P, D), residuals, iterations, status (list of str). Estimates only.

    W is read in place when it is float64 in C or Fortran order. float32_matvecs: products with W in float32; with
    exact_residuals the values are float64 Rayleigh quotients, the residuals exact float64 ones, and a pair that
    misses tol is finished in float64 (same tolerance as float64 products)."""

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
) -> PenaltyStepDict:
    """One training step's penalty value and gradients (dW float32 (m, d), dV, dc), GIL released. Estimates."""

def lambda_max_upper_bounds(
    W: npt.ArrayLike, V: npt.ArrayLike, pairs: npt.ArrayLike, cs: npt.ArrayLike, threads: int = 0
) -> LambdaBoundsDict:
    """Proven lambda_max(M - diag c) bounds (lambda_bound) and pair SDP upper bounds from c (dual_bound), for weights
    of any magnitude (W and v are balanced by exact powers of two first); +inf where no proof was found or the bound
    exceeds the double range, never NaN. All +inf when the calling thread flushes subnormals to zero (e.g. after
    torch.set_flush_denormal(True)): the proofs need gradual underflow."""

def spectral_norm_upper_bound(W: npt.ArrayLike, estimate: float) -> float:
    """Proven upper bound on ||W||_2 from an estimate of it (any finite estimate >= 0: a poor one only costs
    tightness); W of any magnitude (balanced by a power of two first); +inf if the norm exceeds the double range, or
    when the calling thread flushes subnormals to zero (the proof needs gradual underflow)."""

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
    anderson: int = 5,
    proof_schedule: bool = True,
    refined_sweeps: bool = True,
) -> PairSdpDict:
    """Pair SDP values: lower, upper (proven), dual (P, D), lambda_bound, sweeps, rank, proof_attempts, seconds,
    status[, factors]. anderson: memory of the Anderson acceleration of the sweeps on hard pairs (those whose rank
    grew, or past 60 sweeps; 0: off); proof_schedule: after a failed proof, prove again as soon as the proxy gap
    predicts success; refined_sweeps: after the float32 phase, sweep with float32 products of the change since the last
    float64 sweep (every 10th sweep is float64, and only those set `lower`). All three change only the solver's path,
    never what the bounds mean. W and each V_i - V_j are
    balanced by exact powers of two for the solve (subnormal-scale and huge weights solve like ordinary ones) and
    the results scaled back, proven bounds rounded up; an upper bound beyond the double range is +inf with status
    'not_certified' and a NaN dual row. When the calling thread flushes
    subnormals to zero (e.g. after torch.set_flush_denormal(True)) nothing is solved: every pair is 'not_certified'
    with lower 0 and upper +inf."""
