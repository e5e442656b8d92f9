// Argument conversion and checks shared by the register_*.cpp files: Python objects in, checked core types out
// (std::invalid_argument, i.e. ValueError, naming the argument). Python side of the bindings only.
#pragma once

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <cstdint>
#include <optional>
#include <string>

#include "sdpcert/checks.hpp"
#include "sdpcert/lanczos.hpp"

namespace sdpcert::bindings {

// (P, 2) integer array of class pairs, each index in [0, k). Float arrays are refused rather than truncated.
inline Pairs to_pairs(const pybind11::array& a, Index k) {
  const char kind = a.dtype().kind();
  require(kind == 'i' || kind == 'u', "pairs must be an integer array of shape (P, 2); got dtype kind '" +
                                          std::string(1, kind) + "'");
  require(a.ndim() == 2 && a.shape(1) == 2, "pairs must have shape (P, 2)");
  auto ints = pybind11::array_t<int64_t, pybind11::array::c_style | pybind11::array::forcecast>::ensure(a);
  const Index P = a.shape(0);
  Pairs pairs(P, 2);
  for (Index p = 0; p < P; ++p)
    for (int q = 0; q < 2; ++q) {
      pairs(p, q) = ints.at(p, q);
      require(pairs(p, q) >= 0 && pairs(p, q) < k,
              "pairs[" + std::to_string(p) + "] refers to a class outside 0.." + std::to_string(k - 1));
    }
  return pairs;
}

template <class WMat>  // any Eigen matrix of shape (m, d), checked where it lies (no copy)
void require_network(const WMat& W, const RowMat& V) {
  require(W.rows() >= 1 && W.cols() >= 1, "W must have shape (m, d) with m >= 1 and d >= 1; got " +
                                              shape_str(W.rows(), W.cols()));
  require(V.cols() == W.rows(), "V must have shape (k, m) with m = W.shape[0] = " + std::to_string(W.rows()) +
                                    "; got " + shape_str(V.rows(), V.cols()));
  require_finite(W, "W");
  require_finite(V, "V");
}

// The dual variables of P pairs: shape (P, D), finite.
inline void require_pair_cs(const RowMat& cs, Index P, Index D) {
  require(cs.rows() == P && cs.cols() == D, "cs must have shape " + shape_str(P, D));
  require_finite(cs, "cs");
}

// The optional (P, D) warm starts, checked, as the D x P matrix the Lanczos takes (empty when none).
inline Mat checked_starts(const std::optional<RowMat>& start, Index P, Index D) {
  if (!start) return Mat();
  require(start->rows() == P && start->cols() == D, "start must have shape " + shape_str(P, D));
  require_finite(*start, "start");
  return start->transpose();
}

// Lanczos options from the Python arguments, checked; callers set the rest.
inline LanczosOptions checked_lanczos_options(double tol, int max_iter, uint64_t seed) {
  require(max_iter >= 1, "max_iter must be >= 1");
  require(tol > 0 && std::isfinite(tol), "tol must be positive and finite");
  LanczosOptions opt;
  opt.tol = tol;
  opt.max_iter = max_iter;
  opt.seed = seed;
  return opt;
}

}  // namespace sdpcert::bindings
