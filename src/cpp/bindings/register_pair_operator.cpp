// pair_operator.hpp for Python: the dense pair matrix (tests, small problems) and batched products with it.
#include <pybind11/eigen.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <optional>
#include <vector>

#include "sdpcert/checks.hpp"
#include "sdpcert/pair_operator.hpp"

namespace py = pybind11;
using namespace sdpcert;

namespace {

Mat pair_matrix(const Mat& W, const Vec& v, std::optional<Vec> c) {
  require(W.rows() >= 1 && W.cols() >= 1, "W must have shape (m, d) with m >= 1 and d >= 1");
  require(v.size() == W.rows(), "v must have length m = W.shape[0] = " + std::to_string(W.rows()));
  require_finite(W, "W");
  require_finite(v, "v");
  const Index D = pair_dim(W.rows(), W.cols());
  Mat vs = v;
  Mat cs;
  if (c) {
    require(c->size() == D, "c must have length D = 1 + m + d = " + std::to_string(D));
    require_finite(*c, "c");
    cs = *c;
  }
  py::gil_scoped_release release;
  return PairOperator(W, vs, cs).dense(0);
}

// vs: P x m, cs: P x D or None, X: P x D (row p is pair p's vector). Returns P x D.
RowMat apply_pair_operator(const Mat& W, const RowMat& vs, std::optional<RowMat> cs, const RowMat& X) {
  const Index m = W.rows(), d = W.cols(), D = pair_dim(m, d), P = vs.rows();
  require(m >= 1 && d >= 1, "W must have shape (m, d) with m >= 1 and d >= 1");
  require(vs.cols() == m, "vs must have shape (P, m) with m = " + std::to_string(m));
  require(X.rows() == P && X.cols() == D, "X must have shape " + shape_str(P, D));
  require_finite(W, "W");
  require_finite(vs, "vs");
  require_finite(X, "X");
  Mat csT;
  if (cs) {
    require(cs->rows() == P && cs->cols() == D, "cs must have shape " + shape_str(P, D));
    require_finite(*cs, "cs");
    csT = cs->transpose();
  }
  Mat vsT = vs.transpose(), XT = X.transpose(), Y;
  {
    py::gil_scoped_release release;
    std::vector<Index> all(P);
    for (Index p = 0; p < P; ++p) all[p] = p;
    PairOperator(W, vsT, csT).perform_op(XT, Y, all);
  }
  return Y.transpose();
}

}  // namespace

void register_pair_operator(py::module_& m) {
  m.def("pair_matrix", &pair_matrix, py::arg("W"), py::arg("v"), py::arg("c") = py::none(),
        "Dense M(v) - diag(c) (D x D, D = 1 + m + d) for tests and small problems.");
  m.def("apply_pair_operator", &apply_pair_operator, py::arg("W"), py::arg("vs"), py::arg("cs"), py::arg("X"),
        "Row p of the result is (M(vs[p]) - diag(cs[p])) X[p], computed with batched GEMMs, M never formed.");
}
