"""Argument checks shared by the whole package: one function, and one wording, per kind of argument.

Every public entry point validates what it is given before any numerics run, and the messages name the argument,
say what was expected and what was got. The same argument (eps, X, y, a count, the class pairs) is checked here,
once, whichever module receives it, so a user sees the same message from ``Certifier.certify``, the attacks, the
LP bound and the torch operators.

Refusals are ``SdpcertError`` (``ShapeError`` for shapes, ``NonFiniteError`` for NaN/inf): bad input, never a
traceback from deep inside numpy or the compiled core. Nothing is clamped, rounded or truncated: a value that would
change on conversion (a float count, a long double eps, an int64 beyond 2^53) is refused instead, because a
certificate about a rounded input is a certificate about another input.

This module imports only numpy and ``errors``, so every other module can use it without an import cycle.
"""

from __future__ import annotations

import math
import operator
from typing import Any, Optional, Sequence

import numpy as np

from .errors import NonFiniteError, SdpcertError, ShapeError

__all__ = ["INT32_MAX", "as_array", "as_numeric_array", "as_list", "check_finite", "check_exact_float64",
           "check_eps", "check_x_shape", "check_y_shape", "check_label_range", "check_inputs", "check_labels",
           "check_data", "check_pairs", "positive_int", "nonnegative_int", "int_in_range", "check_threads",
           "check_input_domain", "check_in_domain"]

#: The largest thread count, sweep limit, ... the compiled core takes (a C ``int``).
INT32_MAX = 2 ** 31 - 1


# ----------------------------------------------------------------------------------------------- arrays
def _is_tensor(value: Any) -> bool:
    return hasattr(value, "detach") and hasattr(value, "cpu")  # a torch tensor; avoids importing torch here


def as_array(name: str, value: Any) -> np.ndarray:
    """``np.asarray(value)`` (a torch tensor is copied to the CPU first); ``ShapeError`` for ragged input."""
    if _is_tensor(value):
        value = value.detach().cpu().numpy()
    try:
        return np.asarray(value)
    except (ValueError, TypeError) as exc:  # ragged nested lists and the like
        raise ShapeError(f"{name} cannot be turned into a numeric array: {exc}") from exc


def as_numeric_array(name: str, value: Any) -> np.ndarray:
    """:func:`as_array`, refusing anything that is not real integers or floats (bool, complex, object, strings)."""
    arr = as_array(name, value)
    # 'i'/'u' signed/unsigned integers, 'f' floats; bool ('b'), complex ('c'), object ('O'), strings are refused
    if arr.dtype.kind not in "iuf":
        raise SdpcertError(f"{name} must hold real numbers (integer or float); got dtype {arr.dtype}")
    return arr


def as_list(name: str, values: Any) -> list:
    """A sequence argument as a list: one string is one item (not its letters); a lone number is refused."""
    if isinstance(values, str):
        return [values]
    try:
        return list(values)
    except TypeError:
        raise SdpcertError(f"{name} must be a sequence (e.g. a list); got {values!r}") from None


def check_finite(name: str, arr: np.ndarray) -> None:
    """``NonFiniteError`` naming ``name``, the count and the first index when ``arr`` holds NaN or inf."""
    bad = ~np.isfinite(arr)
    count = int(bad.sum())
    if count:
        first = tuple(int(i) for i in np.argwhere(bad)[0])
        raise NonFiniteError(
            f"{name} contains {count} non-finite value{'s' if count != 1 else ''} (NaN/inf); first at index {first}"
        )


def check_exact_float64(name: str, arr: np.ndarray) -> None:
    """Refuse an array whose values float64 cannot represent exactly (``SdpcertError`` naming ``name``).

    Everything sdpcert computes is float64; a value that changes on conversion would give a certificate for a
    different network or input. float16/32/64 and integers of up to 32 bits always convert exactly; 64-bit integers
    do up to 2^53 in magnitude (beyond, only when their low bits are zero); a long double does when it lies on the
    float64 grid. Call it after the finiteness check (NaN never equals itself)."""
    kind, size = arr.dtype.kind, arr.dtype.itemsize
    if arr.size == 0 or kind not in "iuf" or (kind in "iu" and size <= 4) or (kind == "f" and size <= 8):
        return
    with np.errstate(over="ignore", invalid="ignore"):
        as_double = arr.astype(np.float64)
        if kind == "f":
            exact = as_double.astype(arr.dtype) == arr  # compared in the wider type: exact
        else:
            # Converting back is exact below 2^63 (2^64 unsigned); a value that rounded up to that power of two
            # was above the type's maximum, so it changed.
            limit = 2.0 ** (63 if kind == "i" else 64)
            fits = np.abs(as_double) < limit
            exact = np.zeros(arr.shape, dtype=bool)
            exact[fits] = as_double[fits].astype(arr.dtype) == arr[fits]
    inexact = ~exact
    count = int(inexact.sum())
    if count:
        first = tuple(int(i) for i in np.argwhere(inexact)[0])
        raise SdpcertError(
            f"{name} holds {count} value{'s' if count != 1 else ''} that float64 cannot represent exactly (dtype "
            f"{arr.dtype}; first at index {first}: {arr[first]}); sdpcert computes in float64, so the certificate "
            f"would be about a different {'network' if name != 'X' else 'input'}: round the values to float64 "
            f"yourself (e.g. {name}.astype(numpy.float64)) if that is what you mean"
        )


# ----------------------------------------------------------------------------------------------- eps
def check_eps(eps: Any) -> float:
    """eps as a float, refusing negative, non-finite and non-numeric values (nothing is clamped or rounded).

    Refused as well: booleans (``True`` is not the radius 1.0), strings, and values that float64 cannot hold
    exactly (a long double, a huge int, a Fraction): rounded down, they would certify a smaller ball."""
    if isinstance(eps, (bool, np.bool_, str, bytes)) or str(getattr(eps, "dtype", "")) in ("bool", "torch.bool"):
        raise SdpcertError(f"eps must be a real number; got {eps!r}")
    try:
        value = float(eps)
    except OverflowError as exc:
        raise NonFiniteError(f"eps must be finite; got {eps!r}") from exc
    except (TypeError, ValueError) as exc:
        raise SdpcertError(f"eps must be a real number; got {eps!r}") from exc
    if not math.isfinite(value):
        raise NonFiniteError(f"eps must be finite; got {value}")
    try:
        changed = bool(value != eps)  # compared exactly (Python and numpy compare int/long double/Fraction exactly)
    except (TypeError, ValueError):
        changed = False
    if changed:
        raise SdpcertError(f"eps = {eps!r} is not exactly a float64 (it would be rounded to {value!r}); "
                           f"pass a float")
    if value < 0:
        raise SdpcertError(f"eps must be >= 0 (an l_inf radius); got {value}")
    return value


# ----------------------------------------------------------------------------------------------- X and y
def check_x_shape(shape: Sequence[int], d: Optional[int] = None, min_rows: int = 0) -> None:
    """``ShapeError`` unless ``shape`` is ``(n, d)`` (one row per example) with ``n >= min_rows``.

    ``d`` is the network's input dimension, or None when the model does not say (then any ``d >= 1``). Works on
    the shape alone, so torch tensors are checked with the same words."""
    shape = tuple(int(s) for s in shape)
    want = "(n, d)" if d is None else f"(n, d) = (n, {d})"
    if len(shape) != 2:
        raise ShapeError(f"X must have shape {want}, one row per example; got shape {shape} "
                         f"(flatten images first, e.g. X.reshape(len(X), -1))")
    if d is None and shape[1] < 1:
        raise ShapeError(f"X must have shape (n, d) with d >= 1 inputs; got shape {shape}")
    if d is not None and shape[1] != d:
        raise ShapeError(f"X must have shape (n, {d}): this network takes d = {d} inputs; got shape {shape}")
    if shape[0] < min_rows:
        raise ShapeError(f"X must hold at least {min_rows} example{'s' if min_rows != 1 else ''}; "
                         f"got shape {shape}")


def check_y_shape(shape: Sequence[int], n: int) -> None:
    """``ShapeError`` unless ``shape`` is ``(n,)``: one label per row of X."""
    shape = tuple(int(s) for s in shape)
    if len(shape) != 1 or shape[0] != n:
        raise ShapeError(f"y must have shape ({n},) to match X; got shape {shape}")


def check_label_range(low: int, high: int, k: Optional[int] = None) -> None:
    """``SdpcertError`` unless the smallest and largest labels lie in [0, k) (k None: the model does not say)."""
    if low < 0 or (k is not None and high >= k):
        if k is None:
            raise SdpcertError(f"labels in y must lie in [0, k), k the model's number of classes; "
                               f"got values in [{low}, {high}]")
        raise SdpcertError(f"labels in y must lie in [0, k) for the k = {k} classes of this network (labels must "
                           f"lie in 0..{k - 1}); got values in [{low}, {high}]")


def check_inputs(X: Any, d: Optional[int] = None, min_rows: int = 0) -> np.ndarray:
    """X as float64 ``(n, d)``: real numbers, finite, exactly representable in float64 (numpy or CPU torch)."""
    arr = as_numeric_array("X", X)
    check_x_shape(arr.shape, d, min_rows)
    check_finite("X", arr)
    check_exact_float64("X", arr)
    return np.asarray(arr, dtype=np.float64)


def check_labels(y: Any, n: int, k: Optional[int] = None) -> np.ndarray:
    """y as int64 ``(n,)`` integer class labels in [0, k); integral floats (1.0) are accepted, nothing is rounded."""
    y = as_array("y", y)
    check_y_shape(y.shape, n)
    if y.dtype.kind not in "iu":
        if y.dtype.kind == "f" and np.all(np.isfinite(y)) and np.all(y == np.round(y)):
            y = y.astype(np.int64)
        else:
            raise SdpcertError(f"y must hold integer class labels; got dtype {y.dtype}")
    if len(y):
        check_label_range(int(y.min()), int(y.max()), k)
    return y.astype(np.int64)


def check_data(X: Any, y: Any, d: Optional[int] = None, k: Optional[int] = None,
               min_rows: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``(X float64 (n, d), y int64 (n,))``, checked by :func:`check_inputs` and :func:`check_labels`."""
    X = check_inputs(X, d, min_rows)
    return X, check_labels(y, len(X), k)


# ----------------------------------------------------------------------------------------------- class pairs
def check_pairs(pairs: Any, k: int) -> np.ndarray:
    """(P, 2) int64 array of class pairs with entries in [0, k) and i != j, P >= 1 (numpy, lists or torch)."""
    if _is_tensor(pairs):
        if pairs.is_floating_point() or pairs.is_complex():
            raise SdpcertError(f"pairs must be integers; got a tensor of dtype {pairs.dtype}")
        arr = pairs.detach().cpu().numpy()
    else:
        try:
            arr = np.asarray(pairs)
        except (TypeError, ValueError) as exc:
            raise ShapeError(f"pairs cannot be turned into an integer array of shape (P, 2): {exc}") from exc
    if arr.size == 0:
        arr = arr.reshape(0, 2) if arr.ndim != 2 else arr
    if arr.dtype.kind not in "iu":
        raise SdpcertError(f"pairs must be integers of shape (P, 2); got dtype {arr.dtype}")
    if arr.ndim != 2 or arr.shape[1] != 2:
        raise ShapeError(f"pairs must have shape (P, 2); got shape {arr.shape}")
    arr = arr.astype(np.int64)
    if arr.shape[0] == 0:
        raise ShapeError("pairs is empty: need at least one class pair")
    bad = (arr < 0) | (arr >= k)
    if bad.any():
        p = int(np.argwhere(bad.any(axis=1))[0, 0])
        raise SdpcertError(f"pairs[{p}] = {arr[p].tolist()} refers to a class outside 0..{k - 1}")
    same = arr[:, 0] == arr[:, 1]
    if same.any():
        p = int(np.argmax(same))
        raise SdpcertError(f"pairs[{p}] = {arr[p].tolist()}: a pair needs two different classes")
    return arr


# ----------------------------------------------------------------------------------------------- counts
def _as_int(value: Any) -> Optional[int]:
    """``value`` as an int if it is an integer (not a bool, not a float such as 3.0), else None."""
    if isinstance(value, (bool, np.bool_)):
        return None
    try:
        return operator.index(value)
    except TypeError:
        return None


def positive_int(name: str, value: Any, optional: bool = False) -> Optional[int]:
    """``value`` as an int >= 1 (None passes when ``optional``); floats, bools and strings are refused."""
    if optional and value is None:
        return None
    number = _as_int(value)
    if number is None or number < 1:
        raise SdpcertError(f"{name} must be a positive integer{' or None' if optional else ''}; got {value!r}")
    return number


def nonnegative_int(name: str, value: Any, optional: bool = False) -> Optional[int]:
    """``value`` as an int >= 0 (None passes when ``optional``); floats, bools and strings are refused."""
    if optional and value is None:
        return None
    number = _as_int(value)
    if number is None or number < 0:
        raise SdpcertError(f"{name} must be a non-negative integer{' or None' if optional else ''}; got {value!r}")
    return number


def int_in_range(name: str, value: Any, low: int, high: int) -> int:
    """``value`` as an int in [low, high]; floats (even 3.0), bools and strings are refused, nothing is truncated."""
    number = _as_int(value)
    if number is None or not low <= number <= high:
        raise SdpcertError(f"{name} must be an integer in [{low}, {high}]; got {value!r}")
    return number


def positive_float(name: str, value: Any, what: str = "positive and finite") -> float:
    """``value`` as a float that is > 0 and finite; bools, strings and non-numbers are refused (nothing is clamped)."""
    if isinstance(value, (bool, np.bool_, str, bytes)):
        raise SdpcertError(f"{name} must be a number; got {value!r}")
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise SdpcertError(f"{name} must be a number; got {value!r}") from None
    if not (math.isfinite(number) and number > 0):
        raise SdpcertError(f"{name} must be {what}; got {value!r}")
    return number


def check_threads(value: Any) -> int:
    """A thread count for the compiled core: an int in [0, 2^31 - 1], 0 meaning all cores."""
    return int_in_range("threads", value, 0, INT32_MAX)


# ----------------------------------------------------------------------------------------------- input domain
def check_input_domain(domain: Any, d: int) -> Optional[tuple[np.ndarray, np.ndarray]]:
    """The input domain [lo, hi] of a certifier as two read-only float64 ``(d,)`` arrays, or None (the whole
    l_inf ball). ``domain`` is None or a pair ``(lo, hi)`` of scalars or ``(d,)`` arrays (numpy, lists or CPU torch).

    Refused: a domain that is not a pair, wrong shapes, non-numeric values, NaN, values float64 cannot hold exactly
    (a rounded box is another box), and lo >= hi anywhere (an empty or degenerate domain: nothing to certify).
    Infinite ends are accepted (lo = -inf: no lower limit on that coordinate)."""
    if domain is None:
        return None
    if isinstance(domain, (str, bytes)) or not hasattr(domain, "__len__") or _is_tensor(domain) \
            or isinstance(domain, np.ndarray) and domain.ndim == 0:
        raise SdpcertError(f"input_domain must be None or a pair (lo, hi) of scalars or (d,) arrays; got {domain!r}")
    if len(domain) != 2:
        raise SdpcertError(f"input_domain must be a pair (lo, hi); got {len(domain)} items")
    ends = []
    for name, value in zip(("lo", "hi"), domain):
        arr = as_numeric_array(f"input_domain {name}", value)
        if arr.shape not in ((), (d,)):
            raise ShapeError(f"input_domain {name} must be a scalar or have shape ({d},) (one value per input); "
                             f"got shape {arr.shape}")
        if np.isnan(arr.astype(np.float64)).any():
            raise NonFiniteError(f"input_domain {name} contains NaN")
        check_exact_float64(f"input_domain {name}", arr)
        full = np.empty(d, dtype=np.float64)
        full[:] = np.asarray(arr, dtype=np.float64)
        full.setflags(write=False)
        ends.append(full)
    lo, hi = ends
    bad = ~(lo < hi)
    if bad.any():
        i = int(np.argmax(bad))
        raise SdpcertError(f"input_domain needs lo < hi in every coordinate; coordinate {i} has lo = {float(lo[i])!r}, "
                           f"hi = {float(hi[i])!r}")
    return lo, hi


def check_in_domain(X: np.ndarray, domain: Optional[tuple[np.ndarray, np.ndarray]]) -> None:
    """``SdpcertError`` when a row of the checked float64 ``X`` lies outside the domain [lo, hi] (None: anything
    goes): a certificate over [x - eps, x + eps] ∩ [lo, hi] is about points the data never comes from."""
    if domain is None or X.size == 0:
        return
    lo, hi = domain
    outside = (X < lo) | (X > hi)
    if outside.any():
        n, i = (int(v) for v in np.argwhere(outside)[0])
        raise SdpcertError(f"X[{n}, {i}] = {float(X[n, i])!r} lies outside the input domain [{float(lo[i])!r}, "
                           f"{float(hi[i])!r}] "
                           f"({int(outside.any(axis=1).sum())} example(s) do); certify data inside the domain, or "
                           f"use input_domain=None (the whole l_inf ball)")
