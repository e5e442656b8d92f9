"""sdpcert.attacks on real numerics (no mocks).

- Every returned point lies in the l_inf ball and in [0, 1]; every "fooled" point is misclassified by the float64
  numpy forward of the TwoLayerNet; eps = 0 reproduces the clean error exactly.
- On a small 784-30-10 net trained here: attack errors >= clean error, PGD with restarts >= PGD without (same
  seed), errors non-decreasing in eps, PGD not weaker than FGSM beyond a small tolerance.
- Soundness cross-check: no point certified by the Certifier (sdp, spectral) is fooled by FGSM, PGD (3 restarts)
  or CW-l_inf.
- Independent cross-checks (torchattacks is not used: installing it would downgrade requests and replace torch):
  FGSM against an analytic numpy gradient, PGD against a minimal PGD written here with the same budget.
- Bad input is refused with an SdpcertError subclass; results are deterministic and leave the global RNG alone.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from sdpcert import Certifier, NonFiniteError, SdpcertError, ShapeError, TwoLayerNet, load_mnist_sample
from sdpcert.attacks import attack_error, cw_linf, evaluate_attacks, fgsm, pgd

from helpers import train_small_mnist_net

torch.set_num_threads(1)

METHODS = ("fgsm", "pgd", "cw")


@pytest.fixture(scope="module")
def net() -> TwoLayerNet:
    return train_small_mnist_net(epochs=10)


@pytest.fixture(scope="module")
def data() -> tuple[np.ndarray, np.ndarray]:
    X, y = load_mnist_sample("test")
    return X[:400].astype(np.float64), y[:400]


def run(method, model, X, y, eps, **kw):
    if method == "fgsm":
        return fgsm(model, X, y, eps)
    if method == "pgd":
        return pgd(model, X, y, eps, **kw)
    return cw_linf(model, X, y, eps, **kw)


def check_valid(net, X, y, eps, X_adv, fooled):
    assert X_adv.shape == X.shape and X_adv.dtype == np.float64
    assert fooled.shape == y.shape and fooled.dtype == bool
    assert np.max(np.abs(X_adv - X)) <= eps
    assert X_adv.min() >= 0.0 and X_adv.max() <= 1.0
    # fooled <=> misclassified by the float64 numpy forward (the points are all in the ball)
    np.testing.assert_array_equal(fooled, net.predict(X_adv) != y)


# ------------------------------------------------------------------------------------------------ validity
@pytest.mark.parametrize("method", METHODS)
def test_points_in_ball_and_box_and_fooled_is_real(net, data, method):
    X, y = data
    for eps in (0.03, 0.1):
        X_adv, fooled = run(method, net, X, y, eps)
        check_valid(net, X, y, eps, X_adv, fooled)
        assert fooled.mean() > (net.predict(X) != y).mean()  # the attack does something


@pytest.mark.parametrize("method", METHODS)
def test_float32_module_and_torch_inputs(net, data, method):
    """A float32 nn.Module and torch tensors: outputs still in the ball, fooled re-checked in float64."""
    X, y = data
    model32 = net.to_torch()  # float32
    X_adv, fooled = run(method, model32, torch.from_numpy(X).float(), torch.from_numpy(y), 0.05)
    X32 = torch.from_numpy(X).float().double().numpy()
    check_valid(net, X32, y, 0.05, X_adv, fooled)


def test_generic_module_verified_in_float64(data):
    """A module that is not a plain Sequential: re-checked with a float64 copy of itself."""

    class Wrapped(nn.Module):
        def __init__(self):
            super().__init__()
            torch.manual_seed(1)
            self.body = nn.Sequential(nn.Linear(784, 20), nn.Tanh(), nn.Linear(20, 10))

        def forward(self, x):
            return 3.0 * self.body(x)

    model = Wrapped()
    X, y = data
    X_adv, fooled = pgd(model, X[:50], y[:50], 0.1, steps=10)
    assert np.max(np.abs(X_adv - X[:50])) <= 0.1 and X_adv.min() >= 0 and X_adv.max() <= 1
    with torch.no_grad():
        pred = model.double()(torch.from_numpy(X_adv)).argmax(1).numpy()
    np.testing.assert_array_equal(fooled, pred != y[:50])


def test_clipping_at_box_edges(random_net):
    """Binary inputs (every coordinate on the edge of [0, 1]) with a big eps: clipping is exercised."""
    small = random_net(d=6, m=8, k=3, seed=2)
    rng = np.random.default_rng(0)
    X = rng.integers(0, 2, size=(64, 6)).astype(np.float64)
    y = rng.integers(0, 3, size=64)
    for method in METHODS:
        X_adv, fooled = run(method, small, X, y, 0.7)
        check_valid(small, X, y, 0.7, X_adv, fooled)


@pytest.mark.parametrize("method", METHODS)
def test_eps_zero_is_clean_error(net, data, method):
    X, y = data
    X_adv, fooled = run(method, net, X, y, 0.0)
    np.testing.assert_array_equal(X_adv, X)
    np.testing.assert_array_equal(fooled, net.predict(X) != y)


# ------------------------------------------------------------------------------------------------ strength
def test_error_ordering(net, data):
    X, y = data
    eps = 0.05
    clean = float((net.predict(X) != y).mean())
    errors = {m: attack_error(net, X, y, eps, m) for m in METHODS}
    for m, e in errors.items():
        assert e >= clean, m
    # restarts: the first restart is the single run, so the fooled set can only grow
    _, one = pgd(net, X, y, eps, restarts=1, seed=5)
    _, three = pgd(net, X, y, eps, restarts=3, seed=5)
    assert np.all(three >= one) and three.mean() >= one.mean()
    assert errors["pgd"] >= errors["fgsm"] - 0.02
    assert errors["cw"] >= errors["fgsm"] - 0.02


@pytest.mark.parametrize("method", METHODS)
def test_error_non_decreasing_in_eps(net, data, method):
    X, y = data
    errors = [attack_error(net, X, y, eps, method) for eps in (0.0, 0.05, 0.1)]
    assert errors[0] <= errors[1] <= errors[2]
    assert errors[2] > errors[0]


def test_evaluate_attacks(net, data):
    X, y = data
    r = evaluate_attacks(net, X, y, 0.05, options={"pgd": {"restarts": 2}})
    assert r["n"] == len(y) and r["eps"] == 0.05
    assert set(r["errors"]) == set(METHODS) == set(r["fooled"])
    np.testing.assert_array_equal(r["any_fooled"], r["fooled"]["fgsm"] | r["fooled"]["pgd"] | r["fooled"]["cw"])
    assert r["error"] >= max(r["errors"].values()) >= min(r["errors"].values()) >= r["clean_error"]
    assert r["clean_error"] == pytest.approx(float((net.predict(X) != y).mean()))


# ------------------------------------------------------------------------------------------------ soundness
@pytest.mark.parametrize("eps", [0.01, 0.03])
def test_certified_points_are_never_fooled(net, eps):
    X, y = load_mnist_sample("test")
    X, y = X[:500], y[:500]
    certifier = Certifier(net)
    result = evaluate_attacks(net, X, y, eps, options={"pgd": {"restarts": 3}})
    assert result["error"] > result["clean_error"]  # the attacks find real counterexamples at this eps
    for method in ("sdp", "spectral"):
        certified = certifier.certify(X, y, eps, method).certified
        if method == "sdp":
            assert certified.sum() >= 100  # enough certified points for the check to mean something
        for attack, fooled in result["fooled"].items():
            broken = np.flatnonzero(certified & fooled)
            assert broken.size == 0, f"{method} certificate broken by {attack} at eps={eps}: {broken[:10]}"
        # certified error is an upper bound, attack error a lower bound
        assert 1 - certified.mean() >= result["error"]


# ------------------------------------------------------------------------------------------------ cross-checks
def test_fgsm_matches_analytic_numpy_gradient(net, data):
    """FGSM from an analytic float64 gradient of the cross-entropy of a ReLU net, written out in numpy."""
    X, y = data
    eps = 0.05
    pre = X @ net.W.T + net.b
    logits = np.maximum(pre, 0) @ net.V.T + net.b2
    p = np.exp(logits - logits.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    p[np.arange(len(y)), y] -= 1.0
    grad = ((p @ net.V) * (pre > 0)) @ net.W
    ref = np.clip(X + eps * np.sign(grad), np.maximum(X - eps, 0), np.minimum(X + eps, 1))
    correct = net.predict(X) == y
    X_adv, fooled = fgsm(net, X, y, eps)
    # same point up to the one-ulp inward nudge of the box; only signs of near-zero gradient entries may differ
    differ = np.abs(X_adv[correct] - ref[correct]) > 1e-12
    assert np.mean(differ) < 1e-3
    ref_error = float(np.mean((net.predict(ref) != y) | ~correct))
    assert abs(fooled.mean() - ref_error) <= 0.01


def minimal_pgd(model, X, y, eps, steps, alpha, seed):
    """Textbook PGD (Madry et al.): float32, CE loss, uniform random start, error of the last iterate."""
    gen = torch.Generator().manual_seed(seed + 1000)  # a different random start than sdpcert's
    x0 = torch.from_numpy(X).float()
    labels = torch.from_numpy(y)
    x = (x0 + torch.empty_like(x0).uniform_(-eps, eps, generator=gen)).clamp(0, 1)
    for _ in range(steps):
        x.requires_grad_(True)
        loss = nn.functional.cross_entropy(model(x), labels)
        (g,) = torch.autograd.grad(loss, x)
        x = torch.min(torch.max(x.detach() + alpha * g.sign(), x0 - eps), x0 + eps).clamp(0, 1)
    with torch.no_grad():
        return float((model(x).argmax(1) != labels).float().mean())


@pytest.mark.parametrize("eps", [0.03, 0.08])
def test_pgd_agrees_with_minimal_reference_pgd(net, data, eps):
    X, y = data
    steps = 40
    alpha = 2.5 * eps / steps
    ref = minimal_pgd(net.to_torch(), X, y, eps, steps, alpha, seed=0)
    ours = attack_error(net, X, y, eps, "pgd", steps=steps, step_size=alpha, seed=0)
    assert abs(ours - ref) <= 0.03, (ours, ref)


# ------------------------------------------------------------------------------------------------ determinism
def test_deterministic_and_global_rng_untouched(net, data):
    X, y = data
    state = torch.get_rng_state()
    a = pgd(net, X, y, 0.05, steps=10, seed=7)
    b = pgd(net, X, y, 0.05, steps=10, seed=7)
    c = pgd(net, X, y, 0.05, steps=10, seed=8)
    assert torch.equal(state, torch.get_rng_state())
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
    assert not np.array_equal(a[0], c[0])
    # numpy and torch inputs give the same result
    t = pgd(net, torch.from_numpy(X), torch.from_numpy(y), 0.05, steps=10, seed=7)
    np.testing.assert_array_equal(a[0], t[0])


# ------------------------------------------------------------------------------------------------ bad input
def test_bad_input_is_refused(net, data):
    X, y = data
    X, y = X[:5], y[:5]
    with pytest.raises(SdpcertError, match="eps must be >= 0"):
        pgd(net, X, y, -0.1)
    with pytest.raises(SdpcertError, match="eps must be finite"):
        fgsm(net, X, y, float("inf"))
    bad = X.copy()
    bad[1, 3] = np.nan
    with pytest.raises(NonFiniteError, match="non-finite"):
        fgsm(net, bad, y, 0.1)
    with pytest.raises(ShapeError, match=r"shape \(n, d\)"):
        pgd(net, X[0], y[:1], 0.1)
    with pytest.raises(ShapeError, match="784 inputs"):
        pgd(net, X[:, :100], y, 0.1)
    with pytest.raises(ShapeError, match=r"y must have shape \(5,\)"):
        cw_linf(net, X, y[:3], 0.1)
    with pytest.raises(SdpcertError, match=r"labels in y must lie in \[0, k\)"):
        pgd(net, X, np.array([0, 1, 2, 3, 10]), 0.1)
    with pytest.raises(SdpcertError, match="integer class labels"):
        pgd(net, X, y + 0.5, 0.1)
    with pytest.raises(SdpcertError, match=r"X must lie in \[0, 1\]"):
        pgd(net, X * 255, y, 0.1)
    with pytest.raises(SdpcertError, match="unknown loss"):
        pgd(net, X, y, 0.1, loss="hinge")
    with pytest.raises(SdpcertError, match="steps must be a positive integer"):
        pgd(net, X, y, 0.1, steps=0)
    with pytest.raises(SdpcertError, match="restarts must be a positive integer"):
        pgd(net, X, y, 0.1, restarts=1.5)
    with pytest.raises(SdpcertError, match="step_size must be positive"):
        pgd(net, X, y, 0.1, step_size=-1)
    with pytest.raises(SdpcertError, match="unknown attack"):
        attack_error(net, X, y, 0.1, "deepfool")
    with pytest.raises(SdpcertError, match="unknown attack"):
        evaluate_attacks(net, X, y, 0.1, methods=("pgd",), options={"pgdd": {}})
    with pytest.raises(SdpcertError, match="TwoLayerNet or a torch nn.Module"):
        pgd(lambda x: x, X, y, 0.1)
