"""Rigorous bounds of the core (certify_bound.hpp): lambda_max_upper_bounds and spectral_norm_upper_bound.

Soundness: the bound is never below the true value — checked against float64 eigh on many c (negative, mixed,
large, from an SDP dual, near-singular), and against a 40-digit mpmath eigenvalue (with v = Vi − Vj formed
exactly) where float64 rounding itself could decide the comparison. Usefulness: the bound is close to the true
value, and dual_bound is an upper bound on the pair SDP value for any c."""

from __future__ import annotations

import numpy as np
import pytest

from sdpcert import _core as core

from reference import lambda_max_mp, pair_matrix_ref, sdp_value_clarabel, sdp_value_sdpa


def lam_eigh(W, Vi, Vj, c):
    ev = np.linalg.eigvalsh(pair_matrix_ref(W, Vi - Vj, c))
    return ev[-1], np.abs(ev).max()


def bounds_for(W, V, pairs, cs):
    out = core.lambda_max_upper_bounds(W, V, np.asarray(pairs, dtype=np.int64), np.atleast_2d(cs))
    return out["lambda_bound"], out["dual_bound"]


def c_families(rng, W, V, i, j):
    """Named diagonal shifts c for pair (i, j): the cases the bound must survive."""
    m, d = W.shape
    D = 1 + m + d
    sol = core.solve_pair_sdps(W, V, np.array([[i, j]]), rel_tol=1e-9)
    dual = sol["dual"][0]
    scale = np.abs(dual).max()
    c_zero_t = dual.copy()
    c_zero_t[1 + m + rng.integers(d)] = 0.0
    c_neg_t = dual.copy()
    c_neg_t[1 + m:] *= -1
    return {
        "zero": np.zeros(D),
        "mixed": rng.normal(size=D) * scale,
        "negative": -np.abs(rng.normal(size=D)) * scale,
        "small_positive": np.abs(rng.normal(size=D)) * 1e-3 * scale,
        "large_positive": 10 * scale + np.abs(rng.normal(size=D)),
        "dual": dual,
        "dual_minus_ulp": np.nextafter(dual, -np.inf),
        "dual_minus_1e-9": dual - 1e-9 * scale,
        "dual_minus_1e-3": dual - 1e-3 * scale,
        "dual_plus_1e-3": dual + 1e-3 * scale,
        "dual_noisy": dual * (1 + 1e-2 * rng.normal(size=D)),
        "dual_zero_t_entry": c_zero_t,
        "dual_negative_t": c_neg_t,
        "dual_first_block_negative": np.r_[-dual[:1 + m], dual[1 + m:]],
        "_sdp_lower": float(sol["lower"][0]),  # not a c: a feasible primal value, S ≥ this
    }


# ------------------------------------------------------------------------------------------------ soundness
@pytest.mark.parametrize("m,d,seed", [(4, 5, 0), (15, 20, 1), (30, 12, 2), (60, 50, 3)])
def test_lambda_bound_never_below_eigh(m, d, seed):
    rng = np.random.default_rng(seed)
    W, V = rng.normal(size=(m, d)), rng.normal(size=(3, m))
    for (i, j) in [(0, 1), (2, 0)]:
        fam = c_families(rng, W, V, i, j)
        names = [n for n in fam if not n.startswith("_")]
        lam_b, dual_b = bounds_for(W, V, [(i, j)] * len(names), np.vstack([fam[n] for n in names]))
        for q, name in enumerate(names):
            lam, _ = lam_eigh(W, V[i], V[j], fam[name])
            assert lam_b[q] >= lam, (name, lam_b[q], lam)
            c = fam[name]
            D = len(c)
            # dual_bound bounds the SDP value (≥ the solver's feasible primal value) and is at most the dual
            # objective of the lambda bound (it may be tighter: the binding documents a second argument)
            assert dual_b[q] >= fam["_sdp_lower"] * (1 - 1e-12), (name, dual_b[q], fam["_sdp_lower"])
            if np.isfinite(lam_b[q]):
                want = D * max(lam_b[q], 0.0) + np.maximum(c, 0).sum()
                assert dual_b[q] <= want * (1 + 1e-12) + 1e-300


def test_lambda_bound_many_random_c():
    """500 random (W, V, c) triples with c drawn around the scale of the spectrum, both signs: never below."""
    rng = np.random.default_rng(42)
    failures = []
    for trial in range(50):
        m, d = rng.integers(1, 25, size=2)
        W = rng.normal(size=(m, d)) * 10.0 ** rng.uniform(-3, 3)
        V = rng.normal(size=(2, m))
        D = 1 + m + d
        ref_scale = np.abs(np.linalg.eigvalsh(pair_matrix_ref(W, V[0] - V[1]))).max() + 1e-300
        cs = rng.normal(size=(10, D)) * ref_scale * 10.0 ** rng.uniform(-2, 1, size=(10, 1))
        cs[::3] = np.abs(cs[::3])  # a third with positive c (the solver's regime)
        lam_b, _ = bounds_for(W, V, [(0, 1)] * 10, cs)
        for q in range(10):
            lam, _ = lam_eigh(W, V[0], V[1], cs[q])
            if not lam_b[q] >= lam:
                failures.append((trial, q, lam_b[q], lam))
    assert not failures


def _hard_small_cases(rng, count):
    """Small problems where rounding could decide: c such that M − diag c has λmax ≈ 0 (from the SDP dual and
    from a uniform shift by λmax(M)), and V rows of very different magnitudes so that fl(Vi − Vj) ≠ Vi − Vj."""
    cases = []
    for k in range(count):
        m, d = rng.integers(1, 6, size=2)
        W = rng.normal(size=(m, d))
        Vi = rng.normal(size=m) * 10.0 ** rng.integers(-8, 9, size=m)
        Vj = rng.normal(size=m) + Vi * (1 + 1e-15 * rng.normal(size=m)) * (k % 2)  # cancellation when k odd
        V = np.stack([Vi, Vj])
        D = 1 + m + d
        kind = k % 3
        if kind == 0:
            sol = core.solve_pair_sdps(W, V, np.array([[0, 1]]), rel_tol=1e-9)
            c = sol["dual"][0]
            if not np.all(np.isfinite(c)):
                continue
        elif kind == 1:
            top = np.linalg.eigvalsh(pair_matrix_ref(W, Vi - Vj))[-1]
            c = np.full(D, top)  # λmax(M − diag c) = 0 up to the rounding of `top`
        else:
            c = rng.normal(size=D) * np.abs(W).max() * np.abs(Vi - Vj).max()
        cases.append((W, V, c))
    return cases


def test_lambda_bound_above_high_precision_eigenvalue():
    rng = np.random.default_rng(7)
    cases = _hard_small_cases(rng, 36)
    assert len(cases) >= 30
    for W, V, c in cases:
        lam_b, _ = bounds_for(W, V, [(0, 1)], c)
        lam_exact = lambda_max_mp(W, V[0], V[1], c)
        lam, scale = lam_eigh(W, V[0], V[1], c)
        assert abs(lam_exact - lam) <= 1e-12 * scale  # the reference itself is right
        assert lam_b[0] >= lam_exact, (lam_b[0], lam_exact, W.shape)


@pytest.mark.parametrize("scale", [1e-150, 1e-40, 1e40, 1e100])
def test_lambda_bound_extreme_magnitudes(scale):
    rng = np.random.default_rng(9)
    W, V = rng.normal(size=(6, 5)) * scale, rng.normal(size=(2, 6))
    sol = core.solve_pair_sdps(W, V, np.array([[0, 1]]), rel_tol=1e-9)
    cs = np.vstack([sol["dual"][0], sol["dual"][0] * 0.999, np.abs(rng.normal(size=12)) * scale * 3])
    lam_b, _ = bounds_for(W, V, [(0, 1)] * 3, cs)
    for q in range(3):
        lam, _ = lam_eigh(W, V[0], V[1], cs[q])
        assert lam_b[q] >= lam
        lam_exact = lambda_max_mp(W, V[0], V[1], cs[q], dps=60)
        assert lam_b[q] >= lam_exact


def test_dual_bound_above_sdp_value_for_any_c():
    rng = np.random.default_rng(11)
    m, d = 6, 5
    W, V = rng.normal(size=(m, d)), rng.normal(size=(3, m))
    M = pair_matrix_ref(W, V[0] - V[1])
    S = sdp_value_clarabel(M)
    fam = c_families(rng, W, V, 0, 1)
    names = [n for n in fam if not n.startswith("_")]
    _, dual_b = bounds_for(W, V, [(0, 1)] * len(names), np.vstack([fam[n] for n in names]))
    for q, name in enumerate(names):
        assert dual_b[q] >= S * (1 - 1e-9), (name, dual_b[q], S)
    # at the dual optimum the bound is the SDP value
    assert dual_b[names.index("dual")] == pytest.approx(S, rel=1e-6)


def test_dual_bound_tight_at_solver_dual_moderate():
    rng = np.random.default_rng(12)
    m, d = 25, 30
    W, V = rng.normal(size=(m, d)), rng.normal(size=(3, m))
    sol = core.solve_pair_sdps(W, V, np.array([[0, 1], [1, 2]]), rel_tol=1e-8)
    _, dual_b = bounds_for(W, V, [(0, 1), (1, 2)], sol["dual"])
    for p, (i, j) in enumerate([(0, 1), (1, 2)]):
        ref, half = sdp_value_sdpa(pair_matrix_ref(W, V[i] - V[j]))
        assert dual_b[p] >= ref - half
        assert dual_b[p] <= ref * (1 + 1e-6)


# ------------------------------------------------------------------------------------------------ usefulness
@pytest.mark.parametrize("m,d,seed", [(15, 20, 1), (60, 50, 3)])
def test_lambda_bound_tight_at_sdp_dual(m, d, seed):
    """c from the SDP dual (λmax ≈ 0, a cluster there): the bound is within 1e-6·‖M − diag c‖ of eigh."""
    rng = np.random.default_rng(seed)
    W, V = rng.normal(size=(m, d)), rng.normal(size=(3, m))
    fam = c_families(rng, W, V, 0, 1)
    for name in ("dual", "dual_minus_ulp", "dual_minus_1e-9", "dual_plus_1e-3"):
        lam_b, _ = bounds_for(W, V, [(0, 1)], fam[name])
        lam, scale = lam_eigh(W, V[0], V[1], fam[name])
        assert lam_b[0] - max(lam, 0.0) <= 1e-6 * scale, (name, lam_b[0], lam)


@pytest.mark.parametrize("name", ["zero", "mixed", "small_positive", "dual_minus_1e-3", "dual_first_block_negative"])
def test_lambda_bound_tight_for_generic_c(name):
    """The bound should be within 1e-6·scale of max(λmax, 0) for any c (only λ⁺ enters the dual objective).

    Fails today for every c whose λmax(M − diag c) is not ≈ 0: certify_bound.hpp proves
    λmin(Schur complement S) ≥ −a with a shift α added to S only (prove_lambda_min_lower, step 4) and then uses
    "S ⪰ −aI ⇒ Z ⪰ −aI", which is sound but loose by a factor that grows with a/min(c_t); and when c_t ≤ 0
    (lambda_max_upper_bound) c is raised only to c_t ≈ 1e-8·max|c|, making C2⁻¹ huge. Measured: c = dual − 1e-3
    gives 2.6× the true λ, c = 0.9·dual 3.9×, random c 1e8×, c = 0 ~1e302. Suggested fix: raise c by
    μ ≈ λ̂max(M − diag c) + δ (a Lanczos estimate, rounded as the existing `raise` is), i.e. shift Z rather than
    S, so that diag(c + μ) − M is nearly singular PSD with c_t + μ ≥ δ > 0, and report μ + (tiny proven rest)."""
    rng = np.random.default_rng(5)
    m, d = 15, 20
    W, V = rng.normal(size=(m, d)), rng.normal(size=(3, m))
    c = c_families(rng, W, V, 0, 1)[name]
    lam_b, _ = bounds_for(W, V, [(0, 1)], c)
    lam, scale = lam_eigh(W, V[0], V[1], c)
    assert lam_b[0] >= lam
    assert lam_b[0] - max(lam, 0.0) <= 1e-6 * scale, (name, lam_b[0], lam)


def test_lambda_bound_stays_near_lambda_when_the_estimate_is_low_and_a_t_entry_is_near_its_negative():
    """Regression (training-time dual certificate): at a clustered top the Lanczos estimate lies below lambda_max by
    up to ~its residual; shifting c by that estimate left a t-entry of c + mu close to 0, and with mu below lambda_max
    the proof's shift grew with 1 / (c_l + mu) (a training checkpoint gave a dual bound of 36384 where ~30 was right).
    On the packaged sdp-nn's pair (0, 1) at its SDP dual with its smallest t-entry set to -1e-6 the bound was 6.8e-4
    for lambda_max 1.6e-5 (Lanczos residual 9.8e-5); it must stay within twice the residual of lambda_max."""
    from sdpcert.model import load_pretrained

    net = load_pretrained("sdp-nn")
    W, V = np.asfortranarray(net.W, dtype=np.float64), np.ascontiguousarray(net.V, dtype=np.float64)
    pairs = np.array([[0, 1]], dtype=np.int64)
    c = np.array(core.solve_pair_sdps(W, V, pairs, threads=1)["dual"][0])
    m = W.shape[0]
    c[1 + m + int(np.argmin(c[1 + m:]))] = -1e-6
    est = core.top_eigenpairs(W, V, pairs, c[None], tol=1e-10, max_iter=300, dense_fallback=False)
    lam = np.linalg.eigvalsh(core.pair_matrix(W, V[0] - V[1]) - np.diag(c))[-1]
    bound = core.lambda_max_upper_bounds(W, V, pairs, c[None], threads=1)["lambda_bound"][0]
    assert lam <= bound <= lam + 2.0 * est["residuals"][0], (bound, lam, est["residuals"][0])


# ------------------------------------------------------------------------------------------------ spectral norm
@pytest.mark.parametrize("shape,seed", [((1, 1), 0), ((5, 3), 1), ((3, 5), 2), ((50, 80), 3), ((200, 100), 4),
                                        ((40, 40), 5)])
def test_spectral_norm_upper_bound(shape, seed):
    rng = np.random.default_rng(seed)
    W = rng.normal(size=shape)
    true = np.linalg.norm(W, 2)
    ub = core.spectral_norm_upper_bound(W, true)
    assert ub >= true
    assert ub <= true * (1 + 1e-8)
    # a loose estimate gives a loose but valid bound
    ub2 = core.spectral_norm_upper_bound(W, 2 * true)
    assert true <= ub2 <= 2 * true * (1 + 1e-8)
    # an estimate that is too small either still yields a valid bound or no bound (inf)
    ub3 = core.spectral_norm_upper_bound(W, 0.5 * true)
    assert ub3 >= true


def test_spectral_norm_upper_bound_structured():
    rng = np.random.default_rng(6)
    # rank one (a huge gap), repeated singular values (orthogonal), tiny and huge magnitudes, zero matrix
    u, v = rng.normal(size=(30, 1)), rng.normal(size=(1, 20))
    Q, _ = np.linalg.qr(rng.normal(size=(25, 25)))
    for W in (u @ v, 3.0 * Q, Q[:, :10] * 1e-120, rng.normal(size=(7, 9)) * 1e120):
        true = np.linalg.norm(W, 2)
        ub = core.spectral_norm_upper_bound(W, true)
        assert true <= ub <= true * (1 + 1e-8), (ub, true)
    assert core.spectral_norm_upper_bound(np.zeros((4, 3)), 0.0) >= 0.0
    # high precision check on a small case: ‖W‖₂² = λmax(WᵀW) computed with mpmath
    import mpmath

    W = rng.normal(size=(4, 3))
    with mpmath.workdps(40):
        Wm = mpmath.matrix(W.tolist())
        top = max(mpmath.eigsy(Wm.T * Wm, eigvals_only=True))
        true_mp = float(mpmath.sqrt(top))
    assert core.spectral_norm_upper_bound(W, np.linalg.norm(W, 2)) >= true_mp
