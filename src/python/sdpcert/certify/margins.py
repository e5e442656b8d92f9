"""Per-example certificates from a growth matrix: proven upper bounds on the worst adversarial margins.

For a proven (k, k) growth matrix G (growth.py), the worst margin of an example (x, y) over the l_inf ball is

    max_{j != y} max_{||x' - x|| <= eps} f_j(x') - f_y(x')  <=  max_{j != y} [ f_j(x) - f_y(x) + eps G[j, y] ]

and the example is certified iff that bound is < 0. The logits f(x) are computed in float64 and their rounding
error is bounded and added (``forward_error_bound``), so a certificate is a proof about the exact network
(docs/design.md §4). ``logit_margins`` computes the shared part once per data set, ``worst_margins`` adds one
method's growth at one radius; ``certify_with_growth`` does both for any G, e.g. one met during training.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from .._checks import as_numeric_array, check_data, check_eps, check_exact_float64
from ..errors import NonFiniteError, SdpcertError, ShapeError
from ..model.network import TwoLayerNet, immutable_copy
from .result import CertificationResult
from .rounding import TINY, UNIT_ROUNDOFF, check_gradual_underflow, gamma, round_up

__all__ = ["forward_error_bound", "logit_margins", "worst_margins", "certify_with_growth"]


def forward_error_bound(net: TwoLayerNet, X: np.ndarray, hidden: np.ndarray) -> np.ndarray:
    """(n, k) bounds e with |fl(f_j(x)) - f_j(x)| <= e_j, for the logits computed as in ``TwoLayerNet.forward``.

    Rounding model (Higham, Accuracy and Stability, §2.1): fl(a op b) = (a op b)(1 + delta) + eta with |delta| <= u
    and |eta| <= 2^-1075, eta = 0 for sums (see rounding.py). An n-term inner product computed in floats is then off
    by at most gamma_n |a|^T |b| + n TINY (TINY = 2^-1074 covers one product's underflow, <= 2^-1075, carried
    through the additions with a factor <= 1 + gamma_n). Without the n TINY term, logits that round into the
    subnormal range (tiny V) could be certified on the wrong side of 0.

    z = fl(W x + b): |z_hat - z| <= gamma_{d+1} (|W||x| + |b|) + d TINY
                                 <= gamma_{d+1} (||x||_inf ||W_k||_1 + |b_k|) + d TINY
    (inner product plus the bias addition; the looser second form avoids a second n x d x m product).
    h = sigma(z): |h_hat - h| <= L |z_hat - z| + e_sigma, e_sigma = 0 for relu (exact), 8u for sigmoid/tanh (libm
    exp/tanh are within a few ulps, outputs in (-1, 1); an exp that underflows is off by far less than 8u).
    f = fl(V h_hat + b2): |f_hat - f| <= gamma_{m+1} (|V||h_hat| + |b2|) + m TINY + |V| |h_hat - h|.

    Summation order and BLAS threads: gamma_n bounds an n-term sum for every order and grouping of its terms (each
    term passes through at most n - 1 additions whatever the summation tree; Higham §3.1), a fused multiply-add is a
    single rounding, and each product underflows at most once; so the bound holds for any BLAS kernel, blocking and
    thread count. The computed logits do differ between thread counts (in the last bits, for MNIST-sized d), but every
    version of them lies within e of the same exact value.

    Evaluating the bound: every intermediate bound (||W_k||_1, ez, eh) is rounded up, underflow allowance included,
    before it is multiplied by a possibly larger factor (|x|, L, |V|), so each is >= its exact value as a real
    number when it is used; an underflowed intermediate is never amplified. Overflow gives +inf (NaN becomes +inf).
    """
    d, m = net.d, net.m
    x_inf = np.max(np.abs(X), axis=1, keepdims=True) if X.shape[1] else np.zeros((len(X), 1))
    e_sigma = 0.0 if net.activation == "relu" else 8.0 * UNIT_ROUNDOFF
    absV = np.abs(net.V)
    with np.errstate(over="ignore", invalid="ignore"):
        row_l1 = round_up(np.abs(net.W).sum(axis=1), d, products=0)      # >= ||W_k||_1 (a sum: no underflow)
        # one product (||x||_inf ||W_k||_1, may underflow), a sum, a product by gamma <= 1; plus the d underflows
        ez = round_up(gamma(d + 1) * (x_inf * row_l1 + np.abs(net.b)) + d * TINY, 4)
        eh = round_up(net.lipschitz * ez + e_sigma, 2)                   # L = 1/4 rounds a subnormal ez
        # m products in |V||h_hat| (then scaled by gamma <= 1) and m in |V| eh; m TINY: the logits' own underflows
        ef = gamma(m + 1) * (np.abs(hidden) @ absV.T + np.abs(net.b2)) + m * TINY + eh @ absV.T
        return round_up(ef, d + m + 4, products=2 * m + 2)


def logit_margins(net: TwoLayerNet, X: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(base, magnitude, predicted) for checked X (float64) and y: base[n, j] >= f_j(x) - f_y(x) exactly (float64
    margins plus both logits' rounding-error bounds and the subtraction's rounding); magnitude[n, j] is the sum of the
    magnitudes of base's terms, which bounds the rounding of the final mixed-sign sum in ``worst_margins``.

    Refuses (NonFiniteError) inputs on which the float64 logits overflow to inf/NaN: predictions and margins taken
    from such rows would be meaningless."""
    with np.errstate(over="ignore", invalid="ignore"):
        hidden = net.hidden(X)
        logits = hidden @ net.V.T + net.b2
    overflowed = ~np.all(np.isfinite(logits), axis=1)
    if overflowed.any():
        raise NonFiniteError(
            f"the network's logits overflow to inf/NaN on {int(overflowed.sum())} of the {len(X)} inputs (first: "
            f"index {int(np.argmax(overflowed))}): the weights are too large for float64 on this data")
    err = forward_error_bound(net, X, hidden)
    rows = np.arange(len(y))
    with np.errstate(over="ignore", invalid="ignore"):
        # The difference of two finite logits is one rounding (relative, exact in the subnormal range; it may
        # overflow to inf, and then the bound is +inf or NaN, which worst_margins turns into +inf). u |margin| is
        # a product that may underflow: the slack is rounded up with its absolute allowance.
        margins = logits - logits[rows, y][:, None]
        slack = round_up(err + err[rows, y][:, None] + UNIT_ROUNDOFF * np.abs(margins), 3)
        return margins + slack, np.abs(margins) + slack, np.argmax(logits, axis=1)


def worst_margins(base: np.ndarray, magnitude: np.ndarray, y: np.ndarray, eps: float,
                  G: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(worst, worst_class): the proven bound max_{j != y} base[n, j] + eps G[j, y], and its j. The sum mixes signs,
    so its rounding is bounded by gamma_5 times the magnitudes of its terms (not of the result).

    eps G and gamma_5 (magnitude + growth) are single products that may underflow: both are rounded up with the
    absolute allowance. An infinite G (a pair that could not be bounded) or an overflow gives +inf, and NaN (inf - inf
    from overflowed terms) becomes +inf: "not certified", never a smaller number."""
    rows = np.arange(len(y))
    with np.errstate(over="ignore", invalid="ignore"):
        growth = round_up(eps * G[:, y].T, 1) if eps > 0 else np.zeros_like(base)
        rounding = round_up(gamma(5) * (magnitude + growth), 2)
        upper = np.nextafter(base + growth + rounding, np.inf)
    upper = np.where(np.isnan(upper), np.inf, upper)
    upper[rows, y] = -np.inf
    worst_class = np.argmax(upper, axis=1)
    return upper[rows, worst_class], worst_class.astype(np.int64)


def check_growth(net: TwoLayerNet, G: Any) -> np.ndarray:
    """G as an immutable float64 (k, k) array, >= 0 (or +inf) off the diagonal and exactly representable.

    +inf is a valid growth bound: it means "nothing proven for this pair", and no example is then certified against
    that class (worst_margins turns it into a +inf margin). NaN is refused: it is not a bound at all."""
    G = as_numeric_array("G", G)
    if G.shape != (net.k, net.k):
        raise ShapeError(f"G must have shape ({net.k}, {net.k}); got {G.shape}")
    off = G[~np.eye(net.k, dtype=bool)]  # the diagonal is never used: a class is not its own adversary
    if np.any(np.isnan(off)):
        raise NonFiniteError("G contains non-finite off-diagonal values (NaN); a pair with no proven bound is +inf")
    check_exact_float64("G", off)
    if np.any(off < 0):
        raise SdpcertError(f"G must be >= 0 off the diagonal (a growth bound times eps is an increase of a margin); "
                           f"got minimum {off.min()}")
    return immutable_copy(G, np.float64)


def certify_with_growth(net: TwoLayerNet, X: Any, y: Any, eps: float, G: Any, method: str = "custom"
                        ) -> CertificationResult:
    """Per-example certificates from any proven (k, k) growth matrix G (see growth.py), e.g. the SDP growth of dual
    variables met during training. The result is a certificate only if G is a proven bound."""
    if not isinstance(net, TwoLayerNet):
        raise SdpcertError(f"certify_with_growth needs a TwoLayerNet; got {type(net).__name__}")
    eps = check_eps(eps)
    X, y = check_data(X, y, net.d, net.k)
    G = check_growth(net, G)
    check_gradual_underflow()
    t0 = time.perf_counter()
    base, magnitude, predicted = logit_margins(net, X, y)
    worst, worst_class = worst_margins(base, magnitude, y, eps, G)
    return CertificationResult(method=method, eps=eps, labels=y, predicted=predicted, worst_margin=worst,
                               worst_class=worst_class, seconds=time.perf_counter() - t0)
