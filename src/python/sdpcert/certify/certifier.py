"""Certificates for whole data sets: ``Certifier(net).certify(X, y, eps, method)``.

Flow: weights -> pair SDP values (C++ core, once per model, cached; pair_sdp.py) -> growth coefficients G
(growth.py) -> per example, a proven upper bound on the worst adversarial margin (margins.py), or, for a
per-example method such as the LP bound (lp.py), that bound directly. An example is certified iff its bound is < 0.

The methods are a table, ``METHOD_TABLE``: each entry says how to compute its bound, either as a (k, k) growth
matrix shared by every example (``growth``) or per example (``margins``), and which activations it applies to.
A new bound family is one new entry.

Example:
    >>> from sdpcert import TwoLayerNet, Certifier, load_mnist_sample   # doctest: +SKIP
    >>> result = Certifier(net).certify(X, y, eps=0.1)                   # doctest: +SKIP
    >>> result.certified_error                                           # doctest: +SKIP
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any, Callable, Optional

import numpy as np

from .._checks import INT32_MAX, as_list, check_data, check_eps, check_threads, int_in_range
from ..errors import SdpcertError
from ..model.network import ACTIVATIONS, TwoLayerNet, immutable_copy
from . import growth, lp, margins
from .pair_sdp import PAIR_BOUNDS_CACHE, PairBounds, pair_sdp_values
from .result import CertificationResult
from .rounding import check_gradual_underflow

__all__ = ["Certifier", "CertificationMethod", "METHOD_TABLE", "METHODS", "methods_for"]


@dataclass(frozen=True)
class CertificationMethod:
    """One certification method: how its bound is computed.

    Exactly one of ``growth`` and ``margins`` is set. ``growth(certifier)`` returns the method's proven (k, k) growth
    matrix G (margins.py turns it into per-example bounds); ``solver_dependent`` says whether G depends on the pair
    SDP solver's settings (then it is cached per settings, else per model). ``margins(net, X, y, eps)`` returns
    per-example ``(worst, worst_class)`` bounds directly, for checked float64 X and int64 y. ``activations`` are
    those the method applies to."""

    name: str
    description: str
    growth: Optional[Callable[["Certifier"], np.ndarray]] = None
    margins: Optional[Callable[[TwoLayerNet, np.ndarray, np.ndarray, float], tuple[np.ndarray, np.ndarray]]] = None
    solver_dependent: bool = False
    activations: tuple[str, ...] = tuple(ACTIVATIONS)

    @property
    def per_example(self) -> bool:
        return self.margins is not None


# The entries call through the modules (growth.sdp_growth, not a captured function), so a test can replace one.
METHOD_TABLE: dict[str, CertificationMethod] = {
    "sdp": CertificationMethod(
        "sdp", "(L/4) S_ij from the proven pair SDP values (Raghunathan et al. 2018)",
        growth=lambda c: growth.sdp_growth(c.net, c.pair_bounds().upper), solver_dependent=True),
    "spectral": CertificationMethod(
        "spectral", "L sqrt(d) ||W||_2 ||V_i - V_j||_2",
        growth=lambda c: growth.spectral_growth(c.net)),
    "frobenius": CertificationMethod(
        "frobenius", "L sqrt(d) ||W||_F ||V_i - V_j||_2",
        growth=lambda c: growth.frobenius_growth(c.net)),
    "lp": CertificationMethod(
        "lp", "Wong-Kolter LP bound, per example (relu only)",
        margins=lambda net, X, y, eps: lp.lp_worst_margins(net, X, y, eps, return_class=True),
        activations=("relu",)),
}

#: The names of the certification methods, in table order.
METHODS: tuple[str, ...] = tuple(METHOD_TABLE)


def methods_for(net: TwoLayerNet) -> tuple[str, ...]:
    """The certification methods that apply to ``net`` (the LP bound is for ReLU nets only)."""
    return tuple(name for name, spec in METHOD_TABLE.items() if net.activation in spec.activations)


def _method(name: Any) -> CertificationMethod:
    if not isinstance(name, str) or name not in METHOD_TABLE:
        raise SdpcertError(f"unknown method {name!r}; choose one of {', '.join(METHODS)}")
    return METHOD_TABLE[name]


class Certifier:
    """Certifies a ``TwoLayerNet`` against l_inf perturbations.

    ``pair_bounds()`` solves the k(k-1)/2 pair SDPs once per model and solver settings (cached in
    ``PAIR_BOUNDS_CACHE``); ``certify(X, y, eps, method)`` then costs one forward pass.

    Parameters: rel_tol, target (upper - lower) / upper of each pair SDP, in (0, 1); threads, OpenMP threads across
    pairs (0: all); seed, the solver's seed (>= 0; results are deterministic); max_sweeps, the solver's sweep limit
    per pair (>= 1). All are checked here and, like ``net``, read-only afterwards: every cached quantity of a
    Certifier is keyed by the model's fingerprint and these settings.
    """

    def __init__(self, net: TwoLayerNet, rel_tol: float = 1e-6, threads: int = 0, seed: int = 0,
                 max_sweeps: int = 5000) -> None:
        if not isinstance(net, TwoLayerNet):
            raise SdpcertError(f"Certifier needs a TwoLayerNet; got {type(net).__name__}")
        if net.k < 2:
            raise SdpcertError(f"certification needs k >= 2 classes; the network has k = {net.k}")
        if isinstance(rel_tol, (bool, np.bool_)) or not isinstance(rel_tol, (int, float, np.integer, np.floating)) \
                or not (math.isfinite(float(rel_tol)) and 0 < float(rel_tol) < 1):
            raise SdpcertError(f"rel_tol must lie in (0, 1); got {rel_tol!r}")
        self._net = net
        self._rel_tol = float(rel_tol)
        self._threads = check_threads(threads)
        self._seed = int_in_range("seed", seed, 0, 2 ** 64 - 1)  # the core's seed is an unsigned 64-bit integer
        self._max_sweeps = int_in_range("max_sweeps", max_sweeps, 1, INT32_MAX)
        self._pair_bounds: dict[tuple, PairBounds] = {}
        self._growth: dict[tuple, np.ndarray] = {}

    @property
    def net(self) -> TwoLayerNet:
        """The certified network (read-only: certify another model with another Certifier)."""
        return self._net

    @property
    def rel_tol(self) -> float:
        return self._rel_tol

    @property
    def threads(self) -> int:
        return self._threads

    @property
    def seed(self) -> int:
        return self._seed

    @property
    def max_sweeps(self) -> int:
        return self._max_sweeps

    def _solver_key(self) -> tuple:
        # threads is not part of the key: the solver's results do not depend on the thread count.
        return (self._net.fingerprint(), self._rel_tol, self._seed, self._max_sweeps)

    @staticmethod
    def clear_cache() -> None:
        """Forget the pair SDP values cached for every model (``PAIR_BOUNDS_CACHE.clear()``)."""
        PAIR_BOUNDS_CACHE.clear()

    # ---------------------------------------------------------------------------------------- pair SDPs
    def pair_bounds(self, progress: Optional[Callable[[int, int], None]] = None) -> PairBounds:
        """Solve (or fetch from the cache) the pair SDP values. ``progress(done, total)`` is called as pairs finish."""
        key = self._solver_key()
        cached = self._pair_bounds.get(key) or PAIR_BOUNDS_CACHE.get(key)
        if cached is not None:
            self._pair_bounds[key] = cached  # kept here too: a busy shared cache may drop it
            return cached
        result = pair_sdp_values(self._net, rel_tol=self._rel_tol, seed=self._seed, max_sweeps=self._max_sweeps,
                                 threads=self._threads, progress=progress)
        PAIR_BOUNDS_CACHE.put(key, result)
        self._pair_bounds[key] = result
        return result

    def growth(self, method: str = "sdp") -> np.ndarray:
        """(k, k) proven growth coefficients G of ``method`` (see growth.py); an immutable array."""
        spec = _method(method)
        if spec.per_example:
            raise SdpcertError(f"method {method!r} bounds each example separately and has no (k, k) growth matrix; "
                               f"use certify(X, y, eps, method={method!r})")
        # The SDP growth depends on the solver settings through the pair values; the norm bounds only on the model.
        key = (method, *self._solver_key()) if spec.solver_dependent else (method, self._net.fingerprint())
        if key not in self._growth:
            self._growth[key] = immutable_copy(spec.growth(self), np.float64)
        return self._growth[key]

    # ---------------------------------------------------------------------------------------- certificates
    def certify(self, X: Any, y: Any, eps: float, method: str = "sdp") -> CertificationResult:
        """Per-example certificates at l_inf radius ``eps`` (see the module docstring)."""
        eps = check_eps(eps)
        return self.certify_grid(X, y, [eps], [method])[(eps, method)]

    def certify_grid(self, X: Any, y: Any, eps_values: Any, methods: Any = ("sdp",)) -> dict:
        """Certificates for every (eps, method) combination, sharing one forward pass and one rounding-error bound:
        ``{(eps, method): CertificationResult}``."""
        eps_values = [check_eps(e) for e in as_list("eps_values", eps_values)]
        methods = as_list("methods", methods)
        specs = [_method(method) for method in methods]
        X, y = check_data(X, y, self._net.d, self._net.k)
        check_gradual_underflow()
        t0 = time.perf_counter()
        base, magnitude, predicted = margins.logit_margins(self._net, X, y)
        shared = time.perf_counter() - t0
        out = {}
        for method, spec in zip(methods, specs):
            if spec.per_example:
                for eps in eps_values:
                    t3 = time.perf_counter()
                    worst, worst_class = spec.margins(self._net, X, y, eps)
                    seconds = shared + (time.perf_counter() - t3)
                    out[(eps, method)] = CertificationResult(
                        method=method, eps=eps, labels=y, predicted=predicted, worst_margin=worst,
                        worst_class=worst_class, seconds=seconds, timings={"bounds": 0.0, "examples": seconds})
                continue
            t1 = time.perf_counter()
            G = self.growth(method)
            t2 = time.perf_counter()
            for eps in eps_values:
                t3 = time.perf_counter()
                worst, worst_class = margins.worst_margins(base, magnitude, y, eps, G)
                t4 = time.perf_counter()
                out[(eps, method)] = CertificationResult(
                    method=method, eps=eps, labels=y, predicted=predicted, worst_margin=worst,
                    worst_class=worst_class, seconds=shared + (t2 - t1) + (t4 - t3),
                    timings={"bounds": t2 - t1, "examples": shared + (t4 - t3)})
        return out
