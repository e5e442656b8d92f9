// Process-wide settings made once at import, and what Python may ask about them (threads, OpenMP).
#include <pybind11/pybind11.h>

#include <Eigen/Core>

#include <string>

#if defined(__GLIBC__)
#include <malloc.h>
#endif

#include "sdpcert/parallel.hpp"

namespace py = pybind11;

// Set by CMakeLists.txt from SDPCERT_ARCH: the CPU the core was compiled for and the flags that said so.
#ifndef SDPCERT_BUILD_ARCH
#define SDPCERT_BUILD_ARCH "unknown"
#endif
#ifndef SDPCERT_BUILD_ARCH_FLAGS
#define SDPCERT_BUILD_ARCH_FLAGS ""
#endif

void register_runtime(py::module_& m) {
  // Parallelism is across pairs (OpenMP regions in the core), never inside Eigen's GEMMs: see solve_pairs.
  Eigen::setNbThreads(1);
#if defined(__GLIBC__)
  // The solver allocates and frees matrices of a few MB per sweep and proof. Above glibc's default mmap threshold
  // each one is a fresh mmap, and the page faults took ~25% of a single-pair solve (perf). Keeping such blocks in
  // the heap lets them be reused; the trim threshold bounds how much freed memory the process keeps.
  mallopt(M_MMAP_THRESHOLD, 64 * 1024 * 1024);
  mallopt(M_TRIM_THRESHOLD, 256 * 1024 * 1024);
#endif
  m.def("available_threads", &sdpcert::available_threads, "OpenMP threads used across pairs by default");
#ifdef SDPCERT_HAVE_OPENMP
  m.attr("has_openmp") = true;
#else
  m.attr("has_openmp") = false;
#endif
  // A wheel built for `native` on one machine can die with an illegal instruction on another; this says which
  // build is installed (docs: the README's install notes, option SDPCERT_ARCH).
  m.def(
      "build_info",
      [] {
        py::dict info;
        info["arch"] = SDPCERT_BUILD_ARCH;
        info["arch_flags"] = SDPCERT_BUILD_ARCH_FLAGS;
        // The vector extensions the compiler was allowed to use (Eigen picks its kernels from the same macros).
        py::list instruction_sets;
#if defined(__SSE4_2__)
        instruction_sets.append("sse4.2");
#endif
#if defined(__AVX__)
        instruction_sets.append("avx");
#endif
#if defined(__AVX2__)
        instruction_sets.append("avx2");
#endif
#if defined(__FMA__)
        instruction_sets.append("fma");
#endif
#if defined(__AVX512F__)
        instruction_sets.append("avx512f");
#endif
#if defined(__ARM_NEON)
        instruction_sets.append("neon");
#endif
        info["instruction_sets"] = instruction_sets;
#if defined(__VERSION__)
        info["compiler"] = std::string(__VERSION__);
#else
        info["compiler"] = "unknown";
#endif
        info["eigen"] = std::to_string(EIGEN_WORLD_VERSION) + "." + std::to_string(EIGEN_MAJOR_VERSION) + "." +
                        std::to_string(EIGEN_MINOR_VERSION);
#ifdef SDPCERT_HAVE_OPENMP
        info["openmp"] = true;
#else
        info["openmp"] = false;
#endif
        return info;
      },
      "How this module was built: arch (SDPCERT_ARCH: x86-64-v2, x86-64-v3, native, ...), arch_flags (the compiler "
      "flags it became), instruction_sets (the vector extensions compiled in: sse4.2, avx, avx2, fma, avx512f, "
      "neon), compiler, eigen, openmp");
}
