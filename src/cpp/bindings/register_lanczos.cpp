// lanczos.hpp for Python: top eigenpairs of the pair operators M(V_i - V_j) - diag c_p (estimates, not bounds).
#include <pybind11/eigen.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <optional>
#include <type_traits>

#include "binding_args.hpp"
#include "binding_results.hpp"
#include "sdpcert/lanczos.hpp"
#include "sdpcert/pair_operator.hpp"
#include "sdpcert/parallel.hpp"

namespace py = pybind11;
using namespace sdpcert;
using namespace sdpcert::bindings;

namespace {

// W arrives as a Ref in either layout, read in place: a float64 Fortran-ordered array (the training step passes one)
// as W, a C-ordered one (a TwoLayerNet's W) as W^T; any other array is copied by pybind11 (the first overload).
template <class WRef>
py::dict top_eigenpairs_py(const WRef& W, const RowMat& V, const py::array& pairs_in, const RowMat& cs, double tol,
                           int max_iter, int basis_size, std::optional<RowMat> start, uint64_t seed, int threads,
                           bool dense_fallback, bool exact_residuals, bool float32_matvecs) {
  constexpr bool row_major = std::is_same_v<WRef, Eigen::Ref<const RowMat>>;
  require_network(W, V);
  const Pairs pairs = to_pairs(pairs_in, V.rows());
  LanczosOptions opt = checked_lanczos_options(tol, max_iter, seed);
  require(basis_size >= 2, "basis_size must be >= 2");
  const Index D = pair_dim(W.rows(), W.cols()), P = pairs.rows();
  require_pair_cs(cs, P, D);
  const Mat startT = checked_starts(start, P, D);
  const Mat vs = pair_differences(V, pairs), csT = cs.transpose();
  opt.basis_size = basis_size;
  opt.threads = threads <= 0 ? available_threads() : threads;
  opt.dense_fallback = dense_fallback;
  opt.exact_residuals = exact_residuals;
  LanczosResult r;
  {
    py::gil_scoped_release release;
    // The matrix the products use: W itself, or for a C-ordered W its column-major view W^T (d x m).
    auto operand = [&] {
      if constexpr (row_major) return Eigen::Map<const Mat>(W.data(), W.cols(), W.rows());
      else return W;
    };
    auto make_op = [&] {
      if constexpr (row_major) return PairOperator(PairOperator::Transposed{}, operand(), vs, csT);
      else return PairOperator(W, vs, csT);
    };
    const PairOperator op = make_op();
    const Mat* s0 = start ? &startT : nullptr;
    if (float32_matvecs) {
      // float32 products; with exact_residuals the answer is checked (and if need be finished) in float64.
      const MatF Wf = operand().template cast<float>();
      PairOperator fast = make_op();
      fast.use_float32_products(Wf, row_major);
      r = top_eigenpairs_verified(fast, op, opt, s0);
    } else {
      r = top_eigenpairs(op, opt, s0);
    }
  }
  py::dict out;
  put_eigenpairs(out, r);
  return out;
}

}  // namespace

void register_lanczos(py::module_& m) {
  const char* doc =
      "Top eigenpair of M(V[i]-V[j]) - diag(cs[p]) for each pair p = (i, j), by batched Lanczos (Ritz values: "
      "estimates, not bounds). dense_fallback=False returns the last Ritz pair as 'not_converged' instead of a dense "
      "solve (training: bounded cost); exact_residuals=False reports Lanczos residual estimates and skips one "
      "batched matvec; float32_matvecs=True runs the products with W in float32 (~2x faster) and, with "
      "exact_residuals, reports each vector's float64 Rayleigh quotient and exact residual, finishing in float64 any "
      "pair that misses tol. W is read in place when it is a float64 array in C or Fortran order. Returns "
      "dict(values, vectors (P, D), residuals, iterations, status).";
  // Two overloads: pybind11 first tries each without conversion, so either memory order binds without a copy.
  auto define = [&](auto fn) {
    m.def("top_eigenpairs", fn, py::arg("W"), py::arg("V"), py::arg("pairs"), py::arg("cs"), py::arg("tol") = 1e-8,
          py::arg("max_iter") = 600, py::arg("basis_size") = 48, py::arg("start") = py::none(), py::arg("seed") = 0,
          py::arg("threads") = 0, py::arg("dense_fallback") = true, py::arg("exact_residuals") = true,
          py::arg("float32_matvecs") = false, doc);
  };
  define(&top_eigenpairs_py<Eigen::Ref<const Mat>>);
  define(&top_eigenpairs_py<Eigen::Ref<const RowMat>>);
}
