// One SDP-NN training step's penalty: for the pairs p of the step, with weights g_p,
//     value = sum_p g_p (D max(lambda_p, 0) + sum_k max(c_pk, 0)),   lambda_p ~ lambda_max(M_p - diag c_p),
// and its gradient w.r.t. W, V and c from the top Ritz vectors u_p (the analytic formulas of the torch op,
// src/python/sdpcert/torch/penalty.py, penalty_gradients, which tests compare against):
//     a_p = 2 g_p D 1[lambda_p > 0] (u0_p + us_p)                       (m)
//     dW  = sum_p (v_p o a_p) ut_p^T                                    (m x d)
//     dV[i_p] += (W ut_p) o a_p,  dV[j_p] -= (W ut_p) o a_p            (k x m)
//     dc_p = -g_p D 1[lambda_p > 0] u_p o u_p + g_p 1[c_p > 0]          (D)
// Everything -- the warm-started Lanczos with float32 products and the gradient -- is one call without the GIL, so
// that a training step can run it on a second core while torch computes the task loss: split into many small
// Python-level torch ops it contended for the GIL with the main thread and both ran ~1.5x slower (measured).
// ESTIMATES for training only: nothing here is a bound.
#pragma once

#include "lanczos.hpp"
#include "pair_operator.hpp"

namespace sdpcert {

using RowMatF = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

struct PenaltyStep {
  LanczosResult eig;
  double value = 0.0;
  RowMatF dW;  // m x d
  RowMat dV;   // k x m
  RowMat dc;   // P x D
};

/// @brief One training step's penalty value and its gradients (dW, dV, dc), from a warm-started batched Lanczos with
///        float32 products. Estimates for training, not bounds.
/// @param WT     W^T (d x m) in float32 (a C-ordered (m, d) float32 array read in place)
/// @param vs     m x P pair differences V_i - V_j (pair_differences)
/// @param pairs  P x 2 class indices into the k rows of dV
/// @param csT    D x P dual vectors; g: P weights; opt: Lanczos options; start: optional D x P warm starts
/// @code
///   const PenaltyStep s = penalty_step(WT, pair_differences(V, pairs), pairs, V.rows(), csT, g, LanczosOptions{},
///                                      nullptr);
///   // s.value; s.dW (m x d, float32), s.dV (k x m), s.dc (P x D); s.eig.vectors: next step's warm starts
/// @endcode
template <class PairIndex>
PenaltyStep penalty_step(const Eigen::Ref<const MatF>& WT, const Mat& vs, const PairIndex& pairs, Index k,
                         const Mat& csT, const Vec& g, const LanczosOptions& opt, const Mat* start) {
  const Index d = WT.rows(), m = WT.cols(), P = vs.cols(), D = pair_dim(m, d);
  PenaltyStep out;
  {
    Mat W64;  // small problems go to the dense solver, which needs the float64 W
    if (D < opt.dense_below || opt.dense_fallback) W64 = WT.transpose().cast<double>();
    PairOperator op = W64.size() > 0 ? PairOperator(W64, vs, csT) : PairOperator(m, d, vs, csT);
    op.use_float32_products(WT, /*transposed=*/true);
    out.eig = top_eigenpairs(op, opt, start);
  }
  const Mat& U = out.eig.vectors;  // D x P
  Mat A(m, P);                     // columns a_p
  Vec scale(P);
  for (Index p = 0; p < P; ++p) {
    const double lam = out.eig.values(p);
    scale(p) = lam > 0 ? g(p) * static_cast<double>(D) : 0.0;
    A.col(p) = (2.0 * scale(p)) * (U.col(p).segment(1, m).array() + U(0, p)).matrix();
    out.value += g(p) * (static_cast<double>(D) * std::max(lam, 0.0) + csT.col(p).cwiseMax(0.0).sum());
  }
  const MatF UtF = U.bottomRows(d).cast<float>();  // d x P
  const MatF VA = vs.cwiseProduct(A).cast<float>();  // m x P
  out.dW.noalias() = VA * UtF.transpose();           // (m x P)(P x d)
  const MatF WUt = WT.transpose() * UtF;             // m x P: W ut_p
  out.dV = RowMat::Zero(k, m);
  for (Index p = 0; p < P; ++p) {
    const Vec dv = WUt.col(p).cast<double>().cwiseProduct(A.col(p));
    out.dV.row(pairs(p, 0)) += dv.transpose();
    out.dV.row(pairs(p, 1)) -= dv.transpose();
  }
  out.dc.resize(P, D);
  for (Index p = 0; p < P; ++p) {
    for (Index i = 0; i < D; ++i) {
      const double u = U(i, p);
      out.dc(p, i) = -scale(p) * u * u + (csT(i, p) > 0 ? g(p) : 0.0);
    }
  }
  return out;
}

}  // namespace sdpcert
