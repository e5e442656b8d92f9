"""Per-pair growth coefficients of the margin over the l_inf ball: for every pair (i, j), a proven G[i, j] with

    f_i(x') - f_j(x') <= f_i(x) - f_j(x) + eps * G[i, j]   for all x' with ||x' - x||_inf <= eps.

The certificate of any growth-matrix method is then the same computation (margins.py). Methods (paper §3, §5;
docs/design.md §2):
  sdp        G = (L/4) S_ij, S_ij the pair SDP value's proven upper bound (Raghunathan et al. 2018, eq. 10-11)
  spectral   G = L sqrt(d) ||W||_2 ||V_i - V_j||_2        (||grad||_1 <= sqrt(d) ||grad||_2)
  frobenius  G = L sqrt(d) ||W||_F ||V_i - V_j||_2
Each coefficient is rounded up so that it bounds the exact real-arithmetic quantity, underflow included (the
rounding model of rounding.py: products and quotients that land in the subnormal range carry an absolute error, so
norms are balanced by exact powers of two before squaring and every product is rounded up with an absolute
allowance). Overflow gives +inf ("not certified"), never a smaller coefficient. A zero coefficient is exact: a pair
of identical classes (or a zero proven S_ij) has a margin that does not move.
"""

from __future__ import annotations

import math

import numpy as np

from ..errors import core_arguments
from ..model.network import TwoLayerNet
from .rounding import UNIT_ROUNDOFF, l2_norm_upper, round_up

__all__ = ["spectral_growth", "frobenius_growth", "sdp_growth", "pair_norms_upper", "spectral_norm_upper",
           "frobenius_norm_upper"]


def pair_norms_upper(net: TwoLayerNet) -> np.ndarray:
    """(k, k) proven upper bounds on ||V_i - V_j||_2 (zero diagonal), for weights of any magnitude."""
    V = net.V
    with np.errstate(over="ignore"):
        # One rounding per entry, never an underflow (a difference of floats in the subnormal range is exact):
        # |exact - computed| <= u |computed| (round to nearest). An overflow gives inf, and the bound +inf.
        diff = V[:, None, :] - V[None, :, :]
    # Norms of the float differences, balanced by powers of two so the squares neither underflow nor overflow.
    norms = l2_norm_upper(diff)
    # A zero row is an exact zero difference (equal classes): exactly 0, kept so (the rounding would add TINY).
    return np.where(norms == 0, 0.0, round_up(norms * (1.0 + UNIT_ROUNDOFF), 1))


def spectral_norm_upper(net: TwoLayerNet) -> float:
    """Proven upper bound on ||W||_2: an SVD estimate made rigorous by a shifted Cholesky in the C++ core."""
    from .. import _core  # the compiled core is loaded on first use: importing sdpcert does not need it

    # sqrt(lambda_max(W W^T)) from the smaller Gram matrix: an estimate only (the proof follows), and unlike an SVD
    # it stays fast when the BLAS threads compete for the cores (measured: 0.07 s vs 0.8-1.6 s under load). W is
    # first scaled by a power of two to max|W| in [0.5, 1): unscaled, W W^T overflows for |W| ~ 1e160 (eigvalsh then
    # raises) and underflows for |W| ~ 1e-170. Bits lost in the subnormals only blur the estimate; the core balances
    # and proves on its own.
    W = np.asarray(net.W, dtype=np.float64)
    w_max = float(np.abs(W).max()) if W.size else 0.0
    estimate = 0.0
    if w_max > 0.0:
        exponent = math.frexp(w_max)[1]
        with np.errstate(under="ignore"):
            Ws = np.ldexp(W, -exponent)
            gram = Ws @ Ws.T if Ws.shape[0] <= Ws.shape[1] else Ws.T @ Ws
        scaled = math.sqrt(max(float(np.linalg.eigvalsh(gram)[-1]), 0.0))
        # scaled <= ||Ws||_F < sqrt(m d), so math.ldexp can only overflow when the norm exceeds the double range (the
        # bound is +inf then anyway): pass the largest float instead, which the core scales back down exactly.
        fits = scaled == 0.0 or math.frexp(scaled)[1] + exponent <= 1024
        estimate = math.ldexp(scaled, exponent) if fits else float(np.finfo(np.float64).max)
    with core_arguments("the spectral norm bound refused its arguments"):
        bound = float(_core.spectral_norm_upper_bound(W, estimate))
    if not math.isfinite(bound):  # pragma: no cover - only for pathological W
        bound = frobenius_norm_upper(net)
    return bound


def frobenius_norm_upper(net: TwoLayerNet) -> float:
    """Proven upper bound on ||W||_F, for weights of any magnitude (balanced before squaring; +inf on overflow)."""
    return float(l2_norm_upper(np.asarray(net.W).ravel()))


def _norm_growth(net: TwoLayerNet, w_norm: float) -> np.ndarray:
    # L sqrt(d) ||W||: sqrt(d) >= 1 and L in {1, 1/4}; the product with w_norm is the only one that can underflow
    # and it is the last, so round_up's absolute allowance covers it. inf (an overflowed norm) stays inf.
    scale = round_up(net.lipschitz * math.sqrt(net.d) * w_norm, 4)
    pair_norms = pair_norms_upper(net)
    # scale and pair_norms are both proven >= their exact values before this last product (one rounding); inf * 0
    # would be NaN, but a zero pair norm is exact, so its coefficient is exactly 0.
    with np.errstate(invalid="ignore", over="ignore"):
        growth = round_up(scale * pair_norms, 2)
    return np.where(pair_norms == 0, 0.0, growth)


def spectral_growth(net: TwoLayerNet) -> np.ndarray:
    """(k, k) growth coefficients of the spectral bound."""
    return _norm_growth(net, spectral_norm_upper(net))


def frobenius_growth(net: TwoLayerNet) -> np.ndarray:
    """(k, k) growth coefficients of the Frobenius bound."""
    return _norm_growth(net, frobenius_norm_upper(net))


def sdp_growth(net: TwoLayerNet, sdp_upper: np.ndarray) -> np.ndarray:
    """(k, k) growth coefficients of the SDP certificate from the proven upper bounds S_ij (paper eq. 10-11).

    0.25 L is exact (L in {1, 1/4}); its product with S_ij is one rounding, which may underflow: round_up adds the
    absolute allowance. An S_ij of +inf (a pair the solver could not bound) stays +inf, NaN becomes +inf, and a
    proven S_ij = 0 (the SDP value is >= 0) gives exactly 0."""
    sdp_upper = np.asarray(sdp_upper, dtype=np.float64)
    with np.errstate(invalid="ignore", over="ignore"):
        growth = round_up(0.25 * net.lipschitz * sdp_upper, 2)
    return np.where(sdp_upper == 0, 0.0, growth)
