"""The pair operator of docs/design.md §2: sdpcert._core.pair_matrix and apply_pair_operator against an independent NumPy
construction (tests/reference.py), and the structural facts the rest of the core relies on."""

from __future__ import annotations

import numpy as np
import pytest

from sdpcert import _core as core

from reference import box_qp_max, pair_matrix_ref

SHAPES = [(1, 1), (1, 4), (3, 1), (4, 5), (7, 3), (20, 30), (60, 50)]


@pytest.mark.parametrize("m,d", SHAPES)
def test_pair_matrix_matches_numpy_construction(m, d):
    rng = np.random.default_rng(m * 100 + d)
    W = rng.normal(size=(m, d))
    v = rng.normal(size=m)
    c = rng.normal(size=1 + m + d)
    for cc in (None, c):
        got = core.pair_matrix(W, v, cc)
        want = pair_matrix_ref(W, v, cc)
        assert got.shape == (1 + m + d, 1 + m + d)
        # Every entry of M is one product W_kl v_k or a sum of m of them: agreement to rounding.
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-13 * max(1.0, np.abs(want).max()))


def test_pair_matrix_blocks_by_hand():
    """A 2x2 example written out by hand: A = Wᵀ diag(v), A·1, and the block positions (1, s, t)."""
    W = np.array([[1.0, 2.0], [3.0, -1.0]])  # m = 2 hidden, d = 2 inputs
    v = np.array([2.0, -1.0])
    # A = W^T diag(v) = [[2, -3], [4, 1]];  A 1 = [-1, 5]
    want = np.array([
        [0, 0, 0, -1, 5],
        [0, 0, 0, 2, 4],
        [0, 0, 0, -3, 1],
        [-1, 2, -3, 0, 0],
        [5, 4, 1, 0, 0],
    ], dtype=float)
    np.testing.assert_array_equal(core.pair_matrix(W, v), want)
    c = np.array([1.0, 2, 3, 4, 5])
    np.testing.assert_array_equal(core.pair_matrix(W, v, c), want - np.diag(c))


@pytest.mark.parametrize("m,d", SHAPES)
def test_pair_matrix_symmetric_zero_diagonal_bipartite(m, d):
    rng = np.random.default_rng(7 + m + d)
    W = rng.normal(size=(m, d))
    v = rng.normal(size=m)
    M = core.pair_matrix(W, v)
    np.testing.assert_array_equal(M, M.T)
    np.testing.assert_array_equal(np.diag(M), 0.0)
    # (1, s) rows talk only to t rows: the (1+m) x (1+m) and d x d diagonal blocks are zero.
    np.testing.assert_array_equal(M[:1 + m, :1 + m], 0.0)
    np.testing.assert_array_equal(M[1 + m:, 1 + m:], 0.0)
    # M(-v) = S M(v) S with S flipping the t-block: the reason S_ij = S_ji.
    S = np.diag(np.r_[np.ones(1 + m), -np.ones(d)])
    np.testing.assert_allclose(core.pair_matrix(W, -v), S @ M @ S, rtol=0, atol=0)


def test_pair_matrix_quadratic_form_is_the_qp_objective():
    """yᵀMy = 4 tᵀA s with s = (1 + s')/2 (docs/design.md §2, L = 1): the identity the certificate rests on."""
    rng = np.random.default_rng(3)
    m, d = 6, 4
    W = rng.normal(size=(m, d))
    v = rng.normal(size=m)
    M = core.pair_matrix(W, v)
    A = W.T @ np.diag(v)
    for _ in range(20):
        sp = rng.uniform(-1, 1, size=m)
        t = rng.uniform(-1, 1, size=d)
        y = np.r_[1.0, sp, t]
        s = (1 + sp) / 2
        assert y @ M @ y == pytest.approx(4 * t @ A @ s, rel=1e-12, abs=1e-12)


def test_box_qp_max_at_vertex_dominates_random_interior_points():
    """Sanity of the brute-force reference: no random point of the box beats the best vertex."""
    rng = np.random.default_rng(5)
    W = rng.normal(size=(3, 4))
    v = rng.normal(size=3)
    M = core.pair_matrix(W, v)
    best, y_best = box_qp_max(M)
    assert y_best @ M @ y_best == pytest.approx(best)
    Y = rng.uniform(-1, 1, size=(20000, M.shape[0]))
    assert np.einsum("ij,jk,ik->i", Y, M, Y).max() <= best + 1e-12


@pytest.mark.parametrize("m,d,P", [(1, 1, 1), (4, 5, 3), (15, 20, 6), (60, 50, 10)])
def test_apply_pair_operator_equals_dense_matvecs(m, d, P):
    rng = np.random.default_rng(m + 10 * d + P)
    D = 1 + m + d
    W = rng.normal(size=(m, d))
    vs = rng.normal(size=(P, m))
    cs = rng.normal(size=(P, D)) * 3
    X = rng.normal(size=(P, D))
    for with_c in (False, True):
        got = core.apply_pair_operator(W, vs, cs if with_c else None, X)
        assert got.shape == (P, D)
        for p in range(P):
            Mp = pair_matrix_ref(W, vs[p], cs[p] if with_c else None)
            want = Mp @ X[p]
            scale = np.abs(Mp).sum(axis=1) @ np.abs(X[p]) / D + 1.0
            np.testing.assert_allclose(got[p], want, rtol=0, atol=1e-13 * scale * D)


def test_apply_pair_operator_pairs_are_independent():
    """Row p of the batched result depends on pair p only: permuting the batch permutes the output."""
    rng = np.random.default_rng(11)
    m, d, P = 9, 7, 5
    D = 1 + m + d
    W = rng.normal(size=(m, d))
    vs, cs, X = rng.normal(size=(P, m)), rng.normal(size=(P, D)), rng.normal(size=(P, D))
    Y = core.apply_pair_operator(W, vs, cs, X)
    perm = rng.permutation(P)
    Yp = core.apply_pair_operator(W, vs[perm], cs[perm], X[perm])
    np.testing.assert_allclose(Yp, Y[perm], rtol=1e-14, atol=1e-14)
    single = np.vstack([core.apply_pair_operator(W, vs[p:p + 1], cs[p:p + 1], X[p:p + 1]) for p in range(P)])
    np.testing.assert_allclose(single, Y, rtol=1e-14, atol=1e-14)


def test_apply_pair_operator_is_symmetric_operator():
    """⟨x, (M − diag c) y⟩ = ⟨(M − diag c) x, y⟩ for the implicit operator."""
    rng = np.random.default_rng(12)
    m, d = 30, 25
    D = 1 + m + d
    W = rng.normal(size=(m, d))
    vs, cs = rng.normal(size=(1, m)), rng.normal(size=(1, D))
    x, y = rng.normal(size=(1, D)), rng.normal(size=(1, D))
    Ax = core.apply_pair_operator(W, vs, cs, x)
    Ay = core.apply_pair_operator(W, vs, cs, y)
    assert float(np.sum(x * Ay)) == pytest.approx(float(np.sum(Ax * y)), rel=1e-12)
