// Top eigenpairs of a batch of symmetric operators by Lanczos with full reorthogonalisation: one template over an
// operator concept (Spectra's rows() / perform_op(x, y), batched so that one step's matvecs can be GEMMs).
//
// Operator concept (a batch of P symmetric D x D matrices A_0 .. A_{P-1}):
//   Index rows() const;                        D
//   Index batch() const;                       P
//   void perform_op(const Mat& X, Mat& Y, const std::vector<Index>& active, int threads) const;
//                                              Y.col(q) = A_{active[q]} X.col(q) (X, Y: D x |active|)
//   Mat dense(Index p) const;                  A_p as a dense matrix (the small-problem path and the dense fallback)
// Models: PairOperator (pair_operator.hpp; M_p - diag c_p, each step two GEMMs with W for all pairs) and
// DenseSymmetricOperator below (one dense matrix, e.g. the Schur complement whose bottom eigenvalue chooses the shift
// of a proof in certify_bound.hpp).
//
// All problems step together. Convergence is by the Ritz residual ||A x - theta x|| = beta_j |s_j| <= tol * scale
// (scale = largest |Ritz value| seen, an estimate of ||A||). A full basis is thick-restarted (detail::thick_restart:
// the top Ritz vectors are kept, so the Krylov information about a clustered top survives the restart). A converged
// Ritz value is an eigenvalue to within the residual but is NOT an upper bound on lambda_max: rigorous bounds come
// from certify_bound.hpp only. Problems that do not converge within max_iter matvecs, and problems small enough that
// it is cheaper, fall back to a dense symmetric eigensolver (or, with dense_fallback off, return the last Ritz pair
// as not_converged).
#pragma once

#include <Eigen/Eigenvalues>
#include <algorithm>
#include <random>
#include <vector>

#include "common.hpp"
#include "parallel.hpp"

namespace sdpcert {

enum class EigStatus : int { converged = 0, dense_small = 1, dense_fallback = 2, not_converged = 3 };

inline const char* eig_status_name(EigStatus s) {
  switch (s) {
    case EigStatus::converged: return "converged";
    case EigStatus::dense_small: return "dense_small";
    case EigStatus::dense_fallback: return "dense_fallback";
    case EigStatus::not_converged: return "not_converged";
  }
  return "unknown";
}

struct LanczosOptions {
  double tol = 1e-8;       // relative residual tolerance (0: no early stop, every problem runs max_iter matvecs)
  int max_iter = 600;      // matvecs per problem before the dense fallback
  int basis_size = 48;     // Krylov basis size before a thick restart
  int restart_keep = 0;    // top Ritz vectors a thick restart keeps (0: basis_size / 3, i.e. 16; at most
                           // basis_size / 2 - 1, so that a cycle adds at least half a basis of new vectors)
  int check_every = 4;     // solve the tridiagonal problem every this many steps
  Index dense_below = 96;  // D below this: dense eigensolver directly
  uint64_t seed = 0;       // random start / perturbation of warm starts (results are deterministic)
  int threads = 1;         // >= 2: each batched matvec's GEMMs run as two row blocks on two threads
  bool dense_fallback = true;  // false: return the current Ritz pair as 'not_converged' instead (cheap estimates)
  bool exact_residuals = true;  // false: report the Lanczos residual estimates and skip the final batched matvec
                                // (a training step with a 3-step budget spends a quarter of its time on it)
  double start_noise = 1e-4;    // weight of the seeded random vector mixed into a given start (0: the start as is)
};

struct LanczosResult {
  Vec values;                     // P top eigenvalue estimates (Ritz values; lower bounds up to rounding)
  Mat vectors;                    // D x P unit vectors
  Vec residuals;                  // P: ||A x - theta x||
  Vec scales;                     // P: the estimate of ||A|| the tolerance was measured against
  Eigen::VectorXi iterations;     // P: matvecs used
  std::vector<EigStatus> status;  // P
};

namespace detail {

template <class Op>
void dense_top_eigenpair(const Op& op, Index p, LanczosResult& r, EigStatus status) {
  Mat A = op.dense(p);
  Eigen::SelfAdjointEigenSolver<Mat> es(A);
  const Index D = A.rows();
  r.values(p) = es.eigenvalues()(D - 1);
  r.scales(p) = std::max(std::abs(es.eigenvalues()(0)), std::abs(es.eigenvalues()(D - 1)));
  r.vectors.col(p) = es.eigenvectors().col(D - 1);
  r.residuals(p) = (A * r.vectors.col(p) - r.values(p) * r.vectors.col(p)).norm();
  r.status[p] = status;
}

// Top eigenpair of the symmetric tridiagonal T (diagonal a, off-diagonal b): eigenvalues only (O(k^2)), then the
// eigenvector by inverse iteration with the shift sigma just above the top, where T - sigma I is negative definite,
// so its LDL^T without pivoting is stable (O(k) per iteration). The full eigendecomposition this replaces was
// O(k^3) per convergence check and dominated Lanczos runs of 100+ steps (measured).
inline void top_tridiagonal_eigenpair(const Vec& a, const Vec& b, double& theta, double& bottom, Vec& s) {
  const Index k = a.size();
  Eigen::SelfAdjointEigenSolver<Mat> tri;
  tri.computeFromTridiagonal(a, b, Eigen::EigenvaluesOnly);
  theta = tri.eigenvalues()(k - 1);
  bottom = tri.eigenvalues()(0);
  const double scale = std::max({std::abs(theta), std::abs(bottom), 1e-300});
  const double gap = k > 1 ? theta - tri.eigenvalues()(k - 2) : scale;
  const double sigma = theta + std::max(8.0 * DBL_EPSILON * scale, 1e-8 * gap);
  s = Vec::Ones(k) / std::sqrt(static_cast<double>(k));
  Vec dinv(k), l(k);
  // T - sigma I = L D L^T
  double dprev = a(0) - sigma;
  dinv(0) = 1.0 / dprev;
  for (Index i = 1; i < k; ++i) {
    l(i) = b(i - 1) / dprev;
    dprev = (a(i) - sigma) - l(i) * b(i - 1);
    dinv(i) = 1.0 / dprev;
  }
  for (int it = 0; it < 3; ++it) {
    for (Index i = 1; i < k; ++i) s(i) -= l(i) * s(i - 1);        // L y = s
    for (Index i = 0; i < k; ++i) s(i) *= dinv(i);                 // D z = y
    for (Index i = k - 2; i >= 0; --i) s(i) -= l(i + 1) * s(i + 1);  // L^T x = z
    const double n = s.norm();
    if (!(n > 0) || !std::isfinite(n)) {  // degenerate: fall back to the dense tridiagonal solve
      tri.computeFromTridiagonal(a, b, Eigen::ComputeEigenvectors);
      s = tri.eigenvectors().col(k - 1);
      return;
    }
    s /= n;
  }
}

struct LanczosState {
  Mat Q;                  // D x basis_size
  std::vector<double> alpha, beta;
  Index j = 0;            // vectors in Q
  int matvecs = 0;
  double scale = 0.0;
  bool done = false;
};

// Thick restart (Wu & Simon's TRLan; Krylov-Schur for symmetric A) of a full basis Q_k (k columns, tridiagonal T_k,
// residual w = b q_{k+1}): keep the top l Ritz vectors Y = Q_k S and q_{k+1}. On span{Y, q_{k+1}} A is the arrowhead
// [diag theta, sigma; sigma^T, *] with sigma = b S^T e_k, since A Y = Y diag theta + q_{k+1} sigma^T. A Householder
// tridiagonalisation of that arrowhead which fixes q_{k+1} (Eigen's leaves its first row and column in place) rotates
// Y into Y Z whose tridiagonal chain ends in q_{k+1}: the kept space is again a Lanczos basis (it is the Krylov space
// of an implicitly filtered start), so the recurrence, the full reorthogonalisation and the O(k^2) convergence checks
// continue unchanged, with q_{k+1} the next vector to multiply; the residual estimate b |s_k| stays exact (measured:
// it matches the recomputed ||A x - theta x|| to 2e-5 relative after many restarts at basis_size 8 and 16).
// Why: at an SDP dual c the top of M - diag c is a cluster (3-12 eigenvalues spread over ~1e-9..1e-7 ||A||, then a
// gap of 3e-8..1e-5 ||A|| to the rest): tol 1e-10 is out of reach of any 300-step Krylov method there (an unrestarted
// 300-step run does not reach it either), but the Ritz value's accuracy is what keeps the proofs of
// certify_bound.hpp tight. The explicit restart from the single top Ritz vector this replaces threw the rest away.
// Measured on the 45 MNIST pair operators at their SDP duals (D = 1285, tol 1e-10, 300 matvecs, basis 48), lambda_max
// minus the Ritz value, mean / max: nt 5.5e-6 / 5.2e-5 -> 7.2e-7 / 9.4e-6, at 1.6e-4 / 4.2e-4 -> 7.0e-5 / 2.6e-4,
// sdp-nn 4.2e-6 / 1.1e-5 -> 2.1e-6 / 7.1e-6 (so lambda_max_upper_bounds' worst dual bound / SDP upper - 1: nt
// 1.1e-5 -> 5.7e-7, at 8.0e-5 -> 5.4e-5, sdp-nn 5.5e-4 -> 3.1e-4); at tol 1e-6, nt's 9 pairs (0, j) converge in
// 176 / 236 matvecs (mean / max), was 208 / 304. Keeping 8, 12, 16 or 23 Ritz vectors gave the same to ~15%; keeping 1
// gave the old numbers. The cost: a basis of 17..48 columns instead of 1..48 makes reorthogonalisation and the
// convergence checks ~35-50% dearer, 10-20% more time per matvec there (perf, timings); the restarts themselves (an
// O(k^3) tridiagonal eigensolve and a D x k x l product per cycle of k - l - 1 matvecs) are ~1% by flop count.
inline void thick_restart(LanczosState& s, Index k, const Vec& w, double b, Index l) {
  Eigen::SelfAdjointEigenSolver<Mat> tri;
  tri.computeFromTridiagonal(Eigen::Map<const Vec>(s.alpha.data(), k), Eigen::Map<const Vec>(s.beta.data(), k - 1),
                             Eigen::ComputeEigenvectors);
  const Mat S = tri.eigenvectors().rightCols(l);  // ascending: the top l
  Mat B = Mat::Zero(l + 1, l + 1);                // B(0, 0), the Rayleigh quotient of q_{k+1}, is not needed
  B.col(0).tail(l) = b * S.row(k - 1).transpose();
  B.row(0).tail(l) = B.col(0).tail(l).transpose();
  B.diagonal().tail(l) = tri.eigenvalues().tail(l);
  Eigen::Tridiagonalization<Mat> td(B);
  const Mat Z = td.matrixQ();  // B = Z T Z^T, Z e_0 = e_0
  const Vec td_diag = td.diagonal(), td_sub = td.subDiagonal();
  // New column c < l is [q_{k+1}, Y] Z e_{l-c} = Y Z(1:, l-c) (Z's first row is e_0 too): the chain reversed, so that
  // column l - 1 is the one coupled to q_{k+1}.
  Mat G(k, l);
  for (Index c = 0; c < l; ++c) G.col(c) = S * Z.col(l - c).tail(l);
  const Mat kept = s.Q.leftCols(k) * G;
  s.Q.leftCols(l) = kept;
  s.Q.col(l) = w / b;
  s.alpha.assign(static_cast<size_t>(l), 0.0);
  s.beta.assign(static_cast<size_t>(l), 0.0);
  for (Index c = 0; c < l; ++c) {
    s.alpha[static_cast<size_t>(c)] = td_diag(l - c);
    s.beta[static_cast<size_t>(c)] = td_sub(l - c - 1);  // couples column c to column c + 1
  }
  s.j = l + 1;
}

}  // namespace detail

// A dense symmetric matrix (only its lower triangle is read) as a batch of one operator, times `sign`: with sign -1
// the top eigenpair the Lanczos finds is the bottom one of A, negated (negation is exact, so the Lanczos recurrence on
// -A is the one on A, mirrored). Holds a reference: A must outlive the operator.
class DenseSymmetricOperator {
 public:
  explicit DenseSymmetricOperator(const Mat& A, double sign = 1.0) : A_(A), sign_(sign) {}

  Index rows() const { return A_.rows(); }
  Index batch() const { return 1; }

  template <class ActiveList>
  void perform_op(const Mat& X, Mat& Y, const ActiveList& active, int threads = 1) const {
    (void)active;
    (void)threads;
    Y.resize(A_.rows(), X.cols());
    for (Index q = 0; q < X.cols(); ++q) Y.col(q).noalias() = sign_ * (A_.selfadjointView<Eigen::Lower>() * X.col(q));
  }

  Mat dense(Index) const {
    Mat M = A_.selfadjointView<Eigen::Lower>();
    return sign_ * M;
  }

 private:
  const Mat& A_;
  double sign_;
};

/// @brief Top eigenpair (largest eigenvalue) of each operator of the batch `op` by Lanczos. Estimates, not bounds.
///
/// @param op     a batched symmetric operator (the concept at the top of this file)
/// @param opt    tolerance, matvec budget, basis size, threads, fallbacks (LanczosOptions)
/// @param start  optional D x P warm starts (e.g. the previous training step's eigenvectors), or nullptr. A small
///               seeded random component (opt.start_noise) is mixed in so that a start orthogonal to the top
///               eigenvector still finds it; a zero or non-finite column is replaced by the random start.
/// @param subset optional list of the problems to solve (the others are left at zero in the result), or nullptr: all
/// @return values, unit vectors (D x P), residuals, ||A|| estimates, matvec counts and status per problem;
///         deterministic for a given seed, and independent of opt.threads.
///
/// @code
///   const Mat vs = pair_differences(V, pairs);             // the operator keeps references: no temporaries
///   PairOperator op(W, vs, csT);                             // csT: D x P shifts
///   LanczosResult r = top_eigenpairs(op, LanczosOptions{}, nullptr);
///   double theta = r.values(p);                              // ~ lambda_max(M_p - diag c_p)
///   // the bottom eigenvalue of a dense symmetric S (lower triangle): the top of -S
///   double lam_min = -top_eigenpairs(DenseSymmetricOperator(S, -1.0), LanczosOptions{}, nullptr).values(0);
/// @endcode
template <class Op>
LanczosResult top_eigenpairs(const Op& op, const LanczosOptions& opt, const Mat* start,
                             const std::vector<Index>* subset = nullptr) {
  const Index D = op.rows(), P = op.batch();
  LanczosResult r;
  r.values = Vec::Zero(P);
  r.vectors = Mat::Zero(D, P);
  r.residuals = Vec::Zero(P);
  r.scales = Vec::Zero(P);
  r.iterations = Eigen::VectorXi::Zero(P);
  r.status.assign(P, EigStatus::converged);
  std::vector<Index> all;
  if (subset == nullptr)
    for (Index p = 0; p < P; ++p) all.push_back(p);
  const std::vector<Index>& run = subset != nullptr ? *subset : all;
  if (P == 0 || run.empty()) return r;
  if (D < opt.dense_below) {  // small: the dense solve is cheaper and exact
    for (Index p : run) detail::dense_top_eigenpair(op, p, r, EigStatus::dense_small);
    return r;
  }
  // A basis never needs more columns than the matvec budget allows (a training step's budget is ~3: allocating
  // 48 columns per pair was measurable there).
  const Index kmax = std::min<Index>({static_cast<Index>(std::max(opt.basis_size, 8)), D,
                                      static_cast<Index>(std::max(opt.max_iter, 1)) + 1});
  std::mt19937_64 rng(opt.seed ^ 0x5d9cULL);
  std::normal_distribution<double> normal(0.0, 1.0);
  std::vector<detail::LanczosState> st(P);
  std::vector<char> runs_mask(static_cast<size_t>(P), 0);
  for (Index p : run) runs_mask[static_cast<size_t>(p)] = 1;
  // The random starts are drawn for every problem in order, so a problem's start does not depend on the subset.
  for (Index p = 0; p < P; ++p) {
    const bool runs = runs_mask[static_cast<size_t>(p)] != 0;
    if (runs) st[p].Q.resize(D, kmax);
    Vec x(D);
    for (Index i = 0; i < D; ++i) x(i) = normal(rng);
    x /= x.norm();
    if (!runs) continue;
    if (start != nullptr && start->col(p).allFinite() && start->col(p).norm() > 0) {
      // A small random component (default 1e-4) guards against a start orthogonal to the top eigenvector (Krylov
      // growth amplifies it) while keeping most of a good warm start's accuracy (1e-2 cost ~2x the steps in training).
      x = start->col(p) / start->col(p).norm() + opt.start_noise * x;
      x /= x.norm();
    }
    st[p].Q.col(0) = x;
    st[p].j = 1;
  }
  // Ritz vectors kept by a thick restart (LanczosOptions::restart_keep).
  const Index nkeep = std::max<Index>(
      1, std::min<Index>(opt.restart_keep > 0 ? static_cast<Index>(opt.restart_keep) : kmax / 3, kmax / 2 - 1));
  std::vector<Index> active = run;
  Mat X, Y;
  while (!active.empty()) {
    X.resize(D, static_cast<Index>(active.size()));
    for (size_t q = 0; q < active.size(); ++q) {
      const auto& s = st[active[q]];
      X.col(q) = s.Q.col(s.j - 1);
    }
    op.perform_op(X, Y, active, opt.threads);
    // Per-pair steps are independent (memory-bound reorthogonalisation): spread them over the threads.
    std::vector<char> keep(active.size(), 0);
    parallel_for_pairs(static_cast<long>(active.size()), opt.threads >= 2 ? opt.threads : 1, [&](long qi) {
      const size_t q = static_cast<size_t>(qi);
      const Index p = active[q];
      auto& s = st[p];
      const Index j = s.j - 1;  // index of the vector just multiplied
      Vec w = Y.col(q);
      s.matvecs += 1;
      const double a = s.Q.col(j).dot(w);
      // Full reorthogonalisation: the Krylov basis stays orthonormal to working precision, which keeps Ritz values
      // free of spurious copies in clustered spectra.
      // The second pass only when the first removed most of w (Daniel-Gragg-Kaufman-Stewart criterion): it is
      // memory-bound (Q is D x k per pair), so skipping it when unneeded halves the per-step overhead. The
      // three-term recurrence is subtracted first (the chain is tridiagonal after a thick restart too), so that the
      // criterion measures the loss of orthogonality and not the recurrence's own large components: then one pass
      // mostly suffices (measured: the 45 pairs' 300-step runs of lambda_max_upper_bounds 3-15% faster, Ritz values
      // within ~4e-9 absolute).
      w.noalias() -= a * s.Q.col(j);
      if (j > 0) w.noalias() -= s.beta[static_cast<size_t>(j - 1)] * s.Q.col(j - 1);
      double w_norm = w.norm();
      for (int pass = 0; pass < 2; ++pass) {
        Vec h = s.Q.leftCols(j + 1).transpose() * w;
        w.noalias() -= s.Q.leftCols(j + 1) * h;
        const double after = w.norm();
        const bool enough = after > 0.7071 * w_norm;
        w_norm = after;
        if (enough) break;
      }
      const double b = w_norm;
      s.alpha.push_back(a);
      s.beta.push_back(b);
      const Index k = j + 1;  // size of the tridiagonal matrix
      const bool full = (k == kmax);
      const bool breakdown = !(b > 1e-300) || !std::isfinite(b);
      const bool check = full || breakdown || (k % opt.check_every == 0) || s.matvecs >= opt.max_iter;
      bool finished = false;
      if (check) {
        Vec diag = Eigen::Map<Vec>(s.alpha.data(), k);
        Vec sub = Eigen::Map<Vec>(s.beta.data(), k).head(k - 1);
        double theta = 0.0, bottom = 0.0;
        Vec sv;
        detail::top_tridiagonal_eigenpair(diag, sub, theta, bottom, sv);
        s.scale = std::max({s.scale, std::abs(bottom), std::abs(theta)});
        // ||A x - theta x||^2 = ||T s - theta s||^2 + (beta_k s_k)^2 for x = Q s (Q orthonormal); the first term
        // is ~0 for an exact eigenvector of T but is kept since inverse iteration in a cluster may not be.
        Vec ts = diag.cwiseProduct(sv) - theta * sv;
        if (k > 1) {
          ts.head(k - 1) += sub.cwiseProduct(sv.tail(k - 1));
          ts.tail(k - 1) += sub.cwiseProduct(sv.head(k - 1));
        }
        const double res = std::sqrt(ts.squaredNorm() + (breakdown ? 0.0 : b * b * sv(k - 1) * sv(k - 1)));
        if (res <= opt.tol * std::max(s.scale, 1e-300) || breakdown) {
          Vec x = s.Q.leftCols(k) * sv;
          x /= x.norm();
          r.values(p) = theta;
          r.vectors.col(p) = x;
          r.residuals(p) = res;
          r.scales(p) = s.scale;
          r.iterations(p) = s.matvecs;
          finished = true;
        } else if (s.matvecs >= opt.max_iter) {
          r.iterations(p) = s.matvecs;
          r.scales(p) = s.scale;
          if (opt.dense_fallback) {
            detail::dense_top_eigenpair(op, p, r, EigStatus::dense_fallback);
          } else {
            Vec x = s.Q.leftCols(k) * sv;
            r.values(p) = theta;
            r.vectors.col(p) = x / x.norm();
            r.residuals(p) = res;
            r.status[p] = EigStatus::not_converged;
          }
          finished = true;
        } else if (full) {
          detail::thick_restart(s, k, w, b, nkeep);
          keep[q] = 1;
          return;
        }
      }
      if (finished) return;
      s.Q.col(k) = w / b;
      s.j = k + 1;
      keep[q] = 1;
    });
    std::vector<Index> still;
    for (size_t q = 0; q < active.size(); ++q)
      if (keep[q]) still.push_back(active[q]);
    active.swap(still);
  }
  if (!opt.exact_residuals) return r;
  // Residuals of returned vectors are recomputed exactly for converged pairs (cheap: one batched matvec).
  Mat Xr(D, static_cast<Index>(run.size()));
  for (size_t q = 0; q < run.size(); ++q) Xr.col(static_cast<Index>(q)) = r.vectors.col(run[q]);
  op.perform_op(Xr, Y, run, opt.threads);
  for (size_t q = 0; q < run.size(); ++q) {
    const Index p = run[q];
    r.residuals(p) = (Y.col(static_cast<Index>(q)) - r.values(p) * r.vectors.col(p)).norm();
  }
  return r;
}


// Top eigenpairs by a Lanczos whose products are cheap (`fast`, e.g. a PairOperator with float32 products), answered
// to the accuracy of `exact` (the same operators in float64): one batched exact matvec then gives each returned vector
// its float64 Rayleigh quotient (the value reported) and its exact residual, and a problem whose exact residual misses
// opt.tol * (its ||A|| estimate) is run again with `exact`, warm-started from the cheap vector. So the result meets the
// same tolerance as top_eigenpairs(exact, ...), with most matvecs at the fast operator's price. Measured on the nt
// net's 9 pairs (0, j), tol 1e-6: c = 0, dual / 2 and dual all met it without a second run. With
// opt.exact_residuals off this is top_eigenpairs(fast, ...) itself (the training path: bounded cost, estimates).
template <class Op, class ExactOp>
LanczosResult top_eigenpairs_verified(const Op& fast, const ExactOp& exact, const LanczosOptions& opt,
                                      const Mat* start) {
  if (!opt.exact_residuals) return top_eigenpairs(fast, opt, start);
  LanczosOptions cheap = opt;
  cheap.exact_residuals = false;
  LanczosResult r = top_eigenpairs(fast, cheap, start);
  const Index P = exact.batch();
  if (P == 0) return r;
  std::vector<Index> all(static_cast<size_t>(P));
  for (Index p = 0; p < P; ++p) all[static_cast<size_t>(p)] = p;
  Mat Y;
  exact.perform_op(r.vectors, Y, all, opt.threads);
  std::vector<Index> again;
  for (Index p = 0; p < P; ++p) {
    const auto x = r.vectors.col(p);
    const double xx = x.squaredNorm();
    if (!(xx > 0.0)) continue;
    const double rq = x.dot(Y.col(p)) / xx;  // the float64 Rayleigh quotient: the best value for x
    r.values(p) = rq;
    r.residuals(p) = (Y.col(p) - rq * x).norm() / std::sqrt(xx);
    const bool iterative = r.status[p] == EigStatus::converged;
    if (iterative && !(r.residuals(p) <= opt.tol * std::max(r.scales(p), 1e-300))) again.push_back(p);
  }
  if (again.empty()) return r;
  LanczosOptions fine = opt;
  fine.start_noise = 1e-8;  // the start is already close; the tiny random part only guards against exact zeros
  const LanczosResult e = top_eigenpairs(exact, fine, &r.vectors, &again);
  for (Index p : again) {
    r.values(p) = e.values(p);
    r.vectors.col(p) = e.vectors.col(p);
    r.residuals(p) = e.residuals(p);
    r.scales(p) = std::max(r.scales(p), e.scales(p));
    r.iterations(p) += e.iterations(p);
    r.status[p] = e.status[p];
  }
  return r;
}

}  // namespace sdpcert
