#include <pybind11/eigen.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <optional>

#include "certify_bound.hpp"
#include "binding_args.hpp"
#include "lanczos.hpp"
#include "penalty_gradient.hpp"
#include "parallel.hpp"
#include "scaling.hpp"

namespace py = pybind11;
using namespace sdpcert;

namespace {

// Row p of vs is V[i_p] - V[j_p] (columns of the returned m x P matrix).
Mat pair_differences(const RowMat& V, const Pairs& pairs) {
  Mat vs(V.cols(), pairs.rows());
  for (Index p = 0; p < pairs.rows(); ++p) vs.col(p) = (V.row(pairs(p, 0)) - V.row(pairs(p, 1))).transpose();
  return vs;
}

// The optional (P, D) warm starts, checked, as the D x P matrix the Lanczos takes (empty when none).
Mat checked_starts(const std::optional<RowMat>& start, Index P, Index D) {
  if (!start) return Mat();
  require(start->rows() == P && start->cols() == D, "start must have shape " + shape_str(P, D));
  require_finite(*start, "start");
  return start->transpose();
}

// The dual variables of P pairs: shape (P, D), finite.
void require_pair_cs(const RowMat& cs, Index P, Index D) {
  require(cs.rows() == P && cs.cols() == D, "cs must have shape " + shape_str(P, D));
  require_finite(cs, "cs");
}

// Lanczos options from the Python arguments, checked; callers set the rest.
LanczosOptions checked_lanczos_options(double tol, int max_iter, uint64_t seed) {
  require(max_iter >= 1, "max_iter must be >= 1");
  require(tol > 0 && std::isfinite(tol), "tol must be positive and finite");
  LanczosOptions opt;
  opt.tol = tol;
  opt.max_iter = max_iter;
  opt.seed = seed;
  return opt;
}

// values, vectors (P, D), residuals, iterations, status of a Lanczos run, into `out`.
void put_eigenpairs(py::dict& out, const LanczosResult& r) {
  py::list status;
  for (auto s : r.status) status.append(eig_status_name(s));
  out["values"] = r.values;
  out["vectors"] = RowMat(r.vectors.transpose());
  out["residuals"] = r.residuals;
  out["iterations"] = r.iterations;
  out["status"] = status;
}

// W is a Ref: a float64 Fortran-ordered array is read in place (the training step passes one), any other layout is
// copied by pybind11 as before.
py::dict top_eigenpairs_py(Eigen::Ref<const Mat> W, const RowMat& V, const py::array& pairs_in, const RowMat& cs,
                           double tol, int max_iter, int basis_size, std::optional<RowMat> start, uint64_t seed,
                           int threads, bool dense_fallback, bool exact_residuals, bool float32_matvecs) {
  require_network(W, V);
  const Pairs pairs = to_pairs(pairs_in, V.rows());
  LanczosOptions opt = checked_lanczos_options(tol, max_iter, seed);
  require(basis_size >= 2, "basis_size must be >= 2");
  const Index D = pair_dim(W.rows(), W.cols()), P = pairs.rows();
  require_pair_cs(cs, P, D);
  const Mat startT = checked_starts(start, P, D);
  Mat vs = pair_differences(V, pairs), csT = cs.transpose();
  LanczosResult r;
  {
    py::gil_scoped_release release;
    opt.basis_size = basis_size;
    opt.threads = threads <= 0 ? available_threads() : threads;
    opt.dense_fallback = dense_fallback;
    opt.exact_residuals = exact_residuals;
    PairOperator op(W, vs, csT);
    MatF Wf;
    if (float32_matvecs) {
      Wf = W.cast<float>();
      op.use_float32_products(Wf);
    }
    r = top_eigenpairs(op, opt, start ? &startT : nullptr);
  }
  py::dict out;
  put_eigenpairs(out, r);
  return out;
}

py::dict lambda_max_upper_bounds_py(const Mat& W_in, const RowMat& V, const py::array& pairs_in, const RowMat& cs,
                                    int threads) {
  require_network(W_in, V);
  const Pairs pairs = to_pairs(pairs_in, V.rows());
  const Index D = pair_dim(W_in.rows(), W_in.cols()), P = pairs.rows();
  require_pair_cs(cs, P, D);
  Vec bounds(P), dual(P);
  {
    py::gil_scoped_release release;
    // Balancing (scaling.hpp): lambda_max(M(2^a W, 2^b v) - diag(2^(a+b) c)) = 2^(a+b) lambda_max(M(W, v) - diag c)
    // and the pair SDP value scales the same way, so the proofs run on W' = 2^a W, V_i' = 2^b V_i, V_j' = 2^b V_j
    // (exact: the exponents are clamped to those that lose no bit) and c' <= 2^(a+b) c, and their bounds are scaled
    // back by 2^-(a+b), rounded up. c' is 2^(a+b) c rounded toward -inf where that scaling is inexact (subnormal
    // results, or an overflow, which becomes DBL_MAX): lowering c only raises lambda_max(M - diag c), so a bound
    // proven for c' holds for 2^(a+b) c; and the dual bound D max(lambda, 0) + sum max(c', 0) (or its block form) is
    // an upper bound on the pair SDP value for any vector c' whatsoever.
    const int w_exp = exact_balancing_exponent(W_in);
    Mat W_scaled;
    if (w_exp != 0) W_scaled = scaled_by_power_of_two(W_in, w_exp);
    const Mat& W = w_exp != 0 ? W_scaled : W_in;
    std::vector<int> exps(P);
    Mat Vis(W.rows(), P), Vjs(W.rows(), P), vs(W.rows(), P), csT(D, P);
    for (Index p = 0; p < P; ++p) {
      const Vec Vi = V.row(pairs(p, 0)).transpose(), Vj = V.row(pairs(p, 1)).transpose();
      const int v_exp = pair_balancing_exponent(Vi, Vj);
      exps[p] = w_exp + v_exp;
      Vis.col(p) = scaled_by_power_of_two(Vi, v_exp);
      Vjs.col(p) = scaled_by_power_of_two(Vj, v_exp);
      vs.col(p) = Vis.col(p) - Vjs.col(p);
      const int e = exps[p];
      csT.col(p) = cs.row(p).transpose().unaryExpr([e](double x) { return ldexp_down(x, e); });
    }
    // Estimates first (batched Lanczos): the proof then shifts c to just above them, which keeps it tight.
    LanczosOptions lo;
    lo.tol = 1e-10;
    lo.max_iter = 300;
    lo.dense_fallback = false;
    lo.threads = threads <= 0 ? available_threads() : threads;
    const LanczosResult est = top_eigenpairs(PairOperator(W, vs, csT), lo, nullptr);
    const WeightFacts facts(W);
    parallel_for_pairs(P, threads, [&](long p) {
      const Vec c = csT.col(p);
      const LambdaBound b = lambda_max_upper_bound(W, Vis.col(p), Vjs.col(p), c, est.values(p), -1.0, false, 1, &facts);
      const double dual_scaled = b.certified ? std::min(b.sdp_upper, dual_objective_rounded_up(b.bound, c))
                                             : std::numeric_limits<double>::infinity();
      bounds(p) = ldexp_up(b.bound, -exps[p]);
      dual(p) = ldexp_up(dual_scaled, -exps[p]);
    });
  }
  py::dict out;
  out["lambda_bound"] = bounds;
  out["dual_bound"] = dual;
  return out;
}

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
  PenaltyStep step;
  {
    py::gil_scoped_release release;
    opt.threads = 1;
    opt.dense_fallback = false;
    opt.exact_residuals = false;
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

double spectral_norm_upper_bound_py(const Mat& W, double estimate) {
  require(W.rows() >= 1 && W.cols() >= 1, "W must be non-empty");
  require_finite(W, "W");
  require(estimate >= 0 && std::isfinite(estimate), "estimate must be finite and >= 0");
  py::gil_scoped_release release;
  return spectral_norm_upper_bound(W, estimate);
}

}  // namespace

void register_eigen(py::module_& m) {
  m.def("top_eigenpairs", &top_eigenpairs_py, py::arg("W"), py::arg("V"), py::arg("pairs"), py::arg("cs"),
        py::arg("tol") = 1e-8, py::arg("max_iter") = 600, py::arg("basis_size") = 48, py::arg("start") = py::none(),
        py::arg("seed") = 0, py::arg("threads") = 0, py::arg("dense_fallback") = true,
        py::arg("exact_residuals") = true, py::arg("float32_matvecs") = false,
        "Top eigenpair of M(V[i]-V[j]) - diag(cs[p]) for each pair p = (i, j), by batched Lanczos (Ritz values: "
        "estimates, not bounds). dense_fallback=False returns the last Ritz pair as 'not_converged' instead of a dense "
        "solve (training: bounded cost); exact_residuals=False reports Lanczos residual estimates and skips one batched "
        "matvec; float32_matvecs=True runs the products with W in float32 (estimates for training, ~2x faster). W is read in place when it is a float64 Fortran-ordered array. Returns dict(values, vectors (P, D), residuals, iterations, status).");
  m.def("pair_penalty_step", &pair_penalty_step_py, py::arg("W"), py::arg("V"), py::arg("pairs"), py::arg("cs"),
        py::arg("g"), py::arg("start") = py::none(), py::arg("tol") = 1e-6, py::arg("max_iter") = 8,
        py::arg("seed") = 0,
        "One SDP-NN training step's penalty sum_p g_p (D max(lambda_p, 0) + sum max(c_p, 0)) and its gradients "
        "(dW float32 (m, d), dV (k, m), dc (P, D)) from a warm-started Lanczos with float32 products (one thread, "
        "no dense fallback), all without the GIL. W: float32 (m, d). ESTIMATES for training, not bounds. Returns "
        "dict(values, vectors, residuals, iterations, status, value, dW, dV, dc).");
  m.def("lambda_max_upper_bounds", &lambda_max_upper_bounds_py, py::arg("W"), py::arg("V"), py::arg("pairs"),
        py::arg("cs"), py::arg("threads") = 0,
        "Proven upper bounds on lambda_max(M - diag c) per pair (float64, rigorous under rounding), and a proven upper "
        "bound on the pair SDP value from c: at most the dual objective D*max(lambda,0) + sum(max(c,0)) (rounded up), "
        "tighter when the proof's shift sits on the (1, s) block. Returns dict(lambda_bound, dual_bound).");
  m.def("spectral_norm_upper_bound", &spectral_norm_upper_bound_py, py::arg("W"), py::arg("estimate"),
        "Proven upper bound on ||W||_2 from an estimate (shifted Cholesky of mu I - W W^T).");
}
