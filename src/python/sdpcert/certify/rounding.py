"""The rounding model and the small floating-point helpers of every rigorous bound in the Python layer.

Every bound the package reports is computed in float64 and then inflated so that it is at least the exact value.

The rounding model (Higham, Accuracy and Stability of Numerical Algorithms, 2nd ed., §2.1: the standard model
extended to underflow), for IEEE double precision with round-to-nearest and gradual underflow, when no overflow
occurs:

    fl(a op b) = (a op b)(1 + delta) + eta,   |delta| <= u = 2^-53,   |eta| <= 2^-1075,   delta * eta = 0,

and eta = 0 for op in {+, -} (a sum of two floats that lands in the subnormal range is exact) and for sqrt (the
square root of a positive float is >= 2^-537, a normal number). So only products and quotients carry the absolute
term, at most half the smallest subnormal 2^-1074 = ``TINY``; a fused multiply-add has one rounding and carries at
most one such term too. gamma(n) = n u / (1 - n u) bounds the relative error of an n-term sum or inner product
(Higham §3.1), and n products add at most n 2^-1075 (1 + gamma_n) <= n TINY on top; both hold for any summation
order and blocking, so for BLAS with any thread count.

The absolute term is harmless on its own but is amplified by any later product: a product of two large factors
whose first factor underflowed carries eta times the second. So every computed upper-bound quantity that is later
multiplied by something larger than 1 is rounded up (``round_up``, which adds the absolute allowance) first: each
intermediate bound is then itself >= the exact value it stands for, as an exact real, before it is used.

Overflow gives +inf (an upper bound that is always valid) or NaN (inf - inf, 0 * inf): ``round_up`` turns NaN into
+inf, so a bound that cannot be computed becomes "not certified", never a smaller number.

The model assumes gradual underflow: a CPU mode that flushes subnormals to zero (FTZ/DAZ, set by some
"fast-math" builds, or by ``torch.set_flush_denormal(True)`` on the calling thread) breaks the absolute term by up to
2^-1022 per product. ``check_gradual_underflow`` refuses to certify in that mode. See docs/design.md §4.
"""

from __future__ import annotations

import numpy as np

from ..errors import SdpcertError

__all__ = ["UNIT_ROUNDOFF", "TINY", "SMALLEST_NORMAL", "gamma", "round_up", "scale_up_by_power_of_two",
           "l2_norm_upper", "check_gradual_underflow"]

UNIT_ROUNDOFF = 2.0**-53
#: The smallest positive subnormal double, 2^-1074: twice the largest absolute error of a product or quotient that
#: rounds into the subnormal range (round-to-nearest).
TINY = 2.0**-1074
#: The smallest positive normal double, 2^-1022: below it, float64 results carry absolute (not relative) errors.
SMALLEST_NORMAL = 2.0**-1022


def gamma(n: float) -> float:
    """gamma_n with a 1% safety factor (covers the rounding of this expression itself)."""
    nu = float(n) * UNIT_ROUNDOFF
    return 1.01 * nu / (1.0 - nu)


def round_up(x: np.ndarray | float, terms: float = 1.0, products: float | None = None) -> np.ndarray | float:
    """A float >= the exact value of ``x`` when ``x`` was computed from exact non-negative quantities with at most
    ``terms`` roundings on any path to the result, ``products`` of which (default: ``terms``) are products or
    quotients, and each product's absolute underflow error reaches ``x`` scaled by at most 1 (it is summed, or
    multiplied later only by factors <= 1 such as gamma_n): round intermediates up before multiplying them by
    anything larger. For negative ``x`` (a sum of non-positive terms), its magnitude shrinks instead.

    Returns x (1 +- gamma_{terms+1}) + products * TINY, stepped to the next float up (the step covers the two
    roundings of this expression; NaN, the result of an overflow such as inf - inf, becomes +inf).
    """
    g = gamma(terms + 1.0)
    absolute = (terms if products is None else products) * TINY
    x = np.asarray(x, dtype=np.float64)
    with np.errstate(invalid="ignore", over="ignore"):
        scaled = np.where(x >= 0, x * (1.0 + g), x * (1.0 - g))
        out = np.nextafter(scaled + absolute, np.inf)
    out = np.where(np.isnan(out), np.inf, out)
    return float(out) if out.ndim == 0 else out


def scale_up_by_power_of_two(x: np.ndarray | float, exponent: np.ndarray | int) -> np.ndarray | float:
    """A float >= x * 2^exponent for x >= 0: ``ldexp`` is exact unless the result leaves the normal range; an
    overflow gives +inf (a valid upper bound), a result in the subnormal range may have been rounded down by up to
    2^-1075, so it is stepped up to the next float."""
    with np.errstate(over="ignore"):
        out = np.ldexp(np.asarray(x, dtype=np.float64), np.asarray(exponent, dtype=np.intc))
    out = np.where(out < SMALLEST_NORMAL, np.nextafter(out, np.inf), out)
    return float(out) if out.ndim == 0 else out


def l2_norm_upper(A: np.ndarray) -> np.ndarray:
    """Proven upper bounds on the Euclidean norms of the rows of ``A`` (the last axis; exact float entries, so the
    bound is about the floats themselves), with no underflow or overflow in the squares.

    Each row is balanced by an exact power of two first: with M its largest magnitude, M = f 2^e, f in [0.5, 1),
    the row scaled by 2^-e has largest entry in [0.5, 1), so the sum of squares is in [0.25, n] and cannot overflow,
    and a square that underflows is < 2^-1022 and carries an absolute error <= 2^-1075 (n of them at most, covered
    by ``round_up``'s TINY per product). Scaling up (e <= 0) is exact. Scaling down (e > 0) is exact except for
    entries that land in the subnormal range, each within 2^-1075 of its exact scaled value, so by the triangle
    inequality the exact scaled norm is <= the norm of the scaled floats + sqrt(n) 2^-1075 <= ... + n TINY. The
    bound is then scaled back by 2^e, rounding up (``scale_up_by_power_of_two``); overflow gives +inf. A zero row
    has norm exactly 0; a row holding inf gives +inf.
    """
    A = np.asarray(A, dtype=np.float64)
    n = A.shape[-1]
    largest = np.max(np.abs(A), axis=-1) if n else np.zeros(A.shape[:-1])
    _, exponent = np.frexp(largest)                         # largest = f 2^exponent, f in [0.5, 1) (0 for 0)
    with np.errstate(invalid="ignore", over="ignore"):
        scaled = np.ldexp(A, -exponent[..., None])
        sum_squares = round_up(np.sum(scaled * scaled, axis=-1), n + 1)  # n squares, n - 1 additions
        norm = round_up(np.sqrt(sum_squares), 1, products=0)            # sqrt: relative u only
        # scaled-down entries may have lost bits in the subnormals; norm >= 0.5, so one step up covers the sum
        norm = np.where(exponent > 0, np.nextafter(norm + n * TINY, np.inf), norm)
        out = scale_up_by_power_of_two(norm, exponent)
    out = np.where(largest == 0, 0.0, out)
    out = np.where(np.isfinite(largest), out, np.inf)       # inf entries (an overflowed difference): +inf
    return out


def check_gradual_underflow() -> None:
    """``SdpcertError`` when numpy on this thread flushes subnormal results to zero (or treats subnormal inputs as
    zero): the rounding model above, and with it every certificate, assumes gradual underflow.

    Costs two float64 operations: 2^-1022 / 4 = 2^-1024 is a subnormal, exact under gradual underflow and 0 when
    results are flushed (FTZ); TINY * 2 = 2^-1073 is 0 when subnormal inputs are read as zero (DAZ)."""
    flushed = np.float64(SMALLEST_NORMAL) / np.float64(4.0) == 0 or np.float64(TINY) * np.float64(2.0) == 0
    if flushed:
        raise SdpcertError("flush-to-zero mode is on (e.g. torch.set_flush_denormal(True)): sdpcert's rounding "
                           "bounds assume gradual underflow; turn it off (torch.set_flush_denormal(False)) before "
                           "certifying")
