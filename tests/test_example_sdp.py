"""The per-example SDP (``sdp-example``, issue 10): the core's bipartite SDP solver and proof, and the method.

- The core's proven bound on max <M, P>, diag P = 1, M = [[0, G], [G^T, 0]] / 2 is >= Clarabel's value and within
  1e-6 of it, >= the exact maximum over the sign vectors (enumeration), and its primal value is <= Clarabel's.
- The proof refuses what it cannot prove (cB <= 0, NaN) and stays an upper bound for any positive dual vector.
- The method: >= the exact worst margin over ball ∩ box on tiny ReLU nets (also checked for every method by
  tests/test_input_box.py and the fuzz suite, which include it), never looser than the LP per (example, target),
  no certified point of a trained MNIST net broken by attacks in the same box, and tanh/sigmoid nets covered.
"""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest

from sdpcert import Certifier, SdpcertError, TwoLayerNet, _core, load_mnist_sample
from sdpcert.attacks import cw_linf, fgsm, pgd
from sdpcert.certify import example_sdp, lp
from sdpcert.certify.box import example_region, preactivation_bounds

from helpers import train_small_mnist_net
from reference import (box_qp_max, clip_into_ball_box, exact_margin, relu_max_margin_enum_box, sdp_value_clarabel,
                       smooth_max_margin_lower_box)


def bipartite_matrix(G: np.ndarray) -> np.ndarray:
    a, d = G.shape
    M = np.zeros((a + d, a + d))
    M[:a, a:] = G / 2
    M[a:, :a] = G.T / 2
    return M


# ------------------------------------------------------------------------------------------------ the core
@pytest.mark.parametrize("shape", [(2, 3), (4, 6), (6, 9), (12, 20), (16, 30)])
def test_core_bound_matches_clarabel(shape):
    rng = np.random.default_rng(sum(shape))
    G = rng.normal(size=shape)
    G[0] *= 3.0  # a dominant first row, as the stable units' linear term makes it
    out = _core.solve_bipartite_sdps([G], np.array([np.inf]), rel_tol=1e-7, max_sweeps=5000, threads=1)
    reference = sdp_value_clarabel(bipartite_matrix(G))
    upper, lower = float(out["upper"][0]), float(out["lower"][0])
    assert int(out["status"][0]) == 0, out
    assert upper >= reference - 1e-8 * abs(reference)
    assert upper - reference <= 1e-6 * abs(reference), (upper, reference)
    assert lower <= reference + 1e-8 * abs(reference)


@pytest.mark.parametrize("seed", range(4))
def test_core_bound_covers_the_sign_vector_maximum(seed):
    rng = np.random.default_rng(seed)
    a, d = rng.integers(2, 6), rng.integers(2, 8)
    G = rng.normal(size=(a, d)) * 10.0 ** rng.uniform(-3, 3)
    out = _core.solve_bipartite_sdps([G], np.array([np.inf]), threads=1)
    exact, _ = box_qp_max(bipartite_matrix(G))  # max over {-1, 1}^(a + d) of w^T M w = max w_A^T G w_B
    assert Fraction(float(out["upper"][0])) >= Fraction(exact) - Fraction(1e-12) * abs(Fraction(exact))


def test_core_thresholds_stop_early_and_decide_correctly():
    rng = np.random.default_rng(3)
    G = rng.normal(size=(10, 30))
    value = sdp_value_clarabel(bipartite_matrix(G))
    out = _core.solve_bipartite_sdps([G, G, G], np.array([value * 1.05, value * 0.95, np.inf]), threads=1)
    assert list(out["status"]) == [1, 2, 0]
    assert value <= out["upper"][0] < value * 1.05      # proven below the threshold
    assert out["lower"][1] >= value * 0.95               # the primal value reached it: no bound below exists
    assert out["sweeps"][0] <= out["sweeps"][2] and out["sweeps"][1] <= out["sweeps"][2]


def test_core_results_do_not_depend_on_the_thread_count():
    rng = np.random.default_rng(4)
    Gs = [rng.normal(size=(rng.integers(3, 15), rng.integers(5, 40))) for _ in range(12)]
    thresholds = np.full(12, np.inf)
    one = _core.solve_bipartite_sdps(Gs, thresholds, threads=1)
    two = _core.solve_bipartite_sdps(Gs, thresholds, threads=2)
    for key in ("upper", "lower", "sweeps", "status"):
        np.testing.assert_array_equal(one[key], two[key])


def test_proof_is_an_upper_bound_for_any_positive_dual_and_refuses_the_rest():
    rng = np.random.default_rng(5)
    G = rng.normal(size=(5, 8))
    value = sdp_value_clarabel(bipartite_matrix(G))
    for scale in (0.1, 1.0, 10.0):
        cA, cB = rng.uniform(0.1, 1, size=5) * scale, rng.uniform(0.1, 1, size=8) * scale
        bound = _core.prove_bipartite_upper(G, cA, cB)
        assert bound >= value - 1e-9 * value
    cA, cB = np.ones(5), np.ones(8)
    cB[2] = 0.0
    assert _core.prove_bipartite_upper(G, cA, cB) == np.inf       # the Schur complement needs cB > 0
    cB[2] = np.nan
    assert _core.prove_bipartite_upper(G, cA, cB) == np.inf
    with pytest.raises(ValueError, match="cA and cB"):
        _core.prove_bipartite_upper(G, np.ones(4), np.ones(8))
    with pytest.raises(ValueError, match="Gs contains NaN"):
        _core.solve_bipartite_sdps([np.full((2, 2), np.nan)], np.array([np.inf]))
    with pytest.raises(ValueError, match="one value per matrix"):
        _core.solve_bipartite_sdps([G], np.array([1.0, 2.0]))


# ------------------------------------------------------------------------------------------------ the method
def tiny_net(seed: int, d: int = 3, m: int = 6, k: int = 3, activation: str = "relu") -> TwoLayerNet:
    rng = np.random.default_rng(seed)
    return TwoLayerNet(rng.normal(size=(m, d)), rng.normal(size=m) * 0.5, rng.normal(size=(k, m)),
                       rng.normal(size=k) * 0.5, activation)


@pytest.mark.parametrize("seed", range(3))
def test_method_covers_the_exact_worst_margin_over_ball_and_box(seed):
    net = tiny_net(seed)
    rng = np.random.default_rng(seed)
    X = rng.uniform(0, 1, size=(10, net.d))
    X[rng.uniform(size=X.shape) < 0.3] = 0.0
    y = np.argmax(net.forward(X), axis=1)
    certified = 0
    for domain in (None, (0.0, 1.0)):
        lo, hi = domain if domain else (-1e6, 1e6)  # a box that never cuts the ball
        for eps in (0.05, 0.2):
            bounds = example_sdp.sdp_example_margin_bounds(net, X, y, eps, input_domain=domain)
            for n, (x, label) in enumerate(zip(X, y)):
                for j in range(net.k):
                    if j == label:
                        assert bounds[n, j] == -np.inf
                        continue
                    value, point = relu_max_margin_enum_box(net, x, eps, j, label, lo, hi)
                    exact = exact_margin(net, clip_into_ball_box(point, x, eps, lo, hi), j, label)
                    bound = float(bounds[n, j])
                    assert bound == np.inf or Fraction(bound) >= exact, (seed, domain, eps, n, j)
                certified += bool(np.max(bounds[n]) < 0)
    assert certified > 0


@pytest.mark.parametrize("activation", ["tanh", "sigmoid"])
def test_method_on_smooth_nets_covers_multistart_maxima(activation):
    net = tiny_net(8, d=2, m=5, activation=activation)
    rng = np.random.default_rng(8)
    X = rng.uniform(0, 1, size=(6, 2))
    y = np.argmax(net.forward(X), axis=1)
    for eps in (0.05, 0.3):
        worst = example_sdp.sdp_example_worst_margins(net, X, y, eps, input_domain=(0.0, 1.0))
        for n, (x, label) in enumerate(zip(X, y)):
            lower = max(smooth_max_margin_lower_box(net, x, eps, j, label, 0.0, 1.0, grid=31)
                        for j in range(net.k) if j != label)
            assert worst[n] >= lower - 1e-12 * (1 + abs(lower))


def test_slope_ranges_cover_the_secant_slopes():
    """ReLU: the secant slopes from the centre's pre-activation to any point of the interval; tanh/sigmoid: between
    any two points of it."""
    rng = np.random.default_rng(9)
    for activation in ("relu", "tanh", "sigmoid"):
        net = tiny_net(9, d=4, m=30, activation=activation)
        X = rng.uniform(0, 1, size=(5, 4))
        region = example_region(X, 0.3, None)
        pre = preactivation_bounds(net, region)
        mid, half = example_sdp.slope_ranges(net, pre)
        assert np.all(half >= 0) and np.all(mid - half >= -1e-15)  # outward rounding may dip below 0
        act = {"relu": lambda z: np.maximum(z, 0), "tanh": np.tanh, "sigmoid": lambda z: 1 / (1 + np.exp(-z))}[
            activation]
        centre = X @ net.W.T + net.b
        for _ in range(200):
            s = rng.uniform(size=pre.lo.shape)
            z1 = centre if activation == "relu" else pre.lo + rng.uniform(size=pre.lo.shape) * (pre.hi - pre.lo)
            z2 = pre.lo + s * (pre.hi - pre.lo)
            ok = np.abs(z1 - z2) > 1e-6
            secant = (act(z1) - act(z2))[ok] / (z1 - z2)[ok]
            assert np.all(secant >= (mid - half)[ok] - 1e-9) and np.all(secant <= (mid + half)[ok] + 1e-9)
        if activation == "relu":  # the anchor at the centre narrows the ranges of units far from the kink
            unstable = (pre.lo < 0) & (pre.hi > 0)
            assert np.any(half[unstable] < 0.5)


def test_never_looser_than_the_lps_and_tighter_on_a_trained_net():
    net = train_small_mnist_net()
    X, y = load_mnist_sample("test", limit=150, dtype="float64")
    for domain in (None, (0.0, 1.0)):
        lp_bounds = lp.lp_margin_bounds(net, X, y, 0.1, input_domain=domain)
        lp_opt_bounds = lp.lp_opt_margin_bounds(net, X, y, 0.1, input_domain=domain)
        sdp_bounds = example_sdp.sdp_example_margin_bounds(net, X, y, 0.1, input_domain=domain)
        assert np.all(sdp_bounds <= lp_opt_bounds) and np.all(lp_opt_bounds <= lp_bounds)
    assert np.sum(sdp_bounds.max(axis=1) < 0) > np.sum(lp_opt_bounds.max(axis=1) < 0)


def test_no_certified_point_broken_by_attacks_in_the_same_box():
    net = train_small_mnist_net()
    X, y = load_mnist_sample("test", limit=200, dtype="float64")
    certifier = Certifier(net, input_domain=(0.0, 1.0))
    broke_some = certified_some = 0
    for eps in (0.05, 0.1):
        result = certifier.certify(X, y, eps, "sdp-example")
        assert result.input_domain is not None
        fooled = fgsm(net, X, y, eps)[1] | pgd(net, X, y, eps, steps=30, restarts=2, seed=1)[1] \
            | cw_linf(net, X, y, eps, steps=30, seed=2)[1]
        broken = np.flatnonzero(result.certified & fooled)
        assert broken.size == 0, f"UNSOUND: sdp-example at eps {eps}: certified points {broken[:10]} broken"
        broke_some += int(fooled.sum())
        certified_some += int(result.certified.sum())
    assert broke_some > 0 and certified_some > 0


def test_entry_points_agree_and_refuse_bad_input():
    net = tiny_net(1)
    rng = np.random.default_rng(1)
    X = rng.uniform(0, 1, size=(7, net.d))
    y = np.argmax(net.forward(X), axis=1)
    direct = example_sdp.sdp_example_worst_margins(net, X, y, 0.1, input_domain=(0.0, 1.0))
    np.testing.assert_array_equal(direct,
                                  Certifier(net, input_domain=(0.0, 1.0)).certify(X, y, 0.1, "sdp-example").worst_margin)
    with pytest.raises(SdpcertError, match="eps"):
        example_sdp.sdp_example_margin_bounds(net, X, y, -0.1)
    bad = X.copy()
    bad[0, 0] = np.nan
    with pytest.raises(SdpcertError):
        example_sdp.sdp_example_margin_bounds(net, bad, y, 0.1)
    with pytest.raises(SdpcertError, match="lo < hi"):
        example_sdp.sdp_example_margin_bounds(net, X, y, 0.1, input_domain=(1.0, 0.0))
    with pytest.raises(SdpcertError):
        example_sdp.sdp_example_margin_bounds(net, X + 2.0, y, 0.1, input_domain=(0.0, 1.0))  # outside the box
    with pytest.raises(SdpcertError, match="TwoLayerNet"):
        example_sdp.sdp_example_margin_bounds("net", X, y, 0.1)


def test_bounds_do_not_depend_on_the_chunking():
    """Each (example, target) gets its solver start from the example and target, not from its place in a batch."""
    net = train_small_mnist_net()
    X, y = load_mnist_sample("test", limit=90, dtype="float64")
    whole = example_sdp.sdp_example_margin_bounds(net, X, y, 0.1, input_domain=(0.0, 1.0))
    parts = np.vstack([example_sdp.sdp_example_margin_bounds(net, X[s], y[s], 0.1, input_domain=(0.0, 1.0))
                       for s in (slice(0, 31), slice(31, 90))])
    finite = np.isfinite(whole)
    np.testing.assert_array_equal(np.isfinite(parts), finite)
    # the cheap bounds' BLAS blocks differ with the chunking in the last bits; the SDP bounds themselves do not
    np.testing.assert_allclose(parts[finite], whole[finite], rtol=1e-12, atol=1e-12)
    np.testing.assert_array_equal(parts.max(axis=1) < 0, whole.max(axis=1) < 0)


FORKED_RUN = """
import multiprocessing
from concurrent.futures import ProcessPoolExecutor
from sdpcert import Certifier, load_mnist_sample
from sdpcert.model import load_pretrained
net = load_pretrained("sdp-nn")
X, y = load_mnist_sample("test", limit=40)
cert = Certifier(net, input_domain=(0.0, 1.0))
serial = cert.certify(X, y, 0.1, "sdp-example")   # the parent runs OpenMP regions before it forks
with ProcessPoolExecutor(2, mp_context=multiprocessing.get_context("fork")) as pool:
    forked = cert.certify(X, y, 0.1, "sdp-example", executor=pool, chunk_size=20)
assert (serial.certified == forked.certified).all() and serial.certified.sum() > 0
print("ok")
"""


def test_a_fork_based_process_pool_does_not_hang():
    """libgomp's thread pool does not survive fork(): a forked worker must not open an OpenMP region (it would hang).
    Run in a child process with a time limit, so that a regression fails instead of hanging the suite."""
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-c", FORKED_RUN], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0 and "ok" in done.stdout, done.stderr[-2000:]
