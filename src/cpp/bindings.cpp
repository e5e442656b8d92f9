// The Python module sdpcert._core: a thin layer over the headers in this folder. Topics register themselves
// (register_*.cpp); numerics run with the GIL released.
#include <pybind11/pybind11.h>

#include <Eigen/Core>

#if defined(__GLIBC__)
#include <malloc.h>
#endif

#include "parallel.hpp"

namespace py = pybind11;

void register_operator(py::module_& m);
void register_eigen(py::module_& m);
void register_sdp(py::module_& m);

PYBIND11_MODULE(_core, m) {
  // Parallelism is across pairs (OpenMP regions in the core), never inside Eigen's GEMMs: see solve_pairs.
  Eigen::setNbThreads(1);
#if defined(__GLIBC__)
  // The solver allocates and frees matrices of a few MB per sweep and proof. Above glibc's default mmap threshold
  // each one is a fresh mmap, and the page faults took ~25% of a single-pair solve (perf). Keeping such blocks in
  // the heap lets them be reused; the trim threshold bounds how much freed memory the process keeps.
  mallopt(M_MMAP_THRESHOLD, 64 * 1024 * 1024);
  mallopt(M_TRIM_THRESHOLD, 256 * 1024 * 1024);
#endif
  m.doc() = "sdpcert numerical core: pair operators, Lanczos, the pair SDP solver and rigorous bounds";
  m.def("available_threads", &sdpcert::available_threads, "OpenMP threads used across pairs by default");
#ifdef SDPCERT_HAVE_OPENMP
  m.attr("has_openmp") = true;
#else
  m.attr("has_openmp") = false;
#endif
  register_operator(m);
  register_eigen(m);
  register_sdp(m);
}
