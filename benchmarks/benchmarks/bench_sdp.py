"""asv benchmarks of sdpcert's numerical core, each timed method also checking its answer.

The networks are those of ``benchmarks/_model.py`` (first ``hidden`` units): ``nt`` (cross-entropy) and ``at``
(PGD-trained) when ``python benchmarks/compare.py`` has trained and cached them once, otherwise a random net of the
same shape (asv never trains); ``sdp-nn`` is the packaged SDP-NN. The pair-SDP classes take the net as a parameter
(issue 14: the robust nets are the slow ones).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import scipy.sparse.linalg as sla

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import _model  # noqa: E402
import compare  # noqa: E402  (the SDPA formulation and the eigsh LinearOperator)

from sdpcert import _core  # noqa: E402

REL_TOL = 1e-6
HIDDEN = [100, 500]
NETS = list(_model.NETS)
NINE = np.array([(0, j) for j in range(1, 10)], dtype=np.int64)


def _net(hidden, name="nt"):
    return _model.net_for_asv(hidden, name)[0]


class PairSDP:
    """One pair SDP to relative gap <= 1e-6: sdpcert (proven upper bound) vs SDPA (interior point)."""

    params = (HIDDEN, ["sdpcert", "sdpa"], NETS)
    param_names = ["hidden", "solver", "net"]
    number = 1
    repeat = (1, 5, 30.0)
    warmup_time = 0
    timeout = 180

    def setup(self, hidden, solver, net):
        if solver == "sdpa" and (hidden > 100 or net != "nt"):
            raise NotImplementedError("SDPA takes 15-40 s at D = 1285; compare.py measures it once")
        net = _net(hidden, net)
        self.W, self.V = net.W, net.V
        self.pair = np.array([[0, 1]], dtype=np.int64)
        if solver == "sdpa":
            ref = _core.solve_pair_sdps(self.W, self.V, self.pair, rel_tol=1e-8)
            self.ref = float(ref["upper"][0])

    def time_solve_pair(self, hidden, solver, net):
        if solver == "sdpcert":
            r = _core.solve_pair_sdps(self.W, self.V, self.pair, rel_tol=REL_TOL, threads=1)
            assert r["status"][0] == "converged"
            assert r["upper"][0] - r["lower"][0] <= REL_TOL * r["upper"][0]
        else:
            r = compare.sdpa_pair(self.W, self.V[0] - self.V[1])
            assert abs(r["value"] - self.ref) <= 2e-6 * self.ref, (r["value"], self.ref)


class AllPairs:
    """The 45 pair SDPs of a 10-class net (OpenMP across pairs with threads=0)."""

    params = (HIDDEN, [1, 0], NETS)
    param_names = ["hidden", "threads", "net"]
    number = 1
    repeat = (1, 3, 60.0)
    warmup_time = 0
    timeout = 300

    def setup(self, hidden, threads, net):
        net = _net(hidden, net)
        self.W, self.V = net.W, net.V
        self.pairs = _model.all_pairs(net.k)

    def time_all_pairs(self, hidden, threads, net):
        r = _core.solve_pair_sdps(self.W, self.V, self.pairs, rel_tol=REL_TOL, threads=threads)
        assert all(s == "converged" for s in r["status"])
        assert np.all(r["upper"] - r["lower"] <= REL_TOL * r["upper"])


def _eigen_inputs():
    """Per hidden size: W, V, the SDP duals c of the 9 pairs (0, j), their proven SDP values, and ||M - diag c||."""
    out = {}
    for hidden in HIDDEN:
        net = _net(hidden)
        W, V = np.asarray(net.W), np.asarray(net.V)
        r = _core.solve_pair_sdps(W, V, NINE, rel_tol=REL_TOL)
        D = 1 + net.m + net.d
        cs = {"zero": np.zeros((len(NINE), D)), "dual": r["dual"], "half-dual": r["dual"] / 2}
        start = np.random.default_rng(0).standard_normal(D)
        norms = {name: np.array([abs(sla.eigsh(compare.pair_operator(W, V[i] - V[j], c[p]), k=1, which="LM",
                                                tol=1e-3, v0=start)[0][0]) for p, (i, j) in enumerate(NINE)])
                 for name, c in cs.items()}
        ref = {name: _core.top_eigenpairs(W, V, NINE, c, tol=1e-10, max_iter=2000)["values"] for name, c in cs.items()}
        out[hidden] = dict(W=W, V=V, cs=cs, norms=norms, ref=ref, lower=r["lower"], upper=r["upper"], v0=start)
    return out


class TopEigenpairs:
    """Top eigenpair of M_ij - diag(c) for the 9 pairs (0, j): batched Lanczos vs 9 scipy eigsh calls, tol 1e-6.

    ARPACK stops at residual <= tol*|theta|, sdpcert at residual <= tol*||A||; with c = the SDP dual, lambda_max ~ 0,
    so eigsh runs on A + ||A|| I (same Krylov space) to stop at the same residual. sdpcert-f32: float32 products,
    answered in float64 (float32_matvecs=True: float64 Rayleigh quotients and residuals, float64 finish if needed)."""

    params = (HIDDEN, ["zero", "half-dual", "dual"], ["sdpcert", "sdpcert-f32", "eigsh"])
    param_names = ["hidden", "c", "solver"]
    timeout = 300
    tol = 1e-6

    def setup_cache(self):
        return _eigen_inputs()

    def setup(self, cache, hidden, c, solver):
        self.d = cache[hidden]
        self.cs = self.d["cs"][c]
        self.shifts = self.d["norms"][c] if c != "zero" else np.zeros(len(NINE))
        self.ref = self.d["ref"][c]
        self.scale = self.d["norms"][c]

    def time_top_eigenpairs(self, cache, hidden, c, solver):
        W, V = self.d["W"], self.d["V"]
        if solver.startswith("sdpcert"):
            values = _core.top_eigenpairs(W, V, NINE, self.cs, tol=self.tol,
                                          float32_matvecs=solver == "sdpcert-f32")["values"]
        else:
            values = compare.eigsh_top(W, V, NINE, self.cs, self.tol, self.shifts, self.d["v0"])
        assert np.all(np.abs(values - self.ref) <= 1e-5 * self.scale), np.abs(values - self.ref) / self.scale


class LambdaMaxUpperBounds:
    """Proven lambda_max bounds (shifted Cholesky) for the 9 pairs (0, j) at their SDP duals."""

    params = HIDDEN
    param_names = ["hidden"]
    timeout = 300

    def setup_cache(self):
        return _eigen_inputs()

    def time_lambda_max_upper_bounds(self, cache, hidden):
        d = cache[hidden]
        r = _core.lambda_max_upper_bounds(d["W"], d["V"], NINE, d["cs"]["dual"])
        # a proven bound on S_ij from c must lie above the primal value and, at the solver's c, near its own bound
        assert np.all(r["dual_bound"] >= d["lower"])
        assert np.all(r["dual_bound"] <= d["upper"] * (1 + 1e-6))


class LambdaMaxUpperBoundsAllPairs:
    """Proven lambda_max bounds for all 45 pairs at their SDP duals, per net (issue 14: <= 15 ms per pair)."""

    params = NETS
    param_names = ["net"]
    number = 1
    repeat = (1, 3, 60.0)
    timeout = 300

    def setup(self, net):
        n = _net(500, net)
        self.W, self.V = np.asarray(n.W), np.asarray(n.V)
        self.pairs = _model.all_pairs(n.k)
        r = _core.solve_pair_sdps(self.W, self.V, self.pairs, rel_tol=REL_TOL)
        self.dual, self.lower = r["dual"], r["lower"]

    def time_lambda_max_upper_bounds_45(self, net):
        r = _core.lambda_max_upper_bounds(self.W, self.V, self.pairs, self.dual, threads=1)
        assert np.all(r["dual_bound"] >= self.lower)


class Certify:
    """Certificates for the MNIST test set at eps = 0.1 (10,000 images; the packaged 1,000 without MNIST files)."""

    number = 1
    repeat = (1, 3, 60.0)
    warmup_time = 0
    timeout = 300

    def setup(self):
        try:
            from sdpcert import certify
        except ImportError as exc:
            raise NotImplementedError(f"sdpcert.certify is not available: {exc}")
        from sdpcert.data import load_mnist, load_mnist_sample

        self.certify = certify
        self.net = _net(500)
        certify.Certifier(self.net, rel_tol=REL_TOL).pair_bounds()  # cached per model for the *_cached_sdps timing
        if _model.have_mnist():
            self.X, self.y = load_mnist("test", folder=_model.mnist_folder(), dtype=np.float64)
        else:
            self.X, self.y = load_mnist_sample("test", dtype=np.float64)

    def _check(self, res):
        assert res.certified_error >= res.clean_error

    def time_certify_end_to_end(self):
        compare.clear_pair_cache(self.certify)  # the 45 SDPs are part of the cost
        self._check(self.certify.Certifier(self.net, rel_tol=REL_TOL).certify(self.X, self.y, 0.1))

    def time_certify_cached_sdps(self):
        self._check(self.certify.Certifier(self.net, rel_tol=REL_TOL).certify(self.X, self.y, 0.1))
