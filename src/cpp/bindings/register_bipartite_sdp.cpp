// bipartite_sdp.hpp for Python: many small bipartite SDPs (the per-example certificates) with proven upper bounds.
#include <pybind11/eigen.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <optional>
#include <vector>

#include "binding_args.hpp"
#include "sdpcert/bipartite_sdp.hpp"

namespace py = pybind11;
using namespace sdpcert;
using namespace sdpcert::bindings;

namespace {

py::dict solve_bipartite_sdps_py(const std::vector<Mat>& Gs, const Vec& thresholds, double rel_tol, int max_sweeps,
                                 int rank, uint64_t seed, int threads, std::optional<std::vector<uint64_t>> starts) {
  require(static_cast<Index>(Gs.size()) == thresholds.size(), "thresholds must hold one value per matrix in Gs");
  for (size_t p = 0; p < Gs.size(); ++p) {
    require(Gs[p].rows() >= 1 && Gs[p].cols() >= 1, "Gs[" + std::to_string(p) + "] must be non-empty");
    require_finite(Gs[p], "Gs");
  }
  require(!thresholds.hasNaN(), "thresholds contain NaN");
  require(rel_tol > 0 && std::isfinite(rel_tol), "rel_tol must be positive and finite");
  require(max_sweeps >= 1, "max_sweeps must be >= 1");
  require(rank >= 1, "rank must be >= 1");
  require(!starts || starts->size() == Gs.size(), "starts must hold one value per matrix in Gs");
  BipartiteSdpOptions opt;
  opt.rel_tol = rel_tol;
  opt.max_sweeps = max_sweeps;
  opt.rank = rank;
  opt.seed = seed;
  std::vector<BipartiteSdpResult> r;
  {
    py::gil_scoped_release release;
    r = solve_bipartite_sdps(Gs, thresholds, opt, threads, starts ? &*starts : nullptr);
  }
  const Index P = static_cast<Index>(r.size());
  Vec upper(P), lower(P);
  Eigen::VectorXi sweeps(P), proofs(P), status(P);
  for (Index p = 0; p < P; ++p) {
    upper(p) = r[p].upper;
    lower(p) = r[p].lower;
    sweeps(p) = r[p].sweeps;
    proofs(p) = r[p].proofs;
    status(p) = r[p].status;
  }
  py::dict out;
  out["upper"] = upper;
  out["lower"] = lower;
  out["sweeps"] = sweeps;
  out["proofs"] = proofs;
  out["status"] = status;
  return out;
}

double prove_bipartite_upper_py(const Mat& G, const Vec& cA, const Vec& cB) {
  require(cA.size() == G.rows() && cB.size() == G.cols(), "cA and cB must have G.shape[0] and G.shape[1] entries");
  require_finite(G, "G");
  py::gil_scoped_release release;
  return prove_bipartite_upper(G, cA, cB);
}

}  // namespace

void register_bipartite_sdp(py::module_& m) {
  m.def("solve_bipartite_sdps", &solve_bipartite_sdps_py, py::arg("Gs"), py::arg("thresholds"),
        py::arg("rel_tol") = 1e-6, py::arg("max_sweeps") = 500, py::arg("rank") = 12, py::arg("seed") = 0,
        py::arg("threads") = 0, py::arg("starts") = py::none(),
        "For each a x d matrix G: max <M, P>, diag P = 1, P >= 0, M = [[0, G], [G^T, 0]] / 2 (the relaxation of "
        "max w_A^T G w_B over sign vectors). Stops once the proven bound is below the problem's threshold or the "
        "primal value reaches it. dict(upper (proven, G's floats exact), lower (primal value), sweeps, proofs, "
        "status: 0 converged, 1 below threshold, 2 primal >= threshold, 3 sweep limit). OpenMP across problems. starts: "
        "one integer per problem naming its random start (default: its index in Gs).");
  m.def("prove_bipartite_upper", &prove_bipartite_upper_py, py::arg("G"), py::arg("cA"), py::arg("cB"),
        "Proven upper bound sum(c) + a a' on that SDP's value from a dual vector (cA >= 0, cB > 0); +inf if none.");
}
