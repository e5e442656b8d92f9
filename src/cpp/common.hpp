// Shared types and floating-point facts used by the rigorous bounds.
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

// Dimension of the pair SDP: y = [1; s'; t].
inline Index pair_dim(Index m, Index d) { return 1 + m + d; }

}  // namespace sdpcert
