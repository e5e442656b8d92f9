"""Small floating-point helpers for the rigorous side of the Python layer.

Every bound the package reports is computed in float64 and then inflated so that it is at least the exact value:
u = 2^-53 is the unit roundoff, gamma(n) = n u / (1 - n u) bounds the relative error of an n-term sum or inner
product (Higham, Accuracy and Stability, §3.1), valid for any summation order, BLAS included.
"""

from __future__ import annotations

import numpy as np

UNIT_ROUNDOFF = 2.0**-53


def gamma(n: float) -> float:
    """gamma_n with a 1% safety factor (covers the rounding of this expression itself)."""
    nu = float(n) * UNIT_ROUNDOFF
    return 1.01 * nu / (1.0 - nu)


def round_up(x: np.ndarray | float, terms: float = 1.0) -> np.ndarray | float:
    """A float >= the exact value of ``x`` when ``x`` is a computed sum/product of at most ``terms`` roundings of
    non-negative quantities (for negative ``x``, its magnitude shrinks instead)."""
    g = gamma(terms + 1.0)
    x = np.asarray(x, dtype=np.float64)
    up = np.where(x >= 0, x * (1.0 + g), x * (1.0 - g))
    out = np.nextafter(up, np.inf)
    return float(out) if out.ndim == 0 else out
