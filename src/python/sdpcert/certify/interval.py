"""Interval bound propagation (IBP): the cheapest per-example certificate, for relu, tanh and sigmoid nets.

Over an example's region (box.py: the ball, or the ball intersected with the input domain) the pre-activations
z' = W x' + b lie in proven intervals [lo, hi] (``box.preactivation_bounds``). σ is monotone non-decreasing, so
h' = σ(z') lies in [σ(lo), σ(hi)], and for v = V_j - V_y

    f_j(x') - f_y(x') = v^T h' + (b2_j - b2_y)  <=  sum_k max(v_k hl_k, v_k hu_k) + (b2_j - b2_y)

for any hl <= σ(lo), hu >= σ(hi) (the maximum of a linear function over a box is attained at a corner, coordinate
by coordinate). The difference v is taken inside the sum, so the two logits' shared hidden units are not counted
twice (bounding f_j from above and f_y from below separately would be looser).

Soundness under rounding (model in rounding.py; docs/design.md §4; hats are computed floats, u = 2^-53,
TINY = 2^-1074):

(1) Hidden intervals. relu: hl = max(lo, 0), hu = max(hi, 0), exact. tanh / sigmoid: the computed σ_hat is within
    e_σ = 8u of σ (absolute; the allowance of margins.forward_error_bound: libm tanh / exp are within a few ulps and
    the outputs lie in [-1, 1], an exp that underflows is off by far less), so hl = σ_hat(lo) - e_σ and
    hu = σ_hat(hi) + e_σ, each stepped one float outward (the subtraction / addition rounds), bound σ(lo) from below
    and σ(hi) from above; then they are clipped to σ's range ([0, 1] / [-1, 1]), which σ never leaves.
(2) Pair weights. v_hat = fl(V_j - V_y) has |v - v_hat| <= u |v_hat| (one rounding of a difference), so
    v^T h' <= v_hat^T h' + u |v_hat|^T hmax with hmax = max(|hl|, |hu|) >= |h'|.
(3) The corner sum S = sum_k max(v_hat_k hl_k, v_hat_k hu_k) (exact reals) is evaluated as the float sum of
    t_k = max(fl(v_hat_k hl_k), fl(v_hat_k hu_k)): each product is within u |product| + 2^-1075 of its exact value
    and max is 1-Lipschitz, so |t_k - exact t_k| <= u |v_hat_k| hmax_k + TINY; the m-term sum (any order) adds at
    most gamma_{m-1} sum |t_k| <= gamma_{m-1} ((1 + u) P + m TINY), P = sum_k |v_hat_k| hmax_k. With (2), the
    total error is at most gamma_{m+2} P + 2 m TINY <= E := round_up(gamma_{m+3} round_up(P) + 2 m TINY).
(4) b2_j - b2_y <= fl(b2_j - b2_y) + u |fl(.)| (one rounding of a difference, no underflow term). The final sum of
    the two mixed-sign pieces plus the error terms rounds by at most gamma_3 of their magnitudes, added before a
    last step up.
(5) Overflow: an infinite interval end gives an infinite or NaN product (0 * inf); NaN and inf reach the bound as
    NaN or +inf (every inf term also enters P and the magnitudes, so E is +inf), and every non-finite bound is
    reported as +inf, "not certified". A non-finite z_hat (the forward pass overflowed) gives +inf directly.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import SdpcertError
from ..model.network import _ACTIVATION_FUNCTIONS, TwoLayerNet
from .box import Region, blockwise_bounds, checked_regions, preactivation_bounds, worst_of
from .rounding import TINY, UNIT_ROUNDOFF, gamma, round_up

__all__ = ["interval_margin_bounds", "interval_worst_margins", "interval_region_margins", "hidden_bounds"]

_CHUNK = 256  # examples per block: (chunk, k, m) float64 temporaries stay a few MB for MNIST

#: The range of each activation: hidden values never leave it, so interval ends may be clipped to it.
_RANGE = {"relu": (0.0, np.inf), "sigmoid": (0.0, 1.0), "tanh": (-1.0, 1.0)}
#: |sigma_hat - sigma| for the float64 activations of model/network.py (see margins.forward_error_bound).
_ACTIVATION_ERROR = {"relu": 0.0, "sigmoid": 8.0 * UNIT_ROUNDOFF, "tanh": 8.0 * UNIT_ROUNDOFF}


@np.errstate(over="ignore", invalid="ignore")
def hidden_bounds(net: TwoLayerNet, lo: np.ndarray, hi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(hl, hu) with hl <= σ(z) <= hu for every z in [lo, hi] (step (1) of the module docstring); NaN ends stay
    NaN (the callers make such bounds +inf)."""
    if net.activation == "relu":
        return np.maximum(lo, 0.0), np.maximum(hi, 0.0)
    sigma = _ACTIVATION_FUNCTIONS[net.activation]
    e = _ACTIVATION_ERROR[net.activation]
    low, high = _RANGE[net.activation]
    hl = np.nextafter(sigma(lo) - e, -np.inf)
    hu = np.nextafter(sigma(hi) + e, np.inf)
    # clip to the range without turning NaN into a number (np.clip keeps NaN)
    return np.clip(hl, low, high), np.clip(hu, low, high)


@np.errstate(over="ignore", invalid="ignore")
def _rigorous_block(net: TwoLayerNet, region: Region, y: np.ndarray) -> np.ndarray:
    """(n, k) proven bounds for a block of examples (column y: -inf); the proof is the module docstring."""
    V, b2 = net.V, net.b2
    n, m, k = len(y), net.m, net.k
    if n == 0:
        return np.zeros((0, k))
    pre = preactivation_bounds(net, region)
    hl, hu = hidden_bounds(net, pre.lo, pre.hi)                           # (step 1)
    hmax = np.maximum(np.abs(hl), np.abs(hu))
    v_hat = V[None, :, :] - V[y][:, None, :]                              # (n, k, m)
    t = np.maximum(v_hat * hl[:, None, :], v_hat * hu[:, None, :])        # NaN propagates (np.maximum)
    corner = t.sum(axis=-1)                                               # (step 3)
    P = round_up(np.einsum("nkm,nm->nk", np.abs(v_hat), hmax), m)
    E = round_up(gamma(m + 3) * P + 2 * m * TINY, 3)
    db2 = b2[None, :] - b2[y][:, None]                                    # (step 4)
    db2_err = round_up(UNIT_ROUNDOFF * np.abs(db2), 1)
    total = corner + db2
    errors = round_up(E + db2_err + gamma(3) * (np.abs(corner) + np.abs(db2) + E + db2_err), 4)
    bound = np.nextafter(total + errors, np.inf)
    bound = np.where(np.isfinite(bound), bound, np.inf)                   # (step 5)
    bound[~np.all(np.isfinite(pre.z_hat), axis=1)] = np.inf
    bound[np.arange(n), y] = -np.inf
    return bound


def interval_region_margins(net: TwoLayerNet, region: Region, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(worst, worst_class)`` for checked y over the regions of box.py (the certifier's entry point)."""
    return worst_of(blockwise_bounds(net, region, y, _rigorous_block, _CHUNK))


def interval_margin_bounds(net: TwoLayerNet, X: Any, y: Any, eps: float, input_domain: Any = None) -> np.ndarray:
    """(N, k) PROVEN upper bounds on max f_j(x') - f_y(x') over ||x' - x||_inf <= eps (and x' in
    ``input_domain = (lo, hi)`` when given) for every class j; column y is -inf."""
    if not isinstance(net, TwoLayerNet):
        raise SdpcertError(f"the interval bound needs a TwoLayerNet; got {type(net).__name__}")
    region, y = checked_regions(net, X, y, eps, input_domain)
    return blockwise_bounds(net, region, y, _rigorous_block, _CHUNK)


def interval_worst_margins(net: TwoLayerNet, X: Any, y: Any, eps: float, return_class: bool = False,
                           input_domain: Any = None):
    """(N,) PROVEN upper bounds on the worst margin (certified iff < 0); with ``return_class`` also the j."""
    bounds = interval_margin_bounds(net, X, y, eps, input_domain)
    worst, worst_class = worst_of(bounds)
    return (worst, worst_class) if return_class else worst
