// certify_bound.hpp for Python: proven lambda_max and pair SDP bounds from dual vectors, proven spectral norms.
#include <pybind11/eigen.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include "binding_args.hpp"
#include "sdpcert/certify_bound.hpp"

namespace py = pybind11;
using namespace sdpcert;
using namespace sdpcert::bindings;

namespace {

py::dict lambda_max_upper_bounds_py(const Mat& W, const RowMat& V, const py::array& pairs_in, const RowMat& cs,
                                    int threads) {
  require_network(W, V);
  const Pairs pairs = to_pairs(pairs_in, V.rows());
  require_pair_cs(cs, pairs.rows(), pair_dim(W.rows(), W.cols()));
  LambdaBounds b;
  {
    py::gil_scoped_release release;
    b = lambda_max_upper_bounds(W, V, pairs, cs, threads);
  }
  py::dict out;
  out["lambda_bound"] = std::move(b.lambda_bound);
  out["dual_bound"] = std::move(b.dual_bound);
  return out;
}

double spectral_norm_upper_bound_py(const Mat& W, double estimate) {
  require(W.rows() >= 1 && W.cols() >= 1, "W must be non-empty");
  require_finite(W, "W");
  require(estimate >= 0 && std::isfinite(estimate), "estimate must be finite and >= 0");
  py::gil_scoped_release release;
  return spectral_norm_upper_bound(W, estimate);
}

}  // namespace

void register_certify_bound(py::module_& m) {
  m.def("lambda_max_upper_bounds", &lambda_max_upper_bounds_py, py::arg("W"), py::arg("V"), py::arg("pairs"),
        py::arg("cs"), py::arg("threads") = 0,
        "Proven upper bounds on lambda_max(M - diag c) per pair (float64, rigorous under rounding), and a proven upper "
        "bound on the pair SDP value from c: at most the dual objective D*max(lambda,0) + sum(max(c,0)) (rounded up), "
        "tighter when the proof's shift sits on the (1, s) block. Returns dict(lambda_bound, dual_bound).");
  m.def("spectral_norm_upper_bound", &spectral_norm_upper_bound_py, py::arg("W"), py::arg("estimate"),
        "Proven upper bound on ||W||_2 from an estimate (shifted Cholesky of mu I - W W^T).");
}
