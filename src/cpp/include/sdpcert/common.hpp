// Shared types and the floating-point facts the rigorous bounds rest on (docs/design.md §4). Nothing here, and
// nothing in this folder, knows of Python: the pybind11 layer is src/cpp/bindings/.
#pragma once

#include <Eigen/Dense>
#include <cfloat>
#include <cmath>
#include <cstdint>
#include <limits>
#include <string>

namespace sdpcert {

using Mat = Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::ColMajor>;
using RowMat = Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
using Vec = Eigen::VectorXd;
using MatF = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::ColMajor>;
using Index = Eigen::Index;
// P class pairs (i, j), one per row: the pair matrix of row p is built from v = V_i - V_j.
using Pairs = Eigen::Matrix<int64_t, Eigen::Dynamic, 2, Eigen::RowMajor>;

// Unit roundoff of IEEE double with round-to-nearest.
constexpr double kUnitRoundoff = DBL_EPSILON / 2.0;

// gamma_n = n u / (1 - n u) (Higham, "Accuracy and Stability of Numerical Algorithms", §3.1): the relative error
// bound of an n-term product/sum in floating point. Evaluated with a 1% safety factor so that its own rounding
// cannot make it smaller than the true value.
inline double gamma_n(double n) {
  const double nu = n * kUnitRoundoff;
  return 1.01 * nu / (1.0 - nu);
}

// A value at least as large as x's exact value when x was produced by a sum of `terms` non-negative floats:
// fl(sum) >= sum / (1 + gamma_terms), so sum <= fl(sum) * (1 + gamma_terms); the final nextafter covers the
// rounding of that product.
inline double round_up_sum(double computed, double terms) {
  const double inflated = computed >= 0 ? computed * (1.0 + gamma_n(terms)) : computed * (1.0 - gamma_n(terms));
  return std::nextafter(inflated, std::numeric_limits<double>::infinity());
}

// Underflow (Higham, "Accuracy and Stability", §2.1, eq. (2.8), round to nearest with gradual underflow):
//   fl(a op b) = (a op b)(1 + delta) + eta,   |delta| <= u,  |eta| <= 2^-1075,  delta * eta = 0,
// and eta = 0 for + and - (a sum that lands in the subnormals is exact). So a product or quotient that rounds into
// the subnormal range carries an ABSOLUTE error up to half the smallest subnormal, which relative bounds (gamma_n
// times magnitudes) miss, and which a later product with a large factor amplifies. kUnderflowUnit = 2^-1074 is
// twice that bound: the factor 2 absorbs the (1 + gamma) factors the error meets in later roundings.
// The model needs gradual underflow: fp_environment.hpp refuses proofs on a thread that flushes subnormals to zero.
constexpr double kUnderflowUnit = std::numeric_limits<double>::denorm_min();

// Upper bounds of one exactly rounded operation: fl(x) is the float nearest to the exact x (also in the subnormal
// range), so the next float up from fl(x) is >= x; an overflow gives +inf, which is >= x as well. Each helper is
// one IEEE operation followed by std::nextafter, so no FMA contraction can merge two of them. NaN propagates (the
// callers refuse a non-finite bound). Valid for operands of any sign.
namespace up {
inline double next(double x) { return std::nextafter(x, std::numeric_limits<double>::infinity()); }
inline double add(double a, double b) { return next(a + b); }
inline double mul(double a, double b) { return next(a * b); }
inline double div(double a, double b) { return next(a / b); }
inline double sqrt(double a) { return next(std::sqrt(a)); }
}  // namespace up

// Upper bound on the exact value of sum_i a_i b_i (n non-negative terms a_i b_i) from its float value `computed`,
// formed by n rounded products (or FMAs) and any order of summation: by (H1), computed >= (1 - gamma_n) exact minus
// the n underflow errors of the products (each <= 2^-1075 before the relative factors), so
//   exact <= computed / (1 - gamma_n) + n 2^-1074 <= round_up_sum(computed, n) + n 2^-1074
// (round_up_sum's 1% safety margin on gamma_n covers 1 / (1 - gamma_n) - 1 for n u < 0.0099). n 2^-1074 is exact
// for any integer n < 2^53.
inline double round_up_products(double computed, double n) {
  return up::add(round_up_sum(computed, n), n * kUnderflowUnit);
}

// An upper bound on u / (1 - u) (the relative error of a rounded x measured against the float fl(x)): u (1 + 2u) =
// 2^-53 + 2^-105 is a float and exceeds u / (1 - u) = u + u^2 + ...
constexpr double kUnitRoundoffRatioUp = kUnitRoundoff * (1.0 + DBL_EPSILON);

// Dimension of the pair SDP: y = [1; s'; t].
inline Index pair_dim(Index m, Index d) { return 1 + m + d; }

}  // namespace sdpcert
