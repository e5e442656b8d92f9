// Power-of-two balancing of the data before a proof (numerics only: nothing here knows of Python).
//
// The pair matrix M(v) is bilinear in (W, v) and lambda_max / the pair SDP value scale with it, so a proof for
// 2^a W, 2^b v (and 2^(a+b) c) is a proof for W, v, c scaled by 2^(a+b). Balancing the largest magnitudes to about
// 1 keeps every square, inner product and Cholesky pivot of the proof far from overflow and keeps the underflow
// allowances of certify_bound.hpp negligible against the bounds (on subnormal-scale weights the products of the
// proof would otherwise all underflow, and on weights near 1e300 they would all overflow).
//
// Multiplying a double by 2^e is exact unless the result overflows or a set bit of it falls below 2^-1074 (the
// smallest subnormal): `exact_exponents` computes the range of e for which every entry scales exactly, and the
// balancing exponent is clamped into it (e = 0 always lies in it), so W and v are always scaled exactly; when the
// clamp bites (a dynamic range wider than the double range minus the target) the data stay less balanced and
// certify_bound.hpp's underflow and overflow handling keeps the proof sound (a bound may then be +inf: no proof).
#pragma once

#include <algorithm>
#include <climits>
#include <cstdint>

#include "common.hpp"

namespace sdpcert {

// Largest magnitudes within [2^-kBalanceSlack, 2^kBalanceSlack) are left alone: the copy is not worth making, and
// products of two such quantities (times the dimensions) still fit float32, which the SDP's first sweeps use.
constexpr int kBalanceSlack = 32;

// The exponents e with x_i 2^e exact for every entry: lo <= e <= hi (lo <= 0 <= hi for finite x).
struct ExactExponents {
  int lo = -4096;
  int hi = 4096;
};

// For a != 0, a = f 2^ex (f in [0.5, 1)) = odd * 2^t: a 2^e is exact iff ex + e <= 1024 (no overflow) and
// t + e >= -1074 (its lowest set bit stays a representable bit).
template <class Derived>
ExactExponents exact_exponents(const Eigen::DenseBase<Derived>& x) {
  ExactExponents r;
  const auto& X = x.derived();
  for (Index j = 0; j < X.cols(); ++j)
    for (Index i = 0; i < X.rows(); ++i) {
      const double a = std::abs(static_cast<double>(X(i, j)));
      if (a == 0.0 || !std::isfinite(a)) continue;
      int ex = 0;
      const double f = std::frexp(a, &ex);
      const auto mantissa = static_cast<uint64_t>(std::ldexp(f, 53));  // an integer in [2^52, 2^53): exact
      int trailing = 0;
      for (uint64_t b = mantissa; (b & 1u) == 0; b >>= 1) ++trailing;
      r.hi = std::min(r.hi, 1024 - ex);
      r.lo = std::max(r.lo, -1074 - (ex - 53 + trailing));
    }
  return r;
}

// e with max_abs 2^e in [0.5, 1), or 0 when max_abs is 0, not finite, or already within 2^+-kBalanceSlack.
inline int balancing_exponent(double max_abs) {
  if (!(max_abs > 0.0) || !std::isfinite(max_abs)) return 0;
  int ex = 0;
  std::frexp(max_abs, &ex);
  return (ex > -kBalanceSlack && ex <= kBalanceSlack) ? 0 : -ex;
}

// The balancing exponent of x, clamped to the exponents that scale every entry of x exactly.
template <class Derived>
int exact_balancing_exponent(const Eigen::DenseBase<Derived>& x) {
  const int e = balancing_exponent(static_cast<double>(x.derived().cwiseAbs().maxCoeff()));
  if (e == 0) return 0;
  const ExactExponents r = exact_exponents(x);
  return std::clamp(e, r.lo, r.hi);
}

// The exponent for the pair (V_i, V_j): it balances v = V_i - V_j and scales both rows exactly (then
// fl(2^e V_i - 2^e V_j) is the rounding of 2^e v, and the proofs bound that rounding themselves).
inline int pair_balancing_exponent(const Vec& Vi, const Vec& Vj) {
  double target = (Vi - Vj).cwiseAbs().maxCoeff();
  if (!std::isfinite(target)) target = 0.5 * std::max(Vi.cwiseAbs().maxCoeff(), Vj.cwiseAbs().maxCoeff());
  const int e = balancing_exponent(target);
  if (e == 0) return 0;
  const ExactExponents ri = exact_exponents(Vi), rj = exact_exponents(Vj);
  return std::clamp(e, std::max(ri.lo, rj.lo), std::min(ri.hi, rj.hi));
}

// x 2^e entrywise (std::ldexp of each entry: no factor 2^e is formed, which would overflow for |e| > 1023).
template <class Derived>
auto scaled_by_power_of_two(const Eigen::MatrixBase<Derived>& x, int e) {
  return x.unaryExpr([e](double a) { return std::ldexp(a, e); });
}

// x 2^e rounded up: ldexp rounds to nearest, which loses bits only when the result is subnormal (e < 0); scaling
// the result back is then exact, and if it lies below x the next float up is >= x 2^e. Overflow gives +inf.
inline double ldexp_up(double x, int e) {
  const double r = std::ldexp(x, e);
  return std::ldexp(r, -e) < x ? up::next(r) : r;
}

// x 2^e rounded down (toward -inf), by symmetry. An overflow to +inf becomes DBL_MAX (<= the exact value).
inline double ldexp_down(double x, int e) { return -ldexp_up(-x, e); }

}  // namespace sdpcert
