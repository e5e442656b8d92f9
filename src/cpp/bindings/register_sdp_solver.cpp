// sdp_solver.hpp for Python: the pair SDP values of many pairs of one network, with proven upper bounds.
#include <pybind11/eigen.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <optional>
#include <vector>

#include "binding_args.hpp"
#include "sdpcert/sdp_solver.hpp"

namespace py = pybind11;
using namespace sdpcert;
using namespace sdpcert::bindings;

namespace {

py::dict solve_pair_sdps_py(const Mat& W, const RowMat& V, const py::array& pairs_in, double rel_tol, int max_sweeps,
                            int rank, uint64_t seed, std::optional<std::vector<Mat>> warm, int threads,
                            bool return_factors, double relaxation, int anderson,
                            bool proof_schedule, bool refined_sweeps) {
  require_network(W, V);
  const Pairs pairs = to_pairs(pairs_in, V.rows());
  require(rel_tol > 0 && std::isfinite(rel_tol), "rel_tol must be positive and finite");
  require(max_sweeps >= 1, "max_sweeps must be >= 1");
  require(rank >= 1, "rank must be >= 1");
  require(relaxation > 0 && relaxation < 2, "relaxation must lie in (0, 2)");
  require(anderson >= 0 && anderson <= 64, "anderson must lie in 0..64");
  const Index P = pairs.rows(), D = pair_dim(W.rows(), W.cols());
  if (warm) {
    require(static_cast<Index>(warm->size()) == P, "warm must hold one factor per pair");
    for (Index p = 0; p < P; ++p)
      require((*warm)[p].rows() == D && (*warm)[p].cols() >= 1,
              "warm[" + std::to_string(p) + "] must have D = " + std::to_string(D) + " rows");
  }
  SdpOptions opt;
  opt.rel_tol = rel_tol;
  opt.max_sweeps = max_sweeps;
  opt.rank = rank;
  opt.relaxation = relaxation;
  opt.anderson = anderson;
  opt.proof_schedule = proof_schedule;
  opt.refined_sweeps = refined_sweeps;
  opt.seed = seed;
  PairSdpResults r;
  {
    py::gil_scoped_release release;
    r = solve_pair_sdps(W, V, pairs, opt, threads, warm ? &*warm : nullptr, return_factors);
  }
  py::list status;
  for (SdpStatus s : r.status) status.append(sdp_status_name(s));
  py::dict out;
  out["lower"] = std::move(r.lower);
  out["upper"] = std::move(r.upper);
  out["dual"] = std::move(r.dual);
  out["lambda_bound"] = std::move(r.lambda_bound);
  out["sweeps"] = std::move(r.sweeps);
  out["rank"] = std::move(r.rank);
  out["proof_attempts"] = std::move(r.proof_attempts);
  out["seconds"] = std::move(r.seconds);
  out["status"] = status;
  if (return_factors) {
    py::list factors;
    for (Mat& U : r.factors) factors.append(std::move(U));
    out["factors"] = factors;
  }
  return out;
}

}  // namespace

void register_sdp_solver(py::module_& m) {
  m.def("solve_pair_sdps", &solve_pair_sdps_py, py::arg("W"), py::arg("V"), py::arg("pairs"),
        py::arg("rel_tol") = 1e-6, py::arg("max_sweeps") = 3000, py::arg("rank") = 8, py::arg("seed") = 0,
        py::arg("warm") = py::none(), py::arg("threads") = 0, py::arg("return_factors") = false,
        py::arg("relaxation") = 1.8, py::arg("anderson") = 5, py::arg("proof_schedule") = true,
        py::arg("refined_sweeps") = true,
        "Pair SDP values S_ij for pairs (P x 2): dict(lower, upper (proven), dual (P x D certified c), sweeps, rank, "
        "proof_attempts, seconds, status[, factors]). OpenMP across pairs; deterministic.");
}
