// The pair SDP  S = max <M, P>  s.t.  P >= 0, diag(P) = 1  (docs/design.md §2) by a low-rank factor P = U U^T with
// unit rows (Burer-Monteiro; the block-coordinate "mixing method" of Wang, Chang & Kolter), then a rigorous upper
// bound (docs/design.md §3 for the solver, §4 for the proof).
//
// M is bipartite: the (1, s) rows (U1, size 1+m) only talk to the t rows (U2, size d) through B = W^T diag(v)[1 I].
// With U1 fixed, <M, UU^T> = 2 tr(U2^T B U1) is maximised over unit rows exactly by U2 = rownormalise(B U1); then
// U1 = rownormalise(B^T U2). Each update is over-relaxed (omega = 1.8). A sweep is two GEMMs with W (m d r
// multiply-adds each); the first sweeps run them in float32, the later ones mostly as float32 products of the change
// since the last float64 sweep (SweepPrecision: float64 accuracy at float32 speed).
// One sweep also yields the primal value 2 sum_l ||(B U1)_l|| (the value of a feasible factor: a lower bound on S)
// and the dual vector c_k = ||(M U)_k|| that matches it at the optimum.
// The certified upper bound is proven from c by certify_bound.hpp (lambda_max_upper_bound: a shifted Cholesky of a
// Schur complement, every rounding bounded), in the form S <= sum max(c, 0) + (1 + m) a + D e_v.
// The rank grows when the factor uses all its columns early on (factor_uses_every_column: robust nets' pairs, from
// sweep 4), or when the proven bound stays far from a stalled primal (a rank-deficient local optimum of the
// factorised problem is global, so growing the rank is what removes a spurious stall).
// On the hard pairs (the rank grew, or past kAndersonAfter sweeps: a robust-trained net's pairs) each sweep after
// the float32 phase is followed by an Anderson step that mixes the last `anderson` sweeps (anderson_step). The first
// proof is tried once the proxy gap is below kFirstProofProxy * rel_tol; after a failed one, the next is tried as
// soon as the proxy gap has fallen as far as the last proven gap says it must (prove()). None of this changes what
// the numbers mean: every factor is feasible and every upper bound goes through the proof.
// Entry points: solve_pair_sdps (many pairs of one network: balancing, grouped batched solves, mapping back) and
// solve_pair_sdp (one pair, as given); PairSolver and solve_pairs are the machinery under them.
#pragma once

#include <chrono>
#include <random>
#include <vector>

#include "certify_bound.hpp"
#include "fp_environment.hpp"
#include "lanczos.hpp"
#include "parallel.hpp"
#include "scaling.hpp"

namespace sdpcert {

enum class SdpStatus : int { converged = 0, max_sweeps = 1, zero_pair = 2, not_certified = 3 };

// How one sweep computes its two products with W.
//   float32: in float32 (the first phase: ~1e-7 relative noise, no proof and no lower bound from it);
//   exact:   in float64; the sweep's inputs and products are kept as the reference of the refined sweeps after it;
//   refined: the reference product plus a float32 product of the CHANGE since the reference,
//            G = G_ref + fl32(W^T (Y - Y_ref)). Its rounding error is ~1e-7 of |W|^T |Y - Y_ref|, not of |W|^T |Y|:
//            near the optimum, where the inputs barely move between exact sweeps, far below what the proof can see
//            (measured: the same sweeps and bounds as float64 sweeps), at the float32 GEMM's speed (2-2.5x).
// Every check_every-th sweep is exact (it re-anchors the reference), and only exact sweeps set the lower bound.
enum class SweepPrecision : int { float32 = 0, refined = 1, exact = 2 };

inline const char* sdp_status_name(SdpStatus s) {
  switch (s) {
    case SdpStatus::converged: return "converged";
    case SdpStatus::max_sweeps: return "max_sweeps";
    case SdpStatus::zero_pair: return "zero_pair";
    case SdpStatus::not_certified: return "not_certified";
  }
  return "unknown";
}

struct SdpOptions {
  double rel_tol = 1e-6;   // target (upper - lower) / upper
  int max_sweeps = 3000;
  int rank = 8;            // initial factor rank (doubled on a rank-deficient stall, up to max_rank)
  int max_rank = 0;        // 0: ceil(sqrt(2 D)) (Barvinok-Pataki: an optimal P of that rank exists)
  int check_every = 10;    // sweeps between convergence checks
  double relaxation = 1.8; // over-relaxation of each block update (1: plain block-coordinate ascent)
  bool float32_start = true;  // first sweeps with float32 GEMMs (2x their speed) until the proxy gap is < 1e-7
  bool refined_sweeps = true;  // after them, float32 GEMMs of the change since the last exact sweep (see below)
  int anderson = 5;        // Anderson acceleration of the sweeps: memory (past sweeps mixed); 0: plain sweeps
  bool proof_schedule = true;  // after a failed proof, prove again as soon as the proxy gap predicts success
  uint64_t seed = 0;
};

struct SdpResult {
  double lower = 0.0;        // <M, U U^T> of a feasible factor: S >= lower
  double upper = std::numeric_limits<double>::infinity();  // proven: S <= upper
  Vec c;                     // the dual vector of the bound (empty if none was proven)
  double lambda_bound = std::numeric_limits<double>::infinity();  // proven lambda_max(M - diag c) <= this
  Mat U;                     // the final factor (D x rank), unit rows: a warm start for later solves
  int sweeps = 0;
  int rank = 0;
  int proof_attempts = 0;
  double seconds = 0.0;
  SdpStatus status = SdpStatus::not_certified;
  double gap() const { return upper - lower; }
};

namespace detail {

template <class Fallback>
inline void normalise_rows(Mat& X, const Fallback& fallback) {
  // Column by column (X is column-major): the squared row norms, then one scaling pass; both vectorise, where a
  // row at a time strides across r cache lines. Rows whose norm is 0, tiny (its square underflows) or non-finite
  // take the careful per-row path.
  Vec n2 = X.col(0).array().square().matrix();
  for (Index j = 1; j < X.cols(); ++j) n2.array() += X.col(j).array().square();
  Vec inv(X.rows());
  bool careful = false;
  for (Index i = 0; i < X.rows(); ++i) {
    const double q = n2(i);
    if (q > 1e-280 && q < 1e280) inv(i) = 1.0 / std::sqrt(q);
    else { inv(i) = 1.0; careful = true; }
  }
  for (Index j = 0; j < X.cols(); ++j) X.col(j).array() *= inv.array();
  if (!careful) return;
  for (Index i = 0; i < X.rows(); ++i) {
    const double q = n2(i);
    if (q > 1e-280 && q < 1e280) continue;
    const double n = X.row(i).norm();
    if (n > 0 && std::isfinite(n)) X.row(i) /= n;
    else X.row(i) = fallback.row(i);  // a zero row of B: any unit row is optimal, keep the old one
  }
}

}  // namespace detail

// One pair's state in the batched solver. The driver (solve_pairs_batched) packs every active pair's r columns side by
// side so that each half-sweep is ONE GEMM with W for all pairs (wide GEMMs run at ~2.5x the speed of r = 8 ones);
// the per-pair work between the GEMMs is O((m + d) r).
constexpr double kFullColumnRatio = 1e-2;  // see PairSolver::factor_uses_every_column
// The first rank check, a few sweeps from a random start: measured at sweep 4 (rank 8), the Gram ratio was 0.9e-2 ..
// 1.4e-2 on the 45 pairs of a cross-entropy and of a PGD-trained net and 4.9e-2 .. 0.13 on the packaged SDP-NN's;
// those grow to rank 16 there instead of at sweep 10 (measured: 10% fewer sweeps on the SDP-NN). A pair it misses
// is caught by the later checks.
constexpr int kEarlyRankCheckSweep = 4;
constexpr double kEarlyFullColumnRatio = 3e-2;
// The first proof is tried as soon as the proxy gap |sum c - lower| / sum c falls below this times rel_tol, on any
// float64 sweep (the proof schedule's first target). Measured at rel_tol 1e-6 on the 45 pairs of nt / at / sdp-nn:
// first proofs succeeded at proxy gaps 3e-15 .. 3e-12 and failed at 1e-12 .. 1e-10; at 3e-6 the proofs per pair fell
// from 1.4 / 1.4 / 1.8 to 1.2 / 1.1 / 1.2 for +/- 4% sweeps (a proof costs ~8 float64 sweeps at rank 16).
constexpr double kFirstProofProxy = 3e-6;
constexpr int kRankCheckSweeps = 20;
constexpr int kAndersonAfter = 60;
// Anderson steps stop for good after this many float64 sweeps whose primal value dropped (an extrapolation that
// hurt): measured on a factor warm-started from another pair, where the steps kept the gap at 2e-3 for 1000 sweeps.
constexpr int kAndersonMaxDrops = 3;

class PairSolver {
 public:
  PairSolver(const Mat& W, Vec Vi, Vec Vj, const SdpOptions& opt, const Mat* warm,
             const WeightFacts* facts = nullptr)
      : W_(W), facts_(facts), Vi_(std::move(Vi)), Vj_(std::move(Vj)), opt_(opt),
        rng_(opt.seed * 0x9E3779B97F4A7C15ULL + 12345) {
    t0_ = std::chrono::steady_clock::now();
    m_ = W.rows();
    d_ = W.cols();
    D_ = pair_dim(m_, d_);
    v_ = Vi_ - Vj_;
    max_rank_ = opt.max_rank > 0 ? opt.max_rank : static_cast<int>(std::ceil(std::sqrt(2.0 * D_)));
    low_precision_ = opt.float32_start && warm == nullptr;
    next_rank_check_ = opt.check_every;
    if (opt.proof_schedule) target_proxy_ = kFirstProofProxy * opt.rel_tol;
    r_ = std::max(1, std::min(opt.rank, max_rank_));
    c_.resize(D_);
    if (v_.cwiseAbs().maxCoeff() == 0.0) {
      // fl(a - b) == 0 only if a == b: M is exactly zero, S = 0 with the dual c = 0 (diag(0) - 0 is PSD).
      res_.lower = res_.upper = 0.0;
      res_.c = Vec::Zero(D_);
      res_.lambda_bound = 0.0;
      res_.status = SdpStatus::zero_pair;
      done_ = true;
      return;
    }
    if (warm != nullptr && warm->rows() == D_ && warm->cols() >= 1 && warm->allFinite()) {
      // No Anderson steps from a warm start: measured on factors of other pairs, they often needed more sweeps
      // than plain ones (a warm start from the pair's own factor has little left to accelerate).
      aa_drops_ = kAndersonMaxDrops;
      r_ = static_cast<int>(warm->cols());
      U1_ = warm->topRows(1 + m_);
      U2_ = warm->bottomRows(d_);
      detail::normalise_rows(U1_, random_rows(1 + m_, r_));
      detail::normalise_rows(U2_, random_rows(d_, r_));
    } else {
      U1_ = random_rows(1 + m_, r_);
      U2_ = random_rows(d_, r_);
    }
  }

  bool done() const { return done_; }
  int rank() const { return r_; }

  // Decides how the coming sweep computes its products (SweepPrecision); called once at the start of each sweep.
  SweepPrecision begin_sweep() {
    const int next = sweep_ + 1;
    if (low_precision_) precision_ = SweepPrecision::float32;
    else if (!opt_.refined_sweeps || !reference_valid_ || next % opt_.check_every == 0 || next >= opt_.max_sweeps)
      precision_ = SweepPrecision::exact;
    else precision_ = SweepPrecision::refined;
    return precision_;
  }

  // This sweep's inputs of the G product (Y) and of the H product (U2), and the completion of each product. Refined
  // sweeps multiply the change since the reference (and add the reference's product back); exact sweeps make their
  // input and product the new reference; float32 sweeps use neither.
  template <class Block>
  void write_G_input(Block out) { write_input(Y(), Y_ref_, out); }
  template <class Block>
  void write_H_input(Block out) { write_input(U2_, U2_ref_, out); }
  template <class Block>
  void take_G_product(const Block& P) { take_G(completed(P, G_ref_)); }
  template <class Block>
  bool take_H_product(const Block& P) {
    const Mat H = completed(P, H_ref_);
    if (precision_ == SweepPrecision::exact) reference_valid_ = true;
    return take_H(H);
  }

  // Y = diag(v) (Us + 1 u0^T): then B U1 = W^T Y.
  Mat Y() const { return v_.asDiagonal() * (U1_.bottomRows(m_).rowwise() + U1_.row(0)); }

  // G = B U1 (d x r): primal value, t-part of c, and the t-row update. The exact block maximiser is
  // T = rownormalise(G); we move past it, U2 = rownormalise(U2 + omega (T - U2)) (over-relaxation: on MNIST pairs
  // omega = 1.8 cut the sweeps to a 1e-6 gap from 80-560 to <= 60, measured). 2 sum_l ||G_l|| is the value of the
  // feasible factor [U1; T], so it stays a valid lower bound whatever omega is.
  template <class Block>
  void take_G(const Block& G) {
    if (opt_.anderson > 0 && aa_drops_ < kAndersonMaxDrops &&
        (r_ > opt_.rank || sweep_ + 1 >= kAndersonAfter) && !low_precision_) {  // input of an Anderson step
      x_in_.resize(D_ * r_);
      Eigen::Map<Mat>(x_in_.data(), 1 + m_, r_) = U1_;
      Eigen::Map<Mat>(x_in_.data() + (1 + m_) * r_, d_, r_) = U2_;
    }
    g_norm_ = G.rowwise().norm();
    lower_ = 2.0 * g_norm_.sum();
    Mat U2_new = G;
    detail::normalise_rows(U2_new, U2_);
    relax(U2_new, U2_);
    U2_.swap(U2_new);
  }

  // H = W U2 (m x r): (1, s)-part of c and the exact (1, s)-row update. Returns true if a proof is due now.
  template <class Block>
  bool take_H(const Block& H) {
    sweep_ += 1;
    const Eigen::RowVectorXd h0 = v_.transpose() * H;
    Mat U1_new(1 + m_, r_);
    U1_new.row(0) = h0;
    U1_new.bottomRows(m_) = v_.asDiagonal() * H;
    c_(0) = h0.norm();
    c_.segment(1, m_) = U1_new.bottomRows(m_).rowwise().norm();
    c_.tail(d_) = g_norm_;
    if (!c_.allFinite() || !std::isfinite(lower_)) {
      // An overflow in the products with W (data too large even after the entry point's balancing, e.g. a dynamic
      // range wider than the double range). In float32 it only says the range was too narrow: go on in float64.
      // In float64 no proof can come from a non-finite c (the proof refuses it) and the sweeps would only repeat
      // it: stop now, unproven (upper = inf), rather than sweep on inf/NaN until max_sweeps.
      if (low_precision_) {
        low_precision_ = false;
        return false;
      }
      if (precision_ == SweepPrecision::refined) {  // the change overflowed in float32: an exact sweep next
        reference_valid_ = false;
        return false;
      }
      finish();
      return false;
    }
    // Only exact (float64) sweeps may set the lower bound: a float32 G misstates the feasible point's value by
    // ~1e-7, and a refined one by a little (see SweepPrecision).
    if (precision_ == SweepPrecision::exact) best_lower_ = std::max(best_lower_, lower_);
    detail::normalise_rows(U1_new, U1_);
    relax(U1_new, U1_);
    U1_.swap(U1_new);
    // Anderson only on the hard instances: those whose rank had to grow, or still sweeping after kAndersonAfter
    // sweeps. On the easy ones (a cross-entropy net's pairs, ~50 sweeps at the initial rank) its memory traffic
    // cost more than the sweeps it saved (measured). And only after the float32 phase: on the packaged SDP-NN,
    // whose pairs grow their rank at sweep 4, steps during it cost 5% more sweeps, not fewer (measured).
    if (opt_.anderson > 0 && aa_drops_ < kAndersonMaxDrops && !low_precision_ &&
        (r_ > opt_.rank || sweep_ >= kAndersonAfter))
      anderson_step();
    const bool last = sweep_ >= opt_.max_sweeps;
    if (low_precision_ && sweep_ == kEarlyRankCheckSweep && r_ < max_rank_ && !last &&
        factor_uses_every_column(kEarlyFullColumnRatio)) {
      grow_rank(1.0);
      prev_check_lower_ = -std::numeric_limits<double>::infinity();
      return false;
    }
    if (!(sweep_ % opt_.check_every == 0 || last)) {
      // Between checks, only a scheduled proof (see prove()): its proxy-gap target costs one sum per sweep.
      if (low_precision_ || !(target_proxy_ > 0.0) || sweep_ < last_proof_sweep_ + 2) return false;
      const double sum_c = c_.sum();
      const double proxy = std::abs(sum_c - lower_) / std::max(std::abs(sum_c), 1e-300);
      if (!(proxy <= target_proxy_)) return false;
      proxy_gap_ = proxy;
      return true;
    }
    if (low_precision_) {
      // The float32 phase only gets the factor close; no proof from its c (its rounding noise, ~1e-7 relative,
      // is above what a 1e-6 gap allows in lambda). Switch to float64 once the proxy gap reaches that noise.
      const double sum_c = c_.sum();
      const double proxy = std::abs(sum_c - lower_) / std::max(std::abs(sum_c), 1e-300);
      if (sweep_ >= next_rank_check_ && r_ < max_rank_) {
        next_rank_check_ = sweep_ + kRankCheckSweeps;
        if (factor_uses_every_column()) {
          grow_rank(1.0);
          prev_check_lower_ = -std::numeric_limits<double>::infinity();
          if (!last) return false;
        }
      }
      if (proxy <= 2e-8 || sweep_ >= opt_.max_sweeps / 2 || (lower_ - prev_check_lower_) <= 1e-7 * std::abs(lower_)) {
        low_precision_ = false;
        aa_count_ = 0;  // float32 sweeps are a different map: start the Anderson history afresh
      }
      prev_check_lower_ = lower_;
      if (!last) return false;
    }
    const double sum_c = c_.sum();  // equals lower at a stationary point
    proxy_gap_ = std::abs(sum_c - lower_) / std::max(std::abs(sum_c), 1e-300);
    stalled_ = (lower_ - prev_check_lower_) <= 1e-3 * opt_.rel_tol * std::abs(lower_);
    prev_check_lower_ = lower_;
    // The proxy gap underestimates the square of the true gap (see prove()), hence kFirstProofProxy; the stall
    // rule covers pairs whose proxy never gets there.
    if (target_proxy_ > 0.0 && proxy_gap_ <= target_proxy_ && sweep_ >= last_proof_sweep_ + 2) return true;
    return last || ((proxy_gap_ <= kFirstProofProxy * opt_.rel_tol || stalled_) && sweep_ >= next_proof_sweep_);
  }

  // Proves an upper bound from the current c; decides convergence or a rank increase. Thread-safe per pair.
  void prove(int threads = 1) {
    // Without gradual underflow on this thread no proof can succeed (prove_lambda_min_lower refuses it,
    // fp_environment.hpp), and it will not come back: stop unproven now instead of sweeping on to max_sweeps.
    if (!gradual_underflow()) {
      finish();
      return;
    }
    res_.proof_attempts += 1;
    const double budget = opt_.rel_tol * std::abs(c_.sum());  // allowed (upper - lower)
    // First the cheap test "does c already meet the budget with a (1, s)-block shift costing 0.9 of it?" (the
    // primal gap is ~1e-12 relative when a proof is tried, so the shift is what the budget pays for); the full search
    // (Lanczos on the Schur complement) only on the last sweep or when the primal has stalled, where its result
    // decides between stopping and growing the rank.
    const bool full = sweep_ >= opt_.max_sweeps || (stalled_ && proxy_gap_ <= 1e-4 * opt_.rel_tol);
    last_proof_sweep_ = sweep_;
    const double hint = 0.9 * budget / static_cast<double>(1 + m_);
    LambdaBound lb =
        lambda_max_upper_bound(W_, Vi_, Vj_, c_, std::numeric_limits<double>::quiet_NaN(), hint, !full, threads,
                               facts_);
    if (lb.certified) {
      const double up = std::min(lb.sdp_upper, dual_objective_rounded_up(lb.bound, c_));
      if (up < res_.upper) {
        res_.upper = up;
        res_.c = c_;
        res_.lambda_bound = lb.bound;
      }
    }
    if (res_.upper - best_lower_ <= budget) {
      res_.status = SdpStatus::converged;
      finish();
      return;
    }
    if (sweep_ >= opt_.max_sweeps) {
      finish();
      return;
    }
    next_proof_sweep_ = sweep_ + std::max(opt_.check_every, sweep_ / 4);
    if (opt_.proof_schedule) {
      // Near the optimum the proxy gap |sum c - lower| / sum c falls like the square of the factor's distance to it,
      // the proven gap like the distance: to cut the proven gap g to 0.7 of the budget, the proxy must fall by
      // (0.7 budget / g)^2. Unproven (no g): by 100. The fixed schedule above stays as the fallback.
      const double g = (res_.upper - best_lower_) / std::max(std::abs(c_.sum()), 1e-300);
      const double ratio = std::isfinite(g) && g > 0 ? std::pow(0.7 * opt_.rel_tol / g, 2) : 1e-2;
      target_proxy_ = proxy_gap_ * std::min(0.5, ratio);
    }
    const double excess = lb.certified ? static_cast<double>(D_) * lb.bound : std::numeric_limits<double>::infinity();
    if (stalled_ && proxy_gap_ <= 1e-4 * opt_.rel_tol && excess > 100.0 * budget && r_ < max_rank_) {
      grow_rank();  // rank-deficient stall
      next_proof_sweep_ = sweep_ + opt_.check_every;
      // Anderson steps converge to any fixed point of the sweeps, saddles included, where plain sweeps are pushed
      // away from them: after a stall far from the optimum, plain sweeps only (measured: a factor warm-started from
      // another pair stalled at a 2e-3 gap with them while plain sweeps converged).
      aa_drops_ = kAndersonMaxDrops;
    }
  }

  // Does the factor use all r columns? Near an optimum of rank r* < r, U's Gram matrix has r - r* tiny eigenvalues;
  // when even its smallest is not small (here: 1e-2 of the largest) the solution wants more rank than r.
  // Measured at sweep 20, rank 8: a cross-entropy net's 45 pairs have ratios 1e-5 (they finish at rank 8 in ~50
  // sweeps), an SDP-trained net's 2e-4 .. 0.11, median 0.04: their optima have high rank (the duals' top eigenvalues
  // cluster), and at rank 8 they needed ~300 sweeps per pair before the stall rule in prove() grew the rank. Checked
  // at sweep kEarlyRankCheckSweep (with its own ratio), then at sweep check_every and every kRankCheckSweeps after,
  // during the float32 phase.
  bool factor_uses_every_column(double ratio = kFullColumnRatio) const {
    const Mat gram = U1_.transpose() * U1_ + U2_.transpose() * U2_;
    Eigen::SelfAdjointEigenSolver<Mat> es(gram, Eigen::EigenvaluesOnly);
    return es.eigenvalues()(0) > ratio * es.eigenvalues()(r_ - 1);
  }

  // Doubles the rank (up to max_rank) with random columns of size `scale` relative to the old ones (rows are then
  // renormalised). Small (1e-3): the value <M, UU^T> barely moves, for a stall near the optimum. Full size (1):
  // early in the solve; measured on an SDP-trained net, tiny new columns needed 2-3x the sweeps of full ones.
  void grow_rank(double scale = 1e-3) {
    const int r_new = std::min(2 * r_, max_rank_);
    Mat U1g(1 + m_, r_new), U2g(d_, r_new);
    U1g.leftCols(r_) = U1_;
    U1g.rightCols(r_new - r_) = scale * random_rows(1 + m_, r_new - r_);
    U2g.leftCols(r_) = U2_;
    U2g.rightCols(r_new - r_) = scale * random_rows(d_, r_new - r_);
    detail::normalise_rows(U1g, U1g);
    detail::normalise_rows(U2g, U2g);
    U1_.swap(U1g);
    U2_.swap(U2g);
    r_ = r_new;
    reference_valid_ = false;
    aa_count_ = 0;
    // A new factor: the old proxy-to-gap relation no longer holds, back to the first target.
    target_proxy_ = opt_.proof_schedule ? kFirstProofProxy * opt_.rel_tol : 0.0;
  }

  void finish() {
    done_ = true;
    res_.lower = best_lower_;
    res_.sweeps = sweep_;
    res_.rank = r_;
    res_.U.resize(D_, r_);
    res_.U.topRows(1 + m_) = U1_;
    res_.U.bottomRows(d_) = U2_;
    if (res_.status != SdpStatus::converged && res_.status != SdpStatus::zero_pair)
      res_.status = std::isfinite(res_.upper) ? SdpStatus::max_sweeps : SdpStatus::not_certified;
    res_.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0_).count();
  }

  const SdpResult& result() const { return res_; }

 private:
  template <class Block>
  void write_input(const Mat& now, Mat& ref, Block out) {
    if (precision_ == SweepPrecision::refined) {
      out = (now - ref).template cast<typename Block::Scalar>();
      return;
    }
    if (precision_ == SweepPrecision::exact) ref = now;
    out = now.template cast<typename Block::Scalar>();
  }

  template <class Block>
  Mat completed(const Block& P, Mat& ref) const {
    Mat product = P.template cast<double>();
    if (precision_ == SweepPrecision::refined) product += ref;
    else if (precision_ == SweepPrecision::exact) ref = product;
    return product;
  }

  // Anderson acceleration (type II) of the sweep map F: x -> x' on the stacked factor x = [U1; U2]. With the last
  // `anderson` differences of outputs dG and of residuals dF (f = F(x) - x), the next factor is
  // F(x) - dG gamma, gamma = argmin ||f - dF gamma|| (normal equations, slightly regularised), rows renormalised.
  // Any unit-row factor is feasible, so this only changes the path, never what the bounds mean (the primal value is
  // always that of a feasible factor, the dual c goes through the proof). If the primal value drops, the history is
  // dropped (a bad extrapolation); the history restarts after a rank change and after the float32 phase.
  void anderson_step() {
    const Index n = D_ * r_, n1 = (1 + m_) * r_;
    const int mem = opt_.anderson;
    if (x_in_.size() != n) return;
    const bool dropped = aa_count_ > 0 && lower_ < aa_prev_lower_ - 1e-9 * std::abs(aa_prev_lower_);
    aa_prev_lower_ = lower_;
    if (dropped && !low_precision_ && ++aa_drops_ >= kAndersonMaxDrops) return;  // not helping here: plain sweeps
    if (dropped || aa_dG_.rows() != n || aa_dG_.cols() != mem) {
      aa_count_ = 0;
      if (aa_dG_.rows() != n || aa_dG_.cols() != mem) {
        aa_dG_.resize(n, mem);
        aa_dF_.resize(n, mem);
        aa_gram_.resize(mem, mem);
        aa_g_.resize(n);
        aa_f_.resize(n);
        aa_rhs_.resize(mem);
      }
    }
    // g = F(x) = [U1; U2] now, f = g - x. One fused pass writes the new differences into the ring buffers'
    // slot (dG = g - g_prev, dF = f - f_prev) and keeps g, f for the next sweep; the Gram column of the new dF and
    // the right-hand side dF^T f then take one pass over the stored dF (workspace reused, nothing allocated).
    const double* u1 = U1_.data();
    const double* u2 = U2_.data();
    const double* xin = x_in_.data();
    double* gp = aa_g_.data();
    double* fp = aa_f_.data();
    const int k = std::min(aa_count_, mem);  // stored differences after this sweep
    if (aa_count_ == 0) {
      for (Index i = 0; i < n1; ++i) gp[i] = u1[i];
      for (Index i = n1; i < n; ++i) gp[i] = u2[i - n1];
      for (Index i = 0; i < n; ++i) fp[i] = gp[i] - xin[i];
      aa_count_ = 1;
      return;
    }
    const int slot = (aa_count_ - 1) % mem;
    float* dg = aa_dG_.col(slot).data();
    float* df = aa_dF_.col(slot).data();
    // Chunks of kChunk entries, so that each stored column is read once per sweep while the chunk of the new
    // differences and of f is still in L1: first the fused update of the new slot together with the Gram column
    // dF^T dF_slot and the right-hand side dF^T f, then (below) U <- g - dG gamma. Measured: the column-at-a-time
    // version (2k + 3k passes over memory for k stored columns) cost ~15% of a robust net's solve.
    constexpr Index kChunk = 512;
    Vec gram_col = Vec::Zero(k), rhs = Vec::Zero(k);
    alignas(64) double df_buf[kChunk], col_buf[kChunk];  // a chunk widened to double, on the stack: nothing allocated per chunk
    auto fuse_and_dot = [&](const double* u, Index lo, Index hi) {
      for (Index c0 = lo; c0 < hi; c0 += kChunk) {
        const Index c1 = std::min(hi, c0 + kChunk);
        for (Index i = c0; i < c1; ++i) {
          const double gi = u[i - lo];
          const double fi = gi - xin[i];
          dg[i] = static_cast<float>(gi - gp[i]);
          df[i] = static_cast<float>(fi - fp[i]);
          gp[i] = gi;
          fp[i] = fi;
        }
        // Eigen's dot products: a plain loop's sum would not vectorise without -ffast-math (never used here).
        const Index len = c1 - c0;
        Eigen::Map<Vec> df_chunk(df_buf, len), col(col_buf, len);
        df_chunk = Eigen::Map<const Eigen::VectorXf>(df + c0, len).cast<double>();
        const Eigen::Map<const Vec> f_chunk(fp + c0, len);
        for (int q = 0; q < k; ++q) {
          col = Eigen::Map<const Eigen::VectorXf>(aa_dF_.col(q).data() + c0, len).cast<double>();
          gram_col(q) += col.dot(df_chunk);
          rhs(q) += col.dot(f_chunk);
        }
      }
    };
    fuse_and_dot(u1, 0, n1);
    fuse_and_dot(u2, n1, n);
    for (int i = 0; i < k; ++i) aa_gram_(i, slot) = aa_gram_(slot, i) = gram_col(i);
    aa_rhs_.head(k) = rhs;
    aa_count_ += 1;
    Mat A = aa_gram_.topLeftCorner(k, k);
    A.diagonal().array() += 1e-10 * A.trace() / k + 1e-300;
    const Vec gamma = A.ldlt().solve(aa_rhs_.head(k));
    if (!gamma.allFinite()) {
      aa_count_ = 0;
      return;
    }
    // U <- g - dG gamma (U holds g), rows renormalised below; a row that vanished keeps g's row.
    auto update = [&](double* u, Index lo, Index hi) {
      for (Index c0 = lo; c0 < hi; c0 += kChunk) {
        const Index c1 = std::min(hi, c0 + kChunk);
        Eigen::Map<Vec> u_chunk(u + (c0 - lo), c1 - c0);
        for (int q = 0; q < k; ++q)
          u_chunk -= gamma(q) * Eigen::Map<const Eigen::VectorXf>(aa_dG_.col(q).data() + c0, c1 - c0).cast<double>();
      }
    };
    update(U1_.data(), 0, n1);
    update(U2_.data(), n1, n);
    detail::normalise_rows(U1_, Eigen::Map<const Mat>(gp, 1 + m_, r_));
    detail::normalise_rows(U2_, Eigen::Map<const Mat>(gp + n1, d_, r_));
  }

  // target <- rownormalise(old + omega (target - old)); target rows are unit, so the result is never zero.
  void relax(Mat& target, const Mat& old) const {
    if (opt_.relaxation == 1.0) return;
    target = old + opt_.relaxation * (target - old);
    detail::normalise_rows(target, old);
  }

  Mat random_rows(Index rows, Index cols) {
    std::normal_distribution<double> normal(0.0, 1.0);
    Mat X(rows, cols);
    for (Index j = 0; j < cols; ++j)
      for (Index i = 0; i < rows; ++i) X(i, j) = normal(rng_);
    for (Index i = 0; i < rows; ++i) X.row(i) /= X.row(i).norm();
    return X;
  }

  const Mat& W_;
  const WeightFacts* facts_;  // shared, may be null (then each proof computes its own)
  Vec Vi_, Vj_, v_;
  SdpOptions opt_;
  std::mt19937_64 rng_;
  std::chrono::steady_clock::time_point t0_;
  Index m_ = 0, d_ = 0, D_ = 0;
  int r_ = 1, max_rank_ = 1;
  Mat U1_, U2_;
  Vec c_, g_norm_;
  SweepPrecision precision_ = SweepPrecision::exact;  // of the sweep under way (begin_sweep)
  Mat Y_ref_, G_ref_, U2_ref_, H_ref_;  // the last exact sweep's inputs and products (SweepPrecision::refined)
  bool reference_valid_ = false;
  double lower_ = 0.0, best_lower_ = -std::numeric_limits<double>::infinity();
  double prev_check_lower_ = -std::numeric_limits<double>::infinity();
  double proxy_gap_ = 1.0;
  bool stalled_ = false, done_ = false, low_precision_ = false;
  int sweep_ = 0, next_proof_sweep_ = 0, next_rank_check_ = 0;
  Vec x_in_, aa_g_, aa_f_;   // Anderson: this sweep's input, last output and residual
  // Anderson: ring buffers of output and residual differences, in float32: they only steer the extrapolation (a
  // difference's rounding moves the next factor by ~1e-7 of the step, and every factor is feasible anyway), and
  // half their memory traffic was 1/3 of the steps' cost (measured).
  Eigen::MatrixXf aa_dG_, aa_dF_;
  Mat aa_gram_;              // Anderson: dF^T dF
  Vec aa_rhs_;               // Anderson: dF^T f
  int aa_count_ = 0, aa_drops_ = 0;
  double aa_prev_lower_ = 0.0;
  double target_proxy_ = 0.0;  // proof_schedule: prove when the proxy gap is below this (0: no target yet)
  int last_proof_sweep_ = -1000;
  SdpResult res_;
};

namespace detail {

// One GEMM, out = A^T X (G side) or A X (H side), as two row blocks of `out` (on two threads when `threads` >= 2):
// always split, so that the summation order, hence the result, does not depend on the thread count.
template <class WMat, class XMat, class OutMat>
void product_in_two(const WMat& A, bool transpose, const XMat& X, OutMat out, int threads) {
  if (X.cols() == 0) return;
  if (transpose) {
    const Index d = A.cols(), d1 = d / 2;
    run_two(threads, [&] { out.topRows(d1).noalias() = A.leftCols(d1).transpose() * X; },
            [&] { out.bottomRows(d - d1).noalias() = A.rightCols(d - d1).transpose() * X; });
  } else {
    const Index m = A.rows(), m1 = m / 2;
    run_two(threads, [&] { out.topRows(m1).noalias() = A.topRows(m1) * X; },
            [&] { out.bottomRows(m - m1).noalias() = A.bottomRows(m - m1) * X; });
  }
}

// The sweeps' GEMM operands, kept across sweeps: allocating them afresh each sweep (~1 MB each) cost page faults,
// 3% of a solve (measured).
struct SweepBuffers {
  std::vector<double> x64, p64;
  std::vector<float> x32, p32;
  template <class T>
  static Eigen::Map<Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic>> view(std::vector<T>& v, Index rows, Index cols) {
    if (static_cast<Index>(v.size()) < rows * cols) v.resize(static_cast<size_t>(rows * cols));
    return Eigen::Map<Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic>>(v.data(), rows, cols);
  }
};

// One sweep for the pairs `idx`: the pairs whose sweep is exact share one float64 GEMM per half-sweep, the others
// (float32 and refined sweeps, SweepPrecision) one float32 GEMM; the per-pair updates run in double. Pairs whose
// proof is due are appended to `due`.
inline void sweep_pairs(const Mat& W, Eigen::MatrixXf& Wf, const std::vector<PairSolver*>& solvers,
                        const std::vector<size_t>& idx, std::vector<size_t>& due, SweepBuffers& buf, int threads) {
  if (idx.empty()) return;
  const Index m = W.rows(), d = W.cols();
  const size_t n = idx.size();
  std::vector<char> in_f64(n);
  std::vector<Index> offset(n, 0), width(n, 0);
  Index cols64 = 0, cols32 = 0;
  for (size_t q = 0; q < n; ++q) {
    auto& s = *solvers[idx[q]];
    in_f64[q] = s.begin_sweep() == SweepPrecision::exact;
    width[q] = s.rank();
    Index& cols = in_f64[q] ? cols64 : cols32;
    offset[q] = cols;
    cols += width[q];
  }
  if (cols32 > 0 && Wf.size() == 0) Wf = W.cast<float>();
  {  // G side: inputs m x cols, products d x cols
    auto X64 = SweepBuffers::view(buf.x64, m, cols64);
    auto X32 = SweepBuffers::view(buf.x32, m, cols32);
    for (size_t q = 0; q < n; ++q) {
      auto& s = *solvers[idx[q]];
      if (in_f64[q]) s.write_G_input(X64.middleCols(offset[q], width[q]));
      else s.write_G_input(X32.middleCols(offset[q], width[q]));
    }
    product_in_two(W, true, X64, SweepBuffers::view(buf.p64, d, cols64), threads);
    product_in_two(Wf, true, X32, SweepBuffers::view(buf.p32, d, cols32), threads);
  }
  {  // H side: inputs d x cols, products m x cols
    const auto P64 = SweepBuffers::view(buf.p64, d, cols64);
    const auto P32 = SweepBuffers::view(buf.p32, d, cols32);
    auto X64 = SweepBuffers::view(buf.x64, d, cols64);
    auto X32 = SweepBuffers::view(buf.x32, d, cols32);
    for (size_t q = 0; q < n; ++q) {
      auto& s = *solvers[idx[q]];
      if (in_f64[q]) {
        s.take_G_product(P64.middleCols(offset[q], width[q]));
        s.write_H_input(X64.middleCols(offset[q], width[q]));
      } else {
        s.take_G_product(P32.middleCols(offset[q], width[q]));
        s.write_H_input(X32.middleCols(offset[q], width[q]));
      }
    }
    product_in_two(W, false, X64, SweepBuffers::view(buf.p64, m, cols64), threads);
    product_in_two(Wf, false, X32, SweepBuffers::view(buf.p32, m, cols32), threads);
  }
  const auto P64 = SweepBuffers::view(buf.p64, m, cols64);
  const auto P32 = SweepBuffers::view(buf.p32, m, cols32);
  for (size_t q = 0; q < n; ++q) {
    auto& s = *solvers[idx[q]];
    const bool proof_due = in_f64[q] ? s.take_H_product(P64.middleCols(offset[q], width[q]))
                                     : s.take_H_product(P32.middleCols(offset[q], width[q]));
    if (proof_due) due.push_back(idx[q]);
  }
}

}  // namespace detail

// Solves the pair SDPs of `solvers` together, on the calling thread: per sweep, one GEMM with W^T and one with W
// for all active pairs (two of each when some pairs sweep in float64 and others in float32), then the due proofs.
inline void solve_pairs_batched(const Mat& W, const std::vector<PairSolver*>& solvers, int threads = 1) {
  Eigen::MatrixXf Wf;
  detail::SweepBuffers buffers;
  std::vector<size_t> active, due;
  for (size_t p = 0; p < solvers.size(); ++p)
    if (!solvers[p]->done()) active.push_back(p);
  while (!active.empty()) {
    due.clear();
    detail::sweep_pairs(W, Wf, solvers, active, due, buffers, threads);
    for (size_t p : due) solvers[p]->prove(threads);
    std::vector<size_t> still;
    for (size_t p : active)
      if (!solvers[p]->done()) still.push_back(p);
    active.swap(still);
  }
}

/// @brief Solves one pair SDP for v = V_i - V_j on the calling thread, with the data as given (no balancing: see
///        solve_pair_sdps for weights far from magnitude 1).
/// @param warm  optional D x r factor with unit rows to start from, or nullptr
/// @code
///   SdpOptions opt;
///   const SdpResult r = solve_pair_sdp(W, V.row(i).transpose(), V.row(j).transpose(), opt, nullptr);
///   // r.lower <= S_ij <= r.upper (upper proven; +inf when not_certified)
/// @endcode
inline SdpResult solve_pair_sdp(const Mat& W, const Vec& Vi, const Vec& Vj, const SdpOptions& opt, const Mat* warm) {
  if (!gradual_underflow()) {  // no proof without gradual underflow (fp_environment.hpp): not even the zero-pair test
    SdpResult none;
    none.lower = 0.0;
    return none;
  }
  PairSolver solver(W, Vi, Vj, opt, warm);
  solve_pairs_batched(W, {&solver});
  return solver.result();
}

// Solves many pairs: consecutive groups of `group_size` pairs are batched (their GEMMs are wide) and the groups run
// in parallel (OpenMP, dynamic). Groups do not depend on the thread count, so neither do the results (GEMM blocking,
// hence summation order, depends on the batch width). Eigen's own GEMM threading is not used: on a loaded 2-core
// machine its spin-waiting threads made a solve 30x slower (measured), while independent groups degrade gracefully.
inline void solve_pairs(const Mat& W, std::vector<PairSolver>& solvers, int threads, size_t group_size = 8) {
  const size_t groups = (solvers.size() + group_size - 1) / group_size;
  std::vector<std::vector<PairSolver*>> grouped(groups);
  for (size_t p = 0; p < solvers.size(); ++p) grouped[p / group_size].push_back(&solvers[p]);
  if (threads <= 0) threads = available_threads();
  if (groups == 1) {
    // One group cannot use the other cores through groups: its GEMMs and proofs split in two instead.
    solve_pairs_batched(W, grouped[0], threads);
    return;
  }
  // An OpenMP worker has its own floating-point mode (fp_environment.hpp): one that flushes subnormals could prove
  // nothing, so it leaves its groups to this thread, which solves them exactly as a worker would have.
  std::vector<char> deferred(groups, 0);
  parallel_for_pairs(static_cast<long>(groups), threads, [&](long g) {
    if (gradual_underflow()) solve_pairs_batched(W, grouped[g]);
    else deferred[g] = 1;
  });
  for (size_t g = 0; g < groups; ++g)
    if (deferred[g]) solve_pairs_batched(W, grouped[g]);
}

// The pair SDPs of many pairs of one network, in the given units (row p: pair p).
struct PairSdpResults {
  Vec lower;                       // P: S >= lower (the value of a feasible factor)
  Vec upper;                       // P: proven S <= upper (+inf: not certified)
  RowMat dual;                     // P x D: the dual vector c of each proven bound (NaN rows where none)
  Vec lambda_bound;                // P: proven lambda_max(M - diag c) <= lambda_bound
  Eigen::VectorXi sweeps, rank, proof_attempts;
  Vec seconds;
  std::vector<SdpStatus> status;   // P
  std::vector<Mat> factors;        // P final factors (D x rank, unit rows), only when asked for
};

/// @brief Pair SDP values S_ij (proven upper bounds and primal lower bounds) for every row p = (i, j) of `pairs`.
///
/// W and each pair's (V_i, V_j) are balanced by exact powers of two (scaling.hpp), the pairs solved in fixed groups
/// of batched GEMMs (OpenMP across groups; deterministic and independent of `threads`), and the results mapped back
/// to the given units: proven bounds rounded up, the primal value down.
///
/// @param W        m x d hidden weights; V: k x m output weights (finite)
/// @param pairs    P x 2 class indices in 0..k-1
/// @param opt      solver options; opt.seed is combined with each pair's classes into that pair's own seed
/// @param threads  OpenMP threads (<= 0: all available)
/// @param warm     optional P factors (D x r_p, unit rows) to start from, or nullptr
/// @param keep_factors  return each pair's final factor in `factors`
/// @return PairSdpResults. An upper bound beyond the double range is +inf with status not_certified and a NaN dual
///         row; on a thread without gradual underflow (fp_environment.hpp) nothing is solved or proven: every pair is
///         not_certified with lower = 0 (S >= <M, I> = 0 always) and upper = +inf.
///
/// @code
///   SdpOptions opt;                 // rel_tol 1e-6, rank 8, ...
///   const PairSdpResults r = solve_pair_sdps(W, V, pairs, opt, /*threads=*/0, nullptr, false);
///   // r.lower(p) <= S_ij <= r.upper(p), and lambda_max(M_ij - diag r.dual.row(p)) <= r.lambda_bound(p), proven
/// @endcode
inline PairSdpResults solve_pair_sdps(const Mat& W_in, const RowMat& V, const Pairs& pairs, const SdpOptions& opt,
                                      int threads, const std::vector<Mat>* warm, bool keep_factors) {
  const Index P = pairs.rows(), D = pair_dim(W_in.rows(), W_in.cols());
  std::vector<SdpResult> results;
  if (!gradual_underflow()) {
    // The balancing, the proofs and the mapping back all assume gradual underflow (fp_environment.hpp).
    SdpResult none;  // upper = +inf, no dual vector, not_certified
    none.lower = 0.0;
    results.assign(P, none);
  } else {
    // M is bilinear in (W, v): solving with 2^a W and 2^b v and scaling back by 2^-(a+b) keeps squares, norms and
    // the proofs' products far from overflow and underflow for extreme weights (subnormal-scale included). The
    // scaling is entrywise (ldexp of each entry: a factor 2^a would itself overflow for |a| > 1023) and exact
    // (scaling.hpp clamps the exponents to those that lose no bit), so the scaled problem is exactly the given one,
    // rescaled.
    const int w_exp = exact_balancing_exponent(W_in);
    Mat W_scaled;
    if (w_exp != 0) W_scaled = scaled_by_power_of_two(W_in, w_exp);
    const Mat& W = w_exp != 0 ? W_scaled : W_in;
    std::vector<int> v_exps(P, 0);
    const WeightFacts facts(W);
    std::vector<PairSolver> solvers;
    solvers.reserve(P);
    for (Index p = 0; p < P; ++p) {
      SdpOptions pair_opt = opt;
      // Seeded by the pair itself: with the fixed groups of solve_pairs, results do not depend on the thread count.
      pair_opt.seed = opt.seed * 1000003ULL + static_cast<uint64_t>(pairs(p, 0)) * 1009ULL +
                      static_cast<uint64_t>(pairs(p, 1));
      const Vec Vi = V.row(pairs(p, 0)).transpose(), Vj = V.row(pairs(p, 1)).transpose();
      const int v_exp = pair_balancing_exponent(Vi, Vj);
      v_exps[p] = v_exp;
      solvers.emplace_back(W, scaled_by_power_of_two(Vi, v_exp), scaled_by_power_of_two(Vj, v_exp), pair_opt,
                           warm != nullptr ? &(*warm)[p] : nullptr, &facts);
    }
    solve_pairs(W, solvers, threads);
    results.reserve(P);
    for (Index p = 0; p < P; ++p) {
      SdpResult res = solvers[p].result();
      // Back to the given units. Exact unless a result lands in the subnormals (or overflows): the proven upper
      // bounds are then rounded up, the primal value down; c is rounded up, which keeps lambda_max(M - diag c) <=
      // lambda_bound true (a larger c only lowers lambda_max).
      const int back = -(w_exp + v_exps[p]);
      res.lower = ldexp_down(res.lower, back);
      res.upper = ldexp_up(res.upper, back);
      res.lambda_bound = ldexp_up(res.lambda_bound, back);
      res.c = res.c.unaryExpr([back](double x) { return ldexp_up(x, back); });
      // A bound proven in the scaled units can overflow in the given ones: then nothing is certified (no dual
      // vector is reported, as for any unproven pair; `lower` stays, a true if huge lower bound).
      if (!std::isfinite(res.upper)) {
        res.status = SdpStatus::not_certified;
        res.c = Vec();
        res.lambda_bound = std::numeric_limits<double>::infinity();
      }
      results.push_back(std::move(res));
    }
  }
  PairSdpResults out;
  out.lower.resize(P);
  out.upper.resize(P);
  out.lambda_bound.resize(P);
  out.seconds.resize(P);
  out.sweeps.resize(P);
  out.rank.resize(P);
  out.proof_attempts.resize(P);
  out.dual = RowMat::Constant(P, D, std::numeric_limits<double>::quiet_NaN());
  out.status.reserve(P);
  for (Index p = 0; p < P; ++p) {
    SdpResult& r = results[p];
    out.lower(p) = r.lower;
    out.upper(p) = r.upper;
    out.lambda_bound(p) = r.lambda_bound;
    out.seconds(p) = r.seconds;
    out.sweeps(p) = r.sweeps;
    out.rank(p) = r.rank;
    out.proof_attempts(p) = r.proof_attempts;
    if (r.c.size() == D) out.dual.row(p) = r.c.transpose();
    out.status.push_back(r.status);
    if (keep_factors) out.factors.push_back(std::move(r.U));
  }
  return out;
}

}  // namespace sdpcert
