// Result conversion shared by the register_*.cpp files: core result structs into the dicts Python receives (their
// keys are part of the API: declared as TypedDicts in src/python/sdpcert/_core.pyi).
#pragma once

#include <pybind11/eigen.h>
#include <pybind11/pybind11.h>

#include "sdpcert/lanczos.hpp"

namespace sdpcert::bindings {

// values, vectors (P, D), residuals, iterations, status of a Lanczos run, into `out` (EigenpairsDict).
inline void put_eigenpairs(pybind11::dict& out, const LanczosResult& r) {
  pybind11::list status;
  for (auto s : r.status) status.append(eig_status_name(s));
  out["values"] = r.values;
  out["vectors"] = RowMat(r.vectors.transpose());
  out["residuals"] = r.residuals;
  out["iterations"] = r.iterations;
  out["status"] = status;
}

}  // namespace sdpcert::bindings
