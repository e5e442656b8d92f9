"""sdpcert._core.solve_pair_sdps: the pair SDP S = max ⟨M, P⟩ s.t. P ⪰ 0, diag(P) ≤ 1 (docs/design.md §2).

Checked against brute force (QP ≤ SDP), closed forms, and two interior-point solvers (Clarabel via cvxpy, SDPA),
including a slice of a (briefly) trained MNIST network; plus the properties the certificate relies on: the upper
bound is above the true value even when the solver stops early, the returned dual really certifies the upper
bound, and results are deterministic across runs, thread counts and pair orders."""

from __future__ import annotations

import numpy as np
import pytest

from sdpcert import _core as core

from helpers import train_small_mnist_net
from reference import box_qp_max, pair_matrix_ref, sdp_value_clarabel, sdp_value_sdpa

ALL_KEYS = ("lower", "upper", "dual", "lambda_bound", "sweeps", "rank", "proof_attempts")


def all_pairs(k):
    return np.array([(i, j) for i in range(k) for j in range(k) if i != j], dtype=np.int64)


def assert_brackets(lower, upper, ref, rel):
    """The solver's [lower, upper] contains the reference value up to `rel` relative, and is `rel`-tight."""
    scale = max(abs(ref), 1e-300)
    assert lower <= ref + rel * scale, (lower, ref)
    assert upper >= ref - rel * scale, (upper, ref)
    assert upper - lower <= rel * scale, (lower, upper)


# ------------------------------------------------------------------------------------------------ tiny: brute force
@pytest.mark.parametrize("seed", range(8))
def test_tiny_qp_le_sdp_lower_le_upper_and_clarabel(seed):
    rng = np.random.default_rng(seed)
    m, d = rng.integers(1, 6, size=2)
    k = 3
    W = rng.normal(size=(m, d)) * rng.choice([0.1, 1.0, 10.0])
    V = rng.normal(size=(k, m))
    pairs = all_pairs(k)
    res = core.solve_pair_sdps(W, V, pairs, rel_tol=1e-8)
    assert res["status"] == ["converged"] * len(pairs)
    for p, (i, j) in enumerate(pairs):
        M = pair_matrix_ref(W, V[i] - V[j])
        qp, _ = box_qp_max(M)
        lo, up = res["lower"][p], res["upper"][p]
        scale = np.abs(M).sum()
        # the relaxation is above the QP it relaxes (lower is only 1e-8-optimal, and the SDP may be tight)
        assert qp <= up
        assert qp <= lo + 1e-8 * abs(up) + 1e-12 * scale
        assert lo <= up
        ref = sdp_value_clarabel(M)
        assert_brackets(lo, up, ref, 1e-6)
        assert qp <= ref + 1e-8 * scale


@pytest.mark.parametrize("d", [1, 2, 3, 5, 8])
def test_closed_form_single_hidden_unit(d):
    """m = 1: ⟨M, P⟩ = 2 Σ_l a_l (P_{t_l,1} + P_{t_l,s}) ≤ 4‖a‖₁ with a = W₁ᵀ v, attained by a rank-one P: S = 4‖a‖₁."""
    rng = np.random.default_rng(d)
    W = rng.normal(size=(1, d))
    V = rng.normal(size=(2, 1))
    res = core.solve_pair_sdps(W, V, np.array([[0, 1], [1, 0]]), rel_tol=1e-10)
    exact = 4 * np.abs(W[0] * (V[0, 0] - V[1, 0])).sum()
    for p in range(2):
        assert_brackets(res["lower"][p], res["upper"][p], exact, 1e-9)


@pytest.mark.parametrize("m", [1, 3, 10, 40])
def test_closed_form_single_input(m):
    """d = 1: B is one row b = [Σa, a] (a_k = W_k v_k), S = 2 Σ|b| = 2(|Σa| + ‖a‖₁), which is also the QP value."""
    rng = np.random.default_rng(100 + m)
    W = rng.normal(size=(m, 1))
    V = rng.normal(size=(2, m))
    res = core.solve_pair_sdps(W, V, np.array([[0, 1]]), rel_tol=1e-10)
    a = W[:, 0] * (V[0] - V[1])
    exact = 2 * (abs(a.sum()) + np.abs(a).sum())
    assert_brackets(res["lower"][0], res["upper"][0], exact, 1e-9)
    if m <= 10:
        assert box_qp_max(pair_matrix_ref(W, V[0] - V[1]))[0] == pytest.approx(exact, rel=1e-12)


# ------------------------------------------------------------------------------------------------ moderate sizes
@pytest.mark.parametrize("m,d,seed", [(15, 20, 0), (12, 23, 1)])
def test_moderate_against_clarabel_and_sdpa(m, d, seed):
    rng = np.random.default_rng(seed)
    W = rng.normal(size=(m, d))
    V = rng.normal(size=(3, m))
    pairs = np.array([[0, 1], [2, 0]])
    res = core.solve_pair_sdps(W, V, pairs, rel_tol=1e-8)
    assert res["status"] == ["converged"] * 2
    for p, (i, j) in enumerate(pairs):
        M = pair_matrix_ref(W, V[i] - V[j])
        ref = sdp_value_clarabel(M)
        ref2, half = sdp_value_sdpa(M)
        assert ref2 == pytest.approx(ref, rel=1e-7)  # the two references agree with each other
        assert half <= 1e-7 * ref
        assert_brackets(res["lower"][p], res["upper"][p], ref, 1e-6)


@pytest.mark.parametrize("m,d,seed", [(25, 30, 2), (40, 15, 3)])
def test_moderate_against_sdpa(m, d, seed):
    rng = np.random.default_rng(seed)
    W = rng.normal(size=(m, d))
    V = rng.normal(size=(4, m))
    pairs = np.array([[0, 1], [3, 2]])
    res = core.solve_pair_sdps(W, V, pairs, rel_tol=1e-8)
    assert res["status"] == ["converged"] * 2
    for p, (i, j) in enumerate(pairs):
        ref, half = sdp_value_sdpa(pair_matrix_ref(W, V[i] - V[j]))
        assert half <= 1e-7 * ref
        assert_brackets(res["lower"][p], res["upper"][p], ref, 1e-6)


def test_trained_mnist_slice_against_sdpa():
    """30 hidden units × 40 inputs (the 40 pixels with the largest weight columns) of a 784→40→10 ReLU net trained
    on the packaged MNIST slice: real weight structure (correlated units), all 45 pairs, 3 checked by SDPA."""
    net = train_small_mnist_net(hidden=40, epochs=3)
    cols = np.argsort(-np.linalg.norm(net.W, axis=0))[:40]
    W = np.ascontiguousarray(net.W[:30][:, cols])
    V = np.ascontiguousarray(net.V[:, :30])
    pairs = np.array([(i, j) for i in range(10) for j in range(i + 1, 10)], dtype=np.int64)
    res = core.solve_pair_sdps(W, V, pairs, rel_tol=1e-7)
    assert res["status"] == ["converged"] * len(pairs)
    assert np.all((res["upper"] - res["lower"]) <= 1e-7 * res["upper"] * 1.01)
    for p in (0, 17, 44):
        i, j = pairs[p]
        ref, half = sdp_value_sdpa(pair_matrix_ref(W, V[i] - V[j]))
        assert half <= 1e-7 * ref
        assert_brackets(res["lower"][p], res["upper"][p], ref, 1e-6)


# ------------------------------------------------------------------------------------------------ soundness of upper
def test_upper_and_dual_against_reference():
    """upper ≥ S (SDPA), λ_bound ≥ λmax(M − diag c) (eigh) for the returned c, and that c is a near-optimal dual:
    its dual objective D·λ⁺max + Σc⁺ (evaluated here with eigh) is within 1e-6 of S."""
    rng = np.random.default_rng(4)
    m, d = 20, 15
    W, V = rng.normal(size=(m, d)), rng.normal(size=(4, m))
    pairs = all_pairs(4)[::2]
    res = core.solve_pair_sdps(W, V, pairs)
    D = 1 + m + d
    for p, (i, j) in enumerate(pairs):
        ref, half = sdp_value_sdpa(pair_matrix_ref(W, V[i] - V[j]))
        assert res["upper"][p] >= ref - half
        assert res["lower"][p] <= ref + half
        c = res["dual"][p]
        assert c.shape == (D,) and np.all(np.isfinite(c))
        lam = np.linalg.eigvalsh(pair_matrix_ref(W, V[i] - V[j], c))[-1]
        assert res["lambda_bound"][p] >= lam
        dual_obj = D * max(lam, 0.0) + np.maximum(c, 0).sum()
        assert ref - half <= dual_obj * (1 + 1e-12)
        assert dual_obj <= ref * (1 + 1e-6)


@pytest.mark.parametrize("max_sweeps", [1, 2, 3, 7, 20])
def test_upper_sound_when_stopped_early(max_sweeps):
    """An unconverged solve reports max_sweeps (or not_certified), but its upper bound must still be ≥ S."""
    rng = np.random.default_rng(5)
    m, d = 15, 20
    W, V = rng.normal(size=(m, d)), rng.normal(size=(3, m))
    pairs = np.array([[0, 1], [1, 2]])
    res = core.solve_pair_sdps(W, V, pairs, max_sweeps=max_sweeps, rel_tol=1e-12)
    for p, (i, j) in enumerate(pairs):
        assert res["status"][p] in ("max_sweeps", "not_certified", "converged")
        assert res["sweeps"][p] <= max_sweeps
        ref, half = sdp_value_sdpa(pair_matrix_ref(W, V[i] - V[j]))
        assert res["upper"][p] >= ref - half
        assert res["lower"][p] <= ref + half
        if res["status"][p] == "not_certified":
            assert res["upper"][p] == np.inf


def test_zero_pairs_and_degenerate_weights():
    rng = np.random.default_rng(6)
    m, d = 8, 6
    W, V = rng.normal(size=(m, d)), rng.normal(size=(3, m))
    V[2] = V[1]  # classes 1 and 2 have identical output weights
    res = core.solve_pair_sdps(W, V, np.array([[0, 0], [1, 2], [0, 1]]))
    assert res["status"][:2] == ["zero_pair", "zero_pair"]
    np.testing.assert_array_equal(res["lower"][:2], 0.0)
    np.testing.assert_array_equal(res["upper"][:2], 0.0)
    # zero input column, zero hidden row, zero entries in v: still the right value
    W2, V2 = degenerate_weights(W, V)
    res2 = core.solve_pair_sdps(W2, V2, np.array([[0, 1], [1, 0]]))
    ref = sdp_value_clarabel(pair_matrix_ref(W2, V2[0] - V2[1]))
    for p in range(2):
        assert res2["status"][p] == "converged"
        assert_brackets(res2["lower"][p], res2["upper"][p], ref, 1e-6)


def degenerate_weights(W, V):
    W2 = W.copy()
    W2[:, 2] = 0.0  # an input no hidden unit looks at (a dead MNIST border pixel, a pruned input)
    W2[3, :] = 0.0  # a dead hidden unit
    V2 = V.copy()
    V2[0, 5] = V2[1, 5]  # a hidden unit both classes weigh equally
    return W2, V2


def test_tight_tolerance_with_a_zero_input_column():
    """A zero column of W makes c_t = 0 at that input (its t-node is isolated in M: eigenvalue 0 of M − diag c,
    exactly). The rigorous bound then raises all of c by 1e-8·max|c| (certify_bound.hpp, lambda_max_upper_bound),
    adding ≈ D·1e-8·max|c| to the upper bound, so rel_tol = 1e-8 can never be met and the solver runs to
    max_sweeps. An isolated node needs no raise: its row of B is zero, so it drops out of the Schur complement."""
    rng = np.random.default_rng(6)
    W, V = degenerate_weights(rng.normal(size=(8, 6)), rng.normal(size=(3, 8)))
    res = core.solve_pair_sdps(W, V, np.array([[0, 1]]), rel_tol=1e-8)
    ref = sdp_value_clarabel(pair_matrix_ref(W, V[0] - V[1]))
    assert res["upper"][0] >= ref * (1 - 1e-9)  # sound either way
    assert res["status"] == ["converged"], (res["status"], res["upper"][0] - res["lower"][0])


def test_sweeps_never_exceed_max_sweeps():
    """max_sweeps caps the work. sdp_solver.hpp (PairSolver::take_H) only finishes a pair when a proof is due,
    and a proof on the last sweep is skipped while sweep < next_proof_sweep_ (set to sweep + sweep/4 by prove()),
    so an unconverged pair runs on up to 25% past max_sweeps."""
    rng = np.random.default_rng(0)
    W, V = rng.normal(size=(15, 20)), rng.normal(size=(3, 15))
    for max_sweeps in (50, 200, 1000):
        res = core.solve_pair_sdps(W, V, np.array([[0, 1], [1, 2]]), rel_tol=1e-14, max_sweeps=max_sweeps)
        assert res["status"] == ["max_sweeps"] * 2
        assert (res["sweeps"] <= max_sweeps).all(), (max_sweeps, res["sweeps"])


@pytest.mark.parametrize("scale", [1e-100, 1e100])
def test_scale_homogeneity(scale):
    """S(sW) = s·S(W): the solver and its rigorous bound work at extreme (but representable) magnitudes."""
    rng = np.random.default_rng(12)
    W, V = rng.normal(size=(15, 20)), rng.normal(size=(3, 15))
    pairs = np.array([[0, 1], [2, 1]])
    base = core.solve_pair_sdps(W, V, pairs, rel_tol=1e-8)
    res = core.solve_pair_sdps(W * scale, V, pairs, rel_tol=1e-8)
    assert res["status"] == ["converged"] * 2
    for p in range(2):
        assert_brackets(res["lower"][p], res["upper"][p], scale * base["lower"][p], 1e-6)


@pytest.mark.parametrize("scale", [1e-200, 1e200])
def test_claimed_bounds_hold_when_norms_over_or_underflow(scale):
    """At |W| ~ 1e±200 the row norms inside the solver over/underflow (Eigen's norm() squares first). Whatever
    the solver manages, what it reports must stay true: lower ≤ S ≤ upper (inf/0 are fine as a failed bound).
    Currently scale 1e200 returns lower = +inf (2‖G_l‖ overflowed): a false lower bound; stableNorm() or a
    rescaling of W by a power of two would avoid both failures."""
    rng = np.random.default_rng(12)
    W, V = rng.normal(size=(15, 20)), rng.normal(size=(3, 15))
    pairs = np.array([[0, 1]])
    base = core.solve_pair_sdps(W, V, pairs, rel_tol=1e-8)
    res = core.solve_pair_sdps(W * scale, V, pairs)
    true_lo, true_hi = scale * base["lower"][0], scale * base["upper"][0]
    assert res["upper"][0] >= true_lo * (1 - 1e-12)
    assert res["lower"][0] <= true_hi * (1 + 1e-12), res["lower"][0]


def test_pair_order_symmetry():
    """S_ij = S_ji (M(−v) is similar to M(v)): the two solves bracket a common value."""
    rng = np.random.default_rng(7)
    W, V = rng.normal(size=(30, 25)), rng.normal(size=(3, 30))
    res = core.solve_pair_sdps(W, V, all_pairs(3), rel_tol=1e-8)
    for p, (i, j) in enumerate(all_pairs(3)):
        q = [tuple(x) for x in all_pairs(3)].index((j, i))
        assert max(res["lower"][p], res["lower"][q]) <= min(res["upper"][p], res["upper"][q])


def test_rank_one_start_grows_and_converges():
    rng = np.random.default_rng(8)
    m, d = 15, 20
    W, V = rng.normal(size=(m, d)), rng.normal(size=(3, m))
    pairs = np.array([[0, 1], [1, 2]])
    res = core.solve_pair_sdps(W, V, pairs, rank=1, rel_tol=1e-7)
    ref = core.solve_pair_sdps(W, V, pairs, rel_tol=1e-9)
    assert res["status"] == ["converged"] * 2
    assert (res["rank"] > 1).all()
    for p in range(2):
        assert_brackets(res["lower"][p], res["upper"][p], ref["lower"][p], 1e-6)


def test_factors_and_warm_start():
    rng = np.random.default_rng(9)
    m, d = 25, 30
    D = 1 + m + d
    W, V = rng.normal(size=(m, d)), rng.normal(size=(3, m))
    pairs = np.array([[0, 1], [1, 2], [2, 0]])
    cold = core.solve_pair_sdps(W, V, pairs, rel_tol=1e-7, return_factors=True)
    assert len(cold["factors"]) == 3
    for p, (i, j) in enumerate(pairs):
        U = cold["factors"][p]
        assert U.shape == (D, cold["rank"][p])
        np.testing.assert_allclose(np.linalg.norm(U, axis=1), 1.0, atol=1e-12)  # feasible: diag(UUᵀ) = 1
        M = pair_matrix_ref(W, V[i] - V[j])
        value = np.sum(M * (U @ U.T))
        assert value <= cold["upper"][p] * (1 + 1e-12)
        assert value >= cold["lower"][p] * (1 - 1e-6)
    warm = core.solve_pair_sdps(W, V, pairs, rel_tol=1e-7, warm=cold["factors"])
    assert warm["status"] == ["converged"] * 3
    assert warm["sweeps"].sum() < cold["sweeps"].sum()
    for p in range(3):
        assert max(warm["lower"][p], cold["lower"][p]) <= min(warm["upper"][p], cold["upper"][p])


# ------------------------------------------------------------------------------------------------ determinism
def _problem(seed=10, m=40, d=35, k=5):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(m, d)), rng.normal(size=(k, m)), all_pairs(k)[::2]


def test_deterministic_repeat():
    W, V, pairs = _problem()
    a = core.solve_pair_sdps(W, V, pairs, return_factors=True)
    b = core.solve_pair_sdps(W, V, pairs, return_factors=True)
    for key in ALL_KEYS:
        np.testing.assert_array_equal(a[key], b[key], err_msg=key)
    assert a["status"] == b["status"]
    for Ua, Ub in zip(a["factors"], b["factors"]):
        np.testing.assert_array_equal(Ua, Ub)


def test_deterministic_across_threads_and_pair_order():
    W, V, pairs = _problem()
    one = core.solve_pair_sdps(W, V, pairs, threads=1)
    two = core.solve_pair_sdps(W, V, pairs, threads=2)
    for key in ALL_KEYS:
        np.testing.assert_array_equal(one[key], two[key], err_msg=key)
    perm = np.random.default_rng(0).permutation(len(pairs))
    shuffled = core.solve_pair_sdps(W, V, pairs[perm], threads=2)
    for key in ALL_KEYS:
        np.testing.assert_array_equal(shuffled[key], one[key][perm], err_msg=key)
    assert shuffled["status"] == [one["status"][p] for p in perm]


def test_deterministic_across_threads_when_pairs_run_long():
    """Results do not depend on the thread count (sdp_solver.hpp, solve_pairs: fixed groups of pairs). A pair
    solved alone is batched with different partners, so Eigen may block its GEMMs differently and the last bits of
    the dual can differ: then both results must be valid and agree to far below the tolerance. Seed 3 at 200x250
    makes ranks grow to 31 and 16 over ~1000 sweeps, the case that once broke thread independence."""
    rng = np.random.default_rng(3)
    W, V = rng.normal(size=(200, 250)), rng.normal(size=(3, 200))
    pairs = np.array([[0, 1], [0, 2], [1, 2]])
    one = core.solve_pair_sdps(W, V, pairs, threads=1)
    two = core.solve_pair_sdps(W, V, pairs, threads=2)
    alone = core.solve_pair_sdps(W, V, pairs[:1], threads=1)
    for key in ("lower", "upper", "dual", "sweeps", "rank"):
        np.testing.assert_array_equal(one[key], two[key], err_msg=key)
    for key in ("lower", "upper"):
        np.testing.assert_allclose(one[key][:1], alone[key], rtol=1e-9, err_msg=key)
    assert alone["upper"][0] >= alone["lower"][0] and one["upper"][0] >= one["lower"][0]


def test_threads_identical_for_lambda_bounds():
    W, V, pairs = _problem(seed=11)
    D = 1 + W.shape[0] + W.shape[1]
    cs = np.random.default_rng(1).uniform(0.5, 3.0, size=(len(pairs), D))
    a = core.lambda_max_upper_bounds(W, V, pairs, cs, threads=1)
    b = core.lambda_max_upper_bounds(W, V, pairs, cs, threads=2)
    for key in ("lambda_bound", "dual_bound"):
        np.testing.assert_array_equal(a[key], b[key])


# ------------------------------------------------------------------------------------------------ issue 14: options
@pytest.mark.parametrize("anderson,proof_schedule", [(0, False), (0, True), (5, False), (5, True), (12, True)])
def test_acceleration_options_change_the_path_not_the_answer(anderson, proof_schedule):
    """Anderson acceleration and the proof schedule (sdp_solver.hpp) only change which factors the sweeps visit and
    when proofs are tried: every setting must bracket the same value (rank 1 start: the rank grows, which is when
    Anderson steps are taken) and return a dual that certifies its upper bound."""
    rng = np.random.default_rng(14)
    m, d = 30, 40
    W, V = rng.normal(size=(m, d)), rng.normal(size=(3, m))
    pairs = np.array([[0, 1], [1, 2], [2, 0]])
    ref = core.solve_pair_sdps(W, V, pairs, rel_tol=1e-9, anderson=0, proof_schedule=False)
    for rank in (1, 8):
        res = core.solve_pair_sdps(W, V, pairs, rel_tol=1e-7, rank=rank, anderson=anderson,
                                   proof_schedule=proof_schedule)
        assert res["status"] == ["converged"] * 3
        for p in range(3):
            assert_brackets(res["lower"][p], res["upper"][p], ref["lower"][p], 1e-6)
        lam = core.lambda_max_upper_bounds(W, V, pairs, res["dual"])
        assert (lam["dual_bound"] >= ref["lower"] * (1 - 1e-12)).all()


def test_acceleration_deterministic_across_threads():
    """With Anderson steps taken (ranks grow from 1), results stay identical for every thread count."""
    W, V, pairs = _problem(seed=11, m=60, d=50, k=5)
    one = core.solve_pair_sdps(W, V, pairs, threads=1, rank=1, anderson=5)
    two = core.solve_pair_sdps(W, V, pairs, threads=2, rank=1, anderson=5)
    for key in ALL_KEYS:
        np.testing.assert_array_equal(one[key], two[key], err_msg=key)
    assert one["status"] == two["status"]


@pytest.mark.parametrize("bad", [-1, 65])
def test_anderson_option_validated(bad):
    W, V, pairs = _problem()
    with pytest.raises(ValueError):
        core.solve_pair_sdps(W, V, pairs, anderson=bad)


def test_refined_sweeps_match_float64_sweeps_on_a_robust_net():
    """Refined sweeps (float32 products of the change since the last float64 sweep, SweepPrecision in
    sdp_solver.hpp) must reach the same SDP values as float64 sweeps on the net where they matter most (the packaged
    SDP-NN: rank 16, ~100 sweeps per pair), with a dual that proves each upper bound."""
    from sdpcert.model import load_pretrained

    net = load_pretrained("sdp-nn")
    W, V = np.asarray(net.W, float), np.asarray(net.V, float)
    pairs = np.array([[0, 1], [3, 5], [4, 9]])
    refined = core.solve_pair_sdps(W, V, pairs, refined_sweeps=True)
    plain = core.solve_pair_sdps(W, V, pairs, refined_sweeps=False)
    for res in (refined, plain):
        assert res["status"] == ["converged"] * 3
        assert (res["rank"] >= 16).all()  # the early rank check grew them
        lam = core.lambda_max_upper_bounds(W, V, pairs, res["dual"])  # the dual proves a bound on its own
        assert np.isfinite(lam["dual_bound"]).all() and (lam["dual_bound"] >= res["lower"]).all()
    for p in range(3):
        # each bracket [lower, upper] has relative width <= 1e-6 and both contain the true value
        assert refined["lower"][p] <= plain["upper"][p] and plain["lower"][p] <= refined["upper"][p]
        assert_brackets(refined["lower"][p], refined["upper"][p], plain["lower"][p], 1e-6)
