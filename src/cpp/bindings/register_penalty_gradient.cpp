// penalty_gradient.hpp for Python: one SDP-NN training step's penalty and gradients, in one call without the GIL.
#include <pybind11/eigen.h>
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <optional>

#include "binding_args.hpp"
#include "binding_results.hpp"
#include "sdpcert/pair_operator.hpp"
#include "sdpcert/penalty_gradient.hpp"

namespace py = pybind11;
using namespace sdpcert;
using namespace sdpcert::bindings;

namespace {

// W: float32 (m, d) C-ordered (a torch CPU tensor's .numpy()), read in place as W^T; V float32 or float64 (k, m).
py::dict pair_penalty_step_py(const py::array_t<float, py::array::c_style | py::array::forcecast>& W_in,
                              const RowMat& V, const py::array& pairs_in, const RowMat& cs, const Vec& g,
                              std::optional<RowMat> start, double tol, int max_iter, uint64_t seed) {
  require(W_in.ndim() == 2, "W must be a 2-D array (m, d)");
  const Index m = W_in.shape(0), d = W_in.shape(1);
  require(m >= 1 && d >= 1, "W must have shape (m, d) with m, d >= 1; got " + shape_str(m, d));
  const Eigen::Map<const MatF> WT(W_in.data(), d, m);
  require(WT.allFinite(), "W holds NaN/inf entries");
  require(V.cols() == m, "V must have shape (k, m) with m = W.shape[0] = " + std::to_string(m) + "; got " +
                             shape_str(V.rows(), V.cols()));
  require_finite(V, "V");
  const Pairs pairs = to_pairs(pairs_in, V.rows());
  const Index D = pair_dim(m, d), P = pairs.rows();
  require_pair_cs(cs, P, D);
  require(g.size() == P, "g must have one weight per pair");
  require_finite(g, "g");
  LanczosOptions opt = checked_lanczos_options(tol, max_iter, seed);
  const Mat startT = checked_starts(start, P, D);
  const Mat vs = pair_differences(V, pairs), csT = cs.transpose();
  opt.threads = 1;
  opt.dense_fallback = false;
  opt.exact_residuals = false;
  PenaltyStep step;
  {
    py::gil_scoped_release release;
    step = penalty_step(WT, vs, pairs, V.rows(), csT, g, opt, start ? &startT : nullptr);
  }
  py::dict out;
  put_eigenpairs(out, step.eig);
  out["value"] = step.value;
  out["dW"] = std::move(step.dW);
  out["dV"] = std::move(step.dV);
  out["dc"] = std::move(step.dc);
  return out;
}

}  // namespace

void register_penalty_gradient(py::module_& m) {
  m.def("pair_penalty_step", &pair_penalty_step_py, py::arg("W"), py::arg("V"), py::arg("pairs"), py::arg("cs"),
        py::arg("g"), py::arg("start") = py::none(), py::arg("tol") = 1e-6, py::arg("max_iter") = 8,
        py::arg("seed") = 0,
        "One SDP-NN training step's penalty sum_p g_p (D max(lambda_p, 0) + sum max(c_p, 0)) and its gradients "
        "(dW float32 (m, d), dV (k, m), dc (P, D)) from a warm-started Lanczos with float32 products (one thread, "
        "no dense fallback), all without the GIL. W: float32 (m, d). ESTIMATES for training, not bounds. Returns "
        "dict(values, vectors, residuals, iterations, status, value, dW, dV, dc).");
}
