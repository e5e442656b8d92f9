"""The LP bound of Wong & Kolter (2018), "Provable defenses against adversarial examples via the convex outer
adversarial polytope", for the one-hidden-layer ReLU network ``f(x) = V relu(W x + b) + b2``.

For an example (x, y), a class j and v = V_j - V_y, the bound on ``max_{||x' - x||_inf <= eps} f_j(x') - f_y(x')`` is
the value of the W-K dual network at their choice of dual variables:

    z0 = W x + b,  r = eps |W| 1,  l = z0 - r,  u = z0 + r         (exact pre-activation bounds over the box)
    active   l >= 0:      D = 1
    inactive u <= 0 < -l: D = 0
    ambiguous l < 0 < u:  D = s = u / (u - l)                        (triangle relaxation, W-K's slope choice)
    nu = D * v
    B_j = (b2_j - b2_y) + nu^T z0 + eps ||W^T nu||_1 - sum_{ambiguous} s l [v]_+

Derivation (the "dual network" for one hidden layer): on an ambiguous unit the triangle relaxation gives
relu(z) <= s (z - l) (the chord, used where v_i > 0) and relu(z) >= alpha z for any alpha in [0, 1] (used where
v_i < 0; W-K take alpha = s). So v^T relu(z) <= nu^T z + sum_{ambiguous, v_i > 0} (-s_i l_i v_i) for every z in
[l, u], and nu^T z = nu^T z0 + (W^T nu)^T (x' - x) <= nu^T z0 + eps ||W^T nu||_1 over the box. The bound is valid
for ANY l <= the true lower bound, u >= the true upper bound and any lower slope in [0, 1]; it is not the LP optimum
(W-K fix the lower slope instead of optimising it, which ``lp-opt`` does: below), so it is >= the exact
triangle-relaxation LP value. Note: because of the fixed lower slope it can exceed the naive interval bound on a
unit with v_i < 0 (relu >= s z is weaker than relu >= 0 at z = l); the exact LP never does.

Over an input box (``Certifier(net, input_domain=(lo, hi))``, box.py) the same dual is taken over the example's
region {x' : |x' - c| <= rho} (c, rho from box.py, containing [max(x - eps, lo), min(x + eps, hi)]) instead of the
ball: z0 = W c + b, r = |W| rho, and the dual term eps ||W^T nu||_1 becomes sum_i rho_i |(W^T nu)_i| (the maximum of
(W^T nu)^T (x' - c) over the region), which equals sum_i max(g_i (l_i - x_i), g_i (u_i - x_i)) up to the centring.
Without a domain (region = the ball, c = x, rho = eps) the computation is exactly the ball bound of W-K.

Optimised lower slopes (``lp-opt``). The bound is convex in the lower slopes, and its minimum over them is the
exact optimum of the triangle-relaxation LP (lp_slopes.py). ``lp_opt_margin_bounds`` / ``lp_opt_worst_margins``
(``Certifier.certify(..., method="lp-opt")``) take W-K's bound, and for the (example, class) pairs it leaves >= 0
choose the slopes by a float search (lp_slopes.py), evaluate the bound at them through the same proof
(``_rigorous_block(..., lower_slopes=...)``: its argument holds for any slopes in [0, 1], so the search itself needs
no proof) and report per pair the smaller of the two proven bounds: never above ``lp``.

This module is the rigorous float64 path: ``lp_margin_bounds`` / ``lp_worst_margins``, used by
``Certifier.certify(..., method="lp")``, and the lp-opt functions add an explicit bound on every floating-point
rounding error (soundness argument in ``_rigorous_block``; rounding model in rounding.py, docs/design.md §4). The
differentiable torch version for LP-NN training (``lp_margin_bounds_torch``, ``lp_robust_loss``) is a training
objective, not a certificate, and lives with the torch code.
"""

from __future__ import annotations

from typing import Any, Optional

import numpy as np

from ..errors import SdpcertError
from ..model.network import TwoLayerNet
from .box import PreactivationBounds, Region, blockwise_bounds, checked_regions, preactivation_bounds, worst_of
from .lp_slopes import DEFAULT_SEARCH, SlopeSearch, optimise_lower_slopes
from .rounding import TINY, UNIT_ROUNDOFF, gamma, round_up

__all__ = ["lp_worst_margins", "lp_margin_bounds", "lp_region_margins", "lp_opt_margin_bounds",
           "lp_opt_worst_margins", "lp_opt_region_margins"]

_CHUNK = 256  # examples per block in the numpy path: (chunk * k, d) float64 temporaries stay ~16 MB for MNIST
_OPT_ROWS = 32  # examples per slope search in lp-opt: it holds ~30 (rows * k, m or d) arrays (~40 MB for MNIST)


# ----------------------------------------------------------------------------------------------- rigorous numpy
def _check_net(net: TwoLayerNet) -> None:
    if not isinstance(net, TwoLayerNet):
        raise SdpcertError(f"the LP bound needs a TwoLayerNet; got {type(net).__name__}")
    if net.activation != "relu":
        raise SdpcertError(f"the LP (Wong-Kolter) bound needs a relu network; this one uses {net.activation!r}")


def lp_margin_bounds(net: TwoLayerNet, X: Any, y: Any, eps: float, input_domain: Any = None) -> np.ndarray:
    """(N, k) PROVEN upper bounds on ``max_{||x' - x||_inf <= eps} f_j(x') - f_y(x')`` for every class j (column y:
    -inf, the pair (y, y) is not a margin). Float64 W-K dual values plus a bound on all rounding errors.
    ``input_domain=(lo, hi)``: the maximum over the ball intersected with [lo, hi] (box.py)."""
    _check_net(net)
    region, y = checked_regions(net, X, y, eps, input_domain)
    return blockwise_bounds(net, region, y, _rigorous_block, _CHUNK)


def lp_worst_margins(net: TwoLayerNet, X: Any, y: Any, eps: float, return_class: bool = False,
                     input_domain: Any = None):
    """(N,) PROVEN upper bounds on ``max_{j != y} max_{||x' - x||_inf <= eps} f_j(x') - f_y(x')`` (the example is
    certified iff < 0); with ``return_class=True`` also the maximising j per example. ``input_domain``: as in
    ``lp_margin_bounds``."""
    bounds = lp_margin_bounds(net, X, y, eps, input_domain)
    worst, worst_class = worst_of(bounds)
    return (worst, worst_class) if return_class else worst


def lp_region_margins(net: TwoLayerNet, region: Region, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(worst, worst_class)`` for checked y and the regions of box.py (the per-example entry point of the
    certifier; no argument checks)."""
    return worst_of(blockwise_bounds(net, region, y, _rigorous_block, _CHUNK))


# ----------------------------------------------------------------------------------------------- lp-opt
def lp_opt_margin_bounds(net: TwoLayerNet, X: Any, y: Any, eps: float, input_domain: Any = None,
                         search: SlopeSearch = DEFAULT_SEARCH) -> np.ndarray:
    """(N, k) PROVEN upper bounds as ``lp_margin_bounds``, with the lower slopes optimised (``lp-opt``): per
    (example, class) the smaller of the W-K bound and the bound at the slopes found by lp_slopes.py's search, both
    proven by ``_rigorous_block``; never above ``lp_margin_bounds``, and close to the exact triangle-relaxation LP
    optimum where the search converges. ``search``: the settings of the slope search (lp_slopes.py; e.g.
    ``SlopeSearch(stop_when_decided=False)`` to approach the LP optimum also where the sign is already clear)."""
    _check_net(net)
    if not isinstance(search, SlopeSearch):
        raise SdpcertError(f"search must be a SlopeSearch; got {type(search).__name__}")
    region, y = checked_regions(net, X, y, eps, input_domain)
    return blockwise_bounds(net, region, y, lambda *block: _optimised_block(*block, search=search), _CHUNK)


def lp_opt_worst_margins(net: TwoLayerNet, X: Any, y: Any, eps: float, return_class: bool = False,
                         input_domain: Any = None):
    """(N,) PROVEN upper bounds on the worst margin from ``lp_opt_margin_bounds`` (as ``lp_worst_margins``)."""
    worst, worst_class = worst_of(lp_opt_margin_bounds(net, X, y, eps, input_domain))
    return (worst, worst_class) if return_class else worst


def lp_opt_region_margins(net: TwoLayerNet, region: Region, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(worst, worst_class)`` of ``lp-opt`` for checked y and the regions of box.py (the certifier's entry point;
    no argument checks)."""
    _check_net(net)
    return worst_of(blockwise_bounds(net, region, y, _optimised_block, _CHUNK))


@np.errstate(over="ignore", invalid="ignore")
def _chord_slopes(lo: np.ndarray, hi: np.ndarray, ambiguous: np.ndarray) -> np.ndarray:
    """fl(hi / (hi - lo)) on the ambiguous units, clipped to [0, 1] (0 elsewhere; NaN where lo or hi is NaN): W-K's
    lower slope, and the float chord slope that step (3) of ``_rigorous_block`` rounds up."""
    width = hi - lo                                                      # inf when it overflows
    s_hat = np.where(ambiguous, hi / np.where(ambiguous, width, 1.0), 0.0)
    # hi - lo overflowed with both ends finite: the quotient of the quarters. hi/4 is rounded up and |lo|/4 toward
    # zero (both only where they fell into the subnormals), which can only increase the quotient.
    quartered = ambiguous & np.isinf(width) & np.isfinite(hi) & np.isfinite(lo)
    if quartered.any():
        hi_q = np.nextafter(hi * 0.25, np.inf)
        lo_q = np.nextafter(-lo * 0.25, 0.0)
        s_hat = np.where(quartered, hi_q / (hi_q + lo_q), s_hat)
    s_hat = np.where(ambiguous & np.isposinf(hi), 1.0, s_hat)
    return np.clip(s_hat, 0.0, 1.0)                                      # NaN (from a NaN z_hat) stays NaN


@np.errstate(over="ignore", invalid="ignore", divide="ignore")  # overflow is handled: step (5)
def _rigorous_block(net: TwoLayerNet, region: Region, y: np.ndarray, lower_slopes: Optional[np.ndarray] = None,
                    pre: Optional[PreactivationBounds] = None) -> np.ndarray:
    """The W-K bound for a block of examples, rounded so that it is >= the exact real bound, or +inf.

    ``lower_slopes``: None (W-K's lower slope s = hi / (hi - lo) on every ambiguous unit with v < 0), or (n, k, m)
    floats, the lower slope per (example, class, unit) used on the ambiguous units with v_hat < 0 (``lp-opt``; any
    values: they are clipped to [0, 1], NaN read as 0). ``pre``: the pre-activation bounds of ``region``
    (``box.preactivation_bounds``; computed here when None).

    Soundness argument. Notation: hats are computed floats, u = 2^-53, TINY = 2^-1074, gamma_n as in rounding.py.
    Rounding model (Higham, Accuracy and Stability, §2.1): fl(a op b) = (a op b)(1 + delta) + eta, |delta| <= u,
    |eta| <= 2^-1075 for products and quotients, eta = 0 for sums (a sum landing in the subnormal range is exact).
    So an n-term inner product is off by at most gamma_n |a|^T |b| + n TINY, for any summation order (BLAS
    included). Every float below that enters the relaxation (lo, hi, nu, ...) is treated as an exact real number
    once computed; only the inequalities it must satisfy are proven. Every computed error bound is rounded up,
    underflow allowance included (``round_up``), before it is multiplied by anything larger than 1, so it is >= its
    exact value when used.

    (1) Pre-activation interval. z0 = W x + b exactly; z_hat = fl(X W^T + b) has |z_hat - z0| <= ez with
        ez = gamma_{d+1} (||x||_inf ||W_i||_1 + |b_i|) + d TINY (an inner product of length d plus one addition).
        The radius r = eps ||W_i||_1 is bounded above by r_up (round_up of non-negative sums/products). Then
        lo := fl(z_hat - ez - r_up) - gamma_3 (|z_hat| + ez + r_up), rounded down, is <= z0 - r = the true lower
        bound, and hi likewise >= z0 + r (two roundings of a 3-term sum, absolute error <= gamma_2 (sum of |terms|)).
        So for every x' in the box, z' = W x' + b lies in [lo, hi].
    (2) Pair weights. v_hat = fl(V_j - V_y) has |v - v_hat| <= u |v_hat| (one rounding), so
        v^T relu(z') <= v_hat^T relu(z') + u |v_hat|^T max(hi, 0)   (relu(z') <= max(hi, 0)).
    (3) Relaxation with float coefficients nu (any floats with the properties below, used as exact reals):
        active (lo >= 0): nu = v_hat, relu(z') = z'. Inactive (hi <= 0): nu = 0, relu(z') = 0.
        Ambiguous, v_hat > 0: any upper slope s_up >= the chord slope hi / (hi - lo) is valid, since the line
        through (lo, 0) of slope s_up is >= relu on [lo, hi]; slope 1 always is (z - lo >= max(z, 0) for z >= lo),
        so s_up is clipped to <= 1. s_up := next float above fl(hi / (hi - lo)) (1 + 4u) + TINY: the difference is
        one rounding (a sum of two positive magnitudes), the quotient one more, or an absolute 2^-1075 when it
        underflows (the TINY). If hi - lo overflows, the quotient is taken of hi/4 and |lo|/4
        instead (the large one exact, the other one rounded up for hi and toward 0 for lo, which only increases
        the quotient); if hi = inf, s_up = 1. Then nu := round_up(s_up v_hat) >= chord slope * v_hat, and
        v_hat relu(z') <= nu (z' - lo) on [lo, hi].
        Ambiguous, v_hat < 0: nu = fl(a v_hat) with a float a in [0, 1] (clipped): W-K's a = s_hat, or the slope
        handed in as ``lower_slopes`` (chosen by lp-opt's float search, lp_slopes.py; any value is valid once
        clipped, NaN is read as 0). Then alpha := nu / v_hat lies in [0, 1] (|fl(a v)| <= |v| since rounding is
        monotone and v is a float; an underflow to 0 gives alpha = 0), and relu(z') >= alpha z' on [lo, hi] for
        every alpha in [0, 1] (relu(z') >= max(0, z') >= alpha z'), so v_hat relu(z') <= v_hat alpha z' = nu z'.
        Nothing else in the argument depends on the lower slope.
        Hence v_hat^T relu(z') <= nu^T z' + sum_{ambiguous, v_hat > 0} (-nu lo) and
        nu^T z' = nu^T z0 + (W^T nu)^T (x' - x) <= nu^T z0 + eps ||W^T nu||_1.
    (4) So the exact bound is  B = (b2_j - b2_y) + nu^T z0 + eps ||W^T nu||_1 + C + R,  with C = sum(-nu lo) over
        ambiguous units with v_hat > 0 (non-negative terms) and R = u |v_hat|^T max(hi, 0). Each piece is evaluated with
        a bound on its error: nu^T z0 <= fl(nu^T z_hat) + gamma_m |nu|^T |z_hat| + m TINY + |nu|^T ez;
        ||W^T nu||_1 <= sum |fl(W^T nu)| + gamma_m |W|^T |nu| + d m TINY (summed, all non-negative, rounded up);
        C, R: non-negative sums of products rounded up; b2_j - b2_y <= fl(.) + u |fl(.)|. The final sum of the five
        mixed-sign pieces is rounded by at most gamma_5 times the sum of their magnitudes, added (with a safety
        factor) before a last step up.
    (5) Overflow: inf or NaN anywhere (hi - lo, a product, a sum) reaches the final value as +inf, -inf + inf
        = NaN, or inf - inf = NaN (every inf term also makes the magnitude sum, hence the error term, +inf; round_up
        turns NaN into +inf); every non-finite bound is reported as +inf ("not certified"), never as a finite number
        or NaN. lo = -inf or hi = +inf (an overflowed error bound) are valid interval ends. A non-finite z_hat (the
        forward pass overflowed) makes the example's bounds +inf directly.
    (6) Over a box region (box.py: |x' - c| <= rho per coordinate, rho an (n, d) float array) steps (1)-(5) hold
        with x replaced by c (z0 = W c + b; ez uses ||c||_inf) and eps ||W_i||_1 by r = |W| rho (``box.
        preactivation_bounds``, r_up >= r), except the dual term of step (3): (W^T nu)^T (x' - c) <= rho^T |g|,
        g = W^T nu exactly. With g_hat = fl(W^T nu), |g - g_hat| <= gamma_m |W|^T |nu| + m TINY entrywise, so
        rho^T |g| <= rho^T |g_hat| + gamma_m (|W| rho)^T |nu| + m TINY sum(rho)
                   <= rho^T |g_hat| + gamma_m r_up^T |nu| + m TINY sum(rho),
        three non-negative inner products, each rounded up (``round_up``, products and underflow included) before
        the next product, and their sum rounded up: ``spread``. Everything else is unchanged.
    """
    W, V, b2 = net.W, net.V, net.b2  # b enters through the pre-activation bounds (box.py)
    n, (m, d), k = len(y), W.shape, net.k
    if n == 0:
        return np.zeros((0, k))
    absW = np.abs(W)
    if pre is None:
        pre = preactivation_bounds(net, region)                          # (step 1; box.py)
    lo, hi, z_hat, ez, r_up = pre.lo, pre.hi, pre.z_hat, pre.ez, pre.r_up

    active = lo >= 0
    ambiguous = (lo < 0) & (hi > 0)
    s_hat = _chord_slopes(lo, hi, ambiguous)
    # an upper slope proven >= the chord slope hi / (hi - lo): two roundings (difference, quotient) -> factor (1+u)^2,
    # an underflowed quotient is off by <= 2^-1075 (the TINY), the step up covers the rounding of this expression;
    # at most 1 (always a valid slope)
    s_up = np.where(ambiguous, np.minimum(np.nextafter(s_hat * (1.0 + 4.0 * UNIT_ROUNDOFF) + TINY, np.inf), 1.0), 0.0)

    v_hat = V[None, :, :] - V[y][:, None, :]                             # (n, k, m)
    pos = v_hat > 0
    amb3 = ambiguous[:, None, :]
    nu_pos = round_up(s_up[:, None, :] * v_hat, 1)                      # >= s_chord v_hat (one product, may underflow)
    if lower_slopes is None:
        alpha = s_hat[:, None, :]
    else:
        alpha = np.clip(np.where(np.isnan(lower_slopes), 0.0, lower_slopes), 0.0, 1.0)
    nu_neg = alpha * v_hat                                               # alpha v_hat, alpha in [0, 1]
    nu = np.where(active[:, None, :], v_hat, 0.0)
    nu = np.where(amb3 & pos, nu_pos, nu)
    nu = np.where(amb3 & ~pos, nu_neg, nu)                               # (step 3)
    abs_nu = np.abs(nu)

    # nu^T z0 (step 4): float value, and its error bound (m products in lin may underflow: m TINY; the error
    # bound's own products are covered by round_up's allowance)
    lin = np.einsum("nkm,nm->nk", nu, z_hat)
    lin_err = round_up(gamma(m) * np.einsum("nkm,nm->nk", abs_nu, np.abs(z_hat))
                       + np.einsum("nkm,nm->nk", abs_nu, ez) + m * TINY, 2 * m + 4)
    # eps ||W^T nu||_1: each of the d entries of W^T nu is an m-term inner product (m underflows each)
    g = nu.reshape(n * k, m) @ W                                         # (n k, d)
    if region.is_ball:
        g_err = (abs_nu.reshape(n * k, m) @ absW).sum(axis=1)
        g_err_up = round_up(g_err, m + d + 2, products=d * m)
        eps = region.radius
        l1 = round_up(np.abs(g).sum(axis=1) + gamma(m) * g_err_up + d * m * TINY, d + 2).reshape(n, k)
        spread = round_up(eps * l1, 1) if eps > 0 else np.zeros((n, k))
    else:                                                                # (step 6)
        rho = region.radius
        t1 = round_up(np.einsum("nkd,nd->nk", np.abs(g).reshape(n, k, d), rho), d)
        t2 = round_up(gamma(m) * round_up(np.einsum("nkm,nm->nk", abs_nu, r_up), m), 1)
        t3 = round_up(m * TINY * round_up(rho.sum(axis=1), d, products=0), 1)[:, None]
        spread = round_up(t1 + t2 + t3, 3)
    # C = sum over ambiguous units with v_hat > 0 of -nu lo (all terms >= 0)
    chord = round_up(np.where(amb3 & pos, -nu * lo[:, None, :], 0.0).sum(axis=-1), m + 1)
    # R = u |v_hat|^T max(hi, 0): the rounding of v_hat = V_j - V_y
    vround = round_up(UNIT_ROUNDOFF * np.einsum("nkm,nm->nk", np.abs(v_hat), np.maximum(hi, 0.0)), m + 2)
    # b2_j - b2_y: one rounding of a difference (exact in the subnormals); its bound u |.| is one product
    db2 = b2[None, :] - b2[y][:, None]
    db2_err = round_up(UNIT_ROUNDOFF * np.abs(db2), 1)

    total = db2 + lin + spread + chord + vround
    magnitude = np.abs(db2) + np.abs(lin) + spread + chord + vround
    errors = round_up(lin_err + db2_err + gamma(6) * magnitude, 8)
    bound = np.nextafter(total + errors, np.inf)
    bound = np.where(np.isfinite(bound), bound, np.inf)                  # (step 5)
    # A non-finite z_hat makes lo and hi NaN, and NaN comparisons would call the unit inactive; its products with
    # z_hat make the bound NaN anyway, but the argument should not rest on 0 * NaN inside a BLAS call: +inf.
    bound[~np.all(np.isfinite(z_hat), axis=1)] = np.inf
    bound[np.arange(n), y] = -np.inf
    return bound


def _rows_of(pre: PreactivationBounds, rows: np.ndarray, is_ball: bool) -> PreactivationBounds:
    """The pre-activation bounds of the examples ``rows`` (r_up is per unit for the ball, per example for a box)."""
    return PreactivationBounds(pre.lo[rows], pre.hi[rows], pre.z_hat[rows], pre.ez[rows],
                               pre.r_up if is_ball else pre.r_up[rows])


def _optimised_block(net: TwoLayerNet, region: Region, y: np.ndarray,
                     search: SlopeSearch = DEFAULT_SEARCH, pre: Optional[PreactivationBounds] = None) -> np.ndarray:
    """lp-opt for a block of examples: the W-K bound of ``_rigorous_block`` (the very computation of ``lp`` on
    the same block, so lp-opt is never above lp, not even in the last bit); then, for the examples with
    (example, class) pairs it leaves at >= 0 (the others are certified already), ``_OPT_ROWS`` examples at a time,
    lower slopes chosen by lp_slopes.py's float search (started at W-K's slope), the bound at those slopes proven
    by ``_rigorous_block`` again, and per pair the smaller of the two proven bounds. The float search only chooses
    the slopes: every number returned comes from ``_rigorous_block``, whose proof holds for any slopes."""
    n, k = len(y), net.k
    if n == 0:
        return np.zeros((0, k))
    pre = preactivation_bounds(net, region) if pre is None else pre  # given by callers that need it too
    out = _rigorous_block(net, region, y, pre=pre)
    open_pairs = np.isfinite(out) & (out >= 0)
    rows = np.flatnonzero(open_pairs.any(axis=1))                        # examples with something to improve
    for start in range(0, len(rows), _OPT_ROWS):
        part = rows[start:start + _OPT_ROWS]
        sub = _rows_of(pre, part, region.is_ball)
        optimised = _optimised_rows(net, region.rows(part), y[part], sub, open_pairs[part], search)
        out[part] = np.minimum(out[part], optimised)
    return out


@np.errstate(over="ignore", invalid="ignore", divide="ignore")
def _optimised_rows(net: TwoLayerNet, region: Region, y: np.ndarray, pre: PreactivationBounds,
                    open_pairs: np.ndarray, search: SlopeSearch) -> np.ndarray:
    """The proven bound of ``_rigorous_block`` for these examples with the lower slopes of the ``open_pairs``
    (example, class) chosen by the search, W-K's on the other pairs."""
    W, V, b2 = net.W, net.V, net.b2
    example, cls = np.nonzero(open_pairs)
    lo, hi = pre.lo[example], pre.hi[example]
    ambiguous = (lo < 0) & (hi > 0)
    slope = _chord_slopes(pre.lo, pre.hi, (pre.lo < 0) & (pre.hi > 0))  # (n, m) W-K slopes
    s = slope[example]
    labels = y[example]
    v = V[cls] - V[labels]                                               # (P, m), the floats _rigorous_block uses
    free = ambiguous & (v < 0)
    chord = ambiguous & (v > 0)
    fixed_nu = np.where(lo >= 0, v, 0.0) + np.where(chord, s * v, 0.0)
    constant = (b2[cls] - b2[labels]) + np.where(chord, -s * v * lo, 0.0).sum(axis=1)
    rho = region.radius if region.is_ball else region.radius[example]
    alpha = optimise_lower_slopes(W, pre.z_hat[example], rho, v, fixed_nu, free, s, constant, example, search)
    slopes = np.repeat(slope[:, None, :], net.k, axis=1)                 # W-K's slope on the other pairs
    slopes[example, cls] = alpha
    return _rigorous_block(net, region, y, lower_slopes=slopes, pre=pre)
