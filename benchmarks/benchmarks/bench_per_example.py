"""asv benchmarks of the per-example certificates (issue 10), each timed method also checking its answer.

``PerExampleMethods``: certifying packaged MNIST test images of the packaged SDP-NN at eps = 0.1 over the input
box [0, 1] with each per-example method (the pair SDPs of ``best``'s sdp stage are solved in setup, not timed).
``PerExampleSDP``: one (example, target) SDP of ``sdp-example`` solved and proven by the core, against SDPA
(interior point) on the same matrix (D = 1 + unstable units + 784, about 920; Clarabel through CVXPY runs out of
memory at this size).
"""

from __future__ import annotations

import numpy as np

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import compare  # noqa: E402  (the SDPA formulation)

from sdpcert import Certifier, _core, load_mnist_sample  # noqa: E402
from sdpcert.certify.example_sdp import sdp_example_matrix  # noqa: E402
from sdpcert.model import load_pretrained  # noqa: E402

EPS = 0.1
DOMAIN = (0.0, 1.0)


class PerExampleMethods:
    params = (["interval", "lp", "lp-opt", "sdp-example", "best"],)
    param_names = ["method"]
    number = 1
    repeat = (1, 3, 60.0)
    warmup_time = 0
    timeout = 300

    def setup(self, method):
        self.net = load_pretrained("sdp-nn")
        self.X, self.y = load_mnist_sample("test", limit=200)
        self.certifier = Certifier(self.net, input_domain=DOMAIN)
        self.certifier.pair_bounds()

    def time_certify(self, method):
        result = self.certifier.certify(self.X, self.y, EPS, method)
        assert result.certified_error >= result.clean_error

    def track_certified_error(self, method):
        return 100.0 * self.certifier.certify(self.X, self.y, EPS, method).certified_error

    track_certified_error.unit = "%"


def hard_problem(net, X, y):
    """The first (example, target) of sdp-nn that lp-opt leaves open: the matrix sdp-example solves there."""
    from sdpcert.certify.lp import lp_opt_margin_bounds

    bounds = lp_opt_margin_bounds(net, X, y, EPS, input_domain=DOMAIN)
    n, j = np.argwhere(np.isfinite(bounds) & (bounds >= 0))[0]
    G, _ = sdp_example_matrix(net, X[n], int(y[n]), int(j), EPS, input_domain=DOMAIN)
    return G


def bipartite_matrix(G):
    a, d = G.shape
    M = np.zeros((a + d, a + d))
    M[:a, a:] = G / 2
    M[a:, :a] = G.T / 2
    return M


class PerExampleSDP:
    params = (["sdpcert", "sdpa"],)
    param_names = ["solver"]
    number = 1
    repeat = (1, 5, 60.0)
    warmup_time = 0
    timeout = 600

    def setup(self, solver):
        net = load_pretrained("sdp-nn")
        X, y = load_mnist_sample("test", limit=50)
        self.G = hard_problem(net, X, y)
        self.reference = float(_core.solve_bipartite_sdps([self.G], np.array([np.inf]), rel_tol=1e-9,
                                                          max_sweeps=20000, threads=1)["upper"][0])

    def time_solve(self, solver):
        if solver == "sdpcert":
            out = _core.solve_bipartite_sdps([self.G], np.array([np.inf]), rel_tol=1e-6, max_sweeps=20000,
                                             threads=1)
            assert out["status"][0] == 0 and out["upper"][0] >= self.reference * (1 - 1e-8)
        else:
            value = compare.sdpa_sdp(bipartite_matrix(self.G))["value"]
            assert abs(value - self.reference) <= 1e-5 * self.reference
