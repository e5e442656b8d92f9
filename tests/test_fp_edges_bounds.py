"""Soundness of the Python-side bounds at the edges of floating point: subnormals, underflow and overflow.

Products that round into the subnormal range carry an absolute error (up to 2^-1075 each) that a purely relative
error bound misses; squares of numbers below ~1e-162 underflow; sums and differences near 1e308 overflow. Each
test below builds such a case with real numerics and checks every reported bound against the exact value: relu
nets are evaluated in rational arithmetic (Fraction), sigmoid/tanh nets in 400-bit mpmath, on the point x and on a
grid of exact points of the l_inf ball (d = 1 or 2). A bound must be >= that value or +inf ("not certified"),
never NaN; inputs whose float64 logits overflow must be refused.

The regression tests reproduce the audit findings: r1 (subnormal logits certified on the wrong side of 0), r2
(pair and Frobenius norms underflowing to 5e-324), r2b (the packaged SDP-NN rescaled by exact powers of two), r3
(the LP's hi - lo overflowing), r6 (overflowing logits reported as numbers).
"""

from __future__ import annotations

import importlib.util
import itertools
import json
import os
import subprocess
import sys
from fractions import Fraction

import numpy as np
import pytest

from sdpcert import Certifier, TwoLayerNet, load_mnist_sample
from sdpcert.certify.growth import frobenius_growth, frobenius_norm_upper, pair_norms_upper, sdp_growth, spectral_growth
from sdpcert.certify import certify_with_growth, methods_for
from sdpcert.errors import NonFiniteError, SdpcertError
from sdpcert.certify.lp import lp_margin_bounds, lp_worst_margins
from sdpcert.model.pretrained import load_pretrained

TINY = 2.0**-1074  # smallest positive subnormal


# ------------------------------------------------------------------------------------------------ exact evaluation
class ExactNet:
    """The network's weights as exact numbers: Fractions (relu) or 400-bit mpmath floats (sigmoid, tanh)."""

    def __init__(self, net: TwoLayerNet) -> None:
        self.activation = net.activation
        if net.activation == "relu":
            self.num = Fraction
            self.sigma = lambda z: max(z, Fraction(0))
        else:
            mpmath = pytest.importorskip("mpmath")
            self.ctx = mpmath.mp.clone()
            self.ctx.prec = 400
            self.num = self.ctx.mpf
            self.sigma = ((lambda z: 1 / (1 + self.ctx.exp(-z))) if net.activation == "sigmoid"
                          else self.ctx.tanh)
        self.W = [[self.num(v) for v in row] for row in net.W.tolist()]
        self.b = [self.num(v) for v in net.b.tolist()]
        self.V = [[self.num(v) for v in row] for row in net.V.tolist()]
        self.b2 = [self.num(v) for v in net.b2.tolist()]

    def logits(self, x: list) -> list:
        h = [self.sigma(sum(w * xi for w, xi in zip(row, x)) + bi) for row, bi in zip(self.W, self.b)]
        return [sum(v * hi for v, hi in zip(row, h)) + c for row, c in zip(self.V, self.b2)]

    def ball_points(self, x: np.ndarray, eps: float, points: int) -> list:
        """Exact points x + eps t, t on a grid of [-1, 1]^d (every one inside the ball)."""
        centre = [self.num(float(v)) for v in x]
        if eps == 0:
            return [centre]
        if self.num is Fraction:
            steps = [Fraction(2 * i - (points - 1), points - 1) for i in range(points)]
        else:
            steps = [self.num(2 * i - (points - 1)) / (points - 1) for i in range(points)]
        radius = self.num(eps)
        return [[c + radius * t for c, t in zip(centre, offset)] for offset in itertools.product(steps, repeat=len(x))]

    def worst_margins(self, x: np.ndarray, eps: float, points: int = 9) -> list:
        """For every label y: the max over the grid points of max_{j != y} f_j - f_y (exact at each point)."""
        k = len(self.V)
        worst = [None] * k
        for point in self.ball_points(x, eps, points):
            f = self.logits(point)
            for y in range(k):
                value = max(f[j] - f[y] for j in range(k) if j != y)
                worst[y] = value if worst[y] is None else max(worst[y], value)
        return worst


def assert_bound_above(bound: float, exact, what: str) -> None:
    assert not np.isnan(bound), f"{what}: the bound is NaN"
    if bound == np.inf:
        return
    exact_bound = Fraction(float(bound)) if isinstance(exact, Fraction) else exact.context.mpf(float(bound))
    assert exact_bound >= exact, f"{what}: bound {bound!r} < exact {float(exact)!r}"


# ------------------------------------------------------------------------------------------------ r1: subnormal logits
def subnormal_logit_net(large: int, small: int) -> TwoLayerNet:
    """d = 1, x = 1, W = h: hidden = [0.6] * large + [0.4] * small exactly. V_0 = TINY on the first group, V_1 = TINY
    on the second: computed f_0 = large TINY (each 0.6 TINY rounds up), f_1 = 0 (each 0.4 TINY rounds to 0), but
    exactly f_1 - f_0 = (0.4 small - 0.6 large) TINY > 0: label 0 is wrong at x itself."""
    h = np.array([0.6] * large + [0.4] * small)
    V = np.zeros((2, len(h)))
    V[0, :large] = TINY
    V[1, large:] = TINY
    return TwoLayerNet(h[:, None], np.zeros(len(h)), V, np.zeros(2), "relu")


@pytest.mark.parametrize("large,small", [(6, 10), (20, 40)], ids=["r1", "r1_lp_variant"])
def test_r1_subnormal_logits_not_certified(large, small):
    net = subnormal_logit_net(large, small)
    X, y = np.array([[1.0]]), np.array([0])
    exact = ExactNet(net)
    f = exact.logits([Fraction(1)])
    assert f[1] - f[0] > 0 and (net.forward(X)[0] == [large * TINY, 0.0]).all()
    certifier = Certifier(net)
    for eps in (0.0, 1e-300, 1e-12):
        worst = exact.worst_margins(X[0], eps, points=5)[0]
        for method in methods_for(net):
            result = certifier.certify(X, y, eps, method)
            assert not result.certified[0], (method, eps, result.worst_margin[0])
            assert_bound_above(result.worst_margin[0], worst, f"{method} eps={eps}")
        assert_bound_above(lp_worst_margins(net, X, y, eps)[0], worst, f"lp_worst_margins eps={eps}")


# ------------------------------------------------------------------------------------------------ r2: norms underflow
def exact_norm_squared(values) -> Fraction:
    return sum((Fraction(float(v)) ** 2 for v in np.ravel(values)), Fraction(0))


@pytest.mark.parametrize("values", [
    [1e-170], [TINY], [TINY, TINY, 3 * TINY], [2.0**-1022, -(2.0**-1060), TINY], [1e-200, 1e200], [1e308, -1e308],
    [1.5e-162, 1.5e-162, -1.5e-162], [2.0**1023, 2.0**-1074, 1.0], [5e-324, 0.0, 1e-300],
])
def test_frobenius_norm_bound_at_any_scale(values):
    W = np.array(values, dtype=np.float64)[:, None]
    net = TwoLayerNet(W, np.zeros(len(W)), np.ones((2, len(W))), np.zeros(2))
    bound = frobenius_norm_upper(net)
    assert np.isfinite(bound)  # balanced: no overflow even for 1e308 entries
    exact = exact_norm_squared(values)
    assert Fraction(bound) ** 2 >= exact
    assert Fraction(bound) ** 2 <= exact * Fraction(1 + 1e-12) + Fraction(2.0**-1000) ** 2  # and tight


def test_pair_norms_at_any_scale():
    rows = [[0.0, 0.0, 0.0], [1e-170, -1e-170, 0.0], [TINY, 0.0, 2 * TINY], [1e300, 1e-300, -1e300],
            [-1e308, 1e308, 1.0], [2.0**-1022, 2.0**-1023, TINY], [1e308, -1e308, 0.0]]
    V = np.array(rows)
    net = TwoLayerNet(np.ones((3, 1)), np.zeros(3), V, np.zeros(len(V)))
    norms = pair_norms_upper(net)
    for i, j in itertools.product(range(len(V)), repeat=2):
        exact = sum(((Fraction(a) - Fraction(b)) ** 2 for a, b in zip(rows[i], rows[j])), Fraction(0))
        if i == j:
            assert norms[i, j] == 0
        elif norms[i, j] != np.inf:
            assert Fraction(float(norms[i, j])) ** 2 >= exact, (i, j)
            assert Fraction(float(norms[i, j])) ** 2 <= exact * Fraction(1 + 1e-12) + Fraction(2.0**-1000) ** 2
        else:  # only an overflowing difference may give +inf
            assert exact >= Fraction(np.finfo(np.float64).max) ** 2, (i, j)
    # 1e300 - (-1e308) and the norm 1.4e308 of that difference stay finite (balanced); 1e308 - (-1e308) overflows
    assert np.isfinite(norms[3, 4]) and np.isinf(norms[4, 6]) and np.isfinite(norms[1, 3])


@pytest.mark.parametrize("first,second", [(1e150, 1e-170), (1e-170, 1e150)], ids=["V_tiny", "W_tiny"])
def test_r2_norm_underflow_not_certified(first, second):
    """f_1 - f_0 = second relu(first x') - 1e-21 = 9e-21 > 0 at x' = 1, inside the ball of radius 1 around 0."""
    net = TwoLayerNet([[first]], [0.0], [[0.0], [second]], [1e-21, 0.0], "relu")
    X, y = np.zeros((1, 1)), np.array([0])
    worst = ExactNet(net).worst_margins(X[0], 1.0, points=5)[0]
    assert worst > 0
    certifier = Certifier(net)
    for method in methods_for(net):
        result = certifier.certify(X, y, 1.0, method)
        assert not result.certified[0], method
        assert_bound_above(result.worst_margin[0], worst, method)
    # the norms themselves: the exact 1e-170 is not lost in the squares
    assert Fraction(float(pair_norms_upper(net)[0, 1])) >= Fraction(second)
    assert Fraction(frobenius_norm_upper(net)) >= Fraction(first)


def test_r2b_packaged_net_rescaled_by_powers_of_two_certifies_like_the_original():
    """W, b times 2^500 and V times 2^-560, b2 times 2^-60: the logits are the original ones times 2^-60 (exactly, up
    to rounding), so the growth coefficients must scale by 2^-60 and the same points be certified."""
    net = load_pretrained("sdp-nn")
    scaled = TwoLayerNet(net.W * 2.0**500, net.b * 2.0**500, net.V * 2.0**-560, net.b2 * 2.0**-60, net.activation)
    X, y = load_mnist_sample("test", limit=100, dtype="float64")
    off = ~np.eye(net.k, dtype=bool)
    for growth in (spectral_growth, frobenius_growth):
        ratio = growth(scaled)[off] / (growth(net)[off] * 2.0**-60)
        assert np.all(ratio >= 1 - 1e-12) and np.all(ratio <= 1 + 1e-12), growth.__name__
    original, rescaled = Certifier(net), Certifier(scaled)
    for eps in (0.001, 0.005, 0.02):
        for method in ("spectral", "frobenius"):
            a, b = original.certify(X, y, eps, method), rescaled.certify(X, y, eps, method)
            np.testing.assert_array_equal(a.certified, b.certified, err_msg=f"{method} eps={eps}")


# ------------------------------------------------------------------------------------------------ r3: LP overflow
@pytest.mark.parametrize("w,eps", [(9e307, 1.0), (1.0, 9e307)], ids=["huge_weights", "huge_eps"])
def test_r3_lp_overflow_not_certified(w, eps):
    """Over the ball z' = w x' - 8e307 reaches 1e307 (hi - lo overflows), so f_1 - f_0 = relu(z') - 2e291 > 0."""
    net = TwoLayerNet([[w]], [-8e307], [[0.0], [1.0]], [2e291, 0.0], "relu")
    X, y = np.zeros((1, 1)), np.array([0])
    worst = ExactNet(net).worst_margins(X[0], eps, points=3)[0]
    assert worst > 0
    bounds = lp_margin_bounds(net, X, y, eps)
    assert not np.isnan(bounds).any()
    assert_bound_above(bounds[0, 1], worst, "lp_margin_bounds")
    for method in ("lp", "sdp"):
        result = Certifier(net).certify(X, y, eps, method)
        assert not result.certified[0] and not np.isnan(result.worst_margin[0]), method
        assert_bound_above(result.worst_margin[0], worst, method)


def test_lp_nonfinite_terms_give_inf_never_nan():
    """Pre-activations that overflow to inf or NaN in the LP's own forward pass give +inf bounds, never NaN."""
    net = TwoLayerNet([[1e308, 1e308], [1e308, -1e308]], [0.0, 0.0], [[1.0, 2.0], [-1.0, 0.5]],
                      [0.0, 0.0])
    X = np.array([[1.0, 1.0], [1.0, 0.0]])
    bounds = lp_margin_bounds(net, X, np.array([0, 1]), 0.5)
    assert bounds[0, 1] == np.inf and bounds[1, 0] == np.inf
    assert not np.isnan(bounds).any()


# ---------------------------------------------------------------------------------------------- r6: overflowing logits
def test_r6_overflowing_logits_refused_by_every_method():
    rng = np.random.default_rng(0)
    net = TwoLayerNet(np.abs(rng.normal(size=(20, 784))) * 1e306, np.zeros(20), rng.normal(size=(10, 20)),
                      np.zeros(10))
    X = rng.uniform(0, 1, size=(12, 784))
    y = rng.integers(0, 10, size=12)
    for method in methods_for(net):
        with pytest.raises(NonFiniteError, match=r"logits overflow to inf/NaN on 12 of the 12 inputs"):
            Certifier(net).certify(X, y, 0.1, method)
    with pytest.raises(NonFiniteError, match="too large for float64"):
        certify_with_growth(net, X, y, 0.1, np.ones((10, 10)))
    # only the overflowing rows are counted; finite rows alone are certified as usual
    X[3:] = 0.0
    with pytest.raises(NonFiniteError, match="on 3 of the 12 inputs"):
        Certifier(net).certify(X, y, 0.1, "spectral")
    assert Certifier(net).certify(X[3:], y[3:], 0.0, "spectral").worst_margin.shape == (9,)


def test_inf_and_nan_growth_give_inf_never_nan():
    net = TwoLayerNet([[1.0]], [0.0], [[0.0], [1.0]], [1.0, 0.0])
    X, y = np.zeros((1, 1)), np.array([0])
    assert sdp_growth(net, np.array([[0.0, np.inf], [np.inf, 0.0]]))[0, 1] == np.inf
    assert sdp_growth(net, np.array([[0.0, np.nan], [np.nan, 0.0]]))[0, 1] == np.inf
    assert sdp_growth(net, np.array([[0.0, 5e-324], [5e-324, 0.0]]))[0, 1] >= 0.25 * 5e-324  # not rounded to 0
    from sdpcert.certify.margins import logit_margins as _logit_margins, worst_margins as _worst_margins

    base, magnitude, _ = _logit_margins(net, X, y)
    for G in (np.full((2, 2), np.inf), np.full((2, 2), np.nan)):
        worst, _ = _worst_margins(base, magnitude, y, 0.5, G)
        assert worst[0] == np.inf


# ------------------------------------------------------------------------------------------------ property tests
def scaled_family(name: str, d: int, seed: int, activation: str = "relu") -> TwoLayerNet:
    """A small random net (m = 4, k = 3) rescaled to an edge of the float range; the logits stay finite."""
    rng = np.random.default_rng(seed)
    m, k = 4, 3
    W, b, V, b2 = rng.normal(size=(m, d)), rng.normal(size=m), rng.normal(size=(k, m)), rng.normal(size=k)
    if name == "w_2^500_v_2^-560":      # the r2b scaling
        W, b, V, b2 = W * 2.0**500, b * 2.0**500, V * 2.0**-560, b2 * 2.0**-60
    elif name == "v_2^-1030":           # subnormal second layer: subnormal logits
        V, b2 = V * 2.0**-1030, b2 * 2.0**-1030
    elif name == "w_2^-1030":           # subnormal hidden units, amplified by a large V: normal logits
        W, b, V, b2 = W * 2.0**-1030, b * 2.0**-1030, V * 2.0**500, b2 * 2.0**-530
    elif name == "w_2^-500_v_2^500":
        W, b, V = W * 2.0**-500, b * 2.0**-500, V * 2.0**500
    elif name == "w_1e300":             # near the top of the range
        W, b, V, b2 = W * 1e300, b * 1e300, V * 1e-300, b2
    elif name == "w_1e307":             # the LP's hi - lo overflows at eps = 1
        W, b, V, b2 = W * 1e307, b * 1e307, V * 1e-300, b2 * 1e7
    elif name == "mixed_1e200":         # entries of both extremes in the same matrices
        W = W * np.where(rng.random(W.shape) < 0.5, 1e200, 1e-200)
        b = b * np.where(rng.random(m) < 0.5, 1e200, 1e-200)
        V = V * np.where(rng.random(V.shape) < 0.5, 1e-200, 1e90)
        b2 = b2 * 1e-200
    else:
        assert name == "plain"
    return TwoLayerNet(W, b, V, b2, activation)


FAMILIES = ["plain", "w_2^500_v_2^-560", "v_2^-1030", "w_2^-1030", "w_2^-500_v_2^500", "w_1e300", "w_1e307",
            "mixed_1e200"]


@pytest.mark.parametrize("d", [1, 2])
@pytest.mark.parametrize("family", FAMILIES)
def test_every_method_bounds_the_exact_margins_at_the_edges_of_the_float_range(family, d):
    _check_family(scaled_family(family, d, seed=d), d, points=7 if d == 2 else 15)


@pytest.mark.parametrize("activation", ["sigmoid", "tanh"])
@pytest.mark.parametrize("family", ["w_2^500_v_2^-560", "v_2^-1030", "w_2^-1030", "mixed_1e200"])
def test_smooth_activations_at_the_edges_of_the_float_range(family, activation):
    _check_family(scaled_family(family, 2, seed=7, activation=activation), 2, points=5)


def _check_family(net: TwoLayerNet, d: int, points: int) -> None:
    exact = ExactNet(net)
    certifier = Certifier(net)
    rng = np.random.default_rng(11)
    labels = np.arange(net.k)
    for x in rng.uniform(-1, 1, size=(2, d)):
        X = np.repeat(x[None, :], net.k, axis=0)
        for eps in (0.0, 2.0**-30, 0.25, 1.0):
            worst = exact.worst_margins(x, eps, points)
            for method in methods_for(net):
                result = certifier.certify(X, labels, eps, method)
                for y in labels:
                    assert_bound_above(result.worst_margin[y], worst[y], f"{method} eps={eps} y={y} x={x}")


# ------------------------------------------------------------------------------------------------ BLAS threads
_THREADS_SCRIPT = r"""
import json
import numpy as np
from sdpcert import Certifier, TwoLayerNet

def build():
    rng = np.random.default_rng(5)
    d, m, k, n = 784, 32, 3, 256   # OpenBLAS's results change with the thread count at this size (d = 784)
    net = TwoLayerNet(rng.normal(size=(m, d)) / 16, rng.normal(size=m), rng.normal(size=(k, m)) / 8,
                      rng.normal(size=k), "relu")
    X = rng.uniform(0, 1, size=(n, d))
    return net, X, np.argmax(net.forward(X), axis=1)

def run():
    net, X, y = build()
    certifier = Certifier(net)
    return {f"{method}-{eps}": [float(v).hex() for v in certifier.certify(X, y, eps, method).worst_margin]
            for method in ("spectral", "lp") for eps in (0.0, 1e-3)}

if __name__ == "__main__":
    print(json.dumps(run()))
"""


def test_bounds_hold_for_any_blas_thread_count(tmp_path):
    """The logits (and the LP's products) differ in the last bits between BLAS thread counts; the gamma_n bounds
    hold for any summation order, so the bounds from 1 and from 2 threads are both >= the exact margin at x."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # the BLAS thread count is fixed at start-up: one child process per setting
        threadpool_limits = None
    script = tmp_path / "threads_run.py"
    script.write_text(_THREADS_SCRIPT)
    spec = importlib.util.spec_from_file_location("threads_run", script)
    threads_run = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(threads_run)
    runs = {}
    for threads in (1, 2):
        if threadpool_limits is not None:
            with threadpool_limits(threads):
                runs[threads] = threads_run.run()
        else:
            env = {**os.environ, "OPENBLAS_NUM_THREADS": str(threads), "OMP_NUM_THREADS": str(threads),
                   "MKL_NUM_THREADS": str(threads)}
            out = subprocess.run([sys.executable, str(script)], env=env, capture_output=True, text=True, timeout=120)
            assert out.returncode == 0, out.stderr
            runs[threads] = json.loads(out.stdout)
    net, X, y = threads_run.build()
    exact = ExactNet(net)
    # the rows where the two thread counts disagree first (if the BLAS splits the sums differently), then the rest
    differ = [row for row in range(len(y)) if any(runs[1][key][row] != runs[2][key][row] for key in runs[1])]
    for row in (differ + [row for row in range(len(y)) if row not in differ])[:6]:
        f = exact.logits([Fraction(float(v)) for v in X[row]])
        margin_at_x = max(f[j] - f[y[row]] for j in range(net.k) if j != y[row])
        for threads, bounds in runs.items():
            for key, values in bounds.items():
                bound = float.fromhex(values[row])
                assert_bound_above(bound, margin_at_x, f"{key} with {threads} BLAS threads, row {row}")
                if key.endswith("-0.0"):  # at eps = 0 the bound is the margin plus a rounding allowance: tight
                    assert Fraction(bound) - margin_at_x <= Fraction(1e-9) * (1 + abs(margin_at_x))


def test_flush_to_zero_mode_is_refused():
    """The rounding bounds assume gradual underflow: with torch.set_flush_denormal(True) (FTZ/DAZ on this thread)
    a subnormal product becomes 0 and the absolute error terms no longer hold, so every certificate is refused."""
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    net = TwoLayerNet(rng.normal(size=(5, 4)), rng.normal(size=5), rng.normal(size=(3, 5)), rng.normal(size=3))
    X, y = rng.uniform(0, 1, size=(4, 4)), np.array([0, 1, 2, 0])
    G = np.ones((3, 3))
    if not torch.set_flush_denormal(True):
        pytest.skip("this CPU does not support flush-to-zero mode")
    try:
        for run in (lambda: Certifier(net).certify(X, y, 0.1, "spectral"),
                    lambda: Certifier(net).certify_grid(X, y, [0.0, 0.1], ["frobenius", "lp"]),
                    lambda: certify_with_growth(net, X, y, 0.1, G),
                    lambda: lp_worst_margins(net, X, y, 0.1),
                    lambda: lp_margin_bounds(net, X, y, 0.1)):
            with pytest.raises(SdpcertError, match="flush-to-zero mode is on"):
                run()
    finally:
        torch.set_flush_denormal(False)
    assert np.float64(2.0**-1022) / np.float64(4.0) != 0  # gradual underflow is back
    assert Certifier(net).certify(X, y, 0.1, "spectral").worst_margin.shape == (4,)
