// The Python module sdpcert._core: a thin layer over the numerical core in src/cpp/include/sdpcert/. Each topic
// registers its functions (register_<topic>.cpp: convert arguments, release the GIL, call the core, convert results).
#include <pybind11/pybind11.h>

namespace py = pybind11;

void register_runtime(py::module_& m);
void register_pair_operator(py::module_& m);
void register_lanczos(py::module_& m);
void register_penalty_gradient(py::module_& m);
void register_certify_bound(py::module_& m);
void register_sdp_solver(py::module_& m);
void register_bipartite_sdp(py::module_& m);

PYBIND11_MODULE(_core, m) {
  m.doc() = "sdpcert numerical core: pair operators, Lanczos, the pair SDP solver and rigorous bounds";
  register_runtime(m);
  register_pair_operator(m);
  register_lanczos(m);
  register_penalty_gradient(m);
  register_certify_bound(m);
  register_sdp_solver(m);
  register_bipartite_sdp(m);
}
