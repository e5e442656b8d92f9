"""The target CPU of the compiled core (CMakeLists.txt, SDPCERT_ARCH): portable unless asked otherwise, and the
installed module says which build it is."""

from __future__ import annotations

import re
from pathlib import Path

from sdpcert import _core

ROOT = Path(__file__).resolve().parents[1]

#: Targets that do not depend on the building machine (x86-64 levels; "default": no -march, the compiler's baseline).
PORTABLE = {"default", "x86-64", "x86-64-v2", "x86-64-v3"}


def test_the_default_build_is_portable():
    """A wheel built without options is for a fixed x86-64 level, never for whatever CPU built it (native)."""
    cmake = (ROOT / "CMakeLists.txt").read_text()
    defaults = re.findall(r'set\(SDPCERT_DEFAULT_ARCH "([^"]*)"\)', cmake)
    assert defaults and set(defaults) <= PORTABLE, defaults
    assert re.search(r'set\(SDPCERT_ARCH "\$\{SDPCERT_DEFAULT_ARCH\}" CACHE STRING', cmake)
    # pyproject.toml may not override it for every build
    pyproject = (ROOT / "pyproject.toml").read_text()
    assert not re.search(r"SDPCERT_ARCH\s*=", pyproject)


def test_build_info_says_what_the_core_was_compiled_for():
    info = _core.build_info()
    assert {"arch", "arch_flags", "instruction_sets", "compiler", "eigen", "openmp"} <= set(info)
    assert info["openmp"] == _core.has_openmp
    assert re.fullmatch(r"3\.\d+\.\d+", info["eigen"])
    arch, flags, isa = info["arch"], info["arch_flags"], set(info["instruction_sets"])
    assert arch and arch != "unknown"
    if arch == "default":
        assert flags == ""
    elif "-march=" in flags:
        assert flags == f"-march={arch}"
    # the instruction sets the compiler was allowed reach the code (Eigen picks its kernels from the same macros)
    if arch == "x86-64-v2":
        assert "sse4.2" in isa and not isa & {"avx", "avx2", "fma", "avx512f"}
    elif arch == "x86-64-v3":
        assert {"sse4.2", "avx", "avx2", "fma"} <= isa and "avx512f" not in isa
