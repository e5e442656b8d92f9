"""Certifier: per-example certificates on real numerics (no mocks).

- Structure: certified ⊆ correctly classified, certified error ≥ clean error, eps = 0 certifies exactly the correct
  points (up to exact ties), certificates shrink as eps grows.
- Soundness against attacks: on a small MNIST net trained here, no certified point is broken by a PGD attack
  (written in this file, independent of sdpcert.experiments.demo).
- Soundness against an exact search: on tiny nets (d = 2) the certified worst margin is above the worst margin
  found by a dense grid over the l_inf ball, and the pair SDP upper bounds are above the brute-force box QP.
- Bad input is refused with an SdpcertError naming the problem; pair bounds are cached, deterministic, symmetric.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch
from torch import nn

from sdpcert import certify as certify_module
from sdpcert import CertificationResult, Certifier, PairBounds, SdpcertError, TwoLayerNet, load_mnist_sample
from sdpcert.certify import METHODS, methods_for

from helpers import train_small_mnist_net
from sdpcert.errors import NonFiniteError, ShapeError

EPS_GRID = (0.0, 0.005, 0.01, 0.02, 0.05, 0.1)


# ------------------------------------------------------------------------------------------------ fixtures
@pytest.fixture(scope="module")
def mnist_net() -> TwoLayerNet:
    return train_small_mnist_net()


@pytest.fixture(scope="module")
def mnist_test() -> tuple[np.ndarray, np.ndarray]:
    return load_mnist_sample("test", limit=500, dtype=np.float64)


@pytest.fixture(scope="module")
def mnist_results(mnist_net, mnist_test) -> dict:
    X, y = mnist_test
    certifier = Certifier(mnist_net)
    return {(eps, m): certifier.certify(X, y, eps, m) for eps in EPS_GRID for m in METHODS}


def true_margins(net: TwoLayerNet, X: np.ndarray, y: np.ndarray) -> np.ndarray:
    """max_{j != y} f_j(x) - f_y(x) per row, in float64."""
    logits = net.forward(X)
    rows = np.arange(len(y))
    other = logits.copy()
    other[rows, y] = -np.inf
    return other.max(axis=1) - logits[rows, y]


# ------------------------------------------------------------------------------------------------ PGD (independent)
def pgd_fooled(net: TwoLayerNet, X: np.ndarray, y: np.ndarray, eps: float, steps: int = 40, restarts: int = 2,
               seed: int = 1) -> np.ndarray:
    """Verified counterexamples: True where some x' in the eps-ball ∩ [0, 1]^d is misclassified by ``net``.

    Cross-entropy PGD (sign steps of eps/4, random starts) in float64; every hit is re-checked in numpy.
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # small GEMMs: competing threads on a 2-core machine are several times slower
    try:
        return _pgd_fooled(net, X, y, eps, steps, restarts, seed)
    finally:
        torch.set_num_threads(threads)


def _pgd_fooled(net, X, y, eps, steps, restarts, seed):
    model = net.to_torch(torch.float64)
    x0 = torch.from_numpy(np.asarray(X, dtype=np.float64))
    labels = torch.from_numpy(np.asarray(y, dtype=np.int64))
    lo, hi = torch.clamp(x0 - eps, min=0.0), torch.clamp(x0 + eps, max=1.0)
    gen = torch.Generator().manual_seed(seed)
    fooled = np.asarray(net.predict(X)) != y
    for _ in range(restarts):
        x = torch.minimum(torch.maximum(x0 + eps * (2 * torch.rand(x0.shape, generator=gen, dtype=torch.float64) - 1),
                                        lo), hi)
        for _ in range(steps):
            x.requires_grad_(True)
            loss = nn.functional.cross_entropy(model(x), labels, reduction="sum")
            (grad,) = torch.autograd.grad(loss, x)
            with torch.no_grad():
                x = torch.minimum(torch.maximum(x + 0.25 * eps * grad.sign(), lo), hi)
                candidates = np.flatnonzero((model(x).argmax(dim=1) != labels).numpy() & ~fooled)
            if candidates.size:  # re-check each hit in numpy: misclassified and inside the ball and [0, 1]^d
                x_np = x.numpy()[candidates]
                hit = np.asarray(net.predict(x_np)) != y[candidates]
                in_ball = ((np.max(np.abs(x_np - X[candidates]), axis=1) <= eps)
                           & np.all((x_np >= 0) & (x_np <= 1), axis=1))
                fooled[candidates] |= hit & in_ball
    return fooled


# ------------------------------------------------------------------------------------------------ structure
def test_reexports():
    assert CertificationResult is certify_module.CertificationResult
    assert PairBounds is certify_module.PairBounds


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("eps", EPS_GRID)
def test_certified_subset_of_correct(mnist_results, mnist_test, method, eps):
    _, y = mnist_test
    result = mnist_results[(eps, method)]
    assert result.method == method and result.eps == eps
    assert result.worst_margin.shape == y.shape and np.all(np.isfinite(result.worst_margin))
    assert not np.any(result.certified & ~result.correct)
    assert np.all(result.worst_class != y)
    assert result.certified_error >= result.clean_error
    assert 0.0 <= result.clean_error <= result.certified_error <= 1.0
    summary = result.summary()
    assert summary["n"] == len(y) and summary["certified_error"] == result.certified_error


@pytest.mark.parametrize("method", METHODS)
def test_eps_zero_certifies_exactly_the_correct_points(mnist_net, mnist_results, mnist_test, method):
    X, y = mnist_test
    result = mnist_results[(0.0, method)]
    exact = true_margins(mnist_net, X, y)
    # the reported bound is above the float64 margin and within rounding of it
    assert np.all(result.worst_margin >= exact)
    assert np.all(result.worst_margin - exact <= 1e-9 * (1 + np.abs(exact)))
    differ = result.certified != result.correct
    # only exact (rounding-level) ties may be correct but uncertified
    assert np.all(np.abs(exact[differ]) <= 1e-9)
    assert result.clean_error < 0.3  # the net learned something: the other tests are not vacuous
    np.testing.assert_array_equal(result.correct, np.asarray(mnist_net.predict(X)) == y)


@pytest.mark.parametrize("method", METHODS)
def test_monotone_in_eps(mnist_results, method):
    for small, large in zip(EPS_GRID, EPS_GRID[1:]):
        a, b = mnist_results[(small, method)], mnist_results[(large, method)]
        assert np.all(b.worst_margin >= a.worst_margin)
        assert not np.any(b.certified & ~a.certified)
        assert b.certified_error >= a.certified_error


def test_certificates_are_not_vacuous(mnist_results):
    """The MNIST net of these tests gets real certificates at small eps (else the PGD test below proves nothing)."""
    assert mnist_results[(0.01, "sdp")].certified.sum() >= 100
    assert mnist_results[(0.02, "spectral")].certified.sum() >= 20


@pytest.mark.parametrize("eps", [0.01, 0.02, 0.05, 0.1])
def test_certified_points_survive_pgd(mnist_net, mnist_results, mnist_test, eps):
    X, y = mnist_test
    fooled = pgd_fooled(mnist_net, X, y, eps)
    for method in METHODS:
        result = mnist_results[(eps, method)]
        broken = np.flatnonzero(result.certified & fooled)
        assert broken.size == 0, f"{method} at eps={eps}: certified points {broken[:10]} broken by PGD"
        # PGD error is a lower bound and the certified error an upper bound on the robust error
        assert fooled.mean() <= result.certified_error
    if eps == 0.1:  # the attack has teeth: it fools correctly classified points
        assert fooled.mean() > mnist_results[(eps, "sdp")].clean_error + 0.05


# ------------------------------------------------------------------------------------------------ tiny nets, exact
def tiny_net(seed: int, activation: str) -> TwoLayerNet:
    rng = np.random.default_rng(seed)
    d, m, k = 2, 4, 3
    return TwoLayerNet(rng.normal(size=(m, d)), rng.normal(size=m), rng.normal(size=(k, m)), rng.normal(size=k),
                       activation=activation)


def grid_worst_margins(net: TwoLayerNet, x: np.ndarray, eps: float, points: int = 201) -> np.ndarray:
    """(k,) max over a points x points grid of the ball of max_{j != y} f_j - f_y, for each label y."""
    axis = np.linspace(-eps, eps, points)
    g0, g1 = np.meshgrid(axis, axis, indexing="ij")
    Z = x[None, :] + np.stack([g0.ravel(), g1.ravel()], axis=1)
    logits = net.forward(Z)
    worst = np.empty(net.k)
    for label in range(net.k):
        others = np.delete(logits, label, axis=1)
        worst[label] = np.max(others.max(axis=1) - logits[:, label])
    return worst


@pytest.mark.parametrize("activation", ["relu", "sigmoid", "tanh"])
@pytest.mark.parametrize("seed", range(4))
def test_tiny_nets_bound_the_grid_search(activation, seed):
    net = tiny_net(seed, activation)
    certifier = Certifier(net)
    rng = np.random.default_rng(100 + seed)
    certified_somewhere = 0
    for _ in range(6):
        x = rng.uniform(-1, 1, size=2)
        eps = float(rng.choice([0.005, 0.02, 0.1, 0.3, 1.0]))
        exact = grid_worst_margins(net, x, eps)
        X = np.repeat(x[None, :], net.k, axis=0)
        labels = np.arange(net.k)
        for method in methods_for(net):
            result = certifier.certify(X, labels, eps, method)
            scale = 1e-12 * (1 + np.abs(exact))
            assert np.all(result.worst_margin >= exact - scale), (method, eps, result.worst_margin, exact)
            # a certified label has no misclassified grid point
            assert np.all(exact[result.certified] < 0)
            certified_somewhere += int(result.certified.sum())
    assert certified_somewhere > 0  # some cases are certified, so the comparison is not vacuous


def pair_matrix(W: np.ndarray, v: np.ndarray) -> np.ndarray:
    """M of docs/design.md §2, blocks (1, m, d): M[0, t] = (A 1)ᵀ, M[s, t] = Aᵀ, with A = Wᵀ diag(v)."""
    m, d = W.shape
    A = W.T * v[None, :]
    M = np.zeros((1 + m + d, 1 + m + d))
    M[0, 1 + m:] = A.sum(axis=1)
    M[1:1 + m, 1 + m:] = A.T
    return M + M.T


@pytest.mark.parametrize("seed", range(5))
def test_pair_upper_bounds_the_box_qp(seed):
    net = tiny_net(seed, "relu")
    pairs = Certifier(net).pair_bounds()
    D = 1 + net.m + net.d
    vertices = np.array(list(itertools.product((-1.0, 1.0), repeat=D)))
    for i, j in itertools.combinations(range(net.k), 2):
        M = pair_matrix(np.asarray(net.W), net.V[i] - net.V[j])
        qp = float(np.max(np.einsum("nd,de,ne->n", vertices, M, vertices)))
        assert pairs.upper[i, j] >= qp * (1 - 1e-12)
        assert pairs.lower[i, j] <= pairs.upper[i, j]


# ------------------------------------------------------------------------------------------------ pair bounds
def test_pair_bounds_cached_deterministic_symmetric(monkeypatch, random_net):
    net = random_net(d=12, m=8, k=4, seed=3)
    calls = []
    first = Certifier(net).pair_bounds(progress=lambda done, total: calls.append((done, total)))
    assert calls and calls[-1] == (6, 6)
    assert Certifier(net).pair_bounds() is first  # cached by fingerprint: a second certifier reuses it
    twin = TwoLayerNet(net.W, net.b, net.V, net.b2)  # bit-identical copy: same fingerprint, same cache entry
    assert Certifier(twin).pair_bounds() is first

    Certifier.clear_cache()  # force a second solve
    second = Certifier(net).pair_bounds()
    assert second is not first
    np.testing.assert_array_equal(second.upper, first.upper)
    np.testing.assert_array_equal(second.lower, first.lower)

    for bounds in (first, second):
        assert bounds.upper.shape == (4, 4)
        np.testing.assert_array_equal(bounds.upper, bounds.upper.T)
        np.testing.assert_array_equal(bounds.lower, bounds.lower.T)
        assert np.all(np.diag(bounds.upper) == 0) and np.all(np.diag(bounds.lower) == 0)
        off = ~np.eye(4, dtype=bool)
        assert np.all(bounds.upper[off] >= bounds.lower[off])
        assert np.all(bounds.lower[off] > 0)
        assert np.all(bounds.relative_gap[off] <= 1e-5)


def test_sdp_certificate_uses_the_pair_upper_bounds(random_net):
    """worst margin at eps = margin + eps * (L/4) * S_upper[j, y] + rounding slack (paper eq. 10-11)."""
    net = random_net(d=6, m=5, k=3, seed=7)
    certifier = Certifier(net)
    X = np.random.default_rng(0).uniform(0, 1, size=(20, 6))
    y = np.arange(20) % 3
    eps = 0.05
    result = certifier.certify(X, y, eps, "sdp")
    upper = certifier.pair_bounds().upper
    logits = net.forward(X)
    expected = logits[np.arange(20), result.worst_class] - logits[np.arange(20), y] + eps * 0.25 * upper[
        result.worst_class, y]
    assert np.all(result.worst_margin >= expected)
    np.testing.assert_allclose(result.worst_margin, expected, rtol=1e-10, atol=1e-10)


# ------------------------------------------------------------------------------------------------ bad input
@pytest.fixture
def small():
    rng = np.random.default_rng(0)
    net = TwoLayerNet(rng.normal(size=(5, 6)), rng.normal(size=5), rng.normal(size=(3, 5)), rng.normal(size=3))
    X = rng.uniform(0, 1, size=(4, 6))
    y = np.array([0, 1, 2, 0])
    return Certifier(net), X, y


@pytest.mark.parametrize("eps, error, words", [
    (-0.1, SdpcertError, "eps must be >= 0"),
    (float("nan"), NonFiniteError, "eps must be finite"),
    (float("inf"), NonFiniteError, "eps must be finite"),
    (-float("inf"), NonFiniteError, "eps must be finite"),
    ("abc", SdpcertError, "eps must be a real number"),
    (None, SdpcertError, "eps must be a real number"),
])
def test_bad_eps(small, eps, error, words):
    certifier, X, y = small
    with pytest.raises(error, match=words):
        certifier.certify(X, y, eps)


def test_bad_X(small):
    certifier, X, y = small
    with pytest.raises(ShapeError, match=r"X must have shape \(n, 6\)"):
        certifier.certify(X[:, :5], y, 0.1)
    with pytest.raises(ShapeError, match="X must have shape"):
        certifier.certify(X.ravel(), y, 0.1)
    with pytest.raises(ShapeError, match="X must have shape"):
        certifier.certify(X[None], y, 0.1)
    bad = X.copy()
    bad[1, 2] = np.nan
    with pytest.raises(NonFiniteError, match="X contains 1 non-finite"):
        certifier.certify(bad, y, 0.1)
    bad[1, 2] = np.inf
    with pytest.raises(NonFiniteError, match="X contains 1 non-finite"):
        certifier.certify(bad, y, 0.1)
    with pytest.raises(SdpcertError, match="X must hold real numbers"):
        certifier.certify(X.astype(complex), y, 0.1)


def test_bad_y(small):
    certifier, X, y = small
    with pytest.raises(SdpcertError, match=r"labels must lie in 0\.\.2"):
        certifier.certify(X, np.array([0, 1, 3, 0]), 0.1)
    with pytest.raises(SdpcertError, match=r"labels must lie in 0\.\.2"):
        certifier.certify(X, np.array([0, -1, 2, 0]), 0.1)
    with pytest.raises(ShapeError, match=r"y must have shape \(4,\)"):
        certifier.certify(X, y[:3], 0.1)
    with pytest.raises(ShapeError, match=r"y must have shape \(4,\)"):
        certifier.certify(X, y[:, None], 0.1)
    with pytest.raises(SdpcertError, match="y must hold integer class labels"):
        certifier.certify(X, np.array([0.0, 1.5, 2.0, 0.0]), 0.1)
    with pytest.raises(SdpcertError, match="y must hold integer class labels"):
        certifier.certify(X, np.array([0.0, np.nan, 2.0, 0.0]), 0.1)
    with pytest.raises(SdpcertError, match="y must hold integer class labels"):
        certifier.certify(X, np.array(["0", "1", "2", "0"]), 0.1)
    # integral floats are accepted as labels (nothing is rounded: 1.0 is exactly 1)
    a = certifier.certify(X, y.astype(float), 0.1, "spectral")
    b = certifier.certify(X, y, 0.1, "spectral")
    np.testing.assert_array_equal(a.worst_margin, b.worst_margin)


def test_bad_method_and_certifier_arguments(small):
    certifier, X, y = small
    with pytest.raises(SdpcertError, match="unknown method 'milp'"):
        certifier.certify(X, y, 0.1, "milp")
    net = certifier.net
    for tol in (0, 0.0, -1e-6, 1.0, float("nan"), float("inf")):
        with pytest.raises(SdpcertError, match="rel_tol must lie in"):
            Certifier(net, rel_tol=tol)
    with pytest.raises(SdpcertError, match="Certifier needs a TwoLayerNet"):
        Certifier(np.zeros((3, 3)))


def test_empty_input_is_fine(small):
    certifier, X, y = small
    result = certifier.certify(X[:0], y[:0], 0.1, "spectral")
    assert result.certified.shape == (0,) and result.certified_error == 0.0 and result.clean_error == 0.0
    assert math.isfinite(result.seconds)
