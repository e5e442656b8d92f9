"""Certificates for whole data sets: ``Certifier(net).certify(X, y, eps, method)``.

Flow: weights -> pair SDP values (C++ core, once per model, cached; pair_sdp.py) -> growth coefficients G
(growth.py) -> per example, a proven upper bound on the worst adversarial margin (margins.py), or, for a
per-example method such as the LP bound (lp.py), that bound directly. An example is certified iff its bound is < 0.

The methods are a table, ``METHOD_TABLE``: each entry says how to compute its bound, either as a (k, k) growth
matrix shared by every example (``growth``), per example over each example's region (``margins``: the ball, or the
ball intersected with the input domain, box.py), or as a cascade of other entries (``cascade``: ``best``), and which
activations it applies to. A new bound family is one new entry; a new per-example method joins ``best`` by being
named in ``CASCADE``.

The input domain. ``Certifier(net, input_domain=(lo, hi))`` certifies, per example, the ball intersected with the
box [lo, hi] (e.g. (0, 1) for pixels): the per-example methods (interval, lp) use the box; the per-model growth
bounds prove the whole ball, which contains it, and their results say so (``result.input_domain`` None).

Per-example work (interval, lp, the cascade's stages) runs in chunks of ``chunk_size`` examples, serially or on any
``concurrent.futures.Executor`` (``executor=``: a ``ProcessPoolExecutor``, Dask distributed's
``Client.get_executor()``). The chunks are the same either way, and each chunk is computed by the same code, so the
results are identical to the serial run when the workers' BLAS uses the caller's thread count (a BLAS with another
thread count may round the chunk's products differently in the last bits; every such bound is proven all the same).

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

from .._checks import (INT32_MAX, as_list, check_data, check_eps, check_in_domain, check_input_domain, check_inputs,
                       check_threads, int_in_range, positive_int)
from ..errors import SdpcertError
from ..model.network import ACTIVATIONS, TwoLayerNet, immutable_copy
from . import example_sdp, growth, interval, lp, margins
from .box import PreactivationBounds, Region, example_region, preactivation_bounds
from .pair_sdp import PAIR_BOUNDS_CACHE, PairBounds, pair_sdp_values
from .result import CertificationResult
from .rounding import check_gradual_underflow

__all__ = ["Certifier", "CertificationMethod", "METHOD_TABLE", "METHODS", "ALL_METHODS", "CASCADE", "methods_for"]

#: ``progress(stage, done, total, certified)``: examples done of ``total`` in ``stage`` (a method's name, or
#: "pair SDPs" with ``certified`` None), and how many of them are certified so far.
Progress = Callable[[str, int, int, Optional[int]], None]


@dataclass(frozen=True)
class CertificationMethod:
    """One certification method: how its bound is computed.

    Exactly one of ``growth``, ``margins`` and ``cascade`` is set. ``growth(certifier)`` returns the method's proven
    (k, k) growth matrix G (margins.py turns it into per-example bounds over the whole ball); ``solver_dependent``
    says whether G depends on the pair SDP solver's settings (then it is cached per settings, else per model).
    ``default``: run when no methods are named (the paper's bounds; the newer ones are asked for by name).
    ``margins(net, region, y)`` returns per-example ``(worst, worst_class)`` bounds over the regions of box.py (the
    ball, or the ball intersected with the input domain) for int64 y; it must be a module-level function reachable
    from this table, since it runs on executors' workers. ``cascade`` names the methods a meta-method tries, cheap
    to expensive (``best``). ``activations`` are those the method applies to."""

    name: str
    description: str
    growth: Optional[Callable[["Certifier"], np.ndarray]] = None
    margins: Optional[Callable[[TwoLayerNet, Region, np.ndarray], tuple[np.ndarray, np.ndarray]]] = None
    solver_dependent: bool = False
    activations: tuple[str, ...] = tuple(ACTIVATIONS)
    cascade: Optional[tuple[str, ...]] = None
    default: bool = True

    @property
    def per_example(self) -> bool:
        return self.margins is not None or self.cascade is not None

    @property
    def uses_input_domain(self) -> bool:
        """Whether the bound is over the ball intersected with the input domain (per-example methods) rather than
        the whole ball (per-model growth bounds)."""
        return self.per_example


#: The methods ``best`` tries, cheap to expensive, skipping those that do not apply to the net. The per-example
#: SDPs of issue 10 join here.
CASCADE: tuple[str, ...] = ("interval", "lp", "lp-opt", "sdp", "spectral", "frobenius", "sdp-example")

# The growth entries call through the module (growth.sdp_growth, not a captured function), so a test can replace
# one; the per-example entries name module-level functions, which executors pickle by name (a test replaces the
# table entry itself: workers look the method up in METHOD_TABLE by name).
METHOD_TABLE: dict[str, CertificationMethod] = {
    "sdp": CertificationMethod(
        "sdp", "(L/4) S_ij from the proven pair SDP values (Raghunathan et al. 2018); the whole ball",
        growth=lambda c: growth.sdp_growth(c.net, c.pair_bounds().upper), solver_dependent=True),
    "spectral": CertificationMethod(
        "spectral", "L sqrt(d) ||W||_2 ||V_i - V_j||_2; the whole ball",
        growth=lambda c: growth.spectral_growth(c.net)),
    "frobenius": CertificationMethod(
        "frobenius", "L sqrt(d) ||W||_F ||V_i - V_j||_2; the whole ball",
        growth=lambda c: growth.frobenius_growth(c.net)),
    "lp": CertificationMethod(
        "lp", "Wong-Kolter LP bound, per example over the ball (and the input box) (relu only)",
        margins=lp.lp_region_margins, activations=("relu",)),
    "lp-opt": CertificationMethod(
        "lp-opt", "LP bound with optimised lower slopes (the triangle-relaxation LP), per example over the ball (and "
        "the input box) (relu only)",
        margins=lp.lp_opt_region_margins, activations=("relu",), default=False),
    "sdp-example": CertificationMethod(
        "sdp-example", "the paper's SDP per example and target: stable units fixed, each unit's slope range and the "
        "input box; per target the smaller of it and lp-opt (interval for tanh/sigmoid)",
        margins=example_sdp.sdp_example_region_margins, default=False),
    "interval": CertificationMethod(
        "interval", "interval bound propagation, per example over the ball (and the input box)",
        margins=interval.interval_region_margins, default=False),
    "best": CertificationMethod(
        "best", "cascade " + " -> ".join(CASCADE) + ", per example until certified; the smallest bound found",
        cascade=CASCADE, default=False),
}

#: The names of the methods run when none are named (the paper's bounds and the LP), in table order.
METHODS: tuple[str, ...] = tuple(name for name, spec in METHOD_TABLE.items() if spec.default)
#: The names of every certification method, in table order.
ALL_METHODS: tuple[str, ...] = tuple(METHOD_TABLE)


def methods_for(net: TwoLayerNet, every: bool = False) -> tuple[str, ...]:
    """The certification methods that apply to ``net`` (the LP bound is for ReLU nets only): those run by default,
    or with ``every=True`` all of them (interval and the ``best`` cascade included)."""
    return tuple(name for name, spec in METHOD_TABLE.items()
                 if net.activation in spec.activations and (every or spec.default))


def _method(name: Any) -> CertificationMethod:
    if not isinstance(name, str) or name not in METHOD_TABLE:
        raise SdpcertError(f"unknown method {name!r}; choose one of {', '.join(ALL_METHODS)}")
    return METHOD_TABLE[name]


def _check_applies(net: TwoLayerNet, name: str, spec: CertificationMethod) -> None:
    if net.activation not in spec.activations:
        raise SdpcertError(f"method {name!r} needs a {' or '.join(spec.activations)} network; this one uses "
                           f"{net.activation!r}")


def _example_chunk(net: TwoLayerNet, method: str, region: Region, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """One chunk of per-example work (module level: executors pickle it). Runs in the worker: the rounding model
    is checked there too (a worker thread or process may flush subnormals)."""
    check_gradual_underflow()
    return METHOD_TABLE[method].margins(net, region, y)


class Certifier:
    """Certifies a ``TwoLayerNet`` against l_inf perturbations.

    ``pair_bounds()`` solves the k(k-1)/2 pair SDPs once per model and solver settings (cached in
    ``PAIR_BOUNDS_CACHE``); ``certify(X, y, eps, method)`` then costs one forward pass.

    Parameters: rel_tol, target (upper - lower) / upper of each pair SDP, in (0, 1); threads, OpenMP threads across
    pairs (0: all); seed, the solver's seed (>= 0; results are deterministic); max_sweeps, the solver's sweep limit
    per pair (>= 1); input_domain, None (certify the whole l_inf ball) or ``(lo, hi)``, scalars or (d,) arrays with
    lo < hi: the inputs live in the box [lo, hi] (e.g. (0, 1) for pixels), and the per-example methods certify the
    ball intersected with it (module docstring). All are checked here and, like ``net``, read-only afterwards: every
    cached quantity of a Certifier is keyed by the model's fingerprint and these settings.
    """

    def __init__(self, net: TwoLayerNet, rel_tol: float = 1e-6, threads: int = 0, seed: int = 0,
                 max_sweeps: int = 5000, input_domain: Any = None) -> None:
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
        self._domain = check_input_domain(input_domain, net.d)
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

    @property
    def input_domain(self) -> Optional[tuple[np.ndarray, np.ndarray]]:
        """None (the whole ball) or (lo, hi), read-only (d,) float64 arrays."""
        return self._domain

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
        cached = self.solved_pair_bounds()
        if cached is not None:
            return cached
        result = pair_sdp_values(self._net, rel_tol=self._rel_tol, seed=self._seed, max_sweeps=self._max_sweeps,
                                 threads=self._threads, progress=progress)
        PAIR_BOUNDS_CACHE.put(key, result)
        self._pair_bounds[key] = result
        return result

    def solved_pair_bounds(self) -> Optional[PairBounds]:
        """The pair SDP values if they are solved already (here or in the shared cache), else None: solves nothing."""
        key = self._solver_key()
        cached = self._pair_bounds.get(key) or PAIR_BOUNDS_CACHE.get(key)
        if cached is not None:
            self._pair_bounds[key] = cached  # kept here too: a busy shared cache may drop it
        return cached

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

    # ---------------------------------------------------------------------------------------- per-example regions
    def regions(self, X: Any, eps: float) -> Region:
        """Each example's region (box.py): the ball (x, eps), or with an input domain the centre and radius of the
        proven box [max(x - eps, lo), min(x + eps, hi)] (with its ends ``l``, ``u``)."""
        eps = check_eps(eps)
        X = check_inputs(X, self._net.d)
        check_in_domain(X, self._domain)
        return example_region(X, eps, self._domain)

    def preactivation_bounds(self, X: Any, eps: float) -> PreactivationBounds:
        """Proven bounds lo <= W x' + b <= hi over each example's region (``box.preactivation_bounds``): the
        interval and LP bounds start from them, and so can any later per-example method (stable units: lo >= 0 or
        hi <= 0)."""
        check_gradual_underflow()
        return preactivation_bounds(self._net, self.regions(X, eps))

    # ---------------------------------------------------------------------------------------- certificates
    def certify(self, X: Any, y: Any, eps: float, method: str = "sdp", executor: Any = None, chunk_size: int = 256,
                progress: Optional[Progress] = None) -> CertificationResult:
        """Per-example certificates at l_inf radius ``eps`` (see the module docstring). ``executor``: a
        ``concurrent.futures.Executor`` for the per-example work, in chunks of ``chunk_size`` examples;
        ``progress(stage, done, total, certified)`` is called as chunks finish."""
        eps = check_eps(eps)
        return self.certify_grid(X, y, [eps], [method], executor=executor, chunk_size=chunk_size,
                                 progress=progress)[(eps, method)]

    def certify_grid(self, X: Any, y: Any, eps_values: Any, methods: Any = ("sdp",), executor: Any = None,
                     chunk_size: int = 256, progress: Optional[Progress] = None) -> dict:
        """Certificates for every (eps, method) combination, sharing one forward pass and one rounding-error bound:
        ``{(eps, method): CertificationResult}``. ``best`` reuses the bounds of the other methods asked for in the
        same call (same radius) instead of computing them again. ``executor``, ``chunk_size``, ``progress``: as in
        ``certify``."""
        eps_values = [check_eps(e) for e in as_list("eps_values", eps_values)]
        methods = as_list("methods", methods)
        specs = [_method(method) for method in methods]
        for method, spec in zip(methods, specs):
            _check_applies(self._net, method, spec)
        chunk_size = positive_int("chunk_size", chunk_size)
        if executor is not None and not callable(getattr(executor, "map", None)):
            raise SdpcertError(f"executor must be a concurrent.futures.Executor (something with .map); got "
                               f"{type(executor).__name__}")
        X, y = check_data(X, y, self._net.d, self._net.k)
        check_in_domain(X, self._domain)
        check_gradual_underflow()
        t0 = time.perf_counter()
        base, magnitude, predicted = margins.logit_margins(self._net, X, y)
        shared = time.perf_counter() - t0
        run = _Run(self, X, y, base, magnitude, predicted, shared, executor, chunk_size, progress)
        out = {}
        # the cascade last, so that it can reuse what the single methods computed
        order = sorted(range(len(methods)), key=lambda i: specs[i].cascade is not None)
        for eps in eps_values:
            known: dict[str, CertificationResult] = {}
            for i in order:
                method, spec = methods[i], specs[i]
                if spec.cascade is not None:
                    out[(eps, method)] = run.cascade(method, spec.cascade, eps, known)
                else:
                    out[(eps, method)] = known[method] = run.single(method, spec, eps)
        return {(eps, method): out[(eps, method)] for eps in eps_values for method in methods}


class _Run:
    """One ``certify_grid`` call: the checked data, the shared forward pass, and how per-example work is run."""

    def __init__(self, certifier: Certifier, X: np.ndarray, y: np.ndarray, base: np.ndarray, magnitude: np.ndarray,
                 predicted: np.ndarray, shared: float, executor: Any, chunk_size: int,
                 progress: Optional[Progress]) -> None:
        self.certifier, self.net, self.domain = certifier, certifier.net, certifier.input_domain
        self.X, self.y, self.base, self.magnitude, self.predicted = X, y, base, magnitude, predicted
        self.shared, self.executor, self.chunk_size, self.progress = shared, executor, chunk_size, progress
        self._regions: dict[float, Region] = {}

    def region(self, eps: float) -> Region:
        if eps not in self._regions:
            self._regions[eps] = example_region(self.X, eps, self.domain)
        return self._regions[eps]

    def result(self, method: str, eps: float, worst: np.ndarray, worst_class: np.ndarray, seconds: float,
               timings: dict, uses_domain: bool, **extra: Any) -> CertificationResult:
        return CertificationResult(method=method, eps=eps, labels=self.y, predicted=self.predicted,
                                   worst_margin=worst, worst_class=worst_class, seconds=seconds, timings=timings,
                                   input_domain=self.domain if uses_domain else None, **extra)

    # ------------------------------------------------------------------------------------------ single methods
    def single(self, method: str, spec: CertificationMethod, eps: float) -> CertificationResult:
        if spec.per_example:
            t0 = time.perf_counter()
            worst, worst_class = self.per_example(method, eps, np.arange(len(self.y)))
            seconds = self.shared + (time.perf_counter() - t0)
            return self.result(method, eps, worst, worst_class, seconds, {"bounds": 0.0, "examples": seconds}, True)
        t1 = time.perf_counter()
        G = self.certifier.growth(method)
        t2 = time.perf_counter()
        worst, worst_class = margins.worst_margins(self.base, self.magnitude, self.y, eps, G)
        t3 = time.perf_counter()
        return self.result(method, eps, worst, worst_class, self.shared + (t3 - t1),
                           {"bounds": t2 - t1, "examples": self.shared + (t3 - t2)}, False)

    def per_example(self, method: str, eps: float, index: np.ndarray, label: Optional[str] = None,
                    certified_before: int = 0) -> tuple[np.ndarray, np.ndarray]:
        """(worst, worst_class) of a per-example method for the examples ``index``, in chunks of ``chunk_size``
        (serially, or on the executor; the same chunks either way)."""
        region = self.region(eps)
        n = len(index)
        worst = np.empty(n)
        worst_class = np.empty(n, dtype=np.int64)
        starts = list(range(0, n, self.chunk_size))
        chunks = [index[a:a + self.chunk_size] for a in starts]
        regions = [region.rows(rows) for rows in chunks]
        labels = [self.y[rows] for rows in chunks]
        if self.executor is None:
            results = map(_example_chunk, [self.net] * len(chunks), [method] * len(chunks), regions, labels)
        else:
            results = self.executor.map(_example_chunk, [self.net] * len(chunks), [method] * len(chunks), regions,
                                        labels)
        done, certified = 0, certified_before
        if self.progress is not None:
            self.progress(label or method, 0, n, certified)
        for a, (w, c) in zip(starts, results):
            b = a + len(w)
            worst[a:b], worst_class[a:b] = w, c
            done, certified = b, certified + int(np.count_nonzero(w < 0))
            if self.progress is not None:
                self.progress(label or method, done, n, certified)
        return worst, worst_class

    # ------------------------------------------------------------------------------------------ the cascade
    def cascade(self, method: str, stages: tuple[str, ...], eps: float,
                known: dict[str, CertificationResult]) -> CertificationResult:
        """``best``: each stage bounds the examples no earlier stage certified; per example the smallest bound
        computed and the stage that certified it. Every stage's bound is proven for a set containing the example's
        region (the ball, or the ball intersected with the box), so their minimum is proven for the region."""
        t0 = time.perf_counter()
        stages = tuple(s for s in stages if self.net.activation in METHOD_TABLE[s].activations)
        n = len(self.y)
        worst = np.full(n, np.inf)
        worst_class = np.zeros(n, dtype=np.int64)
        certified_by = np.full(n, "", dtype=f"<U{max(len(s) for s in stages)}")
        remaining = np.arange(n)
        timings: dict[str, float] = {}
        for stage in stages:
            if not len(remaining):
                break
            t1 = time.perf_counter()
            spec = METHOD_TABLE[stage]
            if stage in known:
                w, c = known[stage].worst_margin[remaining], known[stage].worst_class[remaining]
            elif spec.per_example:
                w, c = self.per_example(stage, eps, remaining, label=f"{method}: {stage}",
                                        certified_before=n - len(remaining))
            else:
                if spec.solver_dependent and self.progress is not None \
                        and self.certifier.solved_pair_bounds() is None:
                    self.certifier.pair_bounds(progress=lambda done, total: self.progress("pair SDPs", done, total,
                                                                                          None))
                G = self.certifier.growth(stage)
                w, c = margins.worst_margins(self.base[remaining], self.magnitude[remaining], self.y[remaining], eps,
                                             G)
                if self.progress is not None:
                    self.progress(f"{method}: {stage}", len(remaining), len(remaining),
                                  n - len(remaining) + int(np.count_nonzero(w < 0)))
            better = w < worst[remaining]
            worst[remaining[better]] = w[better]
            worst_class[remaining[better]] = c[better]
            now = w < 0
            certified_by[remaining[now]] = stage
            remaining = remaining[~now]
            timings[stage] = time.perf_counter() - t1
        seconds = self.shared + (time.perf_counter() - t0)
        return self.result(method, eps, worst, worst_class, seconds, timings, True, certified_by=certified_by,
                           cascade=stages)
