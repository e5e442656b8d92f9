// OpenMP across pairs (each pair's GEMMs then run single-threaded inside the region, which also makes results
// independent of the thread count). Exceptions never cross an OpenMP region: the first one is rethrown after it.
// A body that runs a proof must check the floating-point mode on its own thread (fp_environment.hpp): OpenMP
// workers do not share the calling thread's mode.
#pragma once

#include <exception>
#include <mutex>

#ifdef SDPCERT_HAVE_OPENMP
#include <omp.h>
#endif

namespace sdpcert {

inline int available_threads() {
#ifdef SDPCERT_HAVE_OPENMP
  return omp_get_max_threads();
#else
  return 1;
#endif
}

template <class F>
void parallel_for_pairs(long n, int threads, F&& body) {
  std::exception_ptr error;
  std::mutex error_mutex;
  if (threads <= 0) threads = available_threads();
  if (threads == 1) {  // no OpenMP region at all: safe in a child forked after the parent used OpenMP (libgomp is not)
    for (long i = 0; i < n; ++i) body(i);
    return;
  }
#ifdef SDPCERT_HAVE_OPENMP
#pragma omp parallel for schedule(dynamic, 1) num_threads(threads)
#endif
  for (long i = 0; i < n; ++i) {
    try {
      body(i);
    } catch (...) {
      std::lock_guard<std::mutex> lock(error_mutex);
      if (!error) error = std::current_exception();
    }
  }
  (void)threads;
  if (error) std::rethrow_exception(error);
}

// Runs f0 and f1, on two threads when `threads` >= 2 and we are not already inside a parallel region. Callers split
// work the same way whether or not it runs in parallel, so results do not depend on the thread count.
template <class F0, class F1>
void run_two(int threads, F0&& f0, F1&& f1) {
#ifdef SDPCERT_HAVE_OPENMP
  if (threads >= 2 && !omp_in_parallel()) {
    std::exception_ptr error;
    std::mutex error_mutex;
#pragma omp parallel num_threads(2)
    {
      try {
        if (omp_get_thread_num() == 0) f0();
        else f1();
      } catch (...) {
        std::lock_guard<std::mutex> lock(error_mutex);
        if (!error) error = std::current_exception();
      }
    }
    if (error) std::rethrow_exception(error);
    return;
  }
#endif
  (void)threads;
  f0();
  f1();
}

}  // namespace sdpcert
