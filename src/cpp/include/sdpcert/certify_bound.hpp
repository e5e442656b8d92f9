// Rigorous (floating-point-proof) upper bounds for the pair SDP and for lambda_max(M - diag c) (docs/design.md §4).
// Entry points: prove_lambda_min_lower (one pair, the proof itself), lambda_max_upper_bound (one pair, from an
// estimate), lambda_max_upper_bounds (many pairs: balancing, batched estimates, proofs, mapping back) and
// spectral_norm_upper_bound. Each refuses to prove on a thread without gradual underflow (fp_environment.hpp).
//
// Everything here turns a float computation into a *proof*, over the whole double range (subnormals included). The
// statements proved are written next to the code; the tools are
//   (U)  the rounding model with underflow (common.hpp): fl(a op b) = (a op b)(1 + delta) + eta, |delta| <= u,
//        |eta| <= 2^-1075, eta = 0 for + and -. A product or quotient that lands in the subnormals errs by an
//        ABSOLUTE eta, so every bound below carries an absolute term next to its relative one, and every computed
//        bound is itself rounded up (up::add/mul/div/sqrt: the next float above an exactly rounded result, >= the
//        exact value also under underflow) before it enters a later product: an underflowed intermediate times a
//        large factor is thereby accounted for, not silently amplified. Overflow yields +inf or NaN, which every
//        proof refuses (no proof, never a smaller bound).
//   (H1) inner products: |fl(x^T y) - x^T y| <= gamma_n |x|^T |y| + n 2^-1075 (1 + gamma_n) for length n, in any
//        summation order, with or without FMA (Higham, Accuracy and Stability, §3.1 and Lemma 3.4, plus one eta per
//        rounded product under (U)); one extra rounded product per factor adds one to n (and one eta, times the
//        magnitude of the factors applied after it);
//   (H2) Cholesky: if floating-point Cholesky of a symmetric float matrix X (size n) runs to completion with
//        positive pivots, then R^T R = X + dX with |dX| <= gamma_{n+2} |R^T||R| + eps_C 1 1^T (Higham Thm 10.3, any
//        ordering of the inner products, so Eigen's blocked LLT is covered; n+2 instead of n+1 because its blocked
//        triangular solve multiplies by a rounded reciprocal of the pivot; eps_C is the underflow term derived at
//        cholesky_lower_bound). Since ||R e_i||^2 = X_ii + dX_ii <= X_ii + gamma ||R e_i||^2 + eps_C, we get
//        || |R^T||R| ||_2 <= ||R||_F^2 <= (tr(X) + n eps_C) / (1 - gamma), hence
//              X >= -rho I,   rho = gamma / (1 - gamma) (tr(X) + n eps_C) + n eps_C.
//        This is the argument behind Rump's shifted-Cholesky test (BIT 2006).
//   (H3) Weyl: lambda_min(X + E) >= lambda_min(X) - ||E||_2, and ||E||_2 <= || |E| ||_2 <= sqrt(||E||_1 ||E||_inf).
// The bounds stay tight only when the data are balanced (magnitudes near 1): the entry points balance W and v by
// exact powers of two first (scaling.hpp), so on ordinary and on extreme nets alike the underflow terms are ~1e-300
// absolute against bounds of order 1. Unbalanced data (a dynamic range wider than the double range allows to
// balance) still get sound, possibly infinite, bounds.
#pragma once

#include <Eigen/Cholesky>
#include <algorithm>
#include <memory>
#include <vector>

#include "common.hpp"
#include "fp_environment.hpp"
#include "lanczos.hpp"
#include "pair_operator.hpp"
#include "parallel.hpp"
#include "scaling.hpp"

namespace sdpcert {

// Result of trying to prove X >= -rho I by Cholesky. `ok` false: a pivot was not positive/finite (no proof).
struct CholeskyProof {
  bool ok = false;
  double rho = std::numeric_limits<double>::infinity();
};

// Whether every entry of the lower triangle of A is finite (column by column: no dense temporary; at D ~ 500 the
// triangularView().toDenseMatrix() this replaces was a 2 MB allocation per check).
inline bool lower_triangle_finite(const Mat& A) {
  for (Index j = 0; j < A.cols(); ++j)
    if (!A.col(j).tail(A.rows() - std::min(j, A.rows())).allFinite()) return false;
  return true;
}

// Attempts (H2) on the symmetric float matrix X (only its lower triangle is read), factorising X IN PLACE: its lower
// triangle then holds the factor (or a partial one when no proof). The copy-free form of cholesky_lower_bound below
// (Eigen's LLT on a Ref runs the same blocked factorisation on the same storage: the same factor, bit for bit);
// callers whose X is a scratch copy use it.
//
// Underflow term eps_C (per entry of dX, under (U)): entry (i, j), j <= i, of R^T R = X + dX comes from
// L_ij = (X_ij - sum_{k<j} L_ik L_jk) / L_jj (or times fl(1 / L_jj), which cannot underflow: X finite gives
// L_jj <= 2^512) or from L_jj = sqrt(X_jj - sum_k L_jk^2) (a square root never underflows). The at most j - 1
// products each err by <= 2^-1075 absolute, and the final division or reciprocal product by <= 2^-1075, which
// multiplying back by L_jj turns into <= L_jj 2^-1075. With the (1 + gamma) factors these meet, |dX_ij| exceeds
// its relative part by at most eps_C = (n + max_j L_jj) 2^-1074.
inline CholeskyProof cholesky_lower_bound_in_place(Mat& X) {
  CholeskyProof out;
  const Index n = X.rows();
  double trace = 0.0;
  for (Index i = 0; i < n; ++i) {
    if (!(X(i, i) > 0.0) || !std::isfinite(X(i, i))) return out;  // a PD matrix has a positive diagonal
    trace += X(i, i);
  }
  Eigen::LLT<Eigen::Ref<Mat>, Eigen::Lower> llt(X);
  if (llt.info() != Eigen::Success) return out;
  // Eigen's test is `pivot <= 0`, which lets NaN through: check the factor ourselves (an overflowed off-diagonal
  // entry makes a later pivot NaN; the finiteness check of the whole factor is belt and braces).
  const Mat& L = X;
  double l_max = 0.0;
  for (Index i = 0; i < n; ++i) {
    if (!(L(i, i) > 0.0) || !std::isfinite(L(i, i))) return out;
    l_max = std::max(l_max, L(i, i));
  }
  if (!lower_triangle_finite(L)) return out;
  const double nd = static_cast<double>(n);
  const double g = gamma_n(nd + 2.0);
  const double g_ratio = up::div(g, std::nextafter(1.0 - g, 0.0));  // >= gamma / (1 - gamma)
  const double eps_c = up::mul(up::add(nd, l_max), kUnderflowUnit);
  const double n_eps = up::mul(nd, eps_c);
  const double rho = up::add(up::mul(g_ratio, up::add(round_up_sum(trace, nd), n_eps)), n_eps);
  if (!std::isfinite(rho)) return out;
  out.rho = rho;
  out.ok = true;
  return out;
}

// (H2) on X as above, leaving X untouched; `factor`, if given, receives the factor in its lower triangle (an
// estimate's input, no proof).
inline CholeskyProof cholesky_lower_bound(const Mat& X, Mat* factor = nullptr) {
  Mat work = X;
  const CholeskyProof out = cholesky_lower_bound_in_place(work);
  if (out.ok && factor != nullptr) factor->swap(work);
  return out;
}

// Quantities of W alone that every proof for that W needs (computed once per solve, not once per proof). The
// "_up" members are entrywise upper bounds on the exact real quantities they name (see (U)).
struct WeightFacts {
  Mat W_abs;                   // |W| (exact)
  Mat W_sq_up;                 // >= W o W entrywise (each square rounded up; 0 where W is 0)
  Vec abs_row_sums_up;         // >= ||W_k||_1 (a sum of d non-negative floats, rounded up)
  double abs_max = 0.0;        // max |W_kl| (exact)
  std::vector<char> zero_col;  // column l of W is zero: t-coordinate l is isolated
  explicit WeightFacts(const Mat& W)
      : W_abs(W.cwiseAbs()),
        W_sq_up(W.unaryExpr([](double w) { return w == 0.0 ? 0.0 : up::mul(w, w); })),
        abs_row_sums_up(W_abs.rowwise().sum()),
        zero_col(W.cols(), 0) {
    const double d = static_cast<double>(W.cols());
    for (Index k = 0; k < W.rows(); ++k) abs_row_sums_up(k) = round_up_sum(abs_row_sums_up(k), d);
    abs_max = W.size() > 0 ? W_abs.maxCoeff() : 0.0;
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

// Smallest eigenvalue estimate of a dense symmetric matrix (lower triangle read) by a short Lanczos run: the top of -S
// by the Lanczos of lanczos.hpp, 60 steps from a fixed deterministic start, no early stop and no restart (below
// dense_below the dense eigensolver, exact). An estimate only: it chooses the shift of the Cholesky test, it proves
// nothing, so it may be anywhere (the shift search then grows the shift until a proof succeeds).
// The Lanczos start of both estimates below: deterministic, and not orthogonal to much.
inline Vec deterministic_start(Index n) {
  Vec start(n);
  for (Index i = 0; i < n; ++i)
    start(i) = 1.0 / std::sqrt(static_cast<double>(n)) + 0.1 * std::sin(1.0 + 7.0 * static_cast<double>(i));
  return start;
}

inline double estimate_lambda_min(const Mat& S) {
  const Index n = S.rows();
  const Mat start = deterministic_start(n);
  LanczosOptions opt;
  opt.tol = 0.0;
  opt.max_iter = 60;
  opt.basis_size = 60;
  opt.dense_fallback = false;
  opt.exact_residuals = false;
  opt.start_noise = 0.0;
  opt.threads = 1;
  return -top_eigenpairs(DenseSymmetricOperator(S, -1.0), opt, &start).values(0);
}

// Smallest eigenvalue estimate of X = L L^T from its Cholesky factor (lower triangle of `L` read): 1 / the top Ritz
// value of X^{-1} after `steps` Lanczos steps with full reorthogonalisation, each step two triangular solves (n^2
// multiply-adds, against n^3 / 3 for a Cholesky). X^{-1} turns the cluster of small eigenvalues that a shifted Schur
// complement has near 0 into its top, far from the rest, where a few steps resolve it; a Lanczos run on X itself
// misses it (measured: 60 steps on nt's Schur complements at their SDP duals returned +4e-5 where the smallest
// eigenvalue was -2e-6, so the shift search needed 4-9 Cholesky attempts). An estimate only: its Ritz value is <= the
// top of X^{-1}, so the result tends to lie ABOVE lambda_min(X); callers keep a margin and prove what they use.
inline double estimate_lambda_min_from_factor(const Mat& L, int steps = 24) {
  const Index n = L.rows();
  const int k = static_cast<int>(std::min<Index>(steps, n));
  Mat Q(n, k + 1);
  Vec alpha(k), beta(k);
  Q.col(0) = deterministic_start(n).normalized();
  const auto Lt = L.triangularView<Eigen::Lower>();
  int used = 0;
  for (int j = 0; j < k; ++j) {
    Vec w = Lt.adjoint().solve(Lt.solve(Q.col(j)));  // X^{-1} q_j
    alpha(j) = Q.col(j).dot(w);
    for (int pass = 0; pass < 2; ++pass)  // full reorthogonalisation, twice
      w -= Q.leftCols(j + 1) * (Q.leftCols(j + 1).transpose() * w);
    beta(j) = w.norm();
    used = j + 1;
    if (!(beta(j) > 1e-14 * std::abs(alpha(j))) || !std::isfinite(beta(j))) break;
    Q.col(j + 1) = w / beta(j);
  }
  Mat T = Mat::Zero(used, used);
  for (int j = 0; j < used; ++j) {
    T(j, j) = alpha(j);
    if (j + 1 < used) T(j, j + 1) = T(j + 1, j) = beta(j);
  }
  const double top = Eigen::SelfAdjointEigenSolver<Mat>(T, Eigen::EigenvaluesOnly).eigenvalues()(used - 1);
  return top > 0.0 && std::isfinite(top) ? 1.0 / top : std::numeric_limits<double>::quiet_NaN();
}

}  // namespace detail

// Proves a lower bound on lambda_min(diag(c) - M(v)) for the exact v = V_i - V_j (real arithmetic on the given
// floats) and any float vector c whose t-block (the last d entries) is positive. Consequences:
//   lambda_max(M - diag c) <= -lambda_min_lower, and the pair SDP value S_ij <= D max(-lambda_min_lower, 0)
//   + sum_k max(c_k, 0) (the dual of the pair SDP: diag(c) + lambda I - M >= 0 makes c + lambda 1 dual feasible).
//
// Method (block elimination of the t-block, size d; the Schur complement has size 1 + m):
//  1. v_hat = fl(V_i - V_j) = v (1 + delta) (a subtraction: no underflow error under (U)), so |v - v_hat| <=
//     u/(1-u) |v_hat| and, with N = M(|v_hat|) built from |W|, |M(v) - M(v_hat)| <= u/(1-u) N entrywise: by (H3)
//     the change costs e_v <= u/(1-u) ||N||_2, and ||N||_2 <= sqrt(||B_abs||_1 ||B_abs||_inf) (N is bipartite with
//     off-diagonal block B_abs = |W|^T diag|v_hat| [1 I]), evaluated with every sum and product rounded up.
//  2. Z = diag(c) - M(v_hat) = [[C1, -B^T], [-B, C2]], B = W^T diag(v_hat) [1 I] (d x (1+m)), C2 > 0 diagonal.
//     For any (x, y): (x,y)^T Z (x,y) = x^T S x + ||C2^{1/2}(y - C2^{-1} B x)||^2 with S = C1 - B^T C2^{-1} B,
//     so S >= -a I (a >= 0) implies Z + a P1 >= 0, P1 the projector on the (1, s) block, hence Z >= -a I.
//  3. S is formed in floats through g = fl(1/c2), K = W diag(g) W^T (m x m, a triangular GEMM), S_00 = c_0 - v^T K
//     v, S_0k = -(K~ 1)_k, S_kj = c_k delta_kj - K~_kj, K~ = diag(v) K diag(v). Each elementary term v_k W_kl g_l
//     W_jl v_j meets at most d + 2m + 5 roundings on its way into an entry (the reciprocal, the product with W_kl,
//     the GEMM of length d, the two products with v, the two row sums of length m, the subtraction from c), so
//     |S_hat - S| <= gamma_{d+2m+8} (T~ + diag|c1|) + E_u entrywise (H1), where T~ = B_abs^T diag(1/c2) B_abs is a
//     Gram matrix with non-negative entries, so ||T~||_2 <= min(trace T~, max row sum T~), both O(md) and bounded
//     from above with rounded-up vectors. E_u collects the underflow errors (U): a term's products can underflow
//     at fl(1/c2) (then multiplied by |W_kl W_jl v_k v_j|), at W_kl g_l (times |W_jl v_k v_j|), in the GEMM (times
//     |v_k v_j|), at v_k K_kj (times |v_j|) and at the last product, so each K~_kj errs by at most
//       eps_K = 2^-1074 (d (w + 1) w x^2 + d x^2 + x + 1),   w = max|W|, x = max|v_hat|,
//     the row sums S_0k hold m of them and S_00 m^2, so ||E_u||_2 <= max row sum <= 2 (m + 1)^2 eps_K. eta bounds
//     ||S_hat - S||_2 by the sum of the two parts.
//  4. For a shift alpha >= 0, X = fl(S_hat + alpha I) differs from S_hat + alpha I on the diagonal by at most
//     u/(1-u) max|X_ii| (an addition: no underflow error); (H2) on X gives X >= -rho I. So S_hat >= -(alpha + rho +
//     r_X) I, S >= -(alpha + rho + r_X + eta) I and Z >= the same. alpha comes from a Lanczos estimate of
//     lambda_min(S_hat) and grows on failure.
//  Together, with a = alpha + rho + r_X + eta: diag(c) + a P1 - M(v_hat) >= 0, so diag(c) + a P1 + e_v I - M(v)
//  >= 0, and lambda_min(diag(c) - M(v)) >= -(a + e_v), which is returned (every sum rounded up). A bound that
//  overflowed (inf or NaN anywhere) is no proof.
//  On balanced data (max|W|, max|v| ~ 1, as the entry points arrange) eps_K and eps_C are ~1e-320 and the relative
//  terms are what they always were; on unbalanced data they can dominate or overflow, which loosens or refuses the
//  proof but never makes it wrong.
//  `alpha_hint` >= 0: try that shift first and, if `hint_only`, give up when it fails (a cheap "is c good enough
//  yet?" test for the solver: it skips the Lanczos estimate and the shift search).
//
/// @brief Proof entry point for one pair: lambda_min(diag(c) - M(V_i - V_j)) >= lambda_min_lower (method above).
/// @param W, Vi, Vj   the network's floats (balanced: see scaling.hpp); c: the dual vector (length D = 1 + m + d)
/// @param alpha_hint  >= 0: shift to try first; hint_only: give up if it fails (no Lanczos, no search)
/// @param threads     >= 2: the Schur complement's GEMM runs on two threads (same result either way)
/// @param facts       WeightFacts(W), shared by the proofs of one W (nullptr: computed here)
/// @return DualProof with ok = false when nothing was proven (also on a thread without gradual underflow).
/// @code
///   DualProof pr = prove_lambda_min_lower(W, Vi, Vj, c);
///   if (pr.ok) { /* lambda_max(M(Vi - Vj) - diag c) <= -pr.lambda_min_lower, proven */ }
/// @endcode
inline DualProof prove_lambda_min_lower(const Mat& W, const Vec& Vi, const Vec& Vj, const Vec& c,
                                        double alpha_hint = -1.0, bool hint_only = false, int threads = 1,
                                        const WeightFacts* facts = nullptr) {
  DualProof out;
  // The model (U) needs gradual underflow on the thread doing the proof (fp_environment.hpp): no proof without it.
  if (!gradual_underflow()) return out;
  std::unique_ptr<WeightFacts> own;
  if (facts == nullptr) {
    own = std::make_unique<WeightFacts>(W);
    facts = own.get();
  }
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
  const double ut = kUnitRoundoffRatioUp;  // >= u / (1 - u)
  const double md = static_cast<double>(m), dd = static_cast<double>(d);
  const Vec v = Vi - Vj;
  if (!v.allFinite()) return out;  // V_i - V_j overflowed
  const Vec v_abs = v.cwiseAbs();
  const Mat& W_abs = facts->W_abs;
  auto round_up_each = [](const Vec& x, double n) { return Vec(x.unaryExpr([n](double y) {
                                                      return round_up_products(y, n); })); };

  // Step 1: e_v >= u/(1-u) sqrt(||B_abs||_inf ||B_abs||_1).
  const Vec Wabs_v_up = round_up_each(W_abs.transpose() * v_abs, md);  // d: >= (|W|^T |v|)_l, the |A1| column
  const double b_row_max = 2.0 * Wabs_v_up.maxCoeff();                  // row l of B_abs sums to 2 (|W|^T|v|)_l
  double b_col_max = round_up_sum(Wabs_v_up.sum(), dd);                 // column 0 of B_abs
  for (Index k = 0; k < m; ++k) b_col_max = std::max(b_col_max, up::mul(v_abs(k), facts->abs_row_sums_up(k)));
  const double e_v = up::mul(ut, up::sqrt(up::mul(b_row_max, b_col_max)));
  if (!std::isfinite(e_v)) return out;

  // Step 3: S_hat through K = W diag(g) W^T (lower triangle only).
  Vec g(d), g_up(d);  // g = fl(1/c2) for the computation; g_up >= 1/c2 for the error bounds
  for (Index l = 0; l < d; ++l) {
    g(l) = isolated[l] ? 0.0 : 1.0 / c2(l);
    g_up(l) = isolated[l] ? 0.0 : up::div(1.0, c2(l));
  }
  const Mat Wg = W * g.asDiagonal();  // m x d
  // Lower triangle of K in three blocks, always (so the summation order does not depend on `threads`): the two
  // diagonal triangles on one thread, the off-diagonal block (the same work) on the other.
  // The first function of run_two runs on this thread (checked on entry); the second may run on an OpenMP worker,
  // whose floating-point mode is its own (fp_environment.hpp): a worker that flushes subnormals leaves its block to
  // this thread, which computes the same block in the same order.
  Mat K(m, m);
  const Index h = m / 2;
  bool off_diagonal_done = false;
  auto off_diagonal = [&] {
    K.bottomLeftCorner(m - h, h).noalias() = Wg.bottomRows(m - h) * W.topRows(h).transpose();
  };
  run_two(
      threads,
      [&] {
        K.topLeftCorner(h, h).triangularView<Eigen::Lower>() = Wg.topRows(h) * W.topRows(h).transpose();
        K.bottomRightCorner(m - h, m - h).triangularView<Eigen::Lower>() =
            Wg.bottomRows(m - h) * W.bottomRows(m - h).transpose();
      },
      [&] {
        if (!gradual_underflow()) return;
        off_diagonal();
        off_diagonal_done = true;
      });
  if (!off_diagonal_done) off_diagonal();
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
  if (!lower_triangle_finite(S)) return out;

  // eta, relative part: upper bounds on the row sums and the trace of T~ from |W|, |v|, g_up (O(md)), each
  // product and sum rounded up.
  //   T~ = [1 I]^T T [1 I],  T = diag|v| |W| diag(1/c2) |W|^T diag|v|;  T~ 1 = 2 [1^T T 1; T 1].
  Vec x_up(d);  // >= (|W|^T|v|)_l / c2_l
  for (Index l = 0; l < d; ++l) x_up(l) = up::mul(Wabs_v_up(l), g_up(l));
  const Vec W_x_up = round_up_each(W_abs * x_up, dd);  // m
  Vec T1_up(m);                                         // >= T 1
  for (Index k = 0; k < m; ++k) T1_up(k) = up::mul(v_abs(k), W_x_up(k));
  const double one_T_one_up = round_up_sum(T1_up.sum(), md);
  const double t_row_max = 2.0 * std::max(one_T_one_up, T1_up.maxCoeff());
  // trace T~ = sum_l (1/c2_l) ((|W|^T|v|)_l^2 + sum_k W_kl^2 v_k^2)
  Vec v_sq_up(m);
  for (Index k = 0; k < m; ++k) v_sq_up(k) = up::mul(v_abs(k), v_abs(k));
  const Vec Wsq_vsq_up = round_up_each(facts->W_sq_up.transpose() * v_sq_up, md);  // d
  Vec diag_terms_up(d);
  for (Index l = 0; l < d; ++l)
    diag_terms_up(l) = up::add(up::mul(Wabs_v_up(l), Wabs_v_up(l)), Wsq_vsq_up(l));
  const double t_trace = round_up_products(diag_terms_up.dot(g_up), dd);
  const double t_norm = std::min(t_row_max, t_trace);
  const double c1_max = c1.cwiseAbs().maxCoeff();
  const double eta_rel = up::mul(gamma_n(dd + 2.0 * md + 8.0), up::add(t_norm, c1_max));
  // eta, underflow part: 2 (m + 1)^2 eps_K (step 3).
  const double w = facts->abs_max, x = v_abs.maxCoeff();
  const double x_sq = up::mul(x, x);
  const double eps_k_units = up::add(up::add(up::mul(dd, up::mul(up::mul(up::add(w, 1.0), w), x_sq)), up::mul(dd, x_sq)),
                                     up::add(x, 1.0));
  const double eta_abs = up::mul(up::mul(up::mul(2.0 * (md + 1.0), md + 1.0), eps_k_units), kUnderflowUnit);
  const double eta = up::add(eta_rel, eta_abs);
  if (!std::isfinite(eta)) return out;

  // Step 4: the smallest shift that lets the Cholesky run, starting from the Lanczos estimate.
  const double s_scale = std::max(S.diagonal().cwiseAbs().maxCoeff(), 1e-300);
  Mat X;  // one scratch matrix for every attempt (factorised in place; S stays intact)
  auto try_shift = [&](double alpha, Mat* factor = nullptr) {
    out.cholesky_attempts += 1;
    X = S;
    X.diagonal().array() += alpha;
    const double r_x = up::mul(ut, X.diagonal().cwiseAbs().maxCoeff());
    const CholeskyProof chol = cholesky_lower_bound_in_place(X);
    if (!chol.ok) return false;
    if (factor != nullptr) factor->swap(X);
    const double block_shift = up::add(up::add(up::add(alpha, chol.rho), r_x), eta);
    const double total = up::add(block_shift, e_v);
    if (!std::isfinite(total)) return false;
    out.block_shift = block_shift;
    out.e_v = e_v;
    out.lambda_min_lower = -total;
    out.shift = alpha;
    out.ok = true;
    return true;
  };
  if (alpha_hint >= 0.0 && std::isfinite(alpha_hint)) {
    if (try_shift(alpha_hint) || hint_only) return out;
  }
  // The shift search: first a shift of 1e-13 of the scale, which proves S_hat >= 0 when the caller's c already
  // makes it so (c shifted to just above lambda_max); if that fails, any shift that works (from 1e-7 of the scale,
  // growing 8x), then a tight one from that factor's own estimate of its smallest eigenvalue
  // (estimate_lambda_min_from_factor), kept only if its proof succeeds. Measured on the 45 pairs of nt at their SDP
  // duals: 4.2 Cholesky factorisations per proof with a doubling search from 1e-13 of the scale, 3.0 with this one,
  // the tight attempt succeeding every time. A 60-step Lanczos estimate of lambda_min(S_hat) used to choose the first
  // shift: at the SDP duals of nt, the PGD net and sdp-nn (and at 0.999 c + 1e-3) it saved no Cholesky (136 / 234 /
  // 253 per 45 proofs with it, 136 / 234 / 249 without), cost ~2.3 ms a proof, and the bounds without it are the same
  // or tighter (sdp-nn's worst dual bound / SDP value - 1: 3.08e-4 -> 2.80e-4), so it is gone: a plain Lanczos on
  // S_hat misses the small cluster at its bottom that decides the shift.
  const double alpha0 = 1e-13 * s_scale;
  if (try_shift(alpha0)) return out;
  Mat L;
  double alpha = std::max(4.0 * alpha0, 1e-7 * s_scale);
  bool found = false;
  for (int attempt = 0; attempt < 40 && std::isfinite(alpha); ++attempt) {
    if (try_shift(alpha, &L)) {
      found = true;
      break;
    }
    alpha = 8.0 * alpha + 1e-9 * s_scale;
  }
  if (!found) return out;
  // X = S_hat + alpha I has lambda_min(X) ~ alpha + lambda_min(S_hat): give back 0.99 of it (the estimate tends to
  // lie above the truth, see there). A failed attempt leaves the proof at alpha in `out`.
  const double lam_x = detail::estimate_lambda_min_from_factor(L);
  if (lam_x > 0.0 && lam_x < alpha) try_shift(alpha - 0.99 * lam_x);
  return out;
}

// sum_k max(c_k, 0), rounded up: the pair SDP upper bound once prove_dual_feasible(c) succeeded. A sum of
// non-negative floats: no underflow error under (U), so round_up_sum is a bound (+inf on overflow).
inline double positive_sum_rounded_up(const Vec& c) {
  double s = 0.0;
  for (Index k = 0; k < c.size(); ++k) s += std::max(c(k), 0.0);
  return round_up_sum(s, static_cast<double>(c.size()));
}

// Proven upper bound on ||W||_2 (used by the spectral certificate): find mu with mu I - W W^T >= 0.
//   Balancing: W' = fl(2^e W) entrywise with max|W'| in [0.5, 1), so that W W^T can neither overflow nor lose its
//   entries to underflow. 2^e W = W' + E, and E = 0 unless entries fell into the subnormals, where each errs by
//   <= 2^-1075: ||E||_2 <= ||E||_F <= sqrt(m d) 2^-1074 (a generous bound, charged only when bits were lost). So
//   ||W||_2 <= 2^-e (||W'||_2 + ||E||_2), rounded up.
//   For W' (written W below; k = min(m, d), n = max(m, d)):
//   K_hat = fl(W W^T) (or W^T W, the smaller): |K_hat - W W^T| <= gamma_n |W||W|^T + n 2^-1074 (H1, (U)), and
//   || |W||W|^T ||_2 <= ||W||_F^2, || n 2^-1074 1 1^T ||_2 = k n 2^-1074 (H3): err_K.
//   X = fl(mu I - K_hat): the diagonal subtraction errs by <= u/(1-u) |X_ii| (one rounding, no underflow error).
//   (H2) on X: X >= -rho I. So mu I - W W^T >= -(rho + u/(1-u) max|X_ii| + err_K) I and
//   ||W||_2^2 <= mu + rho + u/(1-u) max|X_ii| + err_K.
// `estimate` is a float estimate of ||W||_2 (e.g. from an SVD); mu starts just above its square and grows until
// the Cholesky succeeds. Returns +inf if no proof was found or the bound overflows.
//
/// @brief Proof entry point: a proven upper bound on ||W||_2 (+inf when none: also on a thread without gradual
///        underflow, fp_environment.hpp).
/// @code
///   const double est = Eigen::JacobiSVD<Mat>(W).singularValues()(0);
///   const double bound = spectral_norm_upper_bound(W, est);  // ||W||_2 <= bound, proven
/// @endcode
inline double spectral_norm_upper_bound(const Mat& W_in, double estimate) {
  const double inf = std::numeric_limits<double>::infinity();
  // The proof's rounding model needs gradual underflow on this thread (fp_environment.hpp).
  if (!gradual_underflow()) return inf;
  const Index m = W_in.rows(), d = W_in.cols();
  if (m == 0 || d == 0) return 0.0;
  const double w_max = W_in.cwiseAbs().maxCoeff();
  if (!std::isfinite(w_max) || !std::isfinite(estimate)) return inf;
  if (w_max == 0.0) return 0.0;
  int e = 0;
  std::frexp(w_max, &e);
  e = -e;  // max|2^e W| in [0.5, 1)
  const Mat W = W_in.unaryExpr([e](double a) { return std::ldexp(a, e); });
  bool lost_bits = false;
  for (Index j = 0; j < d && !lost_bits; ++j)
    for (Index i = 0; i < m; ++i)
      if (std::ldexp(W(i, j), -e) != W_in(i, j)) {
        lost_bits = true;
        break;
      }
  const double md = static_cast<double>(m) * static_cast<double>(d);
  const double scaling_error = lost_bits ? up::mul(up::sqrt(md), kUnderflowUnit) : 0.0;
  const double est = std::ldexp(estimate, e);

  const bool wide = d >= m;
  Mat K = wide ? Mat(W * W.transpose()) : Mat(W.transpose() * W);
  const double k_dim = static_cast<double>(std::min(m, d)), n_dim = static_cast<double>(std::max(m, d));
  const double fro2 = round_up_products(W.squaredNorm(), md);
  const double err_K = up::add(up::mul(gamma_n(n_dim + 1.0), fro2), up::mul(up::mul(k_dim, n_dim), kUnderflowUnit));
  // ||W||_2^2 <= ||W||_F^2 <= fro2: an estimate above that only wastes tightness (or overflows), so start there.
  double mu = std::min(est * est * (1.0 + 1e-12), fro2) + 4.0 * err_K + DBL_MIN;
  for (int attempt = 0; attempt < 60 && std::isfinite(mu); ++attempt) {
    Mat X = -K;
    X.diagonal().array() += mu;
    const CholeskyProof chol = cholesky_lower_bound(X);
    if (chol.ok) {
      const double xmax = X.diagonal().cwiseAbs().maxCoeff();
      const double lam_bound =
          up::add(up::add(up::add(mu, chol.rho), up::mul(kUnitRoundoffRatioUp, xmax)), err_K);
      const double norm_scaled = up::add(up::sqrt(lam_bound), scaling_error);
      if (!std::isfinite(norm_scaled)) return inf;
      return ldexp_up(norm_scaled, -e);
    }
    // A poor estimate grows geometrically (x2 after the first few tries), and from attempt 40 on mu is at least
    // ||W||_F^2 >= ||W||_2^2, so a proof is found even from a useless estimate.
    mu = (attempt < 8 ? mu * 1.001 : std::max(mu * 2.0, std::ldexp(fro2, attempt - 40))) + 8.0 * err_K + 1e-300;
  }
  return inf;
}

}  // namespace sdpcert

namespace sdpcert {

struct LambdaBound {
  double bound = std::numeric_limits<double>::infinity();  // proven: lambda_max(M(V_i - V_j) - diag c) <= bound
  double sdp_upper = std::numeric_limits<double>::infinity();  // proven: S_ij <= sdp_upper (block form of the dual)
  bool certified = false;
};

namespace detail {

// The proof of lambda_max_upper_bound at one uniform shift mu of c (mu > -min of c's non-isolated t-block).
inline LambdaBound lambda_max_bound_at_shift(const Mat& W, const Vec& Vi, const Vec& Vj, const Vec& c, double mu,
                                             double alpha_hint, bool hint_only, int threads, const WeightFacts* facts) {
  LambdaBound out;
  const Index m = W.rows();
  const Vec c_up = (c.array() + mu).matrix();
  const DualProof proof = prove_lambda_min_lower(W, Vi, Vj, c_up, alpha_hint, hint_only, threads, facts);
  if (!proof.ok) return out;
  double raise = 0.0;
  if (mu != 0.0) {
    // c_up_k - c_k: one rounded subtraction of two floats, no underflow error (U); round_up_sum(x, 1) bounds it for
    // either sign.
    raise = -std::numeric_limits<double>::infinity();
    for (Index k = 0; k < c.size(); ++k) raise = std::max(raise, c_up(k) - c(k));
    raise = round_up_sum(raise, 1);
  }
  out.bound = up::add(-proof.lambda_min_lower, raise);
  out.certified = std::isfinite(out.bound);
  if (!out.certified) {
    out.bound = std::numeric_limits<double>::infinity();
    return out;
  }
  // S <= sum max(c_up, 0) + (1 + m) block_shift + D e_v, from diag(c_up) + block_shift P1 + e_v I >= M.
  const double D = static_cast<double>(c.size());
  const double extra = up::add(up::mul(static_cast<double>(1 + m), proof.block_shift), up::mul(D, proof.e_v));
  const double sdp_upper = up::add(positive_sum_rounded_up(c_up), extra);
  out.sdp_upper = std::isfinite(sdp_upper) ? sdp_upper : std::numeric_limits<double>::infinity();
  return out;
}

}  // namespace detail

// Proven upper bound on lambda_max(M - diag c) for any float c, given an estimate of it (a Ritz value; NaN when
// none: then 0 is used, right for c from a converged SDP dual) and that estimate's residual ||A x - theta x||
// (0 when unknown). c is first moved by a uniform mu to c' = fl(c + mu), mu = estimate + delta, so that
// diag(c') - M is just positive definite and its proof is tight; since M - diag c = (M - diag c') + diag(c' - c),
// lambda_max(M - diag c) <= lambda_max(M - diag c') + max_k (c'_k - c_k), the last term an exact difference of
// floats (rounded up here). Every bound returned is one of these proofs; the choice of mu only decides how tight.
//
// mu also keeps the t-block of c' positive, which the proof needs. A Ritz value lies below lambda_max (by up to ~ its
// residual in a clustered top), and when mu is below lambda_max the shift the proof needs on the (1, s) block grows
// with 1 / c'_l of the t-entries (they enter the Schur complement as W diag(1 / c'_t) W^T): measured on a training
// checkpoint's c (eig_iters 32, epoch 70, pair (1, 4)), lambda_max 6.7e-5, Ritz value 5.6e-5 (residual 9.3e-5), most
// negative t-entry -6.4e-5, so mu = 6.4e-5 + 1e-10 scale left a t-entry of 1.8e-10 and the proof gave 72.6 (a dual
// bound of 36384 against ~30 for the other pairs). So a proof far above mu is retried once at mu = max(t-need,
// estimate) + residual and the smaller bound kept (there: 1.8e-4). Clearing the t-block by the residual on every
// first attempt instead cost 0.06% of the dual bounds on other checkpoints (measured), so only the retry does it.
//
/// @brief Proven upper bound on lambda_max(M(V_i - V_j) - diag c) for one pair (and, from the same proof, on the
///        pair SDP value); bound = +inf when nothing was proven.
/// @code
///   const LambdaBound b = lambda_max_upper_bound(W, Vi, Vj, c, ritz_value);  // ritz_value: an estimate, or NaN
///   if (b.certified) { /* lambda_max(M - diag c) <= b.bound and S_ij <= b.sdp_upper, proven */ }
/// @endcode
inline LambdaBound lambda_max_upper_bound(const Mat& W, const Vec& Vi, const Vec& Vj, const Vec& c,
                                          double estimate = std::numeric_limits<double>::quiet_NaN(),
                                          double alpha_hint = -1.0, bool hint_only = false, int threads = 1,
                                          const WeightFacts* facts = nullptr, double residual = 0.0) {
  const Index m = W.rows(), d = W.cols();
  const double scale = std::max(c.cwiseAbs().maxCoeff(), 1e-300);
  const double res = std::isfinite(residual) && residual > 0.0 ? residual : 0.0;
  double mu = 0.0;
  if (std::isfinite(estimate)) mu = estimate + 1e-10 * (scale + std::abs(estimate));
  double need = -std::numeric_limits<double>::infinity();  // the t-block needs c + mu > 0
  for (Index l = 0; l < d; ++l)
    if (facts != nullptr ? !facts->zero_col[l] : W.col(l).cwiseAbs().maxCoeff() != 0.0)
      need = std::max(need, -c(1 + m + l));
  if (!(mu > need)) mu = need + 1e-10 * (scale + std::abs(need));
  LambdaBound out = detail::lambda_max_bound_at_shift(W, Vi, Vj, c, mu, alpha_hint, hint_only, threads, facts);
  // A proof far above mu: mu was below lambda_max with a t-entry of c + mu near 0 (see above). One retry with the
  // t-block and the estimate cleared by the residual, keeping the smaller of each proven bound.
  const double slack = std::max(res, 1e-9 * scale);
  if (!hint_only && res > 0.0 && std::isfinite(estimate) && !(out.bound <= mu + 2.0 * slack)) {
    const double mu2 = std::max(need, estimate) + slack;
    const LambdaBound retry = detail::lambda_max_bound_at_shift(W, Vi, Vj, c, mu2, -1.0, false, threads, facts);
    if (retry.certified) {  // both are proofs: keep the smaller of each bound
      out.certified = true;
      out.bound = std::min(out.bound, retry.bound);
      out.sdp_upper = std::min(out.sdp_upper, retry.sdp_upper);
    }
  }
  return out;
}

// D * max(lambda, 0) + sum_k max(c_k, 0), rounded up: the dual objective of the pair SDP (an upper bound on S for
// any c) from a proven lambda bound. A NaN or overflowing bound gives +inf.
inline double dual_objective_rounded_up(double lambda_bound, const Vec& c) {
  const double inf = std::numeric_limits<double>::infinity();
  if (std::isnan(lambda_bound)) return inf;
  const double D = static_cast<double>(c.size());
  const double total = up::add(up::mul(D, std::max(lambda_bound, 0.0)), positive_sum_rounded_up(c));
  return std::isnan(total) ? inf : total;
}

// Proven bounds for many pairs of one network, in the given units.
struct LambdaBounds {
  Vec lambda_bound;  // P: proven lambda_max(M(V_i - V_j) - diag c_p) <= lambda_bound(p) (+inf: no proof)
  Vec dual_bound;    // P: proven S_ij <= dual_bound(p), from c_p (+inf: no proof)
};

/// @brief Proven upper bounds on lambda_max(M(V_i - V_j) - diag c_p) and on the pair SDP value S_ij from c_p, for
///        each row p = (i, j) of `pairs`: balance, estimate (batched Lanczos), prove per pair (OpenMP), map back.
///
/// @param W        m x d hidden weights; V: k x m output weights (finite)
/// @param pairs    P x 2 class indices in 0..k-1
/// @param cs       P x D dual vectors, D = 1 + m + d (finite)
/// @param threads  OpenMP threads across pairs (<= 0: all available); the results do not depend on it
/// @return LambdaBounds in the units of the inputs, rounded up; +inf where no proof was found, where the bound
///         exceeds the double range, or when the thread lacks gradual underflow (fp_environment.hpp); never NaN.
///
/// @code
///   const LambdaBounds b = lambda_max_upper_bounds(W, V, pairs, cs, 0);
///   // lambda_max(M(V.row(i) - V.row(j)) - diag(cs.row(p))) <= b.lambda_bound(p), and S_ij <= b.dual_bound(p)
/// @endcode
inline LambdaBounds lambda_max_upper_bounds(const Mat& W_in, const RowMat& V, const Pairs& pairs, const RowMat& cs,
                                            int threads) {
  const Index D = pair_dim(W_in.rows(), W_in.cols()), P = pairs.rows();
  LambdaBounds out;
  out.lambda_bound = Vec::Constant(P, std::numeric_limits<double>::infinity());
  out.dual_bound = out.lambda_bound;
  // The balancing and the mapping back below run on this thread and their rounding directions assume gradual
  // underflow (fp_environment.hpp); each proof checks its own thread again.
  if (!gradual_underflow()) return out;
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
  auto prove_pair = [&](Index p) {
    const Vec c = csT.col(p);
    const LambdaBound b =
        lambda_max_upper_bound(W, Vis.col(p), Vjs.col(p), c, est.values(p), -1.0, false, 1, &facts, est.residuals(p));
    const double dual_scaled = b.certified ? std::min(b.sdp_upper, dual_objective_rounded_up(b.bound, c))
                                           : std::numeric_limits<double>::infinity();
    out.lambda_bound(p) = ldexp_up(b.bound, -exps[p]);
    out.dual_bound(p) = ldexp_up(dual_scaled, -exps[p]);
  };
  // An OpenMP worker has its own floating-point mode (fp_environment.hpp): one that flushes subnormals leaves its
  // pairs to this thread (checked above), so that which thread takes a pair never changes its bound.
  std::vector<char> deferred(P, 0);
  parallel_for_pairs(P, threads, [&](long p) {
    if (gradual_underflow()) prove_pair(p);
    else deferred[p] = 1;
  });
  for (Index p = 0; p < P; ++p)
    if (deferred[p]) prove_pair(p);
  return out;
}

}  // namespace sdpcert
