#include <pybind11/eigen.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <optional>
#include <vector>

#include "binding_args.hpp"
#include "parallel.hpp"
#include "scaling.hpp"
#include "sdp_solver.hpp"

namespace py = pybind11;
using namespace sdpcert;

namespace {

py::dict solve_pair_sdps_py(const Mat& W_in, const RowMat& V, const py::array& pairs_in, double rel_tol, int max_sweeps,
                            int rank, uint64_t seed, std::optional<std::vector<Mat>> warm, int threads,
                            bool return_factors, double relaxation) {
  require_network(W_in, V);
  const Pairs pairs = to_pairs(pairs_in, V.rows());
  require(rel_tol > 0 && std::isfinite(rel_tol), "rel_tol must be positive and finite");
  require(max_sweeps >= 1, "max_sweeps must be >= 1");
  require(rank >= 1, "rank must be >= 1");
  require(relaxation > 0 && relaxation < 2, "relaxation must lie in (0, 2)");
  const Index P = pairs.rows(), D = pair_dim(W_in.rows(), W_in.cols());
  // M is bilinear in (W, v): solving with 2^a W and 2^b v and scaling back by 2^-(a+b) keeps squares, norms and the
  // proofs' products far from overflow and underflow for extreme weights (subnormal-scale included). The scaling
  // is entrywise (ldexp of each entry: a factor 2^a would itself overflow for |a| > 1023) and exact (scaling.hpp
  // clamps the exponents to those that lose no bit), so the scaled problem is exactly the given one, rescaled.
  const int w_exp = exact_balancing_exponent(W_in);
  Mat W_scaled;
  if (w_exp != 0) W_scaled = scaled_by_power_of_two(W_in, w_exp);
  const Mat& W = w_exp != 0 ? W_scaled : W_in;
  if (warm) {
    require(static_cast<Index>(warm->size()) == P, "warm must hold one factor per pair");
    for (Index p = 0; p < P; ++p)
      require((*warm)[p].rows() == D && (*warm)[p].cols() >= 1,
              "warm[" + std::to_string(p) + "] must have D = " + std::to_string(D) + " rows");
  }
  std::vector<SdpResult> results;
  std::vector<int> v_exps(P, 0);
  {
    py::gil_scoped_release release;
    const WeightFacts facts(W);
    std::vector<PairSolver> solvers;
    solvers.reserve(P);
    for (Index p = 0; p < P; ++p) {
      SdpOptions opt;
      opt.rel_tol = rel_tol;
      opt.max_sweeps = max_sweeps;
      opt.rank = rank;
      opt.relaxation = relaxation;
      // Seeded by the pair itself: with the fixed groups of solve_pairs, results do not depend on the thread count.
      opt.seed = seed * 1000003ULL + static_cast<uint64_t>(pairs(p, 0)) * 1009ULL + static_cast<uint64_t>(pairs(p, 1));
      const Vec Vi = V.row(pairs(p, 0)).transpose(), Vj = V.row(pairs(p, 1)).transpose();
      const int v_exp = pair_balancing_exponent(Vi, Vj);
      v_exps[p] = v_exp;
      solvers.emplace_back(W, scaled_by_power_of_two(Vi, v_exp), scaled_by_power_of_two(Vj, v_exp), opt,
                           warm ? &(*warm)[p] : nullptr, &facts);
    }
    solve_pairs(W, solvers, threads);
    for (Index p = 0; p < P; ++p) {
      SdpResult res = solvers[p].result();
      // Back to the given units. Exact unless a result lands in the subnormals (or overflows): the proven upper
      // bounds are then rounded up, the primal value down; c is rounded up, which keeps lambda_max(M - diag c) <=
      // lambda_bound true (a larger c only lowers lambda_max).
      const int back = -(w_exp + v_exps[p]);
      res.lower = ldexp_down(res.lower, back);
      res.upper = ldexp_up(res.upper, back);
      res.lambda_bound = ldexp_up(res.lambda_bound, back);
      res.c = res.c.unaryExpr([back](double x) { return ldexp_up(x, back); });
      // A bound proven in the scaled units can overflow in the given ones: then nothing is certified (no dual
      // vector is reported, as for any unproven pair; `lower` stays, a true if huge lower bound).
      if (!std::isfinite(res.upper)) {
        res.status = SdpStatus::not_certified;
        res.c = Vec();
        res.lambda_bound = std::numeric_limits<double>::infinity();
      }
      results.push_back(res);
    }
  }
  Vec lower(P), upper(P), seconds(P), lambda_bounds(P);
  Eigen::VectorXi sweeps(P), ranks(P), attempts(P);
  RowMat c = RowMat::Constant(P, D, std::numeric_limits<double>::quiet_NaN());
  py::list status, factors;
  for (Index p = 0; p < P; ++p) {
    const SdpResult& r = results[p];
    lower(p) = r.lower;
    upper(p) = r.upper;
    lambda_bounds(p) = r.lambda_bound;
    seconds(p) = r.seconds;
    sweeps(p) = r.sweeps;
    ranks(p) = r.rank;
    attempts(p) = r.proof_attempts;
    if (r.c.size() == D) c.row(p) = r.c.transpose();
    status.append(sdp_status_name(r.status));
    if (return_factors) factors.append(r.U);
  }
  py::dict out;
  out["lower"] = lower;
  out["upper"] = upper;
  out["dual"] = c;
  out["lambda_bound"] = lambda_bounds;
  out["sweeps"] = sweeps;
  out["rank"] = ranks;
  out["proof_attempts"] = attempts;
  out["seconds"] = seconds;
  out["status"] = status;
  if (return_factors) out["factors"] = factors;
  return out;
}

}  // namespace

void register_sdp(py::module_& m) {
  m.def("solve_pair_sdps", &solve_pair_sdps_py, py::arg("W"), py::arg("V"), py::arg("pairs"),
        py::arg("rel_tol") = 1e-6, py::arg("max_sweeps") = 3000, py::arg("rank") = 8, py::arg("seed") = 0,
        py::arg("warm") = py::none(), py::arg("threads") = 0, py::arg("return_factors") = false, py::arg("relaxation") = 1.8,
        "Pair SDP values S_ij for pairs (P x 2): dict(lower, upper (proven), dual (P x D certified c), sweeps, rank, "
        "proof_attempts, seconds, status[, factors]). OpenMP across pairs; deterministic.");
}
