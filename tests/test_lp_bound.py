"""The Wong-Kolter LP bound (sdpcert.certify.lp, sdpcert.torch.lp) on real numerics, no mocks.

- Tiny nets (d = 2..4, m = 3..6): the bound is >= the exact worst margin (a max over all activation patterns, one
  linprog per pattern), >= the exact optimum of the triangle-relaxation LP (scipy HiGHS), and the LP optimum is <= the
  naive interval bound; the W-K bound is <= the interval bound of its own relaxation (and can exceed the naive one:
  a one-unit example shows it).
- The differentiable torch path and the rigorous float64 path agree to ~1e-9; the rigorous one is never below.
- gradcheck of the torch bound and of the robust loss in float64.
- Agreement with the reference package convex-adversarial (skipped if it is not installed).
- Certifier(..., method="lp") on a small trained MNIST net: no certified point is broken by PGD, the bound is above
  every margin PGD finds, and bad input gets clear errors.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

from sdpcert import Certifier, SdpcertError, TwoLayerNet, load_mnist_sample
from sdpcert.attacks import pgd
from sdpcert.errors import NonFiniteError, ShapeError
from sdpcert.certify.lp import lp_margin_bounds, lp_worst_margins
from sdpcert.torch.lp import lp_margin_bounds_torch, lp_robust_loss

from helpers import train_small_mnist_net

linprog = pytest.importorskip("scipy.optimize").linprog


@pytest.fixture(autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def make_net(d: int, m: int, k: int, seed: int) -> TwoLayerNet:
    rng = np.random.default_rng(seed)
    return TwoLayerNet(rng.normal(size=(m, d)), rng.normal(size=m), rng.normal(size=(k, m)), rng.normal(size=k))


def torch_bounds(net: TwoLayerNet, X: np.ndarray, y: np.ndarray, eps: float) -> np.ndarray:
    t = [torch.from_numpy(np.array(a)) for a in (net.W, net.b, net.V, net.b2, X)]
    return lp_margin_bounds_torch(*t, torch.from_numpy(np.asarray(y)), eps).numpy()


# ------------------------------------------------------------------------------------------------ exact references
def intervals(net: TwoLayerNet, x: np.ndarray, eps: float) -> tuple[np.ndarray, np.ndarray]:
    z0 = net.W @ x + net.b
    r = eps * np.abs(net.W).sum(axis=1)
    return z0 - r, z0 + r


def exact_worst(net: TwoLayerNet, x: np.ndarray, eps: float, v: np.ndarray) -> float:
    """max over the box of v^T relu(W x' + b): max over activation patterns of an LP on the pattern's region."""
    W, b = net.W, net.b
    m, d = W.shape
    best = -np.inf
    for pattern in itertools.product((0.0, 1.0), repeat=m):
        p = np.array(pattern)
        sign = np.where(p > 0, -1.0, 1.0)        # active: W x' + b >= 0 -> -W x' <= b; inactive: W x' <= -b
        res = linprog(-(v * p) @ W, A_ub=sign[:, None] * W, b_ub=np.where(p > 0, b, -b),
                      bounds=list(zip(x - eps, x + eps)), method="highs")
        if res.status == 0:
            best = max(best, -res.fun + (v * p) @ b)
    return best


def triangle_lp(net: TwoLayerNet, x: np.ndarray, eps: float, v: np.ndarray) -> float:
    """Exact optimum of max v^T h over the triangle relaxation (variables x' in the box, h), HiGHS."""
    W, b = net.W, net.b
    m, d = W.shape
    lo, hi = intervals(net, x, eps)
    A_ub, b_ub, A_eq, b_eq = [], [], [], []
    h_bounds = []
    for i in range(m):
        row = np.zeros(d + m)
        row[:d] = W[i]
        row[d + i] = -1.0
        if lo[i] >= 0:                      # h = z
            A_eq.append(row)
            b_eq.append(-b[i])
            h_bounds.append((None, None))
        elif hi[i] <= 0:                    # h = 0
            h_bounds.append((0.0, 0.0))
        else:                               # h >= 0, h >= z, h <= s (z - l)
            s = hi[i] / (hi[i] - lo[i])
            A_ub.append(row)
            b_ub.append(-b[i])
            chord = np.zeros(d + m)
            chord[:d] = -s * W[i]
            chord[d + i] = 1.0
            A_ub.append(chord)
            b_ub.append(s * (b[i] - lo[i]))
            h_bounds.append((0.0, None))
    c = np.concatenate([np.zeros(d), -v])
    res = linprog(c, A_ub=np.array(A_ub) if A_ub else None, b_ub=b_ub or None,
                  A_eq=np.array(A_eq) if A_eq else None, b_eq=b_eq or None,
                  bounds=list(zip(x - eps, x + eps)) + h_bounds, method="highs")
    assert res.status == 0, res.message
    return -res.fun


def interval_bound(net: TwoLayerNet, x: np.ndarray, eps: float, v: np.ndarray) -> float:
    lo, hi = intervals(net, x, eps)
    return float(np.sum(np.maximum(v * np.maximum(lo, 0), v * np.maximum(hi, 0))))


# ------------------------------------------------------------------------------------------------ (a) tiny nets
TINY = [(d, m, seed) for seed, (d, m) in enumerate([(2, 3), (2, 5), (3, 4), (3, 6), (4, 3), (4, 5)])]


@pytest.mark.parametrize("d, m, seed", TINY)
def test_tiny_nets_against_exact_search_and_lp(d, m, seed):
    net = make_net(d, m, 3, seed)
    rng = np.random.default_rng(50 + seed)
    strict = 0
    for eps in (0.02, 0.2, 0.7, 1.5):
        x = rng.uniform(-1, 1, size=d)
        X = np.repeat(x[None], net.k, axis=0)
        labels = np.arange(net.k)
        fast = torch_bounds(net, X, labels, eps)
        proven = lp_margin_bounds(net, X, labels, eps)
        lo, hi = intervals(net, x, eps)
        amb = (lo < 0) & (hi > 0)
        # random points and vertices of the box: a direct check that no sampled point exceeds the bound
        pts = np.concatenate([x + eps * rng.uniform(-1, 1, size=(300, d)),
                              x + eps * np.array(list(itertools.product((-1.0, 1.0), repeat=d)))])
        logits = net.forward(pts)
        for yl, j in itertools.permutations(range(net.k), 2):
            v = net.V[j] - net.V[yl]
            db2 = net.b2[j] - net.b2[yl]
            tol = 1e-9 * (1 + abs(fast[yl, j]))
            exact = exact_worst(net, x, eps, v) + db2
            lp = triangle_lp(net, x, eps, v) + db2
            naive = interval_bound(net, x, eps, v) + db2
            s = np.where(amb, hi / np.where(amb, hi - lo, 1.0), 0.0)
            own = naive + float(np.sum(np.where(amb & (v < 0), -v * s * -lo, 0.0)))
            assert np.max(logits[:, j] - logits[:, yl]) <= exact + tol
            assert exact <= lp + tol, (exact, lp)
            assert lp <= fast[yl, j] + tol, (lp, fast[yl, j])
            assert lp <= naive + tol, (lp, naive)
            assert fast[yl, j] <= own + tol, (fast[yl, j], own)
            assert proven[yl, j] >= fast[yl, j] and proven[yl, j] >= exact
            strict += fast[yl, j] > exact + 1e-6
        # the worst margin is the max over j != y
        np.testing.assert_array_equal(lp_worst_margins(net, X, labels, eps), np.max(proven, axis=1))
    assert strict > 0  # the relaxation is not exact on these nets: the comparisons are not trivially equalities


def test_wk_slope_can_exceed_the_naive_interval_bound():
    """W-K fix the lower slope of an ambiguous unit to s = u/(u-l): relu(z) >= s z is weaker than relu(z) >= 0 at
    z = l, so with v < 0 the bound exceeds the interval bound (and the LP optimum, 0 here)."""
    net = TwoLayerNet([[1.0]], [0.0], [[0.0], [-1.0]], [0.0, 0.0])
    bound = torch_bounds(net, np.zeros((1, 1)), np.array([0]), 1.0)[0, 1]
    assert bound == pytest.approx(0.5, rel=1e-15)  # max_{z in [-1, 1]} -0.5 z
    assert triangle_lp(net, np.zeros(1), 1.0, np.array([-1.0])) == pytest.approx(0.0, abs=1e-12)
    assert interval_bound(net, np.zeros(1), 1.0, np.array([-1.0])) == 0.0


def test_eps_zero_is_the_margin():
    net = make_net(5, 7, 4, 3)
    X = np.random.default_rng(0).uniform(0, 1, size=(20, 5))
    y = np.arange(20) % 4
    logits = net.forward(X)
    exact = logits - logits[np.arange(20), y][:, None]
    np.testing.assert_allclose(torch_bounds(net, X, y, 0.0), exact, rtol=0, atol=1e-12)
    proven = lp_margin_bounds(net, X, y, 0.0)
    off = ~np.eye(4, dtype=bool)[y]
    assert np.all(proven[off] >= exact[off])
    assert np.all(proven[off] - exact[off] <= 1e-12 * (1 + np.abs(exact[off])))
    assert np.all(proven[~off] == -np.inf)


# ------------------------------------------------------------------------------------------------ (b) torch vs numpy
@pytest.mark.parametrize("seed", range(3))
def test_torch_and_rigorous_paths_agree(seed):
    rng = np.random.default_rng(seed)
    d, m, k = 30, 20, 5
    net = TwoLayerNet(rng.normal(size=(m, d)) * 0.3, rng.normal(size=m), rng.normal(size=(k, m)), rng.normal(size=k))
    X = rng.uniform(0, 1, size=(40, d))
    y = rng.integers(0, k, size=40)
    for eps in (0.0, 0.01, 0.1, 0.5):
        fast = torch_bounds(net, X, y, eps)
        proven = lp_margin_bounds(net, X, y, eps)
        off = ~np.eye(k, dtype=bool)[y]
        assert np.all(fast[~off] == 0.0)
        assert np.all(proven[off] >= fast[off])
        np.testing.assert_allclose(proven[off], fast[off], rtol=1e-9, atol=1e-9)
        # float32 torch (as in training) gives the same values to float32 accuracy
        t32 = [torch.from_numpy(np.array(a, dtype=np.float32)) for a in (net.W, net.b, net.V, net.b2, X)]
        f32 = lp_margin_bounds_torch(*t32, torch.from_numpy(y), eps).numpy()
        np.testing.assert_allclose(f32, fast, rtol=1e-3, atol=1e-3)


# ------------------------------------------------------------------------------------------------ (c) gradients
def test_gradcheck():
    rng = np.random.default_rng(4)
    d, m, k, n = 3, 5, 3, 4
    args = [torch.tensor(rng.normal(size=s), dtype=torch.float64, requires_grad=True)
            for s in ((m, d), (m,), (k, m), (k,), (n, d))]
    y = torch.tensor([0, 1, 2, 1])
    eps = 0.4
    z0 = args[4] @ args[0].t() + args[1]
    r = eps * args[0].abs().sum(1)
    assert bool(((z0 - r < 0) & (z0 + r > 0)).any())  # ambiguous units: the slope path is exercised
    assert torch.autograd.gradcheck(lambda *a: lp_margin_bounds_torch(*a, y, eps), args)
    assert torch.autograd.gradcheck(lambda *a: lp_robust_loss(*a, y, eps), args)


def test_robust_loss():
    rng = np.random.default_rng(5)
    net = make_net(6, 8, 4, 5)
    X = torch.from_numpy(rng.uniform(0, 1, size=(10, 6)))
    y = torch.from_numpy(rng.integers(0, 4, size=10))
    W, b, V, b2 = (torch.from_numpy(np.array(a)) for a in (net.W, net.b, net.V, net.b2))
    bounds = lp_margin_bounds_torch(W, b, V, b2, X, y, 0.1)
    loss = lp_robust_loss(W, b, V, b2, X, y, 0.1)
    assert loss.item() == pytest.approx(torch.nn.functional.cross_entropy(bounds, y).item(), rel=1e-14)
    clean = torch.nn.functional.cross_entropy(torch.relu(X @ W.t() + b) @ V.t() + b2, y)
    assert loss.item() >= clean.item()  # an upper bound on the worst-case cross-entropy
    # and it grows with eps
    assert lp_robust_loss(W, b, V, b2, X, y, 0.3).item() > loss.item()


# ------------------------------------------------------------------------------------------------ (d) reference
@pytest.mark.parametrize("seed", range(3))
def test_matches_convex_adversarial(seed):
    ca = pytest.importorskip("convex_adversarial",
                             reason="the reference W-K implementation: pip install --no-deps convex-adversarial==0.4.4")
    torch.manual_seed(seed)
    d, m, k, n = 12, 9, 4, 6
    model = torch.nn.Sequential(torch.nn.Linear(d, m), torch.nn.ReLU(), torch.nn.Linear(m, k)).double()
    X = torch.rand(n, d, dtype=torch.float64)
    y = torch.arange(n) % k
    eye = torch.eye(k, dtype=torch.float64)
    c = eye[y].unsqueeze(1) - eye.unsqueeze(0)       # c = e_y - e_j: J(c) <= f_y - f_j
    for eps in (0.01, 0.1, 0.3):
        with torch.no_grad():
            ref = -ca.DualNetwork(model, X, eps)(c)
            ours = lp_margin_bounds_torch(model[0].weight, model[0].bias, model[2].weight, model[2].bias, X, y, eps)
        torch.testing.assert_close(ours, ref, rtol=1e-10, atol=1e-10)


# ------------------------------------------------------------------------------------------------ (e) certifier
@pytest.fixture(scope="module")
def mnist_net() -> TwoLayerNet:
    return train_small_mnist_net()


def test_certifier_lp_survives_pgd(mnist_net):
    X, y = load_mnist_sample("test", limit=200, dtype=np.float64)
    certifier = Certifier(mnist_net)
    results = certifier.certify_grid(X, y, [0.0, 0.01, 0.03, 0.1], ["lp", "spectral"])
    logits = mnist_net.forward(X)
    rows = np.arange(len(y))
    other = logits.copy()
    other[rows, y] = -np.inf
    clean = other.max(axis=1) - logits[rows, y]
    lp0 = results[(0.0, "lp")]
    assert np.all(lp0.worst_margin >= clean)
    assert np.all(lp0.worst_margin - clean <= 1e-9 * (1 + np.abs(clean)))
    assert results[(0.01, "lp")].certified.sum() >= 100  # not vacuous
    for eps in (0.01, 0.03, 0.1):
        result = results[(eps, "lp")]
        assert result.method == "lp" and result.worst_margin.shape == y.shape
        assert np.all(result.worst_class != y)
        assert not np.any(result.certified & ~result.correct)
        X_adv, fooled = pgd(mnist_net, X, y, eps, steps=20, restarts=1, loss="margin", seed=0)
        broken = np.flatnonzero(result.certified & fooled)
        assert broken.size == 0, f"eps={eps}: certified points {broken[:10]} broken by PGD"
        adv = mnist_net.forward(X_adv)
        adv_other = adv.copy()
        adv_other[rows, y] = -np.inf
        assert np.all(result.worst_margin >= adv_other.max(axis=1) - adv[rows, y])
        assert fooled.mean() <= result.certified_error
        # the per-example proven bound equals the numpy entry point and is ~ the torch value
        np.testing.assert_array_equal(result.worst_margin, lp_worst_margins(mnist_net, X, y, eps))
        fast = torch_bounds(mnist_net, X, y, eps)
        fast[rows, y] = -np.inf
        np.testing.assert_allclose(result.worst_margin, fast.max(axis=1), rtol=1e-9, atol=1e-9)
    # at eps = 0.1 PGD fools correctly classified points: the soundness check above has teeth
    assert results[(0.1, "lp")].certified_error > results[(0.1, "lp")].clean_error


def test_bad_input():
    net = make_net(4, 5, 3, 0)
    certifier = Certifier(net)
    X = np.random.default_rng(0).uniform(0, 1, size=(3, 4))
    y = np.array([0, 1, 2])
    with pytest.raises(SdpcertError, match="eps must be >= 0"):
        certifier.certify(X, y, -0.1, "lp")
    with pytest.raises(NonFiniteError, match="eps must be finite"):
        lp_worst_margins(net, X, y, float("nan"))
    bad = X.copy()
    bad[0, 1] = np.nan
    with pytest.raises(NonFiniteError, match="X contains 1 non-finite"):
        certifier.certify(bad, y, 0.1, "lp")
    with pytest.raises(ShapeError, match=r"X must have shape \(n, 4\)"):
        certifier.certify(X[:, :3], y, 0.1, "lp")
    with pytest.raises(ShapeError, match=r"y must have shape \(3,\)"):
        lp_worst_margins(net, X, y[:2], 0.1)
    with pytest.raises(SdpcertError, match="needs a relu network"):
        Certifier(TwoLayerNet(net.W, net.b, net.V, net.b2, activation="tanh")).certify(X, y, 0.1, "lp")
    with pytest.raises(SdpcertError, match="no \\(k, k\\) growth matrix"):
        certifier.growth("lp")
    # the torch entry point checks its arguments too
    t = [torch.from_numpy(np.array(a)) for a in (net.W, net.b, net.V, net.b2, X)]
    yt = torch.from_numpy(y)
    with pytest.raises(SdpcertError, match="eps must be >= 0"):
        lp_margin_bounds_torch(*t, yt, -1.0)
    with pytest.raises(ShapeError, match=r"X must have shape \(n, 4\)"):
        lp_margin_bounds_torch(*t[:4], t[4][:, :3], yt, 0.1)
    with pytest.raises(ShapeError, match=r"b2 must have shape \(3,\)"):
        lp_margin_bounds_torch(t[0], t[1], t[2], t[3][:2], t[4], yt, 0.1)
    with pytest.raises(NonFiniteError, match="X contains 1 non-finite"):
        lp_margin_bounds_torch(*t[:4], torch.from_numpy(bad), yt, 0.1)
    with pytest.raises(SdpcertError, match=r"labels must lie in 0\.\.2"):
        lp_margin_bounds_torch(*t, torch.tensor([0, 1, 3]), 0.1)
