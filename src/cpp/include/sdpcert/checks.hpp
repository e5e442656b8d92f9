// Argument checks (shapes and finiteness) reported as std::invalid_argument naming the argument; the bindings
// (src/cpp/bindings/) use them on every input, and pybind11 turns them into ValueError. The Python layer validates
// first with friendlier messages; these keep the core safe when called directly.
#pragma once

#include <stdexcept>
#include <string>

#include "common.hpp"

namespace sdpcert {

template <class Derived>
void require_finite(const Eigen::DenseBase<Derived>& x, const char* name) {
  if (!x.derived().allFinite()) throw std::invalid_argument(std::string(name) + " contains NaN or infinite values");
}

inline void require(bool ok, const std::string& message) {
  if (!ok) throw std::invalid_argument(message);
}

inline std::string shape_str(Index r, Index c) { return "(" + std::to_string(r) + ", " + std::to_string(c) + ")"; }

}  // namespace sdpcert
