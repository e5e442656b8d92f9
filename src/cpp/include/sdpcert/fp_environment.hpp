// The floating-point environment the proofs need (docs/design.md §4).
//
// Every proof in certify_bound.hpp uses the rounding model with gradual underflow (common.hpp):
//     fl(a op b) = (a op b)(1 + delta) + eta,   |delta| <= u,   |eta| <= 2^-1075,   eta = 0 for + and -.
// A thread in flush-to-zero mode (FTZ: a subnormal result becomes 0) or denormals-are-zero mode (DAZ: a subnormal
// operand is read as 0) breaks it: a product just below DBL_MIN = 2^-1022 then errs by up to 2^-1022 instead of
// 2^-1075, a sum of subnormals is no longer exact, and a difference V_i - V_j of distinct subnormals can read as 0.
// The bounds would no longer be proofs. torch.set_flush_denormal(True) sets both modes on the calling thread, as does
// any library built with -ffast-math (crtfastmath), and the mode is per thread (OpenMP workers created earlier keep
// their own). So each proof entry point asks gradual_underflow() on the thread that does the proof and, if it says
// no, proves nothing (+inf / not_certified): never a bound computed under a model that does not hold.
#pragma once

#include <cfloat>

namespace sdpcert {

// True when this thread keeps subnormal results and operands (IEEE gradual underflow). Volatile operands and
// results keep the compiler from folding the test at compile time: it must run in the thread's current mode.
// DBL_MIN / 2 = 2^-1023 is subnormal: FTZ flushes the quotient to 0, and DAZ reads it as 0 in the product (and in
// the comparisons), so either mode makes the test fail.
inline bool gradual_underflow() {
  volatile double smallest_normal = DBL_MIN;
  volatile double one = 1.0;
  volatile double half = smallest_normal / 2.0;
  volatile double kept = half * one;
  return half != 0.0 && kept != 0.0;
}

}  // namespace sdpcert
