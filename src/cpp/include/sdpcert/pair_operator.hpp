// The pair matrix M_ij (docs/design.md §2) as an implicit operator, batched over pairs that share W.
//
// For v = V_i - V_j and A = W^T diag(v) (d x m), blocks ordered (1, s, t) with sizes (1, m, d):
//     M = [ 0     0    (A1)^T ]
//         [ 0     0     A^T   ]
//         [ A1    A     0     ]
// so for y = [y0; ys; yt]:  (My)_0 = v^T (W yt),  (My)_s = v o (W yt),  (My)_t = W^T (v o (y0 1 + ys)).
// A matvec costs two products with W and M (D x D) is never formed except by pair_matrix (tests).
// Many pairs are applied at once: their t-blocks are stacked as columns, so the W products are GEMMs.
// PairOperator is a batched operator in the sense of lanczos.hpp (rows(), batch(), perform_op, dense).
#pragma once

#include <optional>
#include <stdexcept>

#include "common.hpp"
#include "parallel.hpp"

namespace sdpcert {

// The pair differences as the m x P matrix PairOperator takes: column p is V_i - V_j for row p = (i, j) of pairs
// (V: k x m, one row per class; indices already checked to lie in 0..k-1).
inline Mat pair_differences(const RowMat& V, const Pairs& pairs) {
  Mat vs(V.cols(), pairs.rows());
  for (Index p = 0; p < pairs.rows(); ++p) vs.col(p) = (V.row(pairs(p, 0)) - V.row(pairs(p, 1))).transpose();
  return vs;
}

class PairOperator {
 public:
  // W: m x d (hidden x input), a view (a Python caller's float64 Fortran-ordered array is used in place: copying
  // 3 MB per call was a measurable part of a training step). vs: m x P, column p = V_i - V_j of pair p. cs: D x P
  // diagonal shifts (may be empty: then the operator is M itself).
  PairOperator(Eigen::Ref<const Mat> W, const Mat& vs, const Mat& cs)
      : W_(W), vs_(vs), cs_(cs), m_(W.rows()), d_(W.cols()) {}

  // W given as its transpose Wt (d x m): how a C-ordered (m, d) float64 array maps without a copy. The products
  // are the same GEMMs with the other operand transposed (equal to the W form up to rounding, not bitwise).
  struct Transposed {};
  PairOperator(Transposed, Eigen::Ref<const Mat> Wt, const Mat& vs, const Mat& cs)
      : W_(Wt), vs_(vs), cs_(cs), m_(Wt.cols()), d_(Wt.rows()), w_transposed_(true) {}

  // An operator with float32 products only (see use_float32_products): no float64 W exists, so dense() is
  // unavailable (callers use it with dense_fallback off and D >= dense_below).
  PairOperator(Index m, Index d, const Mat& vs, const Mat& cs) : W_(empty()), vs_(vs), cs_(cs), m_(m), d_(d) {}

  // Estimates only (training): the two GEMMs of perform_op then run in float32 with this W -- half the memory
  // traffic and twice the SIMD width -- while everything else stays float64. Never used by proofs.
  // transposed: Wf is W^T (d x m), which is how a C-ordered (m, d) float32 array from torch maps without a copy.
  void use_float32_products(Eigen::Ref<const MatF> Wf, bool transposed = false) {
    Wf_.emplace(Wf);
    wf_transposed_ = transposed;
  }

  Index m() const { return m_; }
  Index d() const { return d_; }
  Index rows() const { return pair_dim(m(), d()); }
  Index pairs() const { return vs_.cols(); }
  Index batch() const { return pairs(); }  // the Lanczos operator concept's name for the number of problems

  // Y.col(p) = (M_p - diag(c_p)) X.col(p) for the pairs listed in `active` (indices into 0..P-1); X and Y are
  // D x |active|, column q belonging to pair active[q].
  // threads >= 2: the two GEMMs run as two fixed row blocks on two threads (same result either way).
  template <class ActiveList>
  void perform_op(const Mat& X, Mat& Y, const ActiveList& active, int threads = 1) const {
    const Index mm = m(), dd = d(), n = static_cast<Index>(active.size());
    Y.resize(rows(), n);
    Mat Wyt(mm, n);  // W X_t (GEMM)
    const Index h = mm / 2, hd = dd / 2;
    if (Wf_) {
      const MatF Xt = X.bottomRows(dd).template cast<float>();
      MatF Wytf(mm, n);
      if (wf_transposed_)
        run_two(threads, [&] { Wytf.topRows(h).noalias() = Wf_->leftCols(h).transpose() * Xt; },
                [&] { Wytf.bottomRows(mm - h).noalias() = Wf_->rightCols(mm - h).transpose() * Xt; });
      else
        run_two(threads, [&] { Wytf.topRows(h).noalias() = Wf_->topRows(h) * Xt; },
                [&] { Wytf.bottomRows(mm - h).noalias() = Wf_->bottomRows(mm - h) * Xt; });
      Wyt = Wytf.template cast<double>();
    } else if (w_transposed_) {
      const Mat Xt = X.bottomRows(dd);
      run_two(threads, [&] { Wyt.topRows(h).noalias() = W_.leftCols(h).transpose() * Xt; },
              [&] { Wyt.bottomRows(mm - h).noalias() = W_.rightCols(mm - h).transpose() * Xt; });
    } else {
      const Mat Xt = X.bottomRows(dd);
      run_two(threads, [&] { Wyt.topRows(h).noalias() = W_.topRows(h) * Xt; },
              [&] { Wyt.bottomRows(mm - h).noalias() = W_.bottomRows(mm - h) * Xt; });
    }
    Mat T(mm, n);
    for (Index q = 0; q < n; ++q) {
      const Index p = active[q];
      const auto v = vs_.col(p);
      Y(0, q) = v.dot(Wyt.col(q));
      Y.col(q).segment(1, mm) = v.cwiseProduct(Wyt.col(q));
      T.col(q) = v.cwiseProduct((X.col(q).segment(1, mm).array() + X(0, q)).matrix());
    }
    if (Wf_) {
      const MatF Tf = T.template cast<float>();
      MatF Ytf(dd, n);
      if (wf_transposed_)
        run_two(threads, [&] { Ytf.topRows(hd).noalias() = Wf_->topRows(hd) * Tf; },
                [&] { Ytf.bottomRows(dd - hd).noalias() = Wf_->bottomRows(dd - hd) * Tf; });
      else
        run_two(threads, [&] { Ytf.topRows(hd).noalias() = Wf_->leftCols(hd).transpose() * Tf; },
                [&] { Ytf.bottomRows(dd - hd).noalias() = Wf_->rightCols(dd - hd).transpose() * Tf; });
      Y.bottomRows(dd) = Ytf.template cast<double>();
    } else if (w_transposed_) {
      run_two(threads, [&] { Y.middleRows(1 + mm, hd).noalias() = W_.topRows(hd) * T; },
              [&] { Y.bottomRows(dd - hd).noalias() = W_.bottomRows(dd - hd) * T; });
    } else {
      run_two(threads, [&] { Y.middleRows(1 + mm, hd).noalias() = W_.leftCols(hd).transpose() * T; },
              [&] { Y.bottomRows(dd - hd).noalias() = W_.rightCols(dd - hd).transpose() * T; });  // W^T T (GEMM)
    }
    if (cs_.size() > 0) {
      for (Index q = 0; q < n; ++q) Y.col(q) -= cs_.col(active[q]).cwiseProduct(X.col(q));
    }
  }

  // Dense M_p - diag(c_p), for tests and the small-problem fallback.
  Mat dense(Index p) const {
    if (W_.size() == 0) throw std::logic_error("PairOperator::dense needs the float64 W");
    const Index mm = m(), dd = d(), D = rows();
    Mat M = Mat::Zero(D, D);
    const auto v = vs_.col(p);
    const Mat Wt = w_transposed_ ? Mat(W_) : Mat(W_.transpose());
    Mat A = Wt * v.asDiagonal();  // d x m
    Vec A1 = Wt * v;
    M.block(1 + mm, 0, dd, 1) = A1;
    M.block(0, 1 + mm, 1, dd) = A1.transpose();
    M.block(1 + mm, 1, dd, mm) = A;
    M.block(1, 1 + mm, mm, dd) = A.transpose();
    if (cs_.size() > 0) M.diagonal() -= cs_.col(p);
    return M;
  }

  const Eigen::Ref<const Mat>& W() const { return W_; }  // W, or W^T for an operator built Transposed
  const Mat& vs() const { return vs_; }
  const Mat& cs() const { return cs_; }

 private:
  const Eigen::Ref<const Mat> W_;
  const Mat& vs_;
  const Mat& cs_;
  Index m_ = 0, d_ = 0;
  bool w_transposed_ = false;  // W_ holds W^T (d x m)
  std::optional<Eigen::Ref<const MatF>> Wf_;
  bool wf_transposed_ = false;

  static const Mat& empty() {
    static const Mat none;
    return none;
  }
};

}  // namespace sdpcert
