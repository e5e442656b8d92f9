"""The per-example SDP certificate (method ``sdp-example``): the paper's SDP, solved per example and target class,
with each hidden unit's slope range over the example's region and the region's own shape (the input box).

The bound. For an example with region {x' : |x' - c| <= rho} (box.py: the ball, or the ball intersected with the
input domain), a class y and a target j, with v = V_j - V_y (exact reals on the floats), every x' in the region has

    f_j(x') - f_y(x') = f_j(c) - f_y(c) + sum_k v_k s_k W_k (x' - c),

where s_k is the secant slope of the activation between the pre-activations z_k(c) and z_k(x') (0 when they are
equal). Both lie in the unit's proven pre-activation interval [lo_k, hi_k] (box.preactivation_bounds; the region is
convex and contains c), and z_k(c) is known to within a rounding bound, so s_k lies in a proven range
(``slope_ranges``): for ReLU {1} when lo_k >= 0 (stably on), {0} when hi_k <= 0 (stably off), and for an unstable
unit the secant slopes from the centre, e.g. [0, hi_k / (hi_k - z_k(c))] when z_k(c) <= 0 -- far tighter than
[0, 1] when the centre is far from the kink; for tanh and sigmoid the derivative's range over [lo_k, hi_k] (mean
value theorem). Writing s_k = mid_k + half_k s^_k with s^_k in [-1, 1] and
x' - c = rho o t with t in [-1, 1]^d:

    f_j(x') - f_y(x') <= f_j(c) - f_y(c) + max { w_A^T G w_B : w_A = (1, s^_A) , w_B = t },
    G_0  = rho o (W^T (mid o v))                  (the stable part: a linear term in t)
    G_k  = half_k v_k (W_k o rho),  k in A        (A: the units whose slope is not fixed, half_k > 0)

and the maximum over the cubes is at most the value of the bipartite SDP of G (C++ core, bipartite_sdp.hpp), which
the core bounds from above with a floating-point proof (a dual vector and a shifted Cholesky of a Schur complement of
size 1 + |A|). Stable units cost nothing; the ball's symmetric box becomes the example's asymmetric one through the
centre c (for the ball c = x, for a box the box's centre: no offset term appears). Against the paper's per-model
certificate this sees which units are stable at x and the input box; against the LP it keeps the SDP's coupling of
the unstable units. Neither dominates, so each (example, target) reports the smaller of this bound and the cheap
per-example bound (lp-opt for ReLU, interval otherwise), and the SDP is solved only where the cheap bound does not
already certify the target.

Rounding (docs/design.md §4; rounding.py). The core proves its bound for G's floats taken as exact; here
(1) G's floats differ from the exact G above by at most E entrywise: v_hat = fl(V_j - V_y) errs by u |v_hat|, each
    row of A is three rounded products (half v_hat, times W_ki, times rho_i) and row 0 an m-term inner product of
    the products fl(mid_k v_hat_k) with W, times rho_i; so |G - G_hat| <= gamma_{m+4} P + U entrywise, with
    P_ki = |mid_k or half_k| |v_hat_k| |W_ki| rho_i (summed over i: <= (|mid| + |half|)|v_hat| r_up, r_up >= |W| rho
    from box.preactivation_bounds) and U the underflow terms (each product at most 2^-1075 before later factors:
    sum U <= TINY ((a + 1)(sum r_up + d) + (a + m + 2) sum rho)). For w on the cubes, |w_A^T (G - G_hat) w_B| <=
    sum |G - G_hat|, so the maximum over the cubes moves by at most E_total, a sum of non-negative terms rounded up.
(2) The core receives G' = 2^e G_hat (max |G'| in [0.5, 1)); the scaling is exact except for entries scaled into
    the subnormals, each off by <= 2^-1075 2^-e (counted: ``lost``). The core's bound U' >= SDP(G'), so
    max over the cubes of w^T G_hat w <= 2^-e U' + lost, rounded up (``scale_up_by_power_of_two``).
(3) f_j(c) - f_y(c) <= base (margins.logit_margins: float logits plus their rounding bounds), and the final sum
    base + (non-negative rest) has one mixed-sign rounding, bounded by gamma_2 times the magnitudes and stepped up.
A non-finite value anywhere (overflow) gives +inf: not certified, never a smaller bound.
"""

from __future__ import annotations

import os
import zlib
from typing import Any

import numpy as np

from .. import _core
from ..errors import NonFiniteError, SdpcertError
from ..model.network import TwoLayerNet
from . import interval, lp
from .box import PreactivationBounds, Region, blockwise_bounds, checked_regions, preactivation_bounds, worst_of
from .margins import logit_margins
from .rounding import TINY, UNIT_ROUNDOFF, gamma, round_up, scale_up_by_power_of_two

__all__ = ["slope_ranges", "sdp_example_margin_bounds", "sdp_example_worst_margins", "sdp_example_region_margins",
           "sdp_example_matrix"]

# Examples per block (their SDPs of one target rank are solved in one batched core call): the LP's block size, so that
# the cheap bounds computed here are bit for bit those of the lp method (BLAS rounds differently for other shapes).
_CHUNK = lp._CHUNK
#: Absolute widening of the tanh/sigmoid slope ranges: libm's tanh and exp are not correctly rounded, but within a
#: few ulps (|error| << 1e-15 on outputs in [0, 1]); 1e-12 covers them, and the range is then clipped to [0, L].
SLOPE_SLACK = 1e-12
_SOLVER = dict(rel_tol=1e-6, max_sweeps=500, rank=12, seed=0)


def _check_net(net: TwoLayerNet) -> None:
    if not isinstance(net, TwoLayerNet):
        raise SdpcertError(f"the per-example SDP needs a TwoLayerNet; got {type(net).__name__}")


@np.errstate(over="ignore", invalid="ignore", divide="ignore")
def slope_ranges(net: TwoLayerNet, pre: PreactivationBounds) -> tuple[np.ndarray, np.ndarray]:
    """(mid, half), (n, m) floats with [mid - half, mid + half] containing every secant slope of the activation
    between the centre's pre-activation z_c = W c + b and any point of [pre.lo, pre.hi] (exact reals).

    ReLU: (1, 0) stably on, (0, 0) stably off. An unstable unit's secant slopes from z_c: z_c is known to lie in
    [zc_lo, zc_hi] = [z_hat - ez, z_hat + ez] (box.preactivation_bounds), and
      - if zc_hi <= 0: s = relu(z') / (z' - z_c) is 0 for z' <= 0 and z' / (z' - z_c) <= hi / (hi - zc_hi) for
        0 < z' <= hi (increasing in z', decreasing in z_c), so s in [0, hi / (hi - zc_hi)];
      - if zc_lo >= 0: s is 1 for z' >= 0 and z_c / (z_c - z') >= zc_lo / (zc_lo - lo) for lo <= z' < 0 (the
        same monotonicity), so s in [zc_lo / (zc_lo - lo), 1];
      - otherwise s in [0, 1].
    The quotients are computed as in lp.py (one rounding for the difference, one for the quotient): the upper end
    times (1 + 4u) plus TINY and stepped up, the lower end times (1 - 4u) minus TINY and stepped down, both clipped
    to [0, 1]; a difference that overflows (or any NaN) falls back to the end 1 (upper) or 0 (lower). The anchor at
    z_c is what makes this much tighter than [0, 1] for units whose centre is far from the kink.
    Tanh/sigmoid: the derivative's range over [lo, hi] (mean value theorem): largest at the point nearest 0, smallest
    at the end farthest from it, widened by ``SLOPE_SLACK`` and clipped to [0, L]; NaN ends give [0, L].
    The centre and half-width of [s_lo, s_hi] are rounded so that they cover it (half stepped up past both
    differences)."""
    lo, hi = pre.lo, pre.hi
    if net.activation == "relu":
        on = lo >= 0
        off = hi <= 0
        unstable = ~(on | off)
        zc_lo = np.nextafter(pre.z_hat - pre.ez, -np.inf)   # pre.ez is a proven bound; one step covers the subtraction
        zc_hi = np.nextafter(pre.z_hat + pre.ez, np.inf)
        tight = 4.0 * UNIT_ROUNDOFF
        upper = np.nextafter((hi / (hi - zc_hi)) * (1.0 + tight) + TINY, np.inf)
        upper = np.where(np.isfinite(hi - zc_hi) & (hi - zc_hi > 0) & np.isfinite(upper), np.minimum(upper, 1.0), 1.0)
        lower = np.nextafter((zc_lo / (zc_lo - lo)) * (1.0 - tight) - TINY, -np.inf)
        lower = np.where(np.isfinite(zc_lo - lo) & (zc_lo - lo > 0) & np.isfinite(lower), np.maximum(lower, 0.0), 0.0)
        s_lo = np.where(unstable & (zc_lo >= 0), lower, 0.0)
        s_hi = np.where(unstable & (zc_hi <= 0), upper, 1.0)
        s_lo = np.where(on, 1.0, np.where(off, 0.0, s_lo))
        s_hi = np.where(off, 0.0, s_hi)
    else:
        if net.activation == "tanh":
            def derivative(z):
                return 1.0 - np.tanh(z) ** 2
        else:
            def derivative(z):
                s = 1.0 / (1.0 + np.exp(-z))
                return s * (1.0 - s)
        L = net.lipschitz
        nearest = np.clip(0.0, lo, hi)
        farthest = np.maximum(np.abs(lo), np.abs(hi))
        s_hi = np.minimum(derivative(nearest) + SLOPE_SLACK, L)
        s_lo = np.maximum(derivative(farthest) - SLOPE_SLACK, 0.0)
        unknown = ~(np.isfinite(s_lo) & np.isfinite(s_hi)) | np.isnan(lo) | np.isnan(hi)
        s_lo = np.where(unknown, 0.0, s_lo)
        s_hi = np.where(unknown, L, s_hi)
    mid = 0.5 * s_lo + 0.5 * s_hi
    half = np.where(s_lo == s_hi, 0.0, np.nextafter(np.maximum(s_hi - mid, mid - s_lo), np.inf))
    return mid, half


def _cheap_bounds(net: TwoLayerNet, region: Region, y: np.ndarray, pre: PreactivationBounds) -> np.ndarray:
    """(n, k) proven bounds that decide which targets need an SDP: lp-opt for ReLU nets (the triangle LP; the very
    computation of the lp-opt method on the same block, hence never above lp or lp-opt), interval bounds otherwise."""
    if net.activation == "relu":
        return lp._optimised_block(net, region, y, pre=pre)
    return interval._rigorous_block(net, region, y)


@np.errstate(over="ignore", invalid="ignore")
def _pair_matrix(net: TwoLayerNet, n: int, j: int, y: int, mid: np.ndarray, half: np.ndarray, rho: np.ndarray,
                 r_up: np.ndarray) -> tuple[np.ndarray, float]:
    """(G_hat, E_total) of example n and target j (module docstring, step (1)); zero rows and columns removed (they
    add nothing to any w_A^T G w_B)."""
    W = net.W
    m, d = W.shape
    v_hat = net.V[j] - net.V[y]
    units = np.flatnonzero((half[n] > 0) & (v_hat != 0))
    row0 = ((mid[n] * v_hat) @ W) * rho
    rows = ((half[n, units] * v_hat[units])[:, None] * W[units]) * rho[None, :]
    G = np.vstack([row0[None, :], rows])
    a = len(units) + 1
    weight = (np.abs(mid[n]) + half[n]) * np.abs(v_hat)                      # (|mid| + |half|) |v_hat| per unit
    p_sum = round_up(round_up(weight * r_up, 3).sum(), m)                  # >= sum P
    rho_sum = round_up(rho.sum(), d, products=0)
    r_sum = round_up(r_up.sum(), m, products=0)
    underflow = round_up((a + 1) * (r_sum + d) + (a + m + 2) * rho_sum, 4) * TINY
    e_total = round_up(gamma(m + 4) * p_sum + np.nextafter(underflow, np.inf), 2)
    keep_cols = np.any(G != 0, axis=0)
    keep_rows = np.any(G != 0, axis=1)
    return G[np.ix_(keep_rows, keep_cols)], e_total


@np.errstate(over="ignore", invalid="ignore")
def _balanced(G: np.ndarray) -> tuple[np.ndarray, int, float]:
    """(G', e, lost): G' = fl(2^e G) with max |G'| in [0.5, 1), and lost >= sum |G - 2^-e G'| (module docstring,
    step (2))."""
    largest = np.max(np.abs(G)) if G.size else 0.0
    if largest == 0:
        return G, 0, 0.0
    _, exponent = np.frexp(largest)
    e = -int(exponent)
    scaled = np.ldexp(G, e)
    n_lost = int(np.count_nonzero(np.ldexp(scaled, -e) != G)) if e < 0 else 0
    lost = float(scale_up_by_power_of_two(n_lost * TINY, -e)) if n_lost else 0.0
    return scaled, e, lost


#: The process that imported this module. In a child forked from it (a fork-based ProcessPoolExecutor on Linux) the
#: core must not open an OpenMP region: libgomp's thread pool does not survive fork() and the child would hang.
_IMPORT_PID = os.getpid()


def _core_threads() -> int:
    """OpenMP threads for the core's batch: all of them (0), or 1 (no OpenMP region) in a forked child."""
    return 0 if os.getpid() == _IMPORT_PID else 1


def _start_of(center: np.ndarray, j: int) -> int:
    """The solver's random start for (example, target): from the example's centre and j, so that a problem gets the
    same start (and bound) in whatever chunk or batch it is solved -- results do not depend on the chunking."""
    return zlib.crc32(np.ascontiguousarray(center).tobytes(), j) * 16 + j


def _rigorous_block(net: TwoLayerNet, region: Region, y: np.ndarray) -> np.ndarray:
    """(n, k) proven bounds for a block of examples: per (example, target) the smaller of the cheap bound and the
    per-example SDP bound (module docstring). Targets are visited hardest first (by the cheap bound), one batched core
    call per rank: an example stops getting SDPs once one of its targets is proven out of reach (its primal value is
    >= what certification needs), since it can no longer be certified; its remaining targets keep the cheap bound,
    which is sound."""
    n, k = len(y), net.k
    if n == 0:
        return np.zeros((0, k))
    pre = preactivation_bounds(net, region)  # one proof of the unit intervals, shared with the cheap bound
    cheap = _cheap_bounds(net, region, y, pre)
    bounds = cheap.copy()
    mid, half = slope_ranges(net, pre)
    try:
        base, magnitude, _ = logit_margins(net, region.center, y)
    except NonFiniteError:  # the logits at a region's centre overflow: no SDP bound for this block
        return bounds
    rho_all = region.radius if not region.is_ball else np.full(region.center.shape, region.radius)
    r_up = pre.r_up if pre.r_up.ndim == 2 else np.broadcast_to(pre.r_up, (n, net.m))
    order = np.argsort(-np.where(np.isfinite(cheap), cheap, np.inf), axis=1, kind="stable")
    alive = np.isfinite(base).all(axis=1) & np.isfinite(pre.z_hat).all(axis=1)
    for rank in range(k - 1):
        jobs, Gs, thresholds, extras, starts = [], [], [], [], []
        for i in np.flatnonzero(alive):
            j = int(order[i, rank])
            if j == y[i] or not cheap[i, j] >= 0:
                continue
            G, e_total = _pair_matrix(net, i, j, int(y[i]), mid, half, rho_all[i], r_up[i])
            if not (np.isfinite(G).all() and np.isfinite(e_total)):
                alive[i] = False
                continue
            Gp, e, lost = _balanced(G)
            need = -(base[i, j] + e_total + lost) * (1.0 - 1e-9)        # a stopping rule, not part of the proof
            if not need > 0:                                             # SDP >= 0: this target cannot be certified
                alive[i] = False
                continue
            jobs.append((i, j))
            starts.append(_start_of(region.center[i], j))
            Gs.append(np.asfortranarray(Gp))
            thresholds.append(float(np.ldexp(need, e)))
            extras.append((e, e_total, lost))
        if not jobs:
            continue
        out = _core.solve_bipartite_sdps(Gs, np.array(thresholds), threads=_core_threads(), starts=starts, **_SOLVER)
        for (i, j), upper, (e, e_total, lost) in zip(jobs, out["upper"], extras):
            with np.errstate(over="ignore", invalid="ignore"):
                rest = round_up(float(scale_up_by_power_of_two(upper, -e)) + e_total + lost, 3, products=0)
                rounding = round_up(gamma(2) * (abs(base[i, j]) + rest), 2)
                bound = float(np.nextafter(base[i, j] + rest + rounding, np.inf))
            if np.isnan(bound):
                bound = np.inf
            bounds[i, j] = min(bounds[i, j], bound)
            if not bounds[i, j] < 0:
                alive[i] = False
    bounds[np.arange(n), y] = -np.inf
    return bounds


def sdp_example_matrix(net: TwoLayerNet, x: Any, y: int, j: int, eps: float,
                       input_domain: Any = None) -> tuple[np.ndarray, float]:
    """(G, E_total) of one example x (label y) and target j: the matrix of the bipartite SDP that ``sdp-example``
    solves for it (zero rows and columns removed) and the bound on G's rounding (module docstring). For benchmarks
    and tests against other SDP solvers: the SDP value of G plus the margin at the centre bounds the target's
    margin over the region."""
    _check_net(net)
    region, labels = checked_regions(net, np.atleast_2d(np.asarray(x)), np.array([y]), eps, input_domain)
    if not (0 <= j < net.k) or j == int(labels[0]):
        raise SdpcertError(f"target j must be a class other than the label {int(labels[0])}; got {j!r}")
    pre = preactivation_bounds(net, region)
    mid, half = slope_ranges(net, pre)
    rho = region.radius[0] if not region.is_ball else np.full(net.d, region.radius)
    r_up = pre.r_up[0] if pre.r_up.ndim == 2 else pre.r_up
    return _pair_matrix(net, 0, j, int(labels[0]), mid, half, rho, r_up)


def sdp_example_margin_bounds(net: TwoLayerNet, X: Any, y: Any, eps: float, input_domain: Any = None) -> np.ndarray:
    """(N, k) PROVEN upper bounds on ``max f_j(x') - f_y(x')`` over each example's ball (intersected with
    ``input_domain`` if given) for every class j (column y: -inf): per target the smaller of the cheap bound and the
    per-example SDP bound (module docstring). A target whose cheap bound is < 0 gets no SDP, and an example stops
    getting SDPs once it cannot be certified, so non-certified examples may report looser (still proven) bounds."""
    _check_net(net)
    region, y = checked_regions(net, X, y, eps, input_domain)
    return blockwise_bounds(net, region, y, _rigorous_block, _CHUNK)


def sdp_example_worst_margins(net: TwoLayerNet, X: Any, y: Any, eps: float, return_class: bool = False,
                              input_domain: Any = None):
    """(N,) PROVEN upper bounds on the worst margin over the region (certified iff < 0); ``return_class=True`` adds
    the maximising class."""
    worst, worst_class = worst_of(sdp_example_margin_bounds(net, X, y, eps, input_domain))
    return (worst, worst_class) if return_class else worst


def sdp_example_region_margins(net: TwoLayerNet, region: Region, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(worst, worst_class)`` for checked y and the regions of box.py (the certifier's per-example entry point)."""
    return worst_of(blockwise_bounds(net, region, y, _rigorous_block, _CHUNK))
