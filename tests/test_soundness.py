"""Soundness of the certificate against exact search (docs/design.md §4), and refusal of bad input by the core.

Certificate (docs/design.md §2): for every x' with ‖x' − x‖∞ ≤ ε,
    f_i(x') − f_j(x') ≤ f_i(x) − f_j(x) + ε · (L/4) · S_ij,
with S_ij replaced by the solver's proven upper bound. For tiny ReLU networks the left side's maximum is computed
exactly (activation-pattern enumeration with one LP per pattern, cross-checked by a big-M MILP); for sigmoid and
tanh networks a dense grid plus local search gives a value that is attained, hence a valid lower bound on it.
Cases where the certificate is tight (one hidden unit in its linear regime) check that it is not loose either."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import numpy as np
import pytest

from sdpcert import _core as core
from sdpcert.model import TwoLayerNet

from reference import relu_max_margin_enum, relu_max_margin_milp, smooth_max_margin_lower


def ordered_pairs(k):
    return np.array([(i, j) for i in range(k) for j in range(k) if i != j], dtype=np.int64)


def sdp_upper(net):
    pairs = ordered_pairs(net.k)
    res = core.solve_pair_sdps(net.W, net.V, pairs, rel_tol=1e-7)
    assert all(s in ("converged", "zero_pair") for s in res["status"])
    return {(int(i), int(j)): float(res["upper"][p]) for p, (i, j) in enumerate(pairs)}


def certificate(net, S, x, eps, i, j):
    f = net.forward(x)
    return float(f[i] - f[j]) + eps * net.lipschitz / 4.0 * S[(i, j)]


def make_net(rng, d, m, k=3, activation="relu", weight_scale=1.0):
    return TwoLayerNet(rng.normal(size=(m, d)) * weight_scale, rng.normal(size=m), rng.normal(size=(k, m)),
                       rng.normal(size=k), activation=activation)


# ------------------------------------------------------------------------------------------------ ReLU: exact
@pytest.mark.parametrize("seed", range(6))
def test_relu_certificate_above_exact_max(seed):
    rng = np.random.default_rng(seed)
    d = 2 + seed % 2
    m = 3 + seed % 4  # 3..6 hidden units
    net = make_net(rng, d, m)
    S = sdp_upper(net)
    for _ in range(2):
        x = rng.normal(size=d)
        eps = float(rng.uniform(0.05, 1.0))
        for (i, j) in S:
            exact, x_star = relu_max_margin_enum(net, x, eps, i, j)
            # the maximiser is in the ball and the network really attains the value there
            assert np.all(np.abs(x_star - x) <= eps + 1e-9)
            out = net.forward(x_star)
            assert float(out[i] - out[j]) == pytest.approx(exact, abs=1e-7 * (1 + abs(exact)))
            f = net.forward(x)
            assert exact >= float(f[i] - f[j]) - 1e-9  # x itself is in the ball
            cert = certificate(net, S, x, eps, i, j)
            assert exact <= cert + 1e-7 * (1 + abs(cert)), ((i, j), exact, cert)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_milp_agrees_with_enumeration(seed):
    rng = np.random.default_rng(100 + seed)
    net = make_net(rng, d=3, m=5)
    x = rng.normal(size=3)
    eps = 0.6
    for (i, j) in [(0, 1), (2, 0)]:
        enum, _ = relu_max_margin_enum(net, x, eps, i, j)
        mip, x_mip = relu_max_margin_milp(net, x, eps, i, j)
        assert np.all(np.abs(x_mip - x) <= eps + 1e-9)
        assert mip == pytest.approx(enum, abs=1e-7 * (1 + abs(enum)))


@pytest.mark.parametrize("d", [2, 3])
def test_relu_certificate_tight_in_linear_regime(d):
    """One hidden unit, active on the whole ball: the margin is linear, its exact maximum over the ball is
    f(x) + ε|v|‖W₁‖₁, and S = 4|v|‖W₁‖₁, so the certificate holds with equality — a too small S would break
    soundness and a too large one (a wrong L/4 factor) would show here."""
    rng = np.random.default_rng(d)
    W = rng.normal(size=(1, d))
    net = TwoLayerNet(W, [50.0], rng.normal(size=(3, 1)), rng.normal(size=3), activation="relu")
    S = sdp_upper(net)
    x = rng.normal(size=d)
    eps = 0.3
    for (i, j) in S:
        exact, _ = relu_max_margin_enum(net, x, eps, i, j)
        cert = certificate(net, S, x, eps, i, j)
        assert exact <= cert + 1e-9 * (1 + abs(cert))
        assert cert - exact <= 1e-6 * (1 + abs(cert))


# ------------------------------------------------------------------------------------------------ smooth nets
@pytest.mark.parametrize("activation", ["sigmoid", "tanh"])
@pytest.mark.parametrize("seed", range(3))
def test_smooth_certificate_above_best_found(activation, seed):
    rng = np.random.default_rng(200 + seed)
    net = make_net(rng, d=2, m=4 + seed, activation=activation, weight_scale=2.0)
    assert net.lipschitz == (0.25 if activation == "sigmoid" else 1.0)
    S = sdp_upper(net)
    for _ in range(2):
        x = rng.normal(size=2)
        eps = float(rng.uniform(0.1, 1.0))
        for (i, j) in S:
            found = smooth_max_margin_lower(net, x, eps, i, j, grid=31)
            cert = certificate(net, S, x, eps, i, j)
            assert found <= cert + 1e-9 * (1 + abs(cert)), (activation, (i, j), found, cert)


@pytest.mark.parametrize("activation", ["sigmoid", "tanh"])
def test_smooth_certificate_nearly_tight_at_max_slope(activation):
    """One hidden unit at pre-activation 0 (where σ' = L) and a small ε: the best margin found is within 1% of
    the certificate, which pins down L = 1/4 for sigmoid and 1 for tanh."""
    rng = np.random.default_rng(7)
    d = 2
    W = rng.normal(size=(1, d))
    net = TwoLayerNet(W, [0.0], rng.normal(size=(3, 1)), rng.normal(size=3), activation=activation)
    S = sdp_upper(net)
    x = np.zeros(d)
    eps = 0.02
    for (i, j) in S:
        found = smooth_max_margin_lower(net, x, eps, i, j, grid=21)
        cert = certificate(net, S, x, eps, i, j)
        f = net.forward(x)
        gain_found, gain_cert = found - float(f[i] - f[j]), cert - float(f[i] - f[j])
        assert gain_found <= gain_cert * (1 + 1e-9)
        assert gain_found >= 0.99 * gain_cert, (activation, gain_found, gain_cert)


# ------------------------------------------------------------------------------------------------ bad input
def _data(m=4, d=5, k=3, seed=0):
    rng = np.random.default_rng(seed)
    W, V = rng.normal(size=(m, d)), rng.normal(size=(k, m))
    return W, V, np.array([[0, 1], [2, 1]], dtype=np.int64), np.ones((2, 1 + m + d))


def _with_nan(a, value=np.nan):
    a = np.array(a, dtype=np.float64, copy=True)
    a.flat[a.size // 2] = value
    return a


@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf])
def test_nonfinite_weights_refused_by_every_entry_point(value):
    W, V, pairs, cs = _data()
    calls = {
        "W": [lambda: core.solve_pair_sdps(_with_nan(W, value), V, pairs),
              lambda: core.top_eigenpairs(_with_nan(W, value), V, pairs, cs),
              lambda: core.lambda_max_upper_bounds(_with_nan(W, value), V, pairs, cs),
              lambda: core.spectral_norm_upper_bound(_with_nan(W, value), 1.0),
              lambda: core.pair_matrix(_with_nan(W, value), V[0])],
        "V": [lambda: core.solve_pair_sdps(W, _with_nan(V, value), pairs),
              lambda: core.top_eigenpairs(W, _with_nan(V, value), pairs, cs),
              lambda: core.lambda_max_upper_bounds(W, _with_nan(V, value), pairs, cs)],
        "v": [lambda: core.pair_matrix(W, _with_nan(V[0], value))],
        "cs": [lambda: core.top_eigenpairs(W, V, pairs, _with_nan(cs, value)),
               lambda: core.lambda_max_upper_bounds(W, V, pairs, _with_nan(cs, value))],
    }
    for name, fns in calls.items():
        for fn in fns:
            with pytest.raises(ValueError, match=rf"\b{name}\b.*(NaN|infinite)"):
                fn()


def test_nonfinite_refused_by_pair_matrix_c_and_apply_pair_operator():
    """pair_matrix checks W and v but not c; apply_pair_operator checks no finiteness at all
    (register_pair_operator.cpp): NaN in W, vs, cs or X silently propagates into the result. Suggested fix: the same
    require_finite calls the other bindings make."""
    W, V, _, cs = _data()
    D = cs.shape[1]
    X = np.ones((1, D))
    with pytest.raises(ValueError, match=r"\bc\b"):
        core.pair_matrix(W, V[0], _with_nan(np.ones(D)))
    for name, call in {
        "W": lambda: core.apply_pair_operator(_with_nan(W), V[:1], None, X),
        "vs": lambda: core.apply_pair_operator(W, _with_nan(V[:1]), None, X),
        "cs": lambda: core.apply_pair_operator(W, V[:1], _with_nan(cs[:1]), X),
        "X": lambda: core.apply_pair_operator(W, V[:1], None, _with_nan(X)),
    }.items():
        with pytest.raises(ValueError, match=rf"\b{name}\b"):
            call()


def test_wrong_shapes_refused_with_the_argument_named():
    W, V, pairs, cs = _data()
    D = cs.shape[1]
    cases = [
        ("V", lambda: core.solve_pair_sdps(W, V[:, :3], pairs)),
        ("V", lambda: core.top_eigenpairs(W, V[:, :3], pairs, cs)),
        ("V", lambda: core.lambda_max_upper_bounds(W, V[:, :3], pairs, cs)),
        ("cs", lambda: core.top_eigenpairs(W, V, pairs, cs[:, :-1])),
        ("cs", lambda: core.top_eigenpairs(W, V, pairs, cs[:1])),
        ("cs", lambda: core.lambda_max_upper_bounds(W, V, pairs, cs[:, :-1])),
        ("start", lambda: core.top_eigenpairs(W, V, pairs, cs, start=np.ones((2, D + 1)))),
        ("warm", lambda: core.solve_pair_sdps(W, V, pairs, warm=[np.ones((D, 2))])),
        ("warm", lambda: core.solve_pair_sdps(W, V, pairs, warm=[np.ones((D - 1, 2))] * 2)),
        ("v", lambda: core.pair_matrix(W, V[0, :3])),
        ("c", lambda: core.pair_matrix(W, V[0], np.ones(D + 1))),
        ("vs", lambda: core.apply_pair_operator(W, V[:1, :3], None, np.ones((1, D)))),
        ("X", lambda: core.apply_pair_operator(W, V[:1], None, np.ones((1, D + 1)))),
        ("X", lambda: core.apply_pair_operator(W, V[:2], None, np.ones((1, D)))),
        ("cs", lambda: core.apply_pair_operator(W, V[:1], np.ones((2, D)), np.ones((1, D)))),
    ]
    for name, call in cases:
        with pytest.raises(ValueError, match=rf"\b{name}\b"):
            call()
    # shapes pybind11 cannot even convert (3-D W, pairs with 3 columns) are refused too, as TypeError
    for call in (lambda: core.solve_pair_sdps(W[None], V, pairs),
                 lambda: core.solve_pair_sdps(W, V, np.array([[0, 1, 2]])),
                 lambda: core.lambda_max_upper_bounds(W, V, np.array([[0, 1, 2]]), cs[:1])):
        with pytest.raises((TypeError, ValueError)):
            call()


@pytest.mark.parametrize("bad", [[3, 0], [0, -1], [1, 10**6]])
def test_pair_index_out_of_range(bad):
    W, V, _, cs = _data()
    pairs = np.array([[0, 1], bad], dtype=np.int64)
    for call in (lambda: core.solve_pair_sdps(W, V, pairs),
                 lambda: core.top_eigenpairs(W, V, pairs, cs),
                 lambda: core.lambda_max_upper_bounds(W, V, pairs, cs)):
        with pytest.raises(ValueError, match=r"pairs\[1\]"):
            call()


def test_fractional_pair_indices_refused():
    """pairs = [[0.7, 1.9]] is silently truncated to (0, 1) by pybind11's int64 conversion (forcecast) and
    solved: a caller's bug becomes a certificate for the wrong pair. Suggested fix: take pairs as
    py::array_t<int64_t> without forcecast (or check the dtype is integral) in register_sdp_solver.cpp /
    register_certify_bound.cpp."""
    W, V, _, cs = _data()
    with pytest.raises((ValueError, TypeError)):
        core.solve_pair_sdps(W, V, np.array([[0.7, 1.9]]))


@pytest.mark.parametrize("rel_tol", [0.0, -1e-6, np.nan, np.inf])
def test_bad_tolerances(rel_tol):
    W, V, pairs, cs = _data()
    with pytest.raises(ValueError, match="rel_tol"):
        core.solve_pair_sdps(W, V, pairs, rel_tol=rel_tol)
    with pytest.raises(ValueError, match="tol"):
        core.top_eigenpairs(W, V, pairs, cs, tol=rel_tol)


def test_bad_counts_and_estimates():
    W, V, pairs, cs = _data()
    with pytest.raises(ValueError, match="max_sweeps"):
        core.solve_pair_sdps(W, V, pairs, max_sweeps=0)
    with pytest.raises(ValueError, match="rank"):
        core.solve_pair_sdps(W, V, pairs, rank=0)
    for est in (-1.0, np.nan, np.inf):
        with pytest.raises(ValueError, match="estimate"):
            core.spectral_norm_upper_bound(W, est)


EMPTY_CALLS = {
    "solve_pair_sdps m=0": "core.solve_pair_sdps(np.zeros((0, 5)), np.zeros((3, 0)), pairs)",
    "solve_pair_sdps d=0": "core.solve_pair_sdps(np.ones((4, 0)), V, pairs)",
    "lambda_max_upper_bounds m=0": "core.lambda_max_upper_bounds(np.zeros((0, 5)), np.zeros((3, 0)), pairs, "
                                   "np.ones((1, 6)))",
    "lambda_max_upper_bounds d=0": "core.lambda_max_upper_bounds(np.ones((4, 0)), V, pairs, "
                                   "np.ones((1, 5)))",
    "spectral_norm_upper_bound m=0": "core.spectral_norm_upper_bound(np.zeros((0, 5)), 1.0)",
}


@pytest.mark.parametrize("name", sorted(EMPTY_CALLS))
def test_empty_dimensions_do_not_crash(name):
    """m = 0 or d = 0 crashes the interpreter (SIGSEGV): e.g. sdp_solver.hpp's `v_.cwiseAbs().maxCoeff()` and
    certify_bound.hpp's `c.tail(d).minCoeff()` / `S.diagonal()...maxCoeff()` reduce empty vectors (undefined
    behaviour with Eigen's asserts off). Suggested fix: require(m >= 1 && d >= 1) in the bindings. Run in a
    subprocess so that the crash fails this test instead of killing pytest."""
    code = textwrap.dedent(f"""
        import numpy as np
        from sdpcert import _core as core
        pairs = np.array([[0, 1]], dtype=np.int64)
        V = np.arange(12.0).reshape(3, 4)  # distinct rows: not a zero pair
        try:
            {EMPTY_CALLS[name]}
        except ValueError as exc:
            print("ValueError:", exc)
        else:
            print("no error")
    """)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, f"{name}: interpreter died with return code {proc.returncode}"
    assert "ValueError" in proc.stdout, proc.stdout
