"""Per-pair growth coefficients of the margin over the l_inf ball: for every pair (i, j), a proven G[i, j] with

    f_i(x') - f_j(x') <= f_i(x) - f_j(x) + eps * G[i, j]   for all x' with ||x' - x||_inf <= eps.

The certificate of any method is then the same computation (certify.py). Methods (paper §3, §5):
  sdp        G = (L/4) S_ij, S_ij the pair SDP value's proven upper bound (DESIGN §1)
  spectral   G = L sqrt(d) ||W||_2 ||V_i - V_j||_2        (||grad||_1 <= sqrt(d) ||grad||_2)
  frobenius  G = L sqrt(d) ||W||_F ||V_i - V_j||_2
Each coefficient is rounded up so that it bounds the exact real-arithmetic quantity.
"""

from __future__ import annotations

import math

import numpy as np

from ._rounding import UNIT_ROUNDOFF, round_up
from .network import TwoLayerNet

__all__ = ["spectral_growth", "frobenius_growth", "sdp_growth", "pair_norms_upper", "spectral_norm_upper"]


def pair_norms_upper(net: TwoLayerNet) -> np.ndarray:
    """(k, k) proven upper bounds on ||V_i - V_j||_2 (zero diagonal)."""
    V = net.V
    diff = V[:, None, :] - V[None, :, :]  # each entry one rounding: |exact| <= |computed| (1 + u/(1-u))
    norms = np.sqrt(np.sum(diff * diff, axis=-1))
    # sum of m squares (m + 1 roundings, with the squaring), the sqrt (half a relative error), the difference.
    return round_up(norms * (1.0 + 2.0 * UNIT_ROUNDOFF), net.m + 4)


def spectral_norm_upper(net: TwoLayerNet) -> float:
    """Proven upper bound on ||W||_2: an SVD estimate made rigorous by a shifted Cholesky in the C++ core."""
    from . import _core

    # sqrt(lambda_max(W W^T)) from the smaller Gram matrix: an estimate only (the proof follows), and unlike an SVD
    # it stays fast when the BLAS threads compete for the cores (measured: 0.07 s vs 0.8-1.6 s under load).
    W = np.asarray(net.W)
    gram = W @ W.T if W.shape[0] <= W.shape[1] else W.T @ W
    estimate = float(np.sqrt(max(float(np.linalg.eigvalsh(gram)[-1]), 0.0)))
    bound = float(_core.spectral_norm_upper_bound(np.asarray(net.W), estimate))
    if not math.isfinite(bound):  # pragma: no cover - only for pathological W
        bound = frobenius_norm_upper(net)
    return bound


def frobenius_norm_upper(net: TwoLayerNet) -> float:
    """Proven upper bound on ||W||_F."""
    return float(round_up(math.sqrt(float(np.sum(net.W * net.W))), net.m * net.d + 4))


def _norm_growth(net: TwoLayerNet, w_norm: float) -> np.ndarray:
    scale = round_up(net.lipschitz * math.sqrt(net.d) * w_norm, 4)
    return round_up(scale * pair_norms_upper(net), 2)


def spectral_growth(net: TwoLayerNet) -> np.ndarray:
    """(k, k) growth coefficients of the spectral bound."""
    return _norm_growth(net, spectral_norm_upper(net))


def frobenius_growth(net: TwoLayerNet) -> np.ndarray:
    """(k, k) growth coefficients of the Frobenius bound."""
    return _norm_growth(net, frobenius_norm_upper(net))


def sdp_growth(net: TwoLayerNet, sdp_upper: np.ndarray) -> np.ndarray:
    """(k, k) growth coefficients of the SDP certificate from the proven upper bounds S_ij (paper eq. 10-11)."""
    return round_up(0.25 * net.lipschitz * np.asarray(sdp_upper, dtype=np.float64), 2)
