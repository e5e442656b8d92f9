// Rigorous (floating-point-proof) upper bounds for the pair SDP and for lambda_max(M - diag c).
//
// Everything here turns a float computation into a *proof*. The statements proved are written next to the code;
// the tools are
//   (H1) inner products: |fl(x^T y) - x^T y| <= gamma_n |x|^T |y| for length n, in any summation order, with or
//        without FMA (Higham, Accuracy and Stability, §3.1 and Lemma 3.4); one extra rounded product per factor
//        adds one to n;
//   (H2) Cholesky: if floating-point Cholesky of a symmetric float matrix X (size n) runs to completion with
//        positive pivots, then R^T R = X + dX with |dX| <= gamma_{n+1} |R^T||R| (Higham Thm 10.3, any ordering of
//        the inner products, so Eigen's blocked LLT is covered). Since ||R e_i||^2 = X_ii + dX_ii <= X_ii +
//        gamma_{n+1} ||R e_i||^2, we get || |R^T||R| ||_2 <= ||R||_F^2 <= tr(X) / (1 - gamma_{n+1}), hence
//              X >= -rho I,   rho = gamma_{n+1} / (1 - gamma_{n+1}) * tr(X)  (+ an underflow allowance).
//        This is the argument behind Rump's shifted-Cholesky test (BIT 2006).
//   (H3) Weyl: lambda_min(X + E) >= lambda_min(X) - ||E||_2, and ||E||_2 <= || |E| ||_2 <= sqrt(||E||_1 ||E||_inf).
#pragma once

#include <Eigen/Cholesky>
#include <algorithm>
#include <memory>
#include <vector>

#include "common.hpp"
#include "parallel.hpp"

namespace sdpcert {

// Result of trying to prove X >= -rho I by Cholesky. `ok` false: a pivot was not positive/finite (no proof).
struct CholeskyProof {
  bool ok = false;
  double rho = std::numeric_limits<double>::infinity();
};

// Attempts (H2) on the symmetric float matrix X (only its lower triangle is read). Destroys nothing.
inline CholeskyProof cholesky_lower_bound(const Mat& X) {
  CholeskyProof out;
  const Index n = X.rows();
  double trace = 0.0;
  for (Index i = 0; i < n; ++i) {
    if (!(X(i, i) > 0.0) || !std::isfinite(X(i, i))) return out;  // a PD matrix has a positive diagonal
    trace += X(i, i);
  }
  Eigen::LLT<Mat, Eigen::Lower> llt(X);
  if (llt.info() != Eigen::Success) return out;
  // Eigen's test is `pivot <= 0`, which lets NaN through: check the factor ourselves.
  const Mat& L = llt.matrixLLT();
  for (Index i = 0; i < n; ++i) {
    if (!(L(i, i) > 0.0) || !std::isfinite(L(i, i))) return out;
  }
  const double g = gamma_n(static_cast<double>(n + 1));
  // Underflow allowance: each of the n^2 products may lose up to the smallest normal number (Rump's eta-term,
  // generously bounded).
  const double underflow = 4.0 * static_cast<double>((n + 2) * (n + 2)) * DBL_MIN;
  out.rho = round_up_sum(g / (1.0 - g) * round_up_sum(trace, static_cast<double>(n)) + underflow, 3);
  out.ok = true;
  return out;
}

// Quantities of W alone that every proof for that W needs (computed once per solve, not once per proof).
struct WeightFacts {
  Mat W_abs;                   // |W|
  Mat W_sq;                    // W o W
  Vec abs_row_sums;            // ||W_k||_1
  std::vector<char> zero_col;  // column l of W is zero: t-coordinate l is isolated
  explicit WeightFacts(const Mat& W)
      : W_abs(W.cwiseAbs()), W_sq(W.cwiseAbs2()), abs_row_sums(W_abs.rowwise().sum()), zero_col(W.cols(), 0) {
    for (Index l = 0; l < W.cols(); ++l) zero_col[l] = W_abs.col(l).maxCoeff() == 0.0;
  }
};

// Outcome of a proof about one pair's dual vector c.
struct DualProof {
  bool ok = false;  // a bound was proven (false: c had a non-positive or non-finite t-entry, or no shift worked)
  // proven: lambda_min(diag(c) - M(V_i - V_j)) >= lambda_min_lower, i.e. lambda_max(M - diag c) <= -lambda_min_lower
  double lambda_min_lower = -std::numeric_limits<double>::infinity();
  // Finer form of the same proof: diag(c) + block_shift * 1_{(1,s)} + e_v * 1 - M(V_i - V_j) >= 0, with the
  // block shift only on the 1 + m (1, s) coordinates (step 2 below). It gives the pair SDP bound
  // sum max(c, 0) + (1 + m) block_shift + D e_v, about D / (1 + m) times tighter than the uniform shift.
  double block_shift = std::numeric_limits<double>::infinity();
  double e_v = std::numeric_limits<double>::infinity();
  double shift = 0.0;  // the alpha below
  int cholesky_attempts = 0;
};

namespace detail {

// Smallest eigenvalue estimate of a dense symmetric matrix by a short Lanczos run (an estimate only: it chooses the
// shift of the Cholesky test, it proves nothing).
inline double estimate_lambda_min(const Mat& S) {
  const Index n = S.rows();
  const Index k_max = std::min<Index>(n, 60);
  Mat Q(n, k_max);
  std::vector<double> alpha, beta;
  Vec q = Vec::Ones(n) / std::sqrt(static_cast<double>(n));
  for (Index i = 0; i < n; ++i) q(i) += 0.1 * std::sin(1.0 + 7.0 * i);  // deterministic, not orthogonal to much
  q /= q.norm();
  Q.col(0) = q;
  double lam = 0.0;
  for (Index j = 0; j < k_max; ++j) {
    Vec w = S.selfadjointView<Eigen::Lower>() * Q.col(j);
    alpha.push_back(Q.col(j).dot(w));
    for (int pass = 0; pass < 2; ++pass) w.noalias() -= Q.leftCols(j + 1) * (Q.leftCols(j + 1).transpose() * w);
    const double b = w.norm();
    beta.push_back(b);
    if (j + 1 == k_max || !(b > 1e-300)) break;
    Q.col(j + 1) = w / b;
  }
  const Index k = static_cast<Index>(alpha.size());
  Vec diag = Eigen::Map<Vec>(alpha.data(), k);
  Vec sub = Eigen::Map<Vec>(beta.data(), k).head(k - 1);
  Eigen::SelfAdjointEigenSolver<Mat> tri;
  tri.computeFromTridiagonal(diag, sub, Eigen::EigenvaluesOnly);
  lam = tri.eigenvalues()(0);
  return lam;
}

}  // namespace detail

// Proves a lower bound on lambda_min(diag(c) - M(v)) for the exact v = V_i - V_j (real arithmetic on the given
// floats) and any float vector c whose t-block (the last d entries) is positive. Consequences:
//   lambda_max(M - diag c) <= -lambda_min_lower, and the pair SDP value S_ij <= D max(-lambda_min_lower, 0)
//   + sum_k max(c_k, 0) (DESIGN §1 dual).
//
// Method (block elimination of the t-block, size d; the Schur complement has size 1 + m):
//  1. v_hat = fl(V_i - V_j) = v (1 + delta), so |v - v_hat| <= u/(1-u) |v_hat| and, with N = M(|v_hat|) built
//     from |W|, |M(v) - M(v_hat)| <= u/(1-u) N entrywise: by (H3) the change costs e_v <= u/(1-u) ||N||_2.
//  2. Z = diag(c) - M(v_hat) = [[C1, -B^T], [-B, C2]], B = W^T diag(v_hat) [1 I] (d x (1+m)), C2 > 0 diagonal.
//     For any (x, y): (x,y)^T Z (x,y) = x^T S x + ||C2^{1/2}(y - C2^{-1} B x)||^2 with S = C1 - B^T C2^{-1} B,
//     so S >= -a I (a >= 0) implies Z + a P1 >= 0, P1 the projector on the (1, s) block, hence Z >= -a I.
//  3. S is formed in floats through K = W diag(1/c2) W^T (m x m, a triangular GEMM), S_00 = c_0 - v^T K v,
//     S_0k = -(K~ 1)_k, S_kj = c_k delta_kj - K~_kj, K~ = diag(v) K diag(v). Every entry is an inner product of
//     length <= d + 2m + 6 of the non-negative terms of T~ = B_abs^T diag(1/c2) B_abs (B_abs from |W|, |v_hat|)
//     plus a subtraction from c, so |S_hat - S| <= gamma_{d+2m+8} (T~ + diag|c1|) entrywise (H1); T~ is a Gram
//     matrix with non-negative entries, so ||T~||_2 <= min(trace T~, max row sum T~), both O(md): eta bounds
//     ||S_hat - S||_2.
//  4. For a shift alpha >= 0, X = fl(S_hat + alpha I) differs from S_hat + alpha I on the diagonal by at most
//     u/(1-u) max|X_ii|; (H2) on X gives X >= -rho I. So S_hat >= -(alpha + rho + r_X) I, S >= -(alpha + rho +
//     r_X + eta) I and Z >= the same. alpha comes from a Lanczos estimate of lambda_min(S_hat) and grows on failure.
//  Together, with a = alpha + rho + r_X + eta: diag(c) + a P1 - M(v_hat) >= 0, so diag(c) + a P1 + e_v I - M(v)
//  >= 0, and lambda_min(diag(c) - M(v)) >= -(a + e_v), which is returned (rounded down).
//  `alpha_hint` >= 0: try that shift first and, if `hint_only`, give up when it fails (a cheap "is c good enough
//  yet?" test for the solver: it skips the Lanczos estimate and the shift search).
inline DualProof prove_lambda_min_lower(const Mat& W, const Vec& Vi, const Vec& Vj, const Vec& c,
                                        double alpha_hint = -1.0, bool hint_only = false, int threads = 1,
                                        const WeightFacts* facts = nullptr) {
  std::unique_ptr<WeightFacts> own;
  if (facts == nullptr) {
    own = std::make_unique<WeightFacts>(W);
    facts = own.get();
  }
  DualProof out;
  const Index m = W.rows(), d = W.cols(), D = pair_dim(m, d);
  if (c.size() != D || !c.allFinite()) return out;
  const auto c1 = c.head(1 + m);
  const auto c2 = c.tail(d);
  // A zero column l of W makes t-coordinate l isolated (row l of M is zero for every v): it only needs c_l >= 0
  // and is left out of the elimination (g_l = 0). Every other t entry must be positive for C2 > 0.
  const std::vector<char>& isolated = facts->zero_col;
  for (Index l = 0; l < d; ++l) {
    if (isolated[l] ? !(c2(l) >= 0.0) : !(c2(l) > 0.0)) return out;
  }
  const double u = kUnitRoundoff, ut = u / (1.0 - u);
  const Vec v = Vi - Vj;
  const Vec v_abs = v.cwiseAbs();
  const Mat& W_abs = facts->W_abs;

  // Step 1: e_v from ||N||_2 <= sqrt(||B_abs||_1 ||B_abs||_inf) (N is bipartite with off-diagonal block B_abs).
  const Vec Wabs_v = W_abs.transpose() * v_abs;              // d: (|W|^T |v|)_l, the |A1| column
  const Vec& Wabs_rows = facts->abs_row_sums;               // m: ||W_k||_1
  const double b_row_max = 2.0 * Wabs_v.maxCoeff();         // row l of B_abs sums to 2 (|W|^T|v|)_l
  const double b_col_max = std::max(Wabs_v.sum(), v_abs.cwiseProduct(Wabs_rows).maxCoeff());
  const double e_v = round_up_sum(ut * std::sqrt(round_up_sum(b_row_max * b_col_max, 4 * (m + d))), 4);

  // Step 3: S_hat through K = W diag(1/c2) W^T (lower triangle only).
  Vec g(d);
  for (Index l = 0; l < d; ++l) g(l) = isolated[l] ? 0.0 : 1.0 / c2(l);
  const Mat Wg = W * g.asDiagonal();  // m x d
  // Lower triangle of K in three blocks, always (so the summation order does not depend on `threads`): the two
  // diagonal triangles on one thread, the off-diagonal block (the same work) on the other.
  Mat K(m, m);
  const Index h = m / 2;
  run_two(
      threads,
      [&] {
        K.topLeftCorner(h, h).triangularView<Eigen::Lower>() = Wg.topRows(h) * W.topRows(h).transpose();
        K.bottomRightCorner(m - h, m - h).triangularView<Eigen::Lower>() =
            Wg.bottomRows(m - h) * W.bottomRows(m - h).transpose();
      },
      [&] { K.bottomLeftCorner(m - h, h).noalias() = Wg.bottomRows(m - h) * W.topRows(h).transpose(); });
  Mat S(1 + m, 1 + m);
  Vec row_sums = Vec::Zero(m);
  for (Index j = 0; j < m; ++j) {
    const double vj = v(j);
    for (Index k = j; k < m; ++k) {
      const double kt = v(k) * K(k, j) * vj;
      S(1 + k, 1 + j) = -kt;
      row_sums(k) += kt;
      if (k != j) row_sums(j) += kt;
    }
  }
  for (Index k = 0; k < m; ++k) {
    S(1 + k, 1 + k) += c1(1 + k);
    S(1 + k, 0) = -row_sums(k);
  }
  S(0, 0) = c1(0) - row_sums.sum();
  if (!S.triangularView<Eigen::Lower>().toDenseMatrix().allFinite()) return out;

  // eta: T~ row sums and trace, from |W|, |v|, 1/c2 (O(md)).
  //   T~ = [1 I]^T T [1 I],  T = diag|v| |W| diag(1/c2) |W|^T diag|v|;  T~ 1 = 2 [1^T T 1; T 1].
  const Vec Wabs_v_over_c = Wabs_v.cwiseProduct(g);                     // d
  const Vec T1 = v_abs.cwiseProduct(W_abs * Wabs_v_over_c);              // m: T 1
  const double one_T_one = T1.sum();
  const double t_row_max = 2.0 * std::max(one_T_one, T1.maxCoeff());
  // trace T~ = sum_l g_l ((|W|^T|v|)_l^2 + sum_k W_kl^2 v_k^2)
  const Vec Wsq_vsq = facts->W_sq.transpose() * v.cwiseAbs2();         // d
  const double t_trace = (Wabs_v.cwiseAbs2() + Wsq_vsq).dot(g);
  // g = fl(1/c2) may be below 1/c2 by a relative u: the (1 + 4u) factor covers it in these bounds.
  const double t_norm = round_up_sum(std::min(t_row_max, t_trace) * (1 + 4 * u), 2 * (m + d) + 8);
  const double c1_max = c1.cwiseAbs().maxCoeff();
  const double eta = round_up_sum(gamma_n(static_cast<double>(d + 2 * m + 8)) * (t_norm + c1_max), 3);

  // Step 4: the smallest shift that lets the Cholesky run, starting from the Lanczos estimate.
  const double s_scale = std::max(S.diagonal().cwiseAbs().maxCoeff(), 1e-300);
  auto try_shift = [&](double alpha) {
    out.cholesky_attempts += 1;
    Mat X = S;
    X.diagonal().array() += alpha;
    const CholeskyProof chol = cholesky_lower_bound(X);
    if (!chol.ok) return false;
    const double r_x = ut * X.diagonal().cwiseAbs().maxCoeff();
    out.block_shift = round_up_sum(alpha + chol.rho + r_x + eta, 4);
    out.e_v = e_v;
    out.lambda_min_lower = -round_up_sum(out.block_shift + e_v, 2);
    out.shift = alpha;
    out.ok = true;
    return true;
  };
  if (alpha_hint >= 0.0 && std::isfinite(alpha_hint)) {
    if (try_shift(alpha_hint) || hint_only) return out;
  }
  const double lam_est = detail::estimate_lambda_min(S);
  double alpha = std::max(0.0, -lam_est) * (1.0 + 1e-6) + 1e-13 * s_scale;
  for (int attempt = 0; attempt < 40; ++attempt) {
    if (try_shift(alpha)) return out;
    alpha = 2.0 * alpha + 1e-9 * s_scale;
  }
  return out;
}

// sum_k max(c_k, 0), rounded up: the pair SDP upper bound once prove_dual_feasible(c) succeeded.
inline double positive_sum_rounded_up(const Vec& c) {
  double s = 0.0;
  for (Index k = 0; k < c.size(); ++k) s += std::max(c(k), 0.0);
  return round_up_sum(s, static_cast<double>(c.size()));
}

// Proven upper bound on ||W||_2 (used by the spectral certificate): find mu with mu I - W W^T >= 0.
//   K_hat = fl(W W^T): |K_hat - W W^T| <= gamma_d |W||W|^T and || |W||W|^T ||_2 <= ||W||_F^2 (H1, H3).
//   X = fl(mu I - K_hat): the diagonal subtraction errs by <= u |X_ii| (one rounding).
//   (H2) on X: X >= -rho I. So mu I - W W^T >= -(rho + u max|X_ii| + gamma_d ||W||_F^2) I and
//   ||W||_2^2 <= mu + rho + u max|X_ii| + gamma_d ||W||_F^2.
// `estimate` is a float estimate of ||W||_2 (e.g. from an SVD); mu starts just above its square and grows until
// the Cholesky succeeds. Returns +inf if no proof was found.
inline double spectral_norm_upper_bound(const Mat& W, double estimate) {
  const Index m = W.rows(), d = W.cols();
  const bool wide = d >= m;
  Mat K = wide ? Mat(W * W.transpose()) : Mat(W.transpose() * W);
  const double fro2 = round_up_sum(W.squaredNorm(), static_cast<double>(m * d));
  const double err_K = gamma_n(static_cast<double>(std::max(m, d) + 1)) * fro2;
  double mu = estimate * estimate * (1.0 + 1e-12) + 4.0 * err_K + DBL_MIN;
  for (int attempt = 0; attempt < 60; ++attempt) {
    Mat X = -K;
    X.diagonal().array() += mu;
    const CholeskyProof chol = cholesky_lower_bound(X);
    if (chol.ok) {
      const double xmax = X.diagonal().cwiseAbs().maxCoeff();
      const double lam_bound = round_up_sum(mu + chol.rho + kUnitRoundoff * xmax + err_K, 4);
      return std::nextafter(std::sqrt(lam_bound) * (1.0 + 2 * kUnitRoundoff), std::numeric_limits<double>::infinity());
    }
    // A poor estimate grows geometrically (x2 after the first few tries), so the search always terminates.
    mu = (attempt < 8 ? mu * 1.001 : mu * 2.0) + 8.0 * err_K + 1e-300;
  }
  return std::numeric_limits<double>::infinity();
}

}  // namespace sdpcert

namespace sdpcert {

struct LambdaBound {
  double bound = std::numeric_limits<double>::infinity();  // proven: lambda_max(M(V_i - V_j) - diag c) <= bound
  double sdp_upper = std::numeric_limits<double>::infinity();  // proven: S_ij <= sdp_upper (block form of the dual)
  bool certified = false;
};

// Proven upper bound on lambda_max(M - diag c) for any float c, given an estimate of it (a Ritz value; NaN when
// none: then 0 is used, right for c from a converged SDP dual). c is first moved by a uniform mu to
// c' = fl(c + mu), mu = estimate + delta, so that diag(c') - M is just positive definite and its proof is tight;
// since M - diag c = (M - diag c') + diag(c' - c), lambda_max(M - diag c) <= lambda_max(M - diag c') +
// max_k (c'_k - c_k), the last term an exact difference of floats (rounded up here). mu also keeps the t-block of
// c' positive, which the proof needs.
inline LambdaBound lambda_max_upper_bound(const Mat& W, const Vec& Vi, const Vec& Vj, const Vec& c,
                                          double estimate = std::numeric_limits<double>::quiet_NaN(),
                                          double alpha_hint = -1.0, bool hint_only = false, int threads = 1,
                                          const WeightFacts* facts = nullptr) {
  LambdaBound out;
  const Index m = W.rows(), d = W.cols();
  const double scale = std::max(c.cwiseAbs().maxCoeff(), 1e-300);
  double mu = 0.0;
  if (std::isfinite(estimate)) mu = estimate + 1e-10 * (scale + std::abs(estimate));
  double need = -std::numeric_limits<double>::infinity();  // the t-block needs c + mu > 0
  for (Index l = 0; l < d; ++l)
    if (facts != nullptr ? !facts->zero_col[l] : W.col(l).cwiseAbs().maxCoeff() != 0.0)
      need = std::max(need, -c(1 + m + l));
  if (!(mu > need)) mu = need + 1e-10 * (scale + std::abs(need));
  const Vec c_up = (c.array() + mu).matrix();
  const DualProof proof = prove_lambda_min_lower(W, Vi, Vj, c_up, alpha_hint, hint_only, threads, facts);
  if (!proof.ok) return out;
  double raise = 0.0;
  if (mu != 0.0) {
    raise = -std::numeric_limits<double>::infinity();
    for (Index k = 0; k < c.size(); ++k) raise = std::max(raise, c_up(k) - c(k));
    raise = round_up_sum(raise, 1);
  }
  out.bound = round_up_sum(-proof.lambda_min_lower + raise, 2);
  out.certified = std::isfinite(out.bound);
  // S <= sum max(c_up, 0) + (1 + m) block_shift + D e_v, from diag(c_up) + block_shift P1 + e_v I >= M.
  const double D = static_cast<double>(c.size());
  const double extra = round_up_sum(static_cast<double>(1 + m) * proof.block_shift + D * proof.e_v, 3);
  out.sdp_upper = round_up_sum(positive_sum_rounded_up(c_up) + extra, 2);
  return out;
}

// D * max(lambda, 0) + sum_k max(c_k, 0), rounded up: the dual objective of DESIGN §1 (an upper bound on S for
// any c) from a proven lambda bound.
inline double dual_objective_rounded_up(double lambda_bound, const Vec& c) {
  const double D = static_cast<double>(c.size());
  const double lam_part = std::nextafter(D * std::max(lambda_bound, 0.0) * (1 + 2 * kUnitRoundoff),
                                         std::numeric_limits<double>::infinity());
  return round_up_sum(lam_part + positive_sum_rounded_up(c), 2);
}

}  // namespace sdpcert
