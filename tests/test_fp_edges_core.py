"""The core's proofs at the edges of floating point: subnormal, huge and badly balanced weights.

Every proof of certify_bound.hpp must hold over the whole double range (products that underflow carry an absolute
error, overflow must give +inf, never NaN or a smaller bound), and the entry points balance W and v by exact powers
of two first (scaling.hpp) so that an extreme net gets the bound of the ordinary net it rescales. References:
λmax from mpmath on the very floats passed in (tests/reference.py: every product exact, any exponent), spectral
norms from mpmath likewise, and the solver's own results at scale 1 (power-of-two scaling maps the problem exactly).
"""

from __future__ import annotations

import math
import time

import numpy as np
import pytest

from sdpcert import _core as core
from sdpcert.certify.growth import spectral_norm_upper
from sdpcert.model import TwoLayerNet

from reference import lambda_max_mp

PAIRS = np.array([[0, 1], [2, 1]])


def on_grid(x, bits=20):
    """x rounded to multiples of 2^-bits: scaled by 2^-1030 such values stay exact (their lowest bit >= 2^-1050)."""
    return np.round(np.asarray(x) * 2.0**bits) / 2.0**bits


def base_net(seed, m=6, d=5, k=3):
    rng = np.random.default_rng(seed)
    return on_grid(rng.normal(size=(m, d))), on_grid(rng.normal(size=(k, m)))


def rescaled_up(x, e):
    """The smallest float >= x 2^e (what a bound proven at scale 1 becomes, rounded up, at scale 2^e)."""
    r = np.ldexp(x, e)
    return np.nextafter(r, np.inf) if np.ldexp(r, -e) < x else r


# ------------------------------------------------------------------------------------------------ r7 regression
@pytest.mark.parametrize("which,e", [("V", -1030), ("W", -1030), ("V", -1020), ("W", -1050), ("W", 1000)])
def test_subnormal_scale_sdp_solves_like_the_reference(which, e):
    """Audit r7: the old 2^e factor was inf for e > 1023, so a subnormal-scale net swept on NaN for minutes. Now the
    entrywise, exact scaling solves it like the reference: same sweeps, converged, the reference bounds rescaled."""
    W, V = base_net(0)
    ref = core.solve_pair_sdps(W, V, PAIRS)
    Ws, Vs = (np.ldexp(W, e), V) if which == "W" else (W, np.ldexp(V, e))
    assert np.array_equal(np.ldexp(Ws, -e) if which == "W" else np.ldexp(Vs, -e), W if which == "W" else V)
    start = time.perf_counter()
    res = core.solve_pair_sdps(Ws, Vs, PAIRS)
    assert time.perf_counter() - start < 5.0
    assert res["status"] == ["converged"] * len(PAIRS)
    assert list(res["sweeps"]) == list(ref["sweeps"])
    for p in range(len(PAIRS)):
        # the scaled solve is the reference's exactly (power-of-two scaling is exact in the normal range): the same
        # bounds, mapped back with the upper one rounded up and the lower one down
        assert res["upper"][p] == rescaled_up(ref["upper"][p], e)
        assert res["lower"][p] == -rescaled_up(-ref["lower"][p], e)
        assert res["lambda_bound"][p] >= np.ldexp(ref["lambda_bound"][p], e)


# ------------------------------------------------------------------------------------------------ weight families
def _duplicated_rows(W):
    W = W.copy()
    W[1] = W[0]
    W[3] = -W[0]
    return W


def _zero_rows_and_columns(W):
    W = W.copy()
    W[2] = 0.0
    W[:, 1] = 0.0
    return W


def _sparse(W):
    W = W.copy()
    W[np.abs(W) < 0.8] = 0.0
    return W


def _mixed_range(W, big=664, small=-664):
    """Entries near 1e200 and 1e-200 side by side: no power of two balances both."""
    W = W.copy()
    W[::2] = np.ldexp(W[::2], big)
    W[1::2] = np.ldexp(W[1::2], small)
    return W


def families():
    """name: (W, V, e, W0, V0, overflow_ok): the net, and the scale-1 net (W0, V0) whose M it scales by 2^e (None
    for the mixed-range nets, which rescale nothing); overflow_ok: the bounds exceed the double range (+inf)."""
    W, V = base_net(1)
    out = {}

    def add(name, W0, V0, a, b, overflow_ok=False):
        out[name] = (np.ldexp(W0, a), np.ldexp(V0, b), a + b, W0, V0, overflow_ok)

    add("W 2^500", W, V, 500, 0)
    add("W 2^-500", W, V, -500, 0)
    add("V 2^500", W, V, 0, 500)
    add("W 2^-1030 (subnormal)", W, V, -1030, 0)
    add("V 2^-1030 (subnormal)", W, V, 0, -1030)
    add("W 2^-1040, V 2^-20 (deep subnormal M)", W, V, -1040, -20)
    add("W near 1e300", W, V, 994, 0)
    add("W near 1e300, V 2^40 (overflow)", W, V, 1000, 40, overflow_ok=True)
    add("duplicated rows, 2^-1030", _duplicated_rows(W), V, -1030, 0)
    add("zero rows and columns, 2^500", _zero_rows_and_columns(W), V, 500, 0)
    add("sparse, 2^-1030", _sparse(W), V, -1030, 0)
    out["W entries 1e200 and 1e-200"] = (_mixed_range(W), V, None, None, None, False)
    out["V entries 1e200 and 1e-200"] = (W, _mixed_range(V.T).T, None, None, None, False)
    return out


FAMILIES = families()


@pytest.mark.parametrize("name", list(FAMILIES))
def test_pair_sdp_and_lambda_bounds_sound_across_the_range(name):
    W, V, e, W0, V0, overflow_ok = FAMILIES[name]
    res = core.solve_pair_sdps(W, V, PAIRS, rel_tol=1e-7)
    assert not np.isnan(res["upper"]).any() and not np.isnan(res["lambda_bound"]).any()
    ref = core.solve_pair_sdps(W0, V0, PAIRS, rel_tol=1e-7) if W0 is not None else None
    for p, (i, j) in enumerate(PAIRS):
        if overflow_ok:
            assert res["upper"][p] == np.inf and res["status"][p] == "not_certified"
            continue
        assert res["status"][p] == "converged", res["status"][p]
        assert res["lower"][p] <= res["upper"][p] < np.inf
        # the certified c: lambda_max(M - diag c) <= lambda_bound, against mpmath on the very floats
        c = res["dual"][p]
        assert res["lambda_bound"][p] >= lambda_max_mp(W, V[i], V[j], c)
        if ref is not None:
            # the rescaled problem's bounds bracket the reference value (rounding of the last subnormal bit aside)
            granule = np.ldexp(1.0, -1074 - e) if e < 0 else 0.0
            assert np.ldexp(res["upper"][p], -e) >= ref["lower"][p] * (1 - 1e-12) - granule
            assert np.ldexp(res["upper"][p], -e) <= ref["upper"][p] * (1 + 1e-6) + granule

    # lambda_max_upper_bounds on the same nets, for the solver's dual and for c far from it
    rng = np.random.default_rng(3)
    D = 1 + W.shape[0] + W.shape[1]
    if overflow_ok:
        cs = np.vstack([np.zeros(D), np.full(D, np.finfo(np.float64).max)])
        out = core.lambda_max_upper_bounds(W, V, PAIRS, cs)
        assert not np.isnan(out["lambda_bound"]).any() and not np.isnan(out["dual_bound"]).any()
        assert out["lambda_bound"][0] == np.inf  # lambda_max(M) itself exceeds the double range
        for q, (i, j) in enumerate(PAIRS):
            assert out["lambda_bound"][q] >= lambda_max_mp(W, V[i], V[j], cs[q])
        return
    c_scale = np.abs(res["dual"]).max()
    for p, (i, j) in enumerate(PAIRS):
        c = res["dual"][p]
        cs = np.vstack([c, c - 1e-3 * c_scale, rng.normal(size=D) * c_scale, np.zeros(D)])
        out = core.lambda_max_upper_bounds(W, V, np.array([[i, j]] * len(cs)), cs)
        lam_b, dual_b = out["lambda_bound"], out["dual_bound"]
        assert not np.isnan(lam_b).any() and not np.isnan(dual_b).any()
        for q in range(len(cs)):
            exact = lambda_max_mp(W, V[i], V[j], cs[q])
            assert lam_b[q] >= exact, (q, lam_b[q], exact)
            # and as tight as on an ordinary net: within 1e-6 of the spectrum's scale (plus a subnormal granule)
            spread = np.abs(cs[q]).max() + c_scale
            granule = 8 * np.ldexp(1.0, -1074)
            assert lam_b[q] - exact <= 1e-6 * spread + granule, (q, lam_b[q], exact)
            if ref is not None:
                assert dual_b[q] >= np.ldexp(ref["lower"][p], e) * (1 - 1e-12) - granule


def test_unbalanceable_range_gives_sound_bounds_not_nan():
    """Entries near 1e300 and 1e-300 together: exact balancing cannot bring both near 1, so the proofs run on
    (nearly) unbalanced data; whatever they manage must be true (or +inf), and the solver must stop early."""
    W, V = base_net(2)
    W = _mixed_range(W, big=995, small=-995)
    start = time.perf_counter()
    res = core.solve_pair_sdps(W, V, PAIRS)
    assert time.perf_counter() - start < 5.0
    assert not np.isnan(res["upper"]).any() and not np.isnan(res["lambda_bound"]).any()
    D = 1 + W.shape[0] + W.shape[1]
    cs = np.vstack([np.full(D, 1e305), np.zeros(D)])
    out = core.lambda_max_upper_bounds(W, V, np.array([[0, 1], [0, 1]]), cs)
    assert not np.isnan(out["lambda_bound"]).any() and not np.isnan(out["dual_bound"]).any()
    for q in range(2):
        assert out["lambda_bound"][q] >= lambda_max_mp(W, V[0], V[1], cs[q])
    for p, (i, j) in enumerate(PAIRS):
        if np.isfinite(res["upper"][p]):
            assert res["lambda_bound"][p] >= lambda_max_mp(W, V[i], V[j], res["dual"][p])


# ------------------------------------------------------------------------------------------------ spectral norm
def spectral_norm_mp(W, dps=40):
    """||W||_2 = sqrt(lambda_max(W^T W)) in mpmath from the exact floats, rounded down to a float."""
    import mpmath

    with mpmath.workdps(dps):
        Wm = mpmath.matrix([[mpmath.mpf(float(a)) for a in row] for row in W])
        top = max(mpmath.eigsy(Wm.T * Wm, eigvals_only=True))
        return float(np.nextafter(float(mpmath.sqrt(max(top, 0))), -np.inf))


def spectral_families():
    rng = np.random.default_rng(4)
    W = rng.normal(size=(6, 8))
    mixed = _mixed_range(W)
    dup = W.copy()
    dup[1] = dup[0]
    return {
        "1e160": W * 1e160,
        "1e-170": W * 1e-170,
        "subnormal": np.ldexp(on_grid(W), -1060),
        "smallest subnormals": np.ldexp(np.round(W * 3), -1074),
        "1e200 and 1e-200": mixed,
        "1e300": W * 1e300,
        "near the largest float (norm overflows)": np.sign(W) * np.finfo(np.float64).max,
        "duplicated rows, 1e-300": dup * 1e-300,
        "ordinary": W,
    }


@pytest.mark.parametrize("name", list(spectral_families()))
def test_spectral_norm_upper_never_raises_and_bounds_the_norm(name):
    W = spectral_families()[name]
    true = spectral_norm_mp(W)
    net = TwoLayerNet(W, np.zeros(W.shape[0]), np.ones((2, W.shape[0])), np.zeros(2))
    bound = spectral_norm_upper(net)
    assert bound >= true, (bound, true)
    finite_norm = true < np.finfo(np.float64).max
    # a poor estimate (far too large or too small, even 0 or the largest float) costs tightness, never soundness,
    # and never the proof itself: the search starts at most at ||W||_F^2 and reaches it from below
    for estimate in (true, 2 * true, 0.5 * true, 0.0, np.finfo(np.float64).max):
        est = min(estimate, np.finfo(np.float64).max)
        core_bound = core.spectral_norm_upper_bound(W, est)
        assert not math.isnan(core_bound)
        assert core_bound >= true, (estimate, core_bound, true)
        if finite_norm:
            frobenius_cap = math.sqrt(W.size) * np.abs(W).max()  # >= ||W||_F
            assert core_bound <= frobenius_cap * 2.01 + 64 * np.ldexp(1.0, -1074), (estimate, core_bound)
    if finite_norm:
        # tight: the proof's margin is ~1e-12 relative, plus the subnormal granule of the result
        tight = core.spectral_norm_upper_bound(W, true)
        assert tight <= true * (1 + 1e-9) + 64 * np.ldexp(1.0, -1074), (tight, true)
        assert bound <= true * (1 + 1e-9) + 64 * np.ldexp(1.0, -1074), (bound, true)
    else:
        assert bound == np.inf


def test_spectral_norm_of_zero_matrix():
    assert core.spectral_norm_upper_bound(np.zeros((3, 4)), 0.0) == 0.0


# ------------------------------------------------------------------------------------------------ flush to zero
@pytest.mark.parametrize("threads", [1, 2])
def test_flush_to_zero_mode_proves_nothing(threads):
    """torch.set_flush_denormal(True) puts the calling thread in flush-to-zero / denormals-are-zero mode, where the
    underflow model of every proof (fl(a∘b) = (a∘b)(1+δ) + η, |η| ≤ 2^-1075) fails: the core then returns no finite
    bound (fp_environment.hpp), and proves again once the mode is restored."""
    torch = pytest.importorskip("torch")
    W, V = base_net(0)
    cs = np.ones((len(PAIRS), 1 + W.shape[0] + W.shape[1]))
    try:
        if not torch.set_flush_denormal(True):
            pytest.skip("this CPU has no flush-to-zero mode")
        sdp = core.solve_pair_sdps(W, V, PAIRS, threads=threads)
        lam = core.lambda_max_upper_bounds(W, V, PAIRS, cs, threads=threads)
        spec = core.spectral_norm_upper_bound(W, 1.0)
    finally:
        torch.set_flush_denormal(False)
    assert not np.isfinite(sdp["upper"]).any() and not np.isfinite(sdp["lambda_bound"]).any()
    assert sdp["status"] == ["not_certified"] * len(PAIRS) and np.isnan(sdp["dual"]).all()
    assert not np.isfinite(lam["lambda_bound"]).any() and not np.isfinite(lam["dual_bound"]).any()
    assert spec == np.inf
    # the same calls in the default mode prove (the refusal came from the mode, not from the data)
    assert np.isfinite(core.solve_pair_sdps(W, V, PAIRS, threads=threads)["upper"]).all()
    assert np.isfinite(core.lambda_max_upper_bounds(W, V, PAIRS, cs, threads=threads)["lambda_bound"]).all()
    assert np.isfinite(core.spectral_norm_upper_bound(W, 1.0))
