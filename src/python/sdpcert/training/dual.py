"""The dual certificate during training (eq. 16 of the paper): proven certified error from the current c_ij.

:meth:`~sdpcert.torch.DualCertificateRegularizer.certified_upper` bounds each pair SDP value S_ij from above (a
shifted-Cholesky proof, never a Lanczos estimate); :func:`dual_growth` turns those bounds into the growth matrix G and
:func:`certified_error_from_growth` repeats ``Certifier.certify_grid``'s per-example computation (float64 logits with
their rounding-error bound) with it. A feasible but non-optimal c can only make the result worse than the exact SDP.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..certify import certify_with_growth, growth
from ..model import TwoLayerNet

__all__ = ["dual_growth", "certified_error_from_growth"]


def certified_error_from_growth(net: TwoLayerNet, X: Any, y: Any, eps: float, G: np.ndarray) -> dict:
    """Per-example certificates from a proven (k, k) growth matrix ``G`` -- the computation of
    ``Certifier.certify_grid`` for one radius, without solving any SDP (e.g. ``G = sdp_growth(net, S_upper)`` with
    ``S_upper`` from ``DualCertificateRegularizer.certified_upper``).

    Returns dict(certified (n,) bool, worst_margin (n,), worst_class (n,), predicted (n,), clean_error,
    certified_error). ``G`` must be a proven upper bound for the result to be a certificate."""
    result = certify_with_growth(net, X, y, eps, G, method="dual")
    return {"certified": result.certified, "worst_margin": result.worst_margin, "worst_class": result.worst_class,
            "predicted": result.predicted, "clean_error": result.clean_error,
            "certified_error": result.certified_error}


def dual_growth(reg: Any, net: TwoLayerNet) -> tuple[np.ndarray, np.ndarray]:
    """(G, S) from the regularizer's current c: S (k, k) proven upper bounds on S_ij, G = sdp_growth(net, S).

    Pairs the regularizer does not own have no proven bound: they stay +inf (never 0, which would claim that their
    margins cannot grow), so no example is certified against them."""
    s_upper = reg.certified_upper(net.W, net.V)
    S = np.full((net.k, net.k), np.inf)
    np.fill_diagonal(S, 0.0)
    for (i, j), s in zip(reg.pairs, s_upper):
        S[i, j] = S[j, i] = s
    return growth.sdp_growth(net, S), S
