// Process-wide settings made once at import, and what Python may ask about them (threads, OpenMP).
#include <pybind11/pybind11.h>

#include <Eigen/Core>

#if defined(__GLIBC__)
#include <malloc.h>
#endif

#include "sdpcert/parallel.hpp"

namespace py = pybind11;

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
}
