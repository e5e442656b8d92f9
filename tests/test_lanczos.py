"""sdpcert._core.top_eigenpairs (batched Lanczos) against numpy.linalg.eigh on the dense pair matrices.

Ritz values are estimates, not bounds (docs/design.md §4); what is checked here is accuracy: the value is within
tol·‖A‖ of the true λmax, the returned vector has a small residual, the reported residual is the real one — also
for clustered and exactly repeated top eigenvalues, adversarial warm starts and the dense fallback path."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.linalg

from sdpcert import _core as core

from reference import pair_matrix_ref


def dense_ops(W, V, pairs, cs):
    return [pair_matrix_ref(W, V[i] - V[j], cs[p]) for p, (i, j) in enumerate(pairs)]


def check_against_eigh(W, V, pairs, cs, res, tol, value_factor=2.0):
    """Shared assertions: value ≈ λmax (within value_factor·tol·‖A‖), unit vectors with true residual ≈ the
    reported one and ≤ a few tol·‖A‖."""
    for p, A in enumerate(dense_ops(W, V, pairs, cs)):
        ev = np.linalg.eigvalsh(A)
        scale = np.abs(ev).max()
        theta, x = res["values"][p], res["vectors"][p]
        assert np.linalg.norm(x) == pytest.approx(1.0, abs=1e-12)
        true_res = np.linalg.norm(A @ x - theta * x)
        assert res["residuals"][p] == pytest.approx(true_res, rel=1e-6, abs=1e-14 * scale)
        assert true_res <= 4 * tol * scale, (p, res["status"][p], true_res / scale)
        assert abs(theta - ev[-1]) <= value_factor * tol * scale, (p, res["status"][p], theta, ev[-1])
        # a Ritz value lies in the spectrum's range (up to rounding): it is never above λmax by more than rounding
        assert theta <= ev[-1] + 1e-12 * scale


def random_problem(m, d, P, seed, c_scale=3.0):
    rng = np.random.default_rng(seed)
    W = rng.normal(size=(m, d))
    V = rng.normal(size=(5, m))
    pairs = np.array([(i, j) for i in range(5) for j in range(5) if i != j][:P], dtype=np.int64)
    cs = rng.normal(size=(P, 1 + m + d)) * c_scale
    return W, V, pairs, cs


@pytest.mark.parametrize("m,d,P,seed", [(60, 50, 6, 0), (40, 80, 4, 1), (150, 100, 3, 2), (95, 1, 2, 3)])
def test_lanczos_matches_eigh_random(m, d, P, seed):
    W, V, pairs, cs = random_problem(m, d, P, seed)
    assert 1 + m + d >= 96  # the Lanczos path, not the dense shortcut
    tol = 1e-8
    res = core.top_eigenpairs(W, V, pairs, cs, tol=tol)
    assert all(s in ("converged", "dense_fallback") for s in res["status"])
    assert "converged" in res["status"]
    check_against_eigh(W, V, pairs, cs, res, tol)
    # With a clear gap the eigenvector itself is determined: compare it (up to sign).
    for p, A in enumerate(dense_ops(W, V, pairs, cs)):
        ev, U = np.linalg.eigh(A)
        scale = np.abs(ev).max()
        gap = ev[-1] - ev[-2]
        if gap > 1e-3 * scale:
            # sin(angle) <= residual / gap
            bound = 4 * tol * scale / gap
            assert abs(U[:, -1] @ res["vectors"][p]) >= np.sqrt(max(0.0, 1 - bound ** 2)) - 1e-10


@pytest.mark.parametrize("tol", [1e-4, 1e-6, 1e-10])
def test_lanczos_respects_tolerance(tol):
    W, V, pairs, cs = random_problem(70, 60, 3, 5)
    res = core.top_eigenpairs(W, V, pairs, cs, tol=tol)
    check_against_eigh(W, V, pairs, cs, res, tol)


def test_lanczos_c_zero_low_rank_operator():
    """c = 0 and d = 2: M has rank ≤ 4, so the Krylov space is invariant after a few steps (a breakdown)."""
    rng = np.random.default_rng(8)
    m, d = 120, 2
    W, V = rng.normal(size=(m, d)), rng.normal(size=(3, m))
    pairs = np.array([[0, 1], [2, 1]])
    cs = np.zeros((2, 1 + m + d))
    res = core.top_eigenpairs(W, V, pairs, cs)
    check_against_eigh(W, V, pairs, cs, res, 1e-8)


def three_copies_problem(seed=0, m0=20, d0=12, perturb=0.0):
    """W = blockdiag(W0, W0, W0), v = (v0, v0, v0) with W0ᵀ v0 = 0 (so the '1' node decouples, A·1 = 0) and
    c repeated per block: the symmetric group S3 permuting the blocks commutes with M − diag c and its 2-dim
    standard representation makes every eigenvalue of the block matrix appear three times — an exactly repeated
    top eigenvalue with coupled (non-trivial) eigenvectors. ``perturb`` splits it into a tight cluster."""
    rng = np.random.default_rng(seed)
    W0 = rng.normal(size=(m0, d0))
    N = scipy.linalg.null_space(W0.T)
    v0 = N @ rng.normal(size=N.shape[1])
    W = scipy.linalg.block_diag(W0, W0, W0)
    if perturb:
        W = W + perturb * rng.normal(size=W.shape)
    v = np.r_[v0, v0, v0]
    cs0, ct0 = rng.uniform(0, 1, m0), rng.uniform(0, 1, d0)
    c = np.r_[50.0, cs0, cs0, cs0, ct0, ct0, ct0]
    V = np.stack([v, np.zeros_like(v)])
    return W, V, np.array([[0, 1]]), c[None, :]


@pytest.mark.parametrize("perturb", [0.0, 1e-9, 1e-6])
def test_lanczos_repeated_and_clustered_top(perturb):
    W, V, pairs, cs = three_copies_problem(perturb=perturb)
    assert W.shape[0] + W.shape[1] + 1 >= 96
    (A,) = dense_ops(W, V, pairs, cs)
    ev, U = np.linalg.eigh(A)
    scale = np.abs(ev).max()
    # the construction really gives a triple top (or a cluster of three when perturbed)
    assert ev[-1] - ev[-3] <= 1e-12 * scale + 50 * perturb * scale
    assert ev[-3] - ev[-4] > 1e-3 * scale
    tol = 1e-8
    res = core.top_eigenpairs(W, V, pairs, cs, tol=tol)
    check_against_eigh(W, V, pairs, cs, res, tol)
    # the vector lies in the top-3 invariant subspace
    x = res["vectors"][0]
    outside = x - U[:, -3:] @ (U[:, -3:].T @ x)
    assert np.linalg.norm(outside) <= 4 * tol * scale / (ev[-3] - ev[-4])


def test_lanczos_cluster_at_zero_from_sdp_dual():
    """c from a converged pair SDP: M − diag c has a cluster of eigenvalues at ≈ 0 (multiplicity ≈ the rank of
    the optimal P), exactly the situation of training and of the rigorous bound."""
    W, V, pairs, cs = sdp_dual_cluster_problem()
    for p, A in enumerate(dense_ops(W, V, pairs, cs)):
        ev = np.linalg.eigvalsh(A)
        scale = np.abs(ev).max()
        assert ev[-2] - ev[-1] > -1e-8 * scale  # the cluster is there: top two within 1e-8 relative
    tol = 1e-8
    res = core.top_eigenpairs(W, V, pairs, cs, tol=tol)
    check_against_eigh(W, V, pairs, cs, res, tol)


def test_warm_start_orthogonal_to_top_still_finds_top():
    """Starting exactly on the second eigenvector (an invariant subspace orthogonal to the top one) must not
    return the second eigenvalue: without the seeded random mixing, Lanczos would stop at once with λ2."""
    W, V, pairs, cs = random_problem(60, 50, 3, 4)
    ops = dense_ops(W, V, pairs, cs)
    start = np.vstack([np.linalg.eigh(A)[1][:, -2] for A in ops])
    tol = 1e-8
    res = core.top_eigenpairs(W, V, pairs, cs, tol=tol, start=start)
    check_against_eigh(W, V, pairs, cs, res, tol)
    for p, A in enumerate(ops):
        ev = np.linalg.eigvalsh(A)
        assert res["values"][p] - ev[-2] > 0.5 * (ev[-1] - ev[-2])


def test_warm_start_with_top_vector_converges_fast_and_bad_starts_are_handled():
    W, V, pairs, cs = random_problem(60, 50, 3, 6)
    ops = dense_ops(W, V, pairs, cs)
    cold = core.top_eigenpairs(W, V, pairs, cs)
    start = np.vstack([np.linalg.eigh(A)[1][:, -1] for A in ops])
    warm = core.top_eigenpairs(W, V, pairs, cs, start=start)
    check_against_eigh(W, V, pairs, cs, warm, 1e-8)
    assert warm["iterations"].sum() <= cold["iterations"].sum()
    # a zero start row falls back to a random start and still gives the right answer
    zero = start.copy()
    zero[0] = 0.0
    res = core.top_eigenpairs(W, V, pairs, cs, start=zero)
    check_against_eigh(W, V, pairs, cs, res, 1e-8)
    # a non-finite start is bad input: a clear error, not a silent replacement
    bad = start.copy()
    bad[1] = np.nan
    with pytest.raises(ValueError, match="start"):
        core.top_eigenpairs(W, V, pairs, cs, start=bad)


def test_dense_fallback_path():
    W, V, pairs, cs = random_problem(60, 50, 4, 7)
    res = core.top_eigenpairs(W, V, pairs, cs, max_iter=2)
    assert res["status"] == ["dense_fallback"] * 4
    check_against_eigh(W, V, pairs, cs, res, 1e-13, value_factor=10)


def test_no_dense_fallback_returns_the_ritz_pair():
    """dense_fallback=False (training) keeps the last Ritz pair: a unit vector whose value is a lower bound on
    lambda_max (Rayleigh quotient), marked 'not_converged', at the cost of max_iter matvecs only."""
    W, V, pairs, cs = random_problem(60, 50, 4, 7)
    res = core.top_eigenpairs(W, V, pairs, cs, max_iter=3, dense_fallback=False)
    assert res["status"] == ["not_converged"] * 4
    assert (res["iterations"] == 3).all()
    for p, A in enumerate(dense_ops(W, V, pairs, cs)):
        x = res["vectors"][p]
        assert np.linalg.norm(x) == pytest.approx(1.0, abs=1e-12)
        assert res["values"][p] == pytest.approx(x @ A @ x, rel=1e-10, abs=1e-12)
        assert res["values"][p] <= np.linalg.eigvalsh(A)[-1] + 1e-10


def test_dense_small_path():
    W, V, pairs, cs = random_problem(40, 30, 3, 9)  # D = 71 < 96
    res = core.top_eigenpairs(W, V, pairs, cs)
    assert res["status"] == ["dense_small"] * 3
    check_against_eigh(W, V, pairs, cs, res, 1e-13, value_factor=10)


def test_small_basis_restarts_still_converge():
    W, V, pairs, cs = random_problem(60, 50, 3, 10)
    tol = 1e-8
    res = core.top_eigenpairs(W, V, pairs, cs, tol=tol, basis_size=8)
    assert (res["iterations"] > 8).any()  # at least one (thick) restart happened
    check_against_eigh(W, V, pairs, cs, res, tol)


def sdp_dual_cluster_problem():
    """The problem of test_lanczos_cluster_at_zero_from_sdp_dual: c from converged pair SDPs, so each M − diag c
    has a cluster of ~4 eigenvalues within 1e-7 relative at its top (D = 101)."""
    rng = np.random.default_rng(21)
    m, d = 50, 50
    W, V = rng.normal(size=(m, d)), rng.normal(size=(4, m))
    pairs = np.array([[0, 1], [1, 2], [2, 3], [3, 0]])
    sol = core.solve_pair_sdps(W, V, pairs, rel_tol=1e-9)
    assert sol["status"] == ["converged"] * 4
    return W, V, pairs, sol["dual"]


def test_thick_restart_converges_on_a_clustered_top():
    """A full basis is thick-restarted (lanczos.hpp): the top Ritz vectors are kept, so the Krylov information about
    the cluster survives the restart. The explicit restart from the single top Ritz vector it replaced did not
    converge on pair 3 (gap to the rest of the spectrum 5.6e-3, |A| 348) within 2000 matvecs at basis_size 16 (the
    others took 128/220/96 matvecs); the thick restart takes 93/107/85/192."""
    W, V, pairs, cs = sdp_dual_cluster_problem()
    tol = 1e-8
    res = core.top_eigenpairs(W, V, pairs, cs, tol=tol, basis_size=16, max_iter=400, dense_fallback=False)
    assert res["status"] == ["converged"] * 4
    assert (res["iterations"] > 16).all()  # every problem restarted
    assert res["iterations"].max() <= 300
    check_against_eigh(W, V, pairs, cs, res, tol)


def test_lanczos_thread_count_independent_with_restarts():
    """Per-problem work (steps, checks, thick restarts) is per problem: the thread count changes nothing."""
    W, V, pairs, cs = sdp_dual_cluster_problem()
    for basis_size in (8, 16, 48):
        a = core.top_eigenpairs(W, V, pairs, cs, tol=1e-8, basis_size=basis_size, threads=1)
        b = core.top_eigenpairs(W, V, pairs, cs, tol=1e-8, basis_size=basis_size, threads=2)
        for key in ("values", "vectors", "residuals", "iterations"):
            np.testing.assert_array_equal(a[key], b[key], err_msg=key)
        assert a["status"] == b["status"]


def test_degenerate_operators():
    """Pair (i, i): M = 0, so A = −diag(c); with constant c every vector is an eigenvector."""
    rng = np.random.default_rng(3)
    m, d = 60, 50
    D = 1 + m + d
    W, V = rng.normal(size=(m, d)), rng.normal(size=(3, m))
    cs = np.vstack([np.full(D, 2.5), rng.normal(size=D)])
    res = core.top_eigenpairs(W, V, np.array([[1, 1], [2, 2]]), cs)
    assert res["values"][0] == pytest.approx(-2.5, abs=1e-14)
    assert res["values"][1] == pytest.approx(-cs[1].min(), abs=1e-8 * np.abs(cs[1]).max())
    empty = core.top_eigenpairs(W, V, np.zeros((0, 2), dtype=np.int64), np.zeros((0, D)))
    assert empty["values"].shape == (0,) and empty["vectors"].shape == (0, D) and empty["status"] == []


def test_lanczos_deterministic_and_seed_independent_values():
    W, V, pairs, cs = random_problem(60, 50, 4, 11)
    a = core.top_eigenpairs(W, V, pairs, cs, seed=3)
    b = core.top_eigenpairs(W, V, pairs, cs, seed=3)
    for key in ("values", "vectors", "residuals", "iterations"):
        np.testing.assert_array_equal(a[key], b[key])
    c = core.top_eigenpairs(W, V, pairs, cs, seed=4)
    scale = max(np.abs(np.linalg.eigvalsh(A)).max() for A in dense_ops(W, V, pairs, cs))
    np.testing.assert_allclose(a["values"], c["values"], rtol=0, atol=4e-8 * scale)


def test_c_ordered_w_is_read_in_place_and_gives_the_same_eigenpairs():
    """A C-ordered W (how a TwoLayerNet holds it) runs the products as W^T's GEMMs without a copy: the same eigenpairs
    as the Fortran-ordered W, to rounding."""
    W, V, pairs, cs = random_problem(80, 70, 4, 9)
    Wc, Wf = np.ascontiguousarray(W), np.asfortranarray(W)
    a = core.top_eigenpairs(Wf, V, pairs, cs, tol=1e-10)
    b = core.top_eigenpairs(Wc, V, pairs, cs, tol=1e-10)
    scale = max(np.abs(np.linalg.eigvalsh(A)).max() for A in dense_ops(W, V, pairs, cs))
    np.testing.assert_allclose(b["values"], a["values"], rtol=0, atol=1e-12 * scale)
    check_against_eigh(W, V, pairs, cs, b, 1e-10)
    # a non-contiguous view still works (copied by the binding)
    wide = np.zeros((W.shape[0], 2 * W.shape[1]))
    wide[:, ::2] = W
    c = core.top_eigenpairs(wide[:, ::2], V, pairs, cs, tol=1e-10)
    np.testing.assert_allclose(c["values"], a["values"], rtol=0, atol=1e-12 * scale)


@pytest.mark.parametrize("order", ["C", "F"])
@pytest.mark.parametrize("tol", [1e-6, 1e-10])
def test_float32_products_are_answered_in_float64(order, tol):
    """float32_matvecs with exact residuals: values are float64 Rayleigh quotients, residuals exact float64 ones, and
    the tolerance holds as for float64 products -- at 1e-10, out of float32's reach, through the float64 finish."""
    W, V, pairs, cs = random_problem(120, 90, 4, 4)
    W = np.asarray(W, order=order)
    res = core.top_eigenpairs(W, V, pairs, cs, tol=tol, float32_matvecs=True)
    assert all(s in ("converged", "dense_fallback") for s in res["status"])
    for p, A in enumerate(dense_ops(W, V, pairs, cs)):
        x = res["vectors"][p]
        assert res["values"][p] == pytest.approx(x @ A @ x / (x @ x), rel=1e-13, abs=1e-13)
    check_against_eigh(W, V, pairs, cs, res, tol)
    if tol == 1e-10:  # float32 products alone cannot get there: the finish ran (more matvecs than at 1e-6)
        coarse = core.top_eigenpairs(W, V, pairs, cs, tol=1e-6, float32_matvecs=True)
        assert res["iterations"].sum() > coarse["iterations"].sum()


def test_float32_products_without_exact_residuals_stay_estimates():
    """exact_residuals=False (the training path) is the plain float32 Lanczos: bounded cost, no float64 finish."""
    W, V, pairs, cs = random_problem(120, 90, 3, 6)
    res = core.top_eigenpairs(W, V, pairs, cs, tol=1e-12, max_iter=40, float32_matvecs=True,
                              dense_fallback=False, exact_residuals=False)
    assert (res["iterations"] <= 40).all()


def test_float32_products_on_a_small_problem_take_the_dense_path():
    """D below dense_below: the dense solve (float64, from W itself) answers, for either W order."""
    W, V, pairs, cs = random_problem(20, 15, 3, 8)
    for order in ("C", "F"):
        res = core.top_eigenpairs(np.asarray(W, order=order), V, pairs, cs, tol=1e-6, float32_matvecs=True)
        assert res["status"] == ["dense_small"] * 3
        check_against_eigh(W, V, pairs, cs, res, 1e-12)
