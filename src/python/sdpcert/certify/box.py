"""The region each per-example certificate is proven for, and proven pre-activation bounds over it.

A certifier with an input domain [lo, hi] (``Certifier(net, input_domain=(lo, hi))``) proves, per example x,

    max_{j != y} max { f_j(x') - f_y(x') : ||x' - x||_inf <= eps, lo <= x' <= hi },

i.e. over the box  B = [max(x - eps, lo), min(x + eps, hi)]  (the ball intersected with the domain); without a
domain, over the whole ball. Every per-example method works on a *region*: a float centre c and a float radius rho
(a scalar, or one value per coordinate) with B contained in {x' : |x' - c| <= rho}. The ball is the region (x, eps),
both exact; for a box the region is computed from proven ends l <= B's lower end, u >= B's upper end (below).
The later per-example methods (per-example SDPs, branch and bound) use the same ends and the same pre-activation
bounds, so one proof serves them all.

Soundness of the ends (rounding model in rounding.py; docs/design.md §4). max and min of floats are exact. x - eps
and x + eps are single roundings to nearest; TwoSum (Knuth) gives their rounding error exactly (no overflow: x and
eps are finite, and a sum that overflows is +-inf, a valid end), so l = fl(x - eps) is stepped down one float only
where it rounded up, and u = fl(x + eps) up only where it rounded down: l <= x - eps and u >= x + eps exactly, and
l = max(l, lo), u = min(u, hi) are then the exact ends of a box that contains B.

Centre and radius of [l, u]: c = fl(l/2 + u/2) (any float works; halving is exact unless it lands in the
subnormals, the sum rounds, an overflow cannot happen: |l/2 + u/2| <= max(|l|, |u|)), and
rho = next float above max(fl(u - c), fl(c - l)): each difference is one rounding to nearest, within half a
float-spacing of the exact value, so one step up makes rho >= max(u - c, c - l) >= |x' - c| for every x' in [l, u]
(an infinite end gives rho = inf). For the ball, c = x and rho = eps exactly.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Optional, Union

import numpy as np

from ..model.network import TwoLayerNet
from .._checks import check_data, check_eps, check_in_domain, check_input_domain
from .rounding import TINY, check_gradual_underflow, gamma, round_up

__all__ = ["Domain", "Region", "input_bounds", "example_region", "PreactivationBounds", "preactivation_bounds",
           "checked_regions", "blockwise_bounds", "worst_of"]

#: An input domain as checked by ``_checks.check_input_domain``: None (the whole ball) or (lo, hi), (d,) arrays.
Domain = Optional[tuple[np.ndarray, np.ndarray]]


def _two_sum_error(a: np.ndarray, b: np.ndarray, s: np.ndarray) -> np.ndarray:
    """The exact rounding error (a + b) - s of s = fl(a + b) (Knuth's TwoSum, six float operations, exact in
    round-to-nearest without overflow); NaN where s is infinite."""
    bb = s - a
    return (a - (s - bb)) + (b - bb)


@np.errstate(over="ignore", invalid="ignore")
def input_bounds(X: np.ndarray, eps: float, domain: Domain) -> tuple[np.ndarray, np.ndarray]:
    """(l, u), (n, d) floats with l <= max(x - eps, lo) and u >= min(x + eps, hi) exactly (see the module
    docstring); without a domain, the ends of the ball, rounded outward the same way."""
    e = np.float64(eps)
    low = X - e
    high = X + e
    low = np.where(_two_sum_error(X, -e, low) < 0, np.nextafter(low, -np.inf), low)   # rounded up: step down
    high = np.where(_two_sum_error(X, e, high) > 0, np.nextafter(high, np.inf), high)  # rounded down: step up
    if domain is not None:
        low = np.maximum(low, domain[0])
        high = np.minimum(high, domain[1])
    return low, high


@dataclass(frozen=True)
class Region:
    """Per-example regions {x' : |x' - center| <= radius}, each containing the set its certificate is about.

    ``center`` is (n, d); ``radius`` is a float (the ball: eps, exact) or (n, d) (a box). ``l``, ``u``: the proven
    box ends (None for the ball)."""

    center: np.ndarray
    radius: Union[float, np.ndarray]
    l: Optional[np.ndarray] = None
    u: Optional[np.ndarray] = None

    @property
    def is_ball(self) -> bool:
        return self.l is None

    def rows(self, index: Union[slice, np.ndarray]) -> "Region":
        """The regions of the examples ``index``."""
        if self.is_ball:
            return Region(self.center[index], self.radius)
        return Region(self.center[index], self.radius[index], self.l[index], self.u[index])


@np.errstate(over="ignore", invalid="ignore")
def example_region(X: np.ndarray, eps: float, domain: Domain) -> Region:
    """The region of each row of the checked float64 X: the ball (x, eps) without a domain, else the centre and
    radius of the proven box ends (module docstring)."""
    if domain is None:
        return Region(X, float(eps))
    l, u = input_bounds(X, eps, domain)
    c = 0.5 * l + 0.5 * u
    rho = np.nextafter(np.maximum(u - c, c - l), np.inf)
    rho = np.where(np.isnan(rho), np.inf, rho)
    return Region(c, rho, l, u)


@dataclass(frozen=True)
class PreactivationBounds:
    """Proven bounds on the pre-activations z' = W x' + b over each example's region, and the pieces they are made
    of (the LP reuses them): ``lo <= z' <= hi`` for every x' in the region; ``z_hat = fl(W c + b)`` with
    ``|z_hat - (W c + b)| <= ez``; ``r_up >= |W| rho`` (per unit for the ball, per example and unit for a box)."""

    lo: np.ndarray
    hi: np.ndarray
    z_hat: np.ndarray
    ez: np.ndarray
    r_up: np.ndarray


@np.errstate(over="ignore", invalid="ignore")
def preactivation_bounds(net: TwoLayerNet, region: Region) -> PreactivationBounds:
    """Interval bounds on W x' + b over the regions, rounded outward (proof: step (1) of lp._rigorous_block, with
    x replaced by the centre c and eps ||W_i||_1 by r = |W| rho).

    For x' with |x' - c| <= rho: |W (x' - c)| <= |W| rho = r, so W x' + b lies in [z0 - r, z0 + r], z0 = W c + b.
    z_hat = fl(c W^T + b) is off by at most ez = gamma_{d+1} (||c||_inf ||W_i||_1 + |b_i|) + d TINY (an inner product
    of length d plus a bias; every intermediate rounded up before it is multiplied). r is bounded above by
    ``round_up`` of its non-negative float value (d products, d - 1 sums; for the ball eps * (a rounded-up row sum),
    one product). Then lo = fl(z_hat - ez - r_up) - gamma_3 (|z_hat| + ez + r_up), stepped down, is <= z0 - r (two
    roundings of a three-term sum: absolute error <= gamma_2 times the sum of the magnitudes), and hi likewise.
    Overflow: an infinite r_up or ez gives an infinite end (valid); a non-finite z_hat gives NaN ends, which the
    callers turn into +inf bounds."""
    W, b = net.W, net.b
    d = W.shape[1]
    absW = np.abs(W)
    row_l1 = round_up(absW.sum(axis=1), d, products=0)                   # >= ||W_i||_1 (a sum: no underflow)
    if region.is_ball:
        eps = region.radius
        r_up = round_up(eps * row_l1, 1) if eps > 0 else np.zeros(W.shape[0])   # >= eps ||W_i||_1 (0 at eps = 0)
    else:
        r_up = round_up(region.radius @ absW.T, d)                       # >= |W| rho, (n, m)
    c = region.center
    z_hat = c @ W.T + b
    c_inf = np.max(np.abs(c), axis=1, keepdims=True) if d else np.zeros((len(c), 1))
    ez = round_up(gamma(d + 1) * (c_inf * row_l1 + np.abs(b)) + d * TINY, 4)  # >= |z_hat - z0|
    slack = round_up(gamma(3) * (np.abs(z_hat) + ez + r_up), 4)
    lo = np.nextafter((z_hat - ez - r_up) - slack, -np.inf)
    hi = np.nextafter((z_hat + ez + r_up) + slack, np.inf)
    return PreactivationBounds(lo, hi, z_hat, ez, r_up)


def blockwise_bounds(net: TwoLayerNet, region: Region, y: np.ndarray,
                     block: Callable[[TwoLayerNet, Region, np.ndarray], np.ndarray], chunk: int = 256) -> np.ndarray:
    """(N, k) per-example bounds of a per-example method: ``block(net, region_rows, y_rows)`` on ``chunk`` examples at
    a time, so its (chunk, k, m) temporaries stay a few MB whatever N is."""
    out = np.empty((len(y), net.k))
    for lo in range(0, len(y), chunk):
        rows = slice(lo, lo + chunk)
        out[rows] = block(net, region.rows(rows), y[rows])
    return out


def worst_of(bounds: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(worst, worst_class)``: per example the largest bound over the classes (the column of the label is -inf)."""
    worst_class = np.argmax(bounds, axis=1).astype(np.int64) if bounds.size else np.zeros(0, dtype=np.int64)
    return bounds[np.arange(len(bounds)), worst_class], worst_class


def checked_regions(net: TwoLayerNet, X: Any, y: Any, eps: Any, input_domain: Any) -> tuple[Region, np.ndarray]:
    """(regions, labels) of a per-example method's public entry point, every argument checked once: eps, X and y
    against the net, the input domain, X inside it, and gradual underflow (the rounding model of every bound)."""
    eps = check_eps(eps)
    X, y = check_data(X, y, net.d, net.k)
    domain = check_input_domain(input_domain, net.d)
    check_in_domain(X, domain)
    check_gradual_underflow()
    return example_region(X, eps, domain), y
