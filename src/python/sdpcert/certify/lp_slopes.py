"""Lower slopes for the Wong-Kolter bound of lp.py, chosen by a float search: the optimiser behind method ``lp-opt``.

For an example, a class j and v = V_j - V_y, the W-K dual bound (lp.py) as a function of the lower slopes alpha_i
in [0, 1] of the ambiguous units with v_i < 0 (the *free* units) is

    B(alpha) = base + c^T alpha + sum_d rho_d |g0_d + (W^T (v_free * alpha))_d|,      c_i = v_i z0_i,

over the example's region |x' - x0| <= rho (rho = eps for the ball; box.py), where base and g0 = W^T nu_fixed
collect the units whose coefficient does not depend on alpha (active units, and the chord of the ambiguous units
with v_i > 0). B is convex and piecewise linear, and for one hidden layer its minimum over [0, 1]^free is the optimum
of the triangle-relaxation LP: with sigma in [-1, 1]^d standing for the input x' = x0 + rho * sigma,

    B(alpha) = max_sigma L(alpha, sigma),   L = base + c^T alpha + sum_d rho_d sigma_d (g0 + W^T (v_free * alpha))_d,

and min_alpha max_sigma L = max_sigma min_alpha L (a bilinear saddle over boxes), where
min_alpha L(alpha, sigma) = base + sum_d rho_d sigma_d g0_d + sum_i min(0, v_i z_i(x')) is the relaxed margin at x'
(on a free unit, v_i relu(z) = min_{alpha in [0, 1]} v_i alpha z). So every alpha gives an upper bound B(alpha) and
every sigma a lower bound D(sigma) on the LP optimum; their difference says how far the search is from it.

The saddle point is found by the primal-dual hybrid gradient method (Chambolle & Pock 2011) with their diagonal
step sizes (tau_i = 1 / sum_d |K_di| on the slopes, 1 / sum_i |K_di| on sigma, K = diag(rho) W^T diag(v_free)), so
no norm estimate is needed; each step is two matrix products with W for all pairs at once. The search keeps each
pair's best slopes by B and its best D. PDHG alone has slow tails (an input coordinate pulled by a tiny W^T nu
moves slowly), so every ``polish_every`` steps the slopes are *polished* (``_polish``): at an LP vertex the slopes
strictly inside (0, 1) are pinned by as many input coordinates where W^T nu vanishes, so likely such sets are
solved for directly and kept where B is smaller. A pair stops once B - D is below ``tolerance`` times its scale;
with ``stop_when_decided``, also once its sign is clear (B < 0 with room: certified; D > 0 with room: no slope can
certify it, and then its whole example stops, since one uncertifiable class leaves it uncertified).

Nothing here is a proof: lp.py evaluates the bound at the slopes returned with every rounding error bounded (its
argument holds for any slopes in [0, 1]) and reports the smaller of that and the W-K bound.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Union

import numpy as np

from ..errors import SdpcertError

__all__ = ["SlopeSearch", "DEFAULT_SEARCH", "optimise_lower_slopes"]


@dataclass(frozen=True)
class SlopeSearch:
    """Settings of the search. ``steps``: PDHG steps at most per pair; ``polish_every``: steps between polishes
    (and one at the end); ``tolerance``: a pair stops when its duality gap B - D is below this times its scale
    (the sum of the magnitudes of the terms of B); ``stop_when_decided``: also stop a pair (or its example) once
    the sign of its LP value is clear by ``decided_margin`` times its scale, far above the rounding terms of the
    proof. Tests turn it off to compare the search with the LP optimum itself."""

    steps: int = 1000
    polish_every: int = 50
    tolerance: float = 1e-10
    stop_when_decided: bool = True
    decided_margin: float = 1e-7

    def __post_init__(self) -> None:
        if not (isinstance(self.steps, (int, np.integer)) and not isinstance(self.steps, bool) and self.steps >= 0):
            raise SdpcertError(f"steps must be an integer >= 0; got {self.steps!r}")
        if not (isinstance(self.polish_every, (int, np.integer)) and not isinstance(self.polish_every, bool)
                and self.polish_every >= 1):
            raise SdpcertError(f"polish_every must be an integer >= 1; got {self.polish_every!r}")
        for name in ("tolerance", "decided_margin"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool)
                    and 0 <= value < float("inf")):
                raise SdpcertError(f"{name} must be a finite number >= 0; got {value!r}")


DEFAULT_SEARCH = SlopeSearch()

_POLISH_MAX_FREE = 64  # slopes solved for at most in one polish (a dense least-squares problem per pair)
_POLISH_SUBSETS = 3  # up to this many slopes, a polish tries several choices of units and coordinates


class _Pairs:
    """The per-pair arrays of the search, for the pairs still running (``keep`` drops the others)."""

    def __init__(self, **arrays: np.ndarray) -> None:
        self.__dict__.update(arrays)

    def keep(self, mask: np.ndarray, scalar_rho: bool) -> None:
        for name, value in list(self.__dict__.items()):
            if name == "rho" and scalar_rho:
                continue
            self.__dict__[name] = value[mask]


@np.errstate(over="ignore", invalid="ignore", divide="ignore")
def optimise_lower_slopes(W: np.ndarray, z0: np.ndarray, rho: Union[float, np.ndarray], v: np.ndarray,
                          fixed_nu: np.ndarray, free: np.ndarray, start: np.ndarray, constant: np.ndarray,
                          example: np.ndarray, search: SlopeSearch = DEFAULT_SEARCH) -> np.ndarray:
    """Lower slopes for P (example, class) pairs, each in [0, 1], at which B is (close to) smallest.

    W: (m, d). Per pair: z0 (P, m) the centre's pre-activations; rho a scalar (the ball) or (P, d), the region's
    radius; v (P, m) the weights V_j - V_y; fixed_nu (P, m) the dual coefficients of the units whose slope is not
    free (zero on the free ones); free (P, m) bool, the ambiguous units with v < 0; start (P, m) the first slopes
    (W-K's); constant (P,) the terms of B without nu (b2_j - b2_y and the chord terms); example (P,) the example of
    each pair. Returns (P, m): each pair's best slopes by its float B on the free units, ``start`` elsewhere. Pairs
    whose B is not finite keep ``start``."""
    P, m = v.shape
    scalar_rho = np.ndim(rho) == 0
    absW = np.abs(W)
    v_free = np.where(free, v, 0.0)
    alpha = np.where(free, np.clip(np.nan_to_num(start, nan=0.0), 0.0, 1.0), 0.0)
    slope_cost = v_free * z0                                              # c of the module docstring
    g0 = fixed_nu @ W
    base = constant + np.einsum("pm,pm->p", fixed_nu, z0)
    unit_radius = rho * absW.sum(axis=1) if scalar_rho else rho @ absW.T   # (|W| rho)_i: sum_d |K_di| / |v_i|
    coordinate_weight = np.abs(v_free) @ absW                              # sum_i |K_di| / rho_d
    scale = (np.abs(base) + np.abs(slope_cost).sum(axis=1) + (rho * np.abs(g0)).sum(axis=1)
             + (np.abs(v_free) * unit_radius).sum(axis=1))
    tau = np.where(free, 1.0 / (np.abs(v_free) * unit_radius), 0.0)
    sigma_step = 1.0 / (rho * coordinate_weight)
    tau = np.where(np.isfinite(tau), tau, 0.0)
    sigma_step = np.where(np.isfinite(sigma_step), sigma_step, 0.0)

    h = (v_free * alpha) @ W
    upper = base + (alpha * slope_cost).sum(axis=1) + (rho * np.abs(g0 + h)).sum(axis=1)
    best_alpha = alpha.copy()
    live = np.flatnonzero(free.any(axis=1) & np.isfinite(upper) & np.isfinite(scale) & (search.steps > 0))
    if live.size == 0:
        return np.where(free, best_alpha, start)
    best_upper = upper.copy()
    s = _Pairs(index=live, example=example[live], free=free[live], v_free=v_free[live], cost=slope_cost[live],
               g0=g0[live], base=base[live], rho=rho if scalar_rho else rho[live], tau=tau[live],
               sigma_step=sigma_step[live], scale=scale[live], alpha=alpha[live], h=h[live],
               sigma=np.sign(g0[live] + h[live]), weight=coordinate_weight[live],
               unit_radius=np.broadcast_to(unit_radius, (P, m))[live])
    s.q, s.lower = _lower(W, s, s.sigma)
    for step in range(1, search.steps + 1):
        alpha_new = np.where(s.free, np.clip(s.alpha - s.tau * (s.cost + s.q), 0.0, 1.0), 0.0)
        h_new = (s.v_free * alpha_new) @ W
        s.sigma = np.clip(s.sigma + s.sigma_step * s.rho * (s.g0 + 2.0 * h_new - s.h), -1.0, 1.0)
        s.alpha, s.h = alpha_new, h_new
        value = s.base + (s.alpha * s.cost).sum(axis=1) + (s.rho * np.abs(s.g0 + s.h)).sum(axis=1)
        _record(best_upper, best_alpha, s.index, value, s.alpha)
        s.q, lower = _lower(W, s, s.sigma)
        s.lower = np.fmax(s.lower, lower)
        if step % search.polish_every == 0 or step == search.steps:
            _polish(W, s, best_upper, best_alpha)
        running = _running(s, best_upper[s.index], search)
        if not running.all():
            s.keep(running, scalar_rho)
            if s.index.size == 0:
                break
    return np.where(free, best_alpha, start)


def _lower(W: np.ndarray, s: _Pairs, sigma: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(K^T sigma, D(sigma)): the slopes' gradient term and the relaxed margin at the input x0 + rho sigma."""
    q = s.v_free * ((s.rho * sigma) @ W.T)
    value = s.base + (s.rho * sigma * s.g0).sum(axis=1) + np.minimum(0.0, s.cost + q).sum(axis=1)
    return q, np.where(np.isfinite(value), value, -np.inf)


def _record(best_upper: np.ndarray, best_alpha: np.ndarray, index: np.ndarray, value: np.ndarray,
            alpha: np.ndarray) -> None:
    better = value < best_upper[index]                                   # NaN never is
    best_upper[index[better]] = value[better]
    best_alpha[index[better]] = alpha[better]


def _running(s: _Pairs, best: np.ndarray, search: SlopeSearch) -> np.ndarray:
    """Which pairs go on: not converged, and with ``stop_when_decided`` not decided (an example with an
    uncertifiable pair stops altogether)."""
    running = (best - s.lower > search.tolerance * s.scale) & np.isfinite(best)
    if search.stop_when_decided:
        margin = search.decided_margin * s.scale
        hopeless = s.lower > margin
        running &= ~(best < -margin) & ~np.isin(s.example, s.example[hopeless])
    return running


def _polish(W: np.ndarray, s: _Pairs, best_upper: np.ndarray, best_alpha: np.ndarray) -> None:
    """Solve for the fractional slopes of each pair (module docstring); keep the result where B improves.

    At an LP vertex, f free units sit at their kink (z_i(x') = 0 at the optimal input: any slope there) and f input
    coordinates are strictly inside the region, where W^T nu = 0 pins those slopes. The units are ranked by how
    close they are to their kink at the current input x0 + rho sigma (|z_i| / r_i; slopes strictly inside (0, 1)
    first), the coordinates by |W^T nu|_d relative to their column of K. For f = (number of fractional slopes) - 1
    .. + 1, f slopes are solved for (least squares) so that W^T nu vanishes on f coordinates, the other slopes kept
    at their current values (0 or 1): the first f of each ranking, and for f <= ``_POLISH_SUBSETS`` every choice of
    f among the first f + 2 units and f + 2 coordinates (the rankings are only estimates before convergence)."""
    fractional = s.free & (s.alpha > 0.0) & (s.alpha < 1.0)
    tiny = np.finfo(np.float64).tiny
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        unit_distance = np.abs(s.cost + s.q) / (np.abs(s.v_free) * s.unit_radius + tiny)
        coordinate_distance = np.abs(s.g0 + s.h) / (s.weight + tiny)
    unit_distance = np.where(fractional, -1.0, np.where(np.isnan(unit_distance), np.inf, unit_distance))
    unit_distance = np.where(s.free, unit_distance, np.inf)
    coordinate_distance = np.where(np.isnan(coordinate_distance), np.inf, coordinate_distance)
    n_free = s.free.sum(axis=1)
    n_fractional = fractional.sum(axis=1)
    d = W.shape[1]
    for p in np.flatnonzero(n_free > 0):
        units = np.argsort(unit_distance[p], kind="stable")
        coordinates = np.argsort(coordinate_distance[p], kind="stable")
        rho = s.rho if np.ndim(s.rho) == 0 else s.rho[p]
        largest = min(int(n_free[p]), d, _POLISH_MAX_FREE)
        for f in range(max(1, int(n_fractional[p]) - 1), min(int(n_fractional[p]) + 1, largest) + 1):
            if f <= _POLISH_SUBSETS:
                choices = itertools.product(itertools.combinations(units[:min(f + 2, int(n_free[p]))], f),
                                            itertools.combinations(coordinates[:f + 2], f))
            else:
                choices = [(units[:f], coordinates[:f])]
            for F, Z in choices:
                F, Z = np.asarray(F), np.asarray(Z)
                candidate = s.alpha[p].copy()
                candidate[F] = 0.0
                g_rest = s.g0[p] + (s.v_free[p] * candidate) @ W
                A = (s.v_free[p, F, None] * W[F][:, Z]).T                  # (f, f): g_Z as a map of alpha_F
                if not (np.all(np.isfinite(A)) and np.all(np.isfinite(g_rest))):
                    continue
                try:
                    solution = np.linalg.lstsq(A, -g_rest[Z], rcond=None)[0]
                except np.linalg.LinAlgError:
                    continue
                candidate[F] = np.clip(np.nan_to_num(solution, nan=0.0), 0.0, 1.0)
                value = (s.base[p] + candidate @ s.cost[p]
                         + np.sum(rho * np.abs(s.g0[p] + (s.v_free[p] * candidate) @ W)))
                if value < best_upper[s.index[p]]:
                    best_upper[s.index[p]] = value
                    best_alpha[s.index[p]] = candidate
