"""``lp-opt``: the Wong-Kolter bound with optimised lower slopes (sdpcert.certify.lp, lp_slopes), on real numerics.

- Tiny random ReLU nets, the ball and the ball intersected with an input box: lp-opt is >= the exact worst margin
  (activation-pattern enumeration, tests/reference.py) and <= lp for every (example, class).
- The slope search converges: with its early stops off it agrees with the exact optimum of the triangle-relaxation
  LP (scipy HiGHS) to 1e-6 relative; with them on (the default), it decides the sign of every pair as the LP does.
- The proof of lp._rigorous_block holds for any lower slopes: random slopes (some outside [0, 1], some NaN) still
  give bounds >= the exact worst margin.
- The fuzz families (tests/fuzz_nets.py, subnormal to near-overflow weights): every lp-opt certificate covers the
  exact worst point (lp-opt is not a default method, so the standing fuzz suite does not run it by itself).
- A small trained MNIST net: lp-opt certifies at least as many points as lp, and PGD (clipped to the box) breaks
  none of them; in the certifier and the ``best`` cascade.
- Bad input: a tanh net, a bad ``search``.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from sdpcert import Certifier, SdpcertError, TwoLayerNet, load_mnist_sample
from sdpcert.attacks import pgd
from sdpcert.certify import ALL_METHODS, CASCADE, METHOD_TABLE
from sdpcert.certify.box import example_region, preactivation_bounds
from sdpcert.certify.lp import _rigorous_block, lp_margin_bounds, lp_opt_margin_bounds, lp_opt_worst_margins
from sdpcert.certify.lp_slopes import SlopeSearch

from fuzz_nets import FAMILIES, make_case
from helpers import train_small_mnist_net
from reference import relu_max_margin_enum, relu_max_margin_enum_box

linprog = pytest.importorskip("scipy.optimize").linprog

#: The search with its early stops off: it runs until the duality gap closes (or its step limit).
TO_THE_OPTIMUM = SlopeSearch(stop_when_decided=False)


def make_net(d: int, m: int, k: int, seed: int, scale: float = 1.0) -> TwoLayerNet:
    rng = np.random.default_rng(seed)
    return TwoLayerNet(rng.normal(size=(m, d)) * scale, rng.normal(size=m), rng.normal(size=(k, m)),
                       rng.normal(size=k))


def triangle_lp(net: TwoLayerNet, low: np.ndarray, high: np.ndarray, zl: np.ndarray, zh: np.ndarray,
                i: int, j: int) -> float:
    """Exact optimum of max f_i - f_j over the triangle relaxation (HiGHS): variables x' in [low, high] and the
    hidden values h, with h = z on units with zl >= 0, h = 0 on units with zh <= 0, and h >= 0, h >= z,
    h <= s (z - zl) (s = zh / (zh - zl)) on the others."""
    W, b = net.W, net.b
    m, d = W.shape
    v = net.V[i] - net.V[j]
    A_ub, b_ub, A_eq, b_eq, h_bounds = [], [], [], [], []
    for unit in range(m):
        row = np.zeros(d + m)
        row[:d], row[d + unit] = W[unit], -1.0                          # W x' - h
        if zl[unit] >= 0:
            A_eq.append(row)
            b_eq.append(-b[unit])
            h_bounds.append((None, None))
        elif zh[unit] <= 0:
            h_bounds.append((0.0, 0.0))
        else:
            s = zh[unit] / (zh[unit] - zl[unit])
            A_ub.append(row)
            b_ub.append(-b[unit])
            chord = np.zeros(d + m)
            chord[:d], chord[d + unit] = -s * W[unit], 1.0
            A_ub.append(chord)
            b_ub.append(s * (b[unit] - zl[unit]))
            h_bounds.append((0.0, None))
    res = linprog(np.concatenate([np.zeros(d), -v]), A_ub=np.array(A_ub) if A_ub else None, b_ub=b_ub or None,
                  A_eq=np.array(A_eq) if A_eq else None, b_eq=b_eq or None,
                  bounds=list(zip(low, high)) + h_bounds, method="highs")
    assert res.status == 0, res.message
    return -res.fun + net.b2[i] - net.b2[j]


def exact_worst(net: TwoLayerNet, x: np.ndarray, eps: float, i: int, j: int, box: bool) -> float:
    if box:
        return relu_max_margin_enum_box(net, x, eps, i, j, 0.0, 1.0)[0]
    return relu_max_margin_enum(net, x, eps, i, j)[0]


# ------------------------------------------------------------------------------------------------ tiny nets
TINY = [(2, 4, 0), (3, 5, 1), (3, 7, 2), (4, 6, 3)]


@pytest.mark.parametrize("box", [False, True], ids=["ball", "box"])
@pytest.mark.parametrize("d, m, seed", TINY)
def test_between_the_exact_worst_margin_and_lp(d, m, seed, box):
    net = make_net(d, m, 3, seed)
    rng = np.random.default_rng(100 + seed)
    domain = (0.0, 1.0) if box else None
    for eps in (0.05, 0.3, 0.8):
        X = rng.uniform(0, 1, size=(3, d))
        y = np.arange(3)
        opt = lp_opt_margin_bounds(net, X, y, eps, domain)
        wk = lp_margin_bounds(net, X, y, eps, domain)
        assert np.all(opt <= wk)                                      # never looser than lp, pair by pair
        for e, j in itertools.product(range(3), range(3)):
            if j == y[e]:
                assert opt[e, j] == -np.inf
                continue
            exact = exact_worst(net, X[e], eps, j, y[e], box)
            assert opt[e, j] >= exact, (eps, e, j, opt[e, j], exact)
        np.testing.assert_array_equal(lp_opt_worst_margins(net, X, y, eps, input_domain=domain), opt.max(axis=1))


def test_the_slopes_move():
    """W-K's slope s = u / (u - l) is not optimal: on one unit with v < 0 the W-K bound is max_{z in [-1, 1]} -z/2
    = 1/2, the LP optimum (slope 0) is 0; and on the tiny nets above lp-opt is strictly below lp on some pairs."""
    net = TwoLayerNet([[1.0]], [0.0], [[0.0], [-1.0]], [0.0, 0.0])
    assert lp_margin_bounds(net, np.zeros((1, 1)), np.array([0]), 1.0)[0, 1] == pytest.approx(0.5, rel=1e-12)
    assert 0.0 <= lp_opt_margin_bounds(net, np.zeros((1, 1)), np.array([0]), 1.0)[0, 1] <= 1e-12
    improved = 0
    for d, m, seed in TINY:
        net = make_net(d, m, 3, seed)
        X = np.random.default_rng(seed).uniform(0, 1, size=(3, d))
        y = np.arange(3)
        wk = lp_margin_bounds(net, X, y, 0.3)
        improved += np.count_nonzero(lp_opt_margin_bounds(net, X, y, 0.3) < wk - 1e-6 * (1 + np.abs(wk)))
    assert improved > 0


@pytest.mark.parametrize("box", [False, True], ids=["ball", "box"])
@pytest.mark.parametrize("seed", range(6))
def test_the_search_reaches_the_triangle_lp_optimum(seed, box):
    """Without its early stops, lp-opt is the LP optimum (over the same proven pre-activation bounds) to 1e-6
    relative, and never below it; with them (the default) it certifies exactly the examples whose LP optima are
    all < 0 (up to the stopping margin): the early stops never cost a certificate. (They may leave a pair of an
    uncertifiable example above its LP optimum: once one class of an example cannot be certified, it stops.)"""
    rng = np.random.default_rng(seed)
    d, m = int(rng.integers(2, 6)), int(rng.integers(3, 9))
    net = make_net(d, m, 3, seed)
    domain = (np.zeros(d), np.ones(d)) if box else None
    for eps in (0.1, 0.4):
        X = rng.uniform(0, 1, size=(3, d))
        y = np.arange(3)
        converged = lp_opt_margin_bounds(net, X, y, eps, domain, search=TO_THE_OPTIMUM)
        default = lp_opt_margin_bounds(net, X, y, eps, domain)
        wk = lp_margin_bounds(net, X, y, eps, domain)
        region = example_region(X, eps, domain)
        pre = preactivation_bounds(net, region)
        optimum = np.full((3, 3), -np.inf)
        for e, j in itertools.product(range(3), range(3)):
            if j == y[e]:
                continue
            rho = region.radius if region.is_ball else region.radius[e]
            lp = triangle_lp(net, region.center[e] - rho, region.center[e] + rho, pre.lo[e], pre.hi[e], j, y[e])
            optimum[e, j] = lp
            scale = 1.0 + abs(lp)
            assert converged[e, j] >= lp - 1e-9 * scale
            if wk[e, j] >= 0:                                          # the pairs lp-opt optimises
                assert converged[e, j] - lp <= 1e-6 * scale, (eps, e, j, converged[e, j], lp)
        worst = optimum.max(axis=1)
        clear = np.abs(worst) > 1e-6 * (1 + np.abs(worst))
        np.testing.assert_array_equal((default.max(axis=1) < 0)[clear], (worst < 0)[clear])
        np.testing.assert_array_equal((converged.max(axis=1) < 0)[clear], (worst < 0)[clear])


def test_any_lower_slopes_give_a_proven_bound():
    """Step (3) of lp._rigorous_block: every slope in [0, 1] is valid; values outside are clipped, NaN read as 0."""
    rng = np.random.default_rng(7)
    for seed, box in itertools.product(range(3), (False, True)):
        net = make_net(3, 6, 3, seed)
        X = rng.uniform(0, 1, size=(3, 3))
        y = np.arange(3)
        region = example_region(X, 0.4, (np.zeros(3), np.ones(3)) if box else None)
        slopes = rng.uniform(-0.5, 1.5, size=(3, 3, 6))
        slopes[0, 1, :2] = np.nan
        bounds = _rigorous_block(net, region, y, lower_slopes=slopes)
        for e, j in itertools.product(range(3), range(3)):
            if j != y[e]:
                assert bounds[e, j] >= exact_worst(net, X[e], 0.4, j, y[e], box)


def test_fuzz_families_cover_the_exact_worst_point():
    """lp-opt through the standing fuzz suite's check (largest certified radius by bisection, then the exact
    rational worst margin at fixed radii and fractions of it), one seed per weight family."""
    from test_fuzz_soundness import _check_method, _as_fractions, _beyond_float
    from fuzz_nets import ExactNet, labelled_examples

    checked = certified = 0
    for family in FAMILIES:
        case = make_case(family, 0, "relu")
        try:
            net = case.net()
        except SdpcertError:
            assert case.may_refuse
            continue
        exact = ExactNet(net)
        certifier = Certifier(net, threads=1)
        summary = {"certified": 0, "checked": 0, "refused": []}
        for x, y, how in labelled_examples(case, exact):
            xf = _as_fractions(x)
            at_x, _ = exact.margins(xf, y)
            wrong_at_x = any(v >= 0 for v in at_x.values())
            beyond_float = any(_beyond_float(v) for v in (*exact.preactivations(xf), *exact.logits(xf)[0]))
            try:
                _check_method(case, certifier, exact, x, xf, y, how, "lp-opt", wrong_at_x, beyond_float, at_x, {},
                              False, (0.0, 1e-300, 0.05, 0.5), (0.5, 1.0), summary)
            except SdpcertError:
                assert case.may_refuse, case.name
        checked += summary["checked"]
        certified += summary["certified"]
    assert checked > 0 and certified > 0


# ------------------------------------------------------------------------------------------------ the certifier
@pytest.fixture(scope="module")
def mnist():
    X, y = load_mnist_sample("test", limit=200, dtype=np.float64)
    return train_small_mnist_net(), X, y


def test_registered_as_a_per_example_method():
    spec = METHOD_TABLE["lp-opt"]
    assert "lp-opt" in ALL_METHODS and spec.per_example and not spec.default and spec.activations == ("relu",)
    assert CASCADE.index("lp-opt") == CASCADE.index("lp") + 1


def test_mnist_certifies_at_least_lp_and_survives_pgd(mnist):
    net, X, y = mnist
    certifier = Certifier(net, input_domain=(0.0, 1.0))
    gained = 0
    for eps in (0.03, 0.1):
        grid = certifier.certify_grid(X, y, [eps], ["lp", "lp-opt", "best"])
        lp, opt, best = grid[(eps, "lp")], grid[(eps, "lp-opt")], grid[(eps, "best")]
        assert opt.input_domain is not None and opt.method == "lp-opt"
        assert np.all(opt.worst_margin <= lp.worst_margin)
        assert not np.any(lp.certified & ~opt.certified)
        assert not np.any(opt.certified & ~best.certified)
        assert not np.any(opt.certified & ~opt.correct)
        gained += int(np.count_nonzero(opt.certified & ~lp.certified))
        # the attacks clip to the ball intersected with [0, 1]: the set these certificates are about
        X_adv, fooled = pgd(net, X, y, eps, steps=20, restarts=1, loss="margin", seed=0)
        broken = np.flatnonzero(opt.certified & fooled)
        assert broken.size == 0, f"eps={eps}: lp-opt-certified points {broken[:10]} broken by PGD"
        assert np.all(X_adv >= 0) and np.all(X_adv <= 1)
        adv = net.forward(X_adv)
        rows = np.arange(len(y))
        adv_other = adv.copy()
        adv_other[rows, y] = -np.inf
        assert np.all(opt.worst_margin >= adv_other.max(axis=1) - adv[rows, y])
        np.testing.assert_array_equal(opt.worst_margin,
                                      lp_opt_worst_margins(net, X, y, eps, input_domain=(0.0, 1.0)))
    assert gained > 0  # the optimised slopes certify points the W-K slopes do not


def test_bad_input():
    net = make_net(4, 5, 3, 0)
    X = np.random.default_rng(0).uniform(0, 1, size=(3, 4))
    y = np.array([0, 1, 2])
    tanh = TwoLayerNet(net.W, net.b, net.V, net.b2, activation="tanh")
    with pytest.raises(SdpcertError, match="needs a relu network"):
        Certifier(tanh).certify(X, y, 0.1, "lp-opt")
    with pytest.raises(SdpcertError, match="needs a relu network"):
        lp_opt_margin_bounds(tanh, X, y, 0.1)
    with pytest.raises(SdpcertError, match="search must be a SlopeSearch"):
        lp_opt_margin_bounds(net, X, y, 0.1, search={"steps": 3})
    with pytest.raises(SdpcertError, match="steps must be an integer >= 0"):
        SlopeSearch(steps=-1)
    with pytest.raises(SdpcertError, match="tolerance must be a finite number >= 0"):
        SlopeSearch(tolerance=float("nan"))
    with pytest.raises(SdpcertError, match="eps must be >= 0"):
        Certifier(net).certify(X, y, -0.1, "lp-opt")
    with pytest.raises(SdpcertError, match="no \\(k, k\\) growth matrix"):
        Certifier(net).growth("lp-opt")
