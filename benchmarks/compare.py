"""sdpcert against off-the-shelf tools, measured in the same run, on the benchmark networks (see _model.py).

    python benchmarks/compare.py [--quick] [--nets nt,at,sdp-nn] [--json PATH]

Per net (nt: cross-entropy, at: PGD-trained, sdp-nn: the packaged SDP-NN; targets in brackets, issue 14):
  n) all 45 pair SDPs, proven, rel. gap <= 1e-6, wall time    [<= 1 s]; sweeps, proofs, rank at exit
     one pair, median of 5 pairs                              [<= 25 ms on nt, <= 100 ms on sdp-nn]
     lambda_max_upper_bounds at the SDP duals, per pair       [<= 15 ms]
     achieved GFLOP/s of the sweeps' GEMMs (their multiply-adds / the 45 pairs' wall time, a lower bound) against
     a plain Eigen GEMM (numpy) of the same shapes, float64 and float32
Then, on the nt net (rows as before, issue 3):
  a) one pair SDP to rel. gap <= 1e-6, proven upper bound   [<= 25 ms median, >= 500x faster than SDPA]
     vs SDPA (sdpa-python) on the same pair; both values must agree to ~1e-6 relative.
  b) all 45 pair SDPs, wall time                             [<= 1 s]
  c) certify the 10,000 MNIST test images at eps = 0.1, end to end (45 SDPs + forward + margins)   [<= 2 s]
  d) top eigenpair of M_ij - diag(c) for 9 pairs, batched Lanczos vs 9 calls of scipy's eigsh on an implicit
     LinearOperator (two products with W per matvec, docs/design.md §2), same tolerance   [>= 5x faster]
     sdpcert with float32 products whose answers are checked in float64 (float32_matvecs=True: float64 Rayleigh
     quotients and residuals, a float64 finish for any pair that misses tol), and with float64 products throughout

--quick: fewer repeats, and SDPA on a slice (first 100 hidden units, 200 inputs) instead of the full D = 1285.

Fair play with numpy: OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE, where the machine sets them, slow a current OpenBLAS;
unset both for this command only (``env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python ...``). The BLAS kernel
that ran is printed (threadpoolctl).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import platform
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import scipy
import scipy.sparse as sp
import scipy.sparse.linalg as sla
from threadpoolctl import threadpool_info, threadpool_limits

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _model  # noqa: E402

from sdpcert import _core  # noqa: E402
from sdpcert.data import load_mnist  # noqa: E402

EPS = 0.1
REL_TOL = 1e-6
TARGETS = {"one_pair_ms": 25.0, "speedup_vs_sdpa": 500.0, "all_pairs_s": 1.0, "certify_10k_s": 2.0,
           "speedup_vs_eigsh": 5.0}


def timed(fn, repeats: int):
    """(median seconds, min seconds, last result) of ``repeats`` calls of ``fn``, after a pause and one untimed
    warm-up call (thread pools, first-touch page faults and caches are then the same for every tool measured).
    The pause lets the previous tool's idle worker threads stop spinning: OpenBLAS's pool busy-waits for ~0.1 s
    after a call, and on two cores that took a core from the next tool timed (measured: sdpcert's 9-pair Lanczos at
    c = dual/2 ran in 21 ms right after an eigsh call with BLAS threads, 7 ms after a pause)."""
    time.sleep(0.3)
    fn()
    times, out = [], None
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return float(np.median(times)), float(np.min(times)), out


def environment() -> dict:
    blas = [{k: lib.get(k) for k in ("internal_api", "architecture", "num_threads", "version", "filepath")}
            for lib in threadpool_info()]
    return {
        "python": platform.python_version(), "numpy": np.__version__, "scipy": scipy.__version__,
        "cpus": os.cpu_count(), "core_threads": _core.available_threads(), "core_openmp": bool(_core.has_openmp),
        "OPENBLAS_CORETYPE": os.environ.get("OPENBLAS_CORETYPE"), "OPENBLAS_L2_SIZE": os.environ.get("OPENBLAS_L2_SIZE"),
        "thread_pools": blas, "loadavg_start": os.getloadavg(),
    }


# --------------------------------------------------------------------------------------------------- SDPA
def sdpa_pair(W: np.ndarray, v: np.ndarray) -> dict:
    """The pair SDP of (W, v) by SDPA (``sdpa_sdp``)."""
    return sdpa_sdp(_core.pair_matrix(W, v))


def sdpa_sdp(M: np.ndarray) -> dict:
    """max <M, P> s.t. diag(P) = 1, P >= 0 with SDPA, in SDPAP's conic form:
    min c^T x  s.t.  A x - b in J = {0}^D (J.f = D),  x = vec(P) in K = S^D_+ (K.s = (D,)), c = -vec(M)."""
    import sdpap

    D = M.shape[0]
    c = sp.csc_matrix(-M.reshape(-1, 1))
    rows = np.arange(D)
    A = sp.csc_matrix((np.ones(D), (rows, rows * D + rows)), shape=(D, D * D))
    b = sp.csc_matrix(np.ones((D, 1)))
    # After SDPA returns, sdpap re-checks feasibility in Python with scipy's eigs (minutes at D ~ 900, and it
    # prints/warns when eigs fails). That check is not SDPA: it is switched off for the call (and restored), so the
    # wall time is conversion + SDPA; the comparison uses SDPA's own solver time.
    utils = sdpap.sdpap.sdpaputils
    saved = utils.get_primalerror, utils.get_dualerror
    utils.get_primalerror = utils.get_dualerror = lambda *args: float("nan")
    try:
        t0, cpu0 = time.perf_counter(), time.process_time()
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            _, _, _, _, info = sdpap.solve(A, b, c, sdpap.SymCone(s=(D,)), sdpap.SymCone(f=D), {"print": "no"})
        wall, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    finally:
        utils.get_primalerror, utils.get_dualerror = saved
    return {"D": D, "value": -info["primalObj"], "dual_value": -info["dualObj"], "phase": info["phasevalue"],
            "solver_s": info["sdpaTime"], "wall_s": wall, "cpu_s": cpu, "iterations": info["iteration"]}


# --------------------------------------------------------------------------------------------------- eigsh
def pair_operator(W: np.ndarray, v: np.ndarray, c: np.ndarray, shift: float = 0.0) -> sla.LinearOperator:
    """M(v) - diag(c) + shift*I as a LinearOperator: y0 = v.(W xt), ys = v*(W xt), yt = W^T (v*(x0 + xs))."""
    m, d = W.shape
    D = 1 + m + d

    def matvec(x):
        x = np.ravel(x)
        wt = W @ x[1 + m:]
        y = np.empty(D)
        y[0] = v @ wt
        y[1:1 + m] = v * wt
        y[1 + m:] = W.T @ (v * (x[0] + x[1:1 + m]))
        return y + (shift - c) * x

    return sla.LinearOperator((D, D), matvec=matvec, dtype=np.float64)


def eigsh_top(W, V, pairs, cs, tol, shifts, v0):
    values = np.empty(len(pairs))
    for p, (i, j) in enumerate(pairs):
        op = pair_operator(W, V[i] - V[j], cs[p], shifts[p])
        values[p] = sla.eigsh(op, k=1, which="LA", tol=tol, v0=v0, maxiter=20000)[0][0] - shifts[p]
    return values


# --------------------------------------------------------------------------------------------------- certify
def clear_pair_cache(cert_mod):
    """Empty sdpcert's per-model cache of pair SDP values (Certifier.clear_cache; older commits: a bare dict)."""
    if hasattr(cert_mod.Certifier, "clear_cache"):
        cert_mod.Certifier.clear_cache()
    else:
        cert_mod._PAIR_CACHE.clear()


def certify_10k(net, X, y, eps):
    """End to end: 45 SDPs + forward pass + margins. sdpcert.certify.Certifier when it imports, else by hand."""
    try:
        from sdpcert import certify as cert_mod

        clear_pair_cache(cert_mod)  # time the SDPs too, not the per-model cache
        res = cert_mod.Certifier(net, rel_tol=REL_TOL).certify(X, y, eps)
        return {"route": "Certifier", "certified_error": float(res.certified_error),
                "clean_error": float(res.clean_error)}
    except ImportError:
        pass
    pairs = _model.all_pairs(net.k)
    r = _core.solve_pair_sdps(net.W, net.V, pairs, rel_tol=REL_TOL)
    S = np.zeros((net.k, net.k))
    S[pairs[:, 0], pairs[:, 1]] = S[pairs[:, 1], pairs[:, 0]] = r["upper"]
    logits = net.forward(X)
    rows = np.arange(len(y))
    # f^{jy}_SDP(x) = f_j - f_y + (eps L / 4) S_jy (docs/design.md §2); certified iff correct and all j != y are < 0
    margins = logits - logits[rows, y][:, None] + (eps * net.lipschitz / 4) * S[:, y].T
    margins[rows, y] = -np.inf
    correct = np.argmax(logits, axis=1) == y
    certified = correct & (margins.max(axis=1) < 0)
    return {"route": "by hand (_core + numpy, no rounding slack)", "certified_error": float(1 - certified.mean()),
            "clean_error": float(1 - correct.mean())}


# --------------------------------------------------------------------------------------------------- per net
NET_TARGETS = {"all_pairs_s": 1.0, "one_pair_ms": {"nt": 25.0, "sdp-nn": 100.0}, "lambda_ms": 15.0}


def plain_gemm_gflops(W: np.ndarray, cols: int, dtype, seconds: float = 0.3) -> float:
    """GFLOP/s of the two products a sweep makes (W^T Y, Y: m x cols; W U, U: d x cols) as plain numpy GEMMs."""
    Wd = np.asarray(W, dtype=dtype)
    rng = np.random.default_rng(0)
    Y = rng.standard_normal((Wd.shape[0], cols)).astype(dtype)
    U = rng.standard_normal((Wd.shape[1], cols)).astype(dtype)
    Wd.T @ Y
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        Wd.T @ Y
        Wd @ U
        n += 1
    return 4.0 * Wd.shape[0] * Wd.shape[1] * cols * n / (time.perf_counter() - t0) / 1e9


def per_net_rows(names, reps, results, row):
    """Rows n) for each benchmark net: the 45 pairs, one pair, lambda bounds, sweeps' GFLOP/s against plain GEMM."""
    results["nets"] = {}
    for name in names:
        net = _model.named_net(name)
        if net is None:
            row(f"n) {name}", "skipped: not cached and no MNIST to train it")
            continue
        W, V = np.asarray(net.W), np.asarray(net.V)
        pairs = _model.all_pairs(net.k)
        print(f"n) net {name}", flush=True)
        _core.solve_pair_sdps(W, V, pairs[:1])  # warm-up
        out = {}
        for threads in (0, 1):
            med, mn, r = timed(lambda: _core.solve_pair_sdps(W, V, pairs, rel_tol=REL_TOL, threads=threads), reps)
            gaps = (r["upper"] - r["lower"]) / r["upper"]
            assert all(s == "converged" for s in r["status"]) and gaps.max() <= REL_TOL
            key = "threads1" if threads == 1 else "default"
            out[f"all_pairs_s_{key}"] = med
            label = "threads=1" if threads == 1 else f"threads=default({_core.available_threads()})"
            row(f"n) {name}: all {len(pairs)} pairs, {label}", f"{med:.2f} s (min {mn:.2f} s)",
                f"<= {NET_TARGETS['all_pairs_s']:.0f} s", med <= NET_TARGETS["all_pairs_s"])
            if threads == 0:
                all_r, all_med = r, med
        sw, rk, pa = all_r["sweeps"], all_r["rank"], all_r["proof_attempts"]
        out.update(sweeps=sw.tolist(), rank=rk.tolist(), proof_attempts=pa.tolist(), max_rel_gap=float(gaps.max()))
        row(f"   {name}: sweeps median/max, proofs per pair, rank at exit median/max",
            f"{np.median(sw):.0f}/{sw.max()}, {pa.sum() / len(pairs):.2f}, {np.median(rk):.0f}/{rk.max()}")
        # The sweeps' GEMM work: 4 m d r multiply-adds... (2 flops each) per sweep and pair, at the exit rank (an
        # upper bound on r for the early sweeps: the rate below is then an upper bound on that part and a lower bound
        # overall, since the wall time also holds the proofs).
        flops = float(np.sum(4.0 * net.m * net.d * sw * rk))
        achieved = flops / all_med / 1e9
        cols = int(8 * np.median(rk))  # a batched group of 8 pairs
        g64, g32 = plain_gemm_gflops(W, cols, np.float64), plain_gemm_gflops(W, cols, np.float32)
        out.update(sweep_gflops=achieved, gemm_gflops_f64=g64, gemm_gflops_f32=g32)
        row(f"   {name}: sweeps' GFLOP/s (45 pairs, threads=default) vs plain GEMM same shapes (x{cols} cols)",
            f"{achieved:.1f} vs numpy f64 {g64:.1f} / f32 {g32:.1f} GFLOP/s ({achieved / g64:.2f}x f64)")
        per_pair = []
        for pr in pairs[:: 9][:5]:
            m1, _, r1 = timed(lambda: _core.solve_pair_sdps(W, V, pr[None], rel_tol=REL_TOL, threads=0), reps)
            assert r1["status"][0] == "converged"
            per_pair.append(m1)
        one = float(np.median(per_pair))
        out["one_pair_s"] = one
        target = NET_TARGETS["one_pair_ms"].get(name)
        row(f"   {name}: one pair, threads=default, median of 5 pairs", f"{1e3 * one:.1f} ms",
            f"<= {target:.0f} ms" if target else "", None if target is None else 1e3 * one <= target)
        med, _, _ = timed(lambda: _core.lambda_max_upper_bounds(W, V, pairs, all_r["dual"], threads=1), reps)
        lam_ms = 1e3 * med / len(pairs)
        out["lambda_ms_per_pair_threads1"] = lam_ms
        row(f"   {name}: lambda_max_upper_bounds at the SDP duals, threads=1", f"{lam_ms:.1f} ms/pair",
            f"<= {NET_TARGETS['lambda_ms']:.0f} ms", lam_ms <= NET_TARGETS["lambda_ms"])
        results["nets"][name] = out


# --------------------------------------------------------------------------------------------------- main
def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="fewer repeats; SDPA on a 100x200 slice only")
    ap.add_argument("--json", type=Path, help="also write the results here as JSON")
    ap.add_argument("--nets", default=",".join(_model.NETS),
                    help=f"comma-separated benchmark nets for the per-net rows (default {','.join(_model.NETS)})")
    args = ap.parse_args(argv)
    quick = args.quick
    reps = 1 if quick else 3
    results: dict = {"mode": "quick" if quick else "full", "env": environment()}
    rows: list[tuple[str, str, str, str]] = []  # (what, measured, target, verdict)

    def row(what, measured, target="", ok=None):
        rows.append((what, measured, target, "" if ok is None else ("PASS" if ok else "MISS")))
        print(f"  {what}: {measured}  {target}  {rows[-1][3]}", flush=True)

    net = _model.benchmark_net()
    if net is None:
        print("no MNIST found (set SDPCERT_MNIST_DIR); using a random net of MNIST shape", flush=True)
        net = _model.random_net()
        results["net"] = "random 784-500-10"
    else:
        results["net"] = f"trained {_model.cache_path().name}"
    per_net_rows(args.nets.split(","), reps, results, row)
    W, V = net.W, net.V
    pairs = _model.all_pairs(net.k)
    D = 1 + net.m + net.d
    print(f"network: {results['net']} (D = {D}); BLAS: "
          + ", ".join(f"{t['internal_api']}/{t['architecture']} x{t['num_threads']}" for t in results["env"]["thread_pools"])
          + f"; core OpenMP threads: {_core.available_threads()}", flush=True)
    _core.solve_pair_sdps(W, V, pairs[:1])  # warm-up (page faults, OpenMP pool)

    # a) one pair -------------------------------------------------------------------------------------------------
    print("a) one pair SDP", flush=True)
    sample = pairs[:: max(1, len(pairs) // (3 if quick else 5))][: 3 if quick else 5]
    one = {}
    for threads in (1, 0):
        per_pair = []
        for pr in sample:
            med, _, r = timed(lambda: _core.solve_pair_sdps(W, V, pr[None], rel_tol=REL_TOL, threads=threads), reps)
            assert r["status"][0] == "converged" and (r["upper"][0] - r["lower"][0]) <= REL_TOL * r["upper"][0]
            per_pair.append(med)
        one[threads] = float(np.median(per_pair))
        label = "threads=1" if threads == 1 else f"threads=default({_core.available_threads()})"
        row(f"a) one pair, {label}", f"{1e3 * one[threads]:.1f} ms (median, {len(sample)} pairs x {reps})",
            f"<= {TARGETS['one_pair_ms']:.0f} ms", 1e3 * one[threads] <= TARGETS["one_pair_ms"])
    results["one_pair_s"] = {"threads1": one[1], "default": one[0], "pairs": sample.tolist(), "repeats": reps}

    # SDPA on pair (0, 1): the full problem, or a slice in --quick mode (SDPA takes ~15 s at D = 1285)
    small = _model.slice_net(net, 100, 200) if quick else net
    Ws, Vs = small.W, small.V
    sd = sdpa_pair(Ws, Vs[0] - Vs[1])
    med, mn, r = timed(lambda: _core.solve_pair_sdps(Ws, Vs, np.array([[0, 1]]), rel_tol=REL_TOL, threads=1),
                       max(reps, 3))
    med_default, _, _ = timed(
        lambda: _core.solve_pair_sdps(Ws, Vs, np.array([[0, 1]]), rel_tol=REL_TOL, threads=0), max(reps, 3))
    ours_lo, ours_up = float(r["lower"][0]), float(r["upper"][0])
    agree = abs(sd["value"] - ours_up) / ours_up
    speedup = sd["solver_s"] / med
    speedup_default = sd["solver_s"] / med_default
    sdpa_cores = sd["cpu_s"] / max(sd["wall_s"], 1e-9)
    results["sdpa"] = {**sd, "sdpcert_s": med, "sdpcert_default_s": med_default, "sdpcert_lower": ours_lo,
                       "sdpcert_upper": ours_up, "rel_diff": agree, "speedup": speedup,
                       "speedup_default_threads": speedup_default, "sdpa_cores_used": sdpa_cores}
    row(f"   SDPA, pair (0,1), D={sd['D']}",
        f"{sd['solver_s']:.2f} s solver ({sd['wall_s']:.1f} s wall, {sdpa_cores:.1f} cores busy), {sd['phase']}, "
        f"S = {sd['value']:.10g}")
    row("   sdpcert, same pair, threads=1 / default", f"{1e3 * med:.1f} / {1e3 * med_default:.1f} ms, "
        f"S in [{ours_lo:.10g}, {ours_up:.10g}]")
    row("   values agree, |S_sdpa - S_up| / S_up", f"{agree:.1e}", "<= ~1e-6", agree <= 2e-6)
    row(f"   speedup vs SDPA solver, D={sd['D']}, sdpcert threads=1", f"{speedup:.0f}x",
        f">= {TARGETS['speedup_vs_sdpa']:.0f}x", speedup >= TARGETS["speedup_vs_sdpa"])
    row(f"   speedup vs SDPA solver, D={sd['D']}, both on all cores", f"{speedup_default:.0f}x",
        f">= {TARGETS['speedup_vs_sdpa']:.0f}x", speedup_default >= TARGETS["speedup_vs_sdpa"])

    # b) all 45 pairs -------------------------------------------------------------------------------------------
    print("b) all pairs", flush=True)
    for threads in (0, 1):
        med, mn, allr = timed(lambda: _core.solve_pair_sdps(W, V, pairs, rel_tol=REL_TOL, threads=threads), reps)
        gaps = (allr["upper"] - allr["lower"]) / allr["upper"]
        assert all(s == "converged" for s in allr["status"]) and gaps.max() <= REL_TOL
        label = "threads=1" if threads == 1 else f"threads=default({_core.available_threads()})"
        row(f"b) all {len(pairs)} pairs, {label}", f"{med:.2f} s (min {mn:.2f} s)",
            f"<= {TARGETS['all_pairs_s']:.0f} s", med <= TARGETS["all_pairs_s"])
        results[f"all_pairs_s_{'threads1' if threads == 1 else 'default'}"] = med
        if threads == 0:
            sweeps = allr["sweeps"]
            results["all_pairs_detail"] = {"sweeps": sweeps.tolist(), "per_pair_s": allr["seconds"].tolist(),
                                           "proof_attempts": allr["proof_attempts"].tolist(),
                                           "max_rel_gap": float(gaps.max())}
            attempts = allr["proof_attempts"]
            row("   per pair: sweeps median/max, proofs total",
                f"{np.median(sweeps):.0f}/{sweeps.max()}, {attempts.sum()} Cholesky proofs for {len(pairs)} pairs")
            duals = allr["dual"]

    # One rigorous proof per pair (dense shifted Cholesky, D^3/3 flops): the floor under b) and c).
    for threads in (1, 0):
        med, _, lb = timed(lambda: _core.lambda_max_upper_bounds(W, V, pairs, duals, threads=threads), reps)
        label = "threads=1" if threads == 1 else f"threads=default({_core.available_threads()})"
        row(f"   one proof pass (lambda_max_upper_bounds), {label}",
            f"{med:.2f} s for {len(pairs)} pairs, {1e3 * med / len(pairs) * (_core.available_threads() if threads == 0 else 1):.0f} ms/pair/thread")
        results[f"lambda_max_upper_bounds_45_s_{'threads1' if threads == 1 else 'default'}"] = med

    # c) certify 10k --------------------------------------------------------------------------------------------
    print("c) certify MNIST test set", flush=True)
    if _model.have_mnist():
        X, y = load_mnist("test", folder=_model.mnist_folder(), dtype=np.float64)
        med, mn, cr = timed(lambda: certify_10k(net, X, y, EPS), reps)
        results["certify"] = {**cr, "seconds": med, "n": len(y), "eps": EPS}
        row(f"c) certify {len(y)} test images, eps={EPS}", f"{med:.2f} s (min {mn:.2f} s, {cr['route']})",
            f"<= {TARGETS['certify_10k_s']:.0f} s", med <= TARGETS["certify_10k_s"])
        row("   clean error / SDP certified error", f"{100 * cr['clean_error']:.2f}% / {100 * cr['certified_error']:.2f}%")
    else:
        row("certify 10k", "skipped: no MNIST folder")

    # d) lambda_max, 9 pairs batched vs eigsh ---------------------------------------------------------------------
    print("d) top eigenpair, 9 pairs", flush=True)
    nine = np.array([(0, j) for j in range(1, net.k)], dtype=np.int64)
    dual9 = np.stack([duals[np.flatnonzero((pairs[:, 0] == 0) & (pairs[:, 1] == j))[0]] for j in range(1, net.k)])
    tol = 1e-6
    v0 = np.random.default_rng(0).standard_normal(D)
    results["eig"] = {}
    for cname, cs in (("c=0", np.zeros((len(nine), D))), ("c=SDP dual", dual9), ("c=SDP dual/2", dual9 / 2)):
        # ARPACK stops at residual <= tol*|theta|, the core at residual <= tol*||A||. With c = the SDP dual,
        # lambda_max ~ 0 and ARPACK would never stop; eigsh then runs on A + ||A|| I (same Krylov space) so that
        # both stop at residual ~ tol*||A||. ||A|| is estimated outside the timed region.
        if cname == "c=0":
            shifts = np.zeros(len(nine))
        else:
            shifts = np.array([abs(sla.eigsh(pair_operator(W, V[i] - V[j], cs[p]), k=1, which="LM", tol=1e-3,
                                             v0=v0)[0][0]) for p, (i, j) in enumerate(nine)])
        # float64 products, and float32 products whose answer is checked (and if need be finished) in float64:
        # both report float64 residuals <= tol * ||A|| (register_lanczos.cpp, top_eigenpairs_verified).
        t_f64, _, e64 = timed(lambda: _core.top_eigenpairs(W, V, nine, cs, tol=tol), reps)
        t_ours, _, e = timed(lambda: _core.top_eigenpairs(W, V, nine, cs, tol=tol, float32_matvecs=True), reps)
        # eigsh's matvecs are GEMV-sized: BLAS threads mostly spin (badly on a loaded machine). Both settings are
        # timed and the faster one is the baseline.
        t_eig_default, _, vals = timed(lambda: eigsh_top(W, V, nine, cs, tol, shifts, v0), reps)
        with threadpool_limits(limits=1, user_api="blas"):
            t_eig_1, _, _ = timed(lambda: eigsh_top(W, V, nine, cs, tol, shifts, v0), reps)
        t_eig = min(t_eig_default, t_eig_1)
        scale = np.maximum(np.abs(e["values"]), shifts)
        diff = float(np.max(np.abs(vals - e["values"]) / scale))
        diff64 = float(np.max(np.abs(vals - e64["values"]) / scale))
        ratio = t_eig / t_ours
        results["eig"][cname] = {"sdpcert_s": t_ours, "sdpcert_float64_s": t_f64, "eigsh_s": t_eig,
                                 "eigsh_blas_default_s": t_eig_default, "eigsh_blas1_s": t_eig_1, "speedup": ratio,
                                 "speedup_float64": t_eig / t_f64, "max_rel_diff": diff, "max_rel_diff_float64": diff64,
                                 "iterations": e["iterations"].tolist(), "status": list(e["status"]),
                                 "values": e["values"].tolist()}
        n_dense = sum(s != "converged" for s in e["status"])
        row(f"d) lambda_max 9 pairs, {cname}, tol {tol:g}, float32 products + float64 check",
            f"{ratio:.1f}x ({1e3 * t_ours:.1f} ms vs eigsh {1e3 * t_eig:.1f} ms)",
            f">= {TARGETS['speedup_vs_eigsh']:.0f}x", ratio >= TARGETS["speedup_vs_eigsh"])
        row("   float64 products throughout", f"{t_eig / t_f64:.1f}x ({1e3 * t_f64:.1f} ms); agreement {diff64:.0e}·‖A‖")
        row("   matvecs/pair, dense fallbacks; eigsh BLAS x1 / default; agreement",
            f"{int(np.median(e['iterations']))}, {n_dense}; {1e3 * t_eig_1:.0f} / {1e3 * t_eig_default:.0f} ms; "
            f"{diff:.0e}·‖A‖")

    results["env"]["loadavg_end"] = os.getloadavg()
    results["rows"] = [dict(zip(("what", "measured", "target", "verdict"), r)) for r in rows]

    # table ----------------------------------------------------------------------------------------------------
    print()
    w0 = max(len(r[0]) for r in rows)
    w1 = max(len(r[1]) for r in rows)
    print(f"{'what':<{w0}}  {'measured':<{w1}}  target")
    print("-" * (w0 + w1 + 20))
    for what, measured, target, verdict in rows:
        print(f"{what:<{w0}}  {measured:<{w1}}  {target} {verdict}".rstrip())
    print(f"load average start {results['env']['loadavg_start']}, end {results['env']['loadavg_end']} "
          f"({os.cpu_count()} cpus)")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2, default=float))
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
