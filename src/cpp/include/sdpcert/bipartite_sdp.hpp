// The bipartite SDP of an explicit matrix G (a x d): the core of the per-example certificates (docs/design.md §2).
//
//     maximise <M, P>  over P >= 0 with diag(P) = 1,      M = (1/2) [[0, G], [G^T, 0]]   (size n = a + d),
//
// the semidefinite relaxation of max { w_A^T G w_B : w_A in {-1, 1}^a, w_B in {-1, 1}^d }, which is also the
// maximum over the cubes [-1, 1]^a x [-1, 1]^d (the form is affine in each coordinate, so a vertex attains it).
// The pair SDP of the paper is the special case G = [1 I]^T diag(v) W (pair_operator.hpp); per example, G is built
// by Python from the example's stable units and box (certify/example_sdp.py) and is small: a = 1 + unstable units.
//
// Solver: Burer-Monteiro, P = R R^T with unit rows R_A (a x r), R_B (d x r), by exact block updates -- given R_A the
// best R_B is the row-normalised G^T R_A, and given R_B the best R_A is the row-normalised G R_B -- so the primal
// value sum_i ||(G R_B)_i|| never decreases and is a value of a feasible P (a lower bound on the SDP).
// Dual: at a stationary point row i of M R equals c_i R_i with c_i = ||(M R)_i||; any c with c_B > 0 whose Schur
// complement is proven >= -a' I bounds the SDP by sum(c) + a a' (prove_bipartite_upper). The solver tries a proof
// when the dual vector's (unproven) value says it may settle the question, and stops early once the question asked is answered: a proven upper bound below
// `threshold` (the example's target is certified), or a primal value >= threshold (this relaxation cannot certify
// it: its value is at least the primal value).
#pragma once

#include <Eigen/Eigenvalues>
#include <algorithm>
#include <cstdint>
#include <random>
#include <vector>

#include "certify_bound.hpp"
#include "common.hpp"
#include "fp_environment.hpp"
#include "parallel.hpp"

namespace sdpcert {

struct BipartiteSdpOptions {
  int rank = 12;            // columns r of the factor (the optimum's rank is at most about sqrt(2 n))
  int max_sweeps = 500;     // block-update sweeps per problem
  double rel_tol = 1e-6;    // stop when (proven upper - primal) <= rel_tol * |proven upper|
  double omega = 1.7;       // over-relaxation of the block updates, in [1, 2)
  uint64_t seed = 0;        // the start of problem p is drawn from seed + p (deterministic)
};

// What became of one problem. status: 0 converged (gap <= rel_tol), 1 proven below threshold, 2 primal value >=
// threshold (no bound below it exists), 3 sweep limit reached (upper is the best proven bound, maybe +inf).
struct BipartiteSdpResult {
  double upper = std::numeric_limits<double>::infinity();  // proven: SDP value <= upper (G's floats taken as exact)
  double lower = -std::numeric_limits<double>::infinity();  // value of the final feasible P (an estimate)
  int sweeps = 0;
  int proofs = 0;
  int status = 3;
};

// Proven upper bound on the SDP value of G (its floats taken as exact reals) from the dual vector (cA, cB).
//
// Statement. Z = diag(c) - M = [[diag cA, -G/2], [-G^T/2, diag cB]]. With cB > 0, for any (x, y):
//   (x, y)^T Z (x, y) = x^T S x + ||diag(cB)^{1/2} (y - diag(cB)^{-1} G^T x / 2)||^2,  S = diag(cA) - G diag(1/cB) G^T / 4,
// so S >= -a' I implies Z + a' P_A >= 0 (P_A: the projector on the a block), hence for feasible P (diag P = 1)
//   <M, P> = <diag(c) + a' P_A, P> - <Z + a' P_A, P> <= sum(c) + a a'.
// Computation (tools (U), (H1)-(H3) of certify_bound.hpp):
//   g = fl(1/cB), H = fl(G diag g), K = fl(H G^T) (a GEMM of length d), S_hat = fl(diag(cA) - K / 4). Each elementary
//   term G_il g_l G_jl meets d + 3 roundings (the reciprocal, the product with G_il, the GEMM of length d; the
//   quarter is exact unless it underflows; the subtraction from cA_i is one more on the diagonal), so
//     |S_hat - S| <= gamma_{d+4} (T + diag|cA|) + E_u,   T = |G| diag(g_up) |G|^T / 4 (g_up >= 1/cB),
//   and ||T||_2 <= min(trace T, max row sum of T) (T is entrywise non-negative and positive semidefinite), both
//   computed from |G| and g_up with every sum and product rounded up. E_u collects the underflows (U): a term's
//   products can underflow at fl(1/cB) (times |G_il G_jl|), at G_il g_l (times |G_jl|), in the GEMM, and the
//   quarter once more, so each entry errs by at most eps_K = 2^-1074 (d (w^2 + w + 1) + 1), w = max|G|, and
//   ||E_u||_2 <= a eps_K (max row sum).
//   X = fl(S_hat + alpha I) errs on the diagonal by <= u/(1-u) max|X_ii| (r_X); (H2) on X gives X >= -rho I. So
//   S >= -(alpha + rho + r_X + eta) I = -a' I, and the bound is round_up(sum c) + a a', every sum rounded up.
// Returns +inf when nothing is proven (a non-positive or non-finite cB, overflow, no working shift, or a thread
// without gradual underflow).
inline double prove_bipartite_upper(const Mat& G, const Vec& cA, const Vec& cB) {
  const double inf = std::numeric_limits<double>::infinity();
  if (!gradual_underflow()) return inf;
  const Index a = G.rows(), d = G.cols();
  if (cA.size() != a || cB.size() != d || !cA.allFinite() || !cB.allFinite()) return inf;
  for (Index l = 0; l < d; ++l)
    if (!(cB(l) > 0.0)) return inf;
  for (Index i = 0; i < a; ++i)
    if (!(cA(i) >= 0.0)) return inf;  // the dual vector of the solver is made of norms; sum(c) below needs c >= 0
  const double dd = static_cast<double>(d), ad = static_cast<double>(a);
  Vec g(d), g_up(d);
  for (Index l = 0; l < d; ++l) {
    g(l) = 1.0 / cB(l);
    g_up(l) = up::div(1.0, cB(l));
  }
  const Mat H = G * g.asDiagonal();
  Mat S(a, a);
  S.triangularView<Eigen::Lower>() = H * G.transpose();
  for (Index j = 0; j < a; ++j)
    for (Index i = j; i < a; ++i) S(i, j) = (i == j ? cA(i) : 0.0) - 0.25 * S(i, j);
  if (!lower_triangle_finite(S)) return inf;

  // eta: relative part gamma_{d+4} (||T||_2 + max|cA|), underflow part a eps_K.
  const Mat G_abs = G.cwiseAbs();
  Vec col_sums_up(d);  // >= (|G|^T 1)_l, a column sum of a non-negative floats
  for (Index l = 0; l < d; ++l) col_sums_up(l) = round_up_sum(G_abs.col(l).sum(), ad);
  Vec y_up(d);  // >= g_l (|G|^T 1)_l / 4 (the quarter is exact or underflows: the next() covers it)
  for (Index l = 0; l < d; ++l) y_up(l) = up::mul(0.25, up::mul(g_up(l), col_sums_up(l)));  // up:: covers underflow
  double t_row_max = 0.0;  // >= max_i (|G| y)_i
  for (Index i = 0; i < a; ++i)
    t_row_max = std::max(t_row_max, round_up_products(G_abs.row(i).dot(y_up), dd));
  double t_trace = 0.0;  // >= sum_l g_l sum_i G_il^2 / 4
  for (Index l = 0; l < d; ++l) {
    double sq = 0.0;
    for (Index i = 0; i < a; ++i) sq = up::add(sq, up::mul(G_abs(i, l), G_abs(i, l)));
    t_trace = up::add(t_trace, up::mul(up::mul(0.25, g_up(l)), sq));
  }
  const double t_norm = std::min(t_row_max, t_trace);
  const double c_max = cA.size() ? cA.maxCoeff() : 0.0;
  const double w = G_abs.size() ? G_abs.maxCoeff() : 0.0;
  const double eps_k = up::mul(up::add(up::mul(dd, up::add(up::add(up::mul(w, w), w), 1.0)), 1.0), kUnderflowUnit);
  const double eta = up::add(up::mul(gamma_n(dd + 4.0), up::add(t_norm, c_max)), up::mul(ad, eps_k));
  if (!std::isfinite(eta)) return inf;

  double c_sum = 0.0;
  for (Index i = 0; i < a; ++i) c_sum += cA(i);
  for (Index l = 0; l < d; ++l) c_sum += cB(l);
  const double c_sum_up = round_up_sum(c_sum, ad + dd);  // a sum of non-negative floats

  const double s_scale = std::max(S.diagonal().cwiseAbs().maxCoeff(), 1e-300);
  Mat X;  // scratch for every attempt, factorised in place
  auto try_shift = [&](double alpha) -> double {
    X = S;
    X.diagonal().array() += alpha;
    const double r_x = up::mul(kUnitRoundoffRatioUp, X.diagonal().cwiseAbs().maxCoeff());
    const CholeskyProof chol = cholesky_lower_bound_in_place(X);
    if (!chol.ok) return inf;
    const double shift = up::add(up::add(up::add(alpha, chol.rho), r_x), eta);
    const double bound = up::add(c_sum_up, up::mul(ad, shift));
    return std::isfinite(bound) ? bound : inf;
  };
  // The shift: just above -lambda_min(S_hat) (dense eigenvalues for small a, a short Lanczos otherwise), doubled
  // until the Cholesky runs. The estimate proves nothing; the Cholesky does.
  double lam_est;
  if (a <= 400) {
    Eigen::SelfAdjointEigenSolver<Mat> es(S.selfadjointView<Eigen::Lower>(), Eigen::EigenvaluesOnly);
    lam_est = es.info() == Eigen::Success ? es.eigenvalues()(0) : -s_scale;
  } else {
    lam_est = detail::estimate_lambda_min(S);
  }
  double alpha = std::max(0.0, -lam_est) * (1.0 + 1e-9) + 1e-14 * s_scale;
  for (int attempt = 0; attempt < 40 && std::isfinite(alpha); ++attempt) {
    const double b = try_shift(alpha);
    if (b < inf) return b;
    alpha = 2.0 * alpha + 1e-10 * s_scale;
  }
  return inf;
}

namespace detail {

// Rows of X scaled to unit length (a zero row becomes e_1: any unit vector is a valid factor row); returns the norms.
inline Vec normalize_rows(Mat& X) {
  Vec norms = X.rowwise().norm();
  for (Index i = 0; i < X.rows(); ++i) {
    if (norms(i) > 0.0 && std::isfinite(norms(i))) {
      X.row(i) /= norms(i);
    } else {
      X.row(i).setZero();
      X(i, 0) = 1.0;
    }
  }
  return norms;
}

}  // namespace detail

/// @brief Solves one bipartite SDP (see the top of this file) and proves an upper bound on its value.
/// @param G          the a x d matrix (finite; balanced by the caller so that max|G| is near 1)
/// @param threshold  the value the caller needs the bound below (+inf: solve to rel_tol)
/// @param problem    index of the problem in its batch: the start is drawn from opt.seed + problem
inline BipartiteSdpResult solve_bipartite_sdp(const Mat& G, double threshold, const BipartiteSdpOptions& opt,
                                              uint64_t problem = 0) {
  BipartiteSdpResult out;
  const Index a = G.rows(), d = G.cols();
  if (a == 0 || d == 0 || G.cwiseAbs().maxCoeff() == 0.0) {  // the form is identically 0
    out.upper = 0.0;
    out.lower = 0.0;
    out.status = 0 < threshold ? 1 : 2;
    return out;
  }
  const Index r = std::max<Index>(1, std::min<Index>(opt.rank, a + d));
  std::mt19937_64 rng(opt.seed + problem);
  std::normal_distribution<double> normal(0.0, 1.0);
  Mat RA(a, r), RB(d, r);
  for (Index j = 0; j < r; ++j)
    for (Index i = 0; i < a; ++i) RA(i, j) = normal(rng);
  detail::normalize_rows(RA);
  Mat GA = G.transpose() * RA, GB(a, r), target;
  // Over-relaxed block updates: each block moves omega times the way to its exact maximiser (then renormalised).
  // omega = 1.7 took 17 sweeps where the plain updates took 93 on an sdp-nn problem; should the value ever drop,
  // the solve falls back to the plain (monotone) updates.
  double omega = opt.omega;
  double previous = -std::numeric_limits<double>::infinity();
  int last_proof = 0;
  for (int sweep = 1; sweep <= opt.max_sweeps; ++sweep) {
    target = GA;
    detail::normalize_rows(target);
    if (sweep == 1) RB = target;
    else RB += omega * (target - RB);
    detail::normalize_rows(RB);
    GB.noalias() = G * RB;
    const Vec cA = 0.5 * GB.rowwise().norm();  // the dual of the A rows given R_B: ||(M R)_i||
    target = GB;
    detail::normalize_rows(target);
    RA += omega * (target - RA);
    detail::normalize_rows(RA);
    GA.noalias() = G.transpose() * RA;
    Vec cB = 0.5 * GA.rowwise().norm();        // and of the B rows given R_A
    out.sweeps = sweep;
    out.lower = RA.cwiseProduct(GB).sum();     // <M, R R^T> for the factor (R_A, R_B)
    if (out.lower < previous) omega = 1.0;
    previous = out.lower;
    if (out.lower >= threshold) {
      out.status = 2;
      return out;
    }
    // A proof costs a few sweeps: try one only when the unproven dual value sum(c) says it may settle the question
    // (below the threshold, or within rel_tol of the primal value), and every 50 sweeps regardless.
    const double dual_estimate = cA.sum() + cB.sum();
    const bool promising = (std::isfinite(threshold) && dual_estimate < threshold) ||
                           dual_estimate - out.lower <= opt.rel_tol * std::abs(dual_estimate);
    if (!(promising && sweep >= last_proof + 3) && sweep < last_proof + 50 && sweep != opt.max_sweeps) continue;
    last_proof = sweep;
    const double floor = 1e-12 * std::max(cB.maxCoeff(), 1e-300);
    for (Index l = 0; l < d; ++l) cB(l) = std::max(cB(l), floor);  // any positive cB is a valid dual
    const double bound = prove_bipartite_upper(G, cA, cB);
    out.proofs += 1;
    if (bound < out.upper) out.upper = bound;
    if (std::isfinite(threshold) && out.upper < threshold) {
      out.status = 1;
      return out;
    }
    if (out.upper - out.lower <= opt.rel_tol * std::abs(out.upper)) {
      out.status = 0;
      return out;
    }
  }
  out.status = 3;
  return out;
}

/// @brief Many bipartite SDPs at once, `threads` OpenMP threads across problems (0: all); each problem is solved by
/// the same sequential code whatever the thread count, so results do not depend on it. `starts` (optional, one per
/// problem): the value that replaces the problem's index in its start (opt.seed + starts[p]), so that a problem gets
/// the same start in whatever batch it is solved.
inline std::vector<BipartiteSdpResult> solve_bipartite_sdps(const std::vector<Mat>& Gs, const Vec& thresholds,
                                                            const BipartiteSdpOptions& opt, int threads,
                                                            const std::vector<uint64_t>* starts = nullptr) {
  std::vector<BipartiteSdpResult> out(Gs.size());
  std::vector<char> refused(Gs.size(), 0);
  auto start_of = [&](size_t p) { return starts ? (*starts)[p] : static_cast<uint64_t>(p); };
  parallel_for_pairs(static_cast<long>(Gs.size()), threads, [&](long p) {
    if (!gradual_underflow()) {  // this worker flushes subnormals: it could prove nothing (fp_environment.hpp)
      refused[p] = 1;
      return;
    }
    out[p] = solve_bipartite_sdp(Gs[p], thresholds(p), opt, start_of(p));
  });
  // Those problems run on this thread, which computes them the same way (or proves nothing either: +inf).
  for (size_t p = 0; p < Gs.size(); ++p)
    if (refused[p]) out[p] = solve_bipartite_sdp(Gs[p], thresholds(p), opt, start_of(p));
  return out;
}

}  // namespace sdpcert
