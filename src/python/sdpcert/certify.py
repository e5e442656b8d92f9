"""Certificates for whole data sets: ``Certifier(net).certify(X, y, eps)``.

Flow: weights -> pair SDP values (C++ core, once per model, cached) -> growth coefficients G (bounds.py) -> per
example, a proven upper bound on the worst adversarial margin

    max_{j != y} max_{||x' - x|| <= eps} f_j(x') - f_y(x')  <=  max_{j != y} [ f_j(x) - f_y(x) + eps G[j, y] ]

and the example is certified iff that bound is < 0. The logits f(x) are computed in float64 and their rounding
error is bounded and added (``forward_error_bound``), so a certificate is a proof about the exact network.

Example:
    >>> from sdpcert import TwoLayerNet, Certifier, load_mnist_sample   # doctest: +SKIP
    >>> result = Certifier(net).certify(X, y, eps=0.1)                   # doctest: +SKIP
    >>> result.certified_error                                           # doctest: +SKIP
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Optional

import numpy as np

from . import bounds
from ._rounding import UNIT_ROUNDOFF, gamma, round_up
from .errors import NonFiniteError, SdpcertError, ShapeError
from .network import TwoLayerNet

__all__ = ["Certifier", "PairBounds", "CertificationResult", "forward_error_bound", "certify_with_growth", "METHODS",
           "methods_for", "check_eps"]

METHODS = ("sdp", "spectral", "frobenius", "lp")  # "lp": Wong-Kolter, per example (lp_bound.py)


def methods_for(net: TwoLayerNet) -> tuple[str, ...]:
    """The certification methods that apply to ``net`` (the LP bound is for ReLU nets only)."""
    return METHODS if net.activation == "relu" else tuple(m for m in METHODS if m != "lp")


@dataclass(frozen=True)
class PairBounds:
    """Pair SDP values S_ij of one model: ``lower <= S_ij <= upper`` (upper proven under rounding).

    Arrays are (k, k), symmetric (S_ij = S_ji, DESIGN §1), zero on the diagonal. ``pairs`` lists the solved
    (i < j) pairs in the order of ``dual`` (the dual vectors c of the bounds), ``lambda_bound`` (proven
    lambda_max(M_ij - diag c) bounds), ``sweeps``, ``status`` and ``seconds``.
    """

    lower: np.ndarray
    upper: np.ndarray
    pairs: np.ndarray
    dual: np.ndarray
    lambda_bound: np.ndarray
    sweeps: np.ndarray
    status: tuple
    seconds: float
    rel_tol: float

    @property
    def gap(self) -> np.ndarray:
        return self.upper - self.lower

    @property
    def relative_gap(self) -> np.ndarray:
        with np.errstate(invalid="ignore", divide="ignore"):
            rel = np.where(self.upper > 0, self.gap / np.abs(self.upper), 0.0)
        return rel


@dataclass(frozen=True)
class CertificationResult:
    """Per-example certificates for one method and radius.

    ``worst_margin[n]`` is a proven upper bound on max_{j != y} max_{x' in ball} f_j(x') - f_y(x'); the example is
    ``certified`` iff it is < 0. ``worst_class[n]`` is the j attaining it (the maximising pair is (j, y)).
    """

    method: str
    eps: float
    labels: np.ndarray
    predicted: np.ndarray
    worst_margin: np.ndarray
    worst_class: np.ndarray
    seconds: float = 0.0
    timings: dict = field(default_factory=dict)

    @property
    def correct(self) -> np.ndarray:
        return self.predicted == self.labels

    @property
    def certified(self) -> np.ndarray:
        return self.worst_margin < 0

    @property
    def clean_error(self) -> float:
        return float(1.0 - self.correct.mean()) if len(self.labels) else 0.0

    @property
    def certified_error(self) -> float:
        """Fraction of examples not certified (>= clean_error: a certified example is correctly classified)."""
        return float(1.0 - self.certified.mean()) if len(self.labels) else 0.0

    def summary(self) -> dict:
        return {
            "method": self.method,
            "eps": self.eps,
            "n": int(len(self.labels)),
            "clean_error": self.clean_error,
            "certified_error": self.certified_error,
            "seconds": self.seconds,
            **{f"seconds_{k}": v for k, v in self.timings.items()},
        }


def check_eps(eps: Any) -> float:
    """eps as a float, refusing negative, non-finite and non-numeric values (nothing is clamped)."""
    try:
        value = float(eps)
    except (TypeError, ValueError) as exc:
        raise SdpcertError(f"eps must be a real number; got {eps!r}") from exc
    if not math.isfinite(value):
        raise NonFiniteError(f"eps must be finite; got {value}")
    if value < 0:
        raise SdpcertError(f"eps must be >= 0 (an l_inf radius); got {value}")
    return value


def _check_data(net: TwoLayerNet, X: Any, y: Any) -> tuple[np.ndarray, np.ndarray]:
    X = np.asarray(X)
    if X.ndim != 2 or X.shape[1] != net.d:
        raise ShapeError(f"X must have shape (n, {net.d}) for this network; got {X.shape}")
    if X.dtype.kind not in "iuf":
        raise SdpcertError(f"X must hold real numbers; got dtype {X.dtype}")
    if not np.all(np.isfinite(X)):
        raise NonFiniteError(f"X contains {int((~np.isfinite(X)).sum())} non-finite values (NaN/inf)")
    y = np.asarray(y)
    if y.ndim != 1 or len(y) != len(X):
        raise ShapeError(f"y must have shape ({len(X)},) to match X; got {y.shape}")
    if y.dtype.kind not in "iu":
        if y.dtype.kind == "f" and np.all(np.isfinite(y)) and np.all(y == np.round(y)):
            y = y.astype(np.int64)
        else:
            raise SdpcertError(f"y must hold integer class labels; got dtype {y.dtype}")
    if len(y) and (y.min() < 0 or y.max() >= net.k):
        raise SdpcertError(f"labels must lie in 0..{net.k - 1} for this network; got range {y.min()}..{y.max()}")
    return np.asarray(X, dtype=np.float64), y.astype(np.int64)


def forward_error_bound(net: TwoLayerNet, X: np.ndarray, hidden: np.ndarray) -> np.ndarray:
    """(n, k) bounds e with |fl(f_j(x)) - f_j(x)| <= e_j, for the logits computed as in ``TwoLayerNet.forward``.

    z = fl(W x + b): |z_hat - z| <= gamma_{d+1} (|W||x| + |b|) <= gamma_{d+1} (||x||_inf ||W_k||_1 + |b_k|)
    (inner product plus the bias addition; the looser second form avoids a second n x d x m product).
    h = sigma(z): |h_hat - h| <= L |z_hat - z| + e_sigma, e_sigma = 0 for relu (exact), 8u for sigmoid/tanh (libm
    exp/tanh are within a few ulps; outputs lie in (-1, 1)).
    f = fl(V h_hat + b2): |f_hat - f| <= gamma_{m+1} (|V||h_hat| + |b2|) + |V| |h_hat - h|.
    """
    d, m = net.d, net.m
    x_inf = np.max(np.abs(X), axis=1, keepdims=True) if X.shape[1] else np.zeros((len(X), 1))
    ez = gamma(d + 1) * (x_inf * np.abs(net.W).sum(axis=1) + np.abs(net.b))
    e_sigma = 0.0 if net.activation == "relu" else 8.0 * UNIT_ROUNDOFF
    eh = net.lipschitz * ez + e_sigma
    absV = np.abs(net.V)
    ef = gamma(m + 1) * (np.abs(hidden) @ absV.T + np.abs(net.b2)) + eh @ absV.T
    # The bound itself was computed in floats from non-negative terms: inflate once more.
    return round_up(ef, d + m + 4)


_PAIR_CACHE: dict = {}


class Certifier:
    """Certifies a ``TwoLayerNet`` against l_inf perturbations.

    ``pair_bounds()`` solves the k(k-1)/2 pair SDPs once per model (cached by the model's fingerprint and rel_tol);
    ``certify(X, y, eps, method)`` then costs one forward pass.

    Parameters: rel_tol, target (upper - lower) / upper of each pair SDP; threads, OpenMP threads across pairs
    (0: all); seed, the solver's seed (results are deterministic).
    """

    def __init__(self, net: TwoLayerNet, rel_tol: float = 1e-6, threads: int = 0, seed: int = 0,
                 max_sweeps: int = 5000) -> None:
        if not isinstance(net, TwoLayerNet):
            raise SdpcertError(f"Certifier needs a TwoLayerNet; got {type(net).__name__}")
        if net.k < 2:
            raise SdpcertError(f"certification needs k >= 2 classes; the network has k = {net.k}")
        rel_tol = float(rel_tol)
        if not (math.isfinite(rel_tol) and 0 < rel_tol < 1):
            raise SdpcertError(f"rel_tol must lie in (0, 1); got {rel_tol}")
        self.net = net
        self.rel_tol = rel_tol
        self.threads = int(threads)
        self.seed = int(seed)
        self.max_sweeps = int(max_sweeps)
        self._growth: dict[str, np.ndarray] = {}

    # ---------------------------------------------------------------------------------------- pair SDPs
    def pair_bounds(self, progress: Optional[Callable[[int, int], None]] = None) -> PairBounds:
        """Solve (or fetch from the cache) the pair SDP values. ``progress(done, total)`` is called as pairs finish."""
        key = (self.net.fingerprint(), self.rel_tol, self.seed, self.max_sweeps)
        if key in _PAIR_CACHE:
            return _PAIR_CACHE[key]
        from . import _core

        k = self.net.k
        pairs = np.array([(i, j) for i in range(k) for j in range(i + 1, k)], dtype=np.int64)
        W, V = np.asarray(self.net.W), np.asarray(self.net.V)
        start = time.perf_counter()
        # Progress is reported between chunks of 16 pairs: two full groups of 8 for the core (solve_pairs), one a thread.
        chunk = 16 if progress is not None else len(pairs)
        parts = []
        for lo in range(0, len(pairs), chunk):
            part = _core.solve_pair_sdps(W, V, pairs[lo:lo + chunk], rel_tol=self.rel_tol,
                                         max_sweeps=self.max_sweeps, seed=self.seed, threads=self.threads)
            parts.append(part)
            if progress is not None:
                progress(min(lo + chunk, len(pairs)), len(pairs))
        cat = {key_: (np.concatenate([p[key_] for p in parts]) if key_ != "status"
                      else tuple(s for p in parts for s in p[key_])) for key_ in parts[0]}
        lower = np.zeros((k, k))
        upper = np.zeros((k, k))
        for p, (i, j) in enumerate(pairs):
            lower[i, j] = lower[j, i] = cat["lower"][p]
            upper[i, j] = upper[j, i] = cat["upper"][p]
        result = PairBounds(lower=lower, upper=upper, pairs=pairs, dual=cat["dual"], lambda_bound=cat["lambda_bound"],
                            sweeps=cat["sweeps"], status=cat["status"], seconds=time.perf_counter() - start,
                            rel_tol=self.rel_tol)
        _PAIR_CACHE[key] = result
        return result

    def growth(self, method: str = "sdp") -> np.ndarray:
        """(k, k) proven growth coefficients G of ``method`` (see bounds.py)."""
        if method not in METHODS:
            raise SdpcertError(f"unknown method {method!r}; choose one of {', '.join(METHODS)}")
        if method == "lp":
            raise SdpcertError("method 'lp' bounds each example separately and has no (k, k) growth matrix; "
                               "use certify(X, y, eps, method='lp')")
        if method not in self._growth:
            if method == "sdp":
                self._growth[method] = bounds.sdp_growth(self.net, self.pair_bounds().upper)
            elif method == "spectral":
                self._growth[method] = bounds.spectral_growth(self.net)
            else:
                self._growth[method] = bounds.frobenius_growth(self.net)
        return self._growth[method]

    # ---------------------------------------------------------------------------------------- certificates
    def certify(self, X: Any, y: Any, eps: float, method: str = "sdp") -> CertificationResult:
        """Per-example certificates at l_inf radius ``eps`` (see the module docstring)."""
        return self.certify_grid(X, y, [eps], [method])[(float(eps), method)]

    def certify_grid(self, X: Any, y: Any, eps_values: Any, methods: Any = ("sdp",)) -> dict:
        """Certificates for every (eps, method) combination, sharing one forward pass and one rounding-error bound:
        ``{(eps, method): CertificationResult}``."""
        eps_values = [check_eps(e) for e in eps_values]
        methods = list(methods)
        for method in methods:
            if method not in METHODS:
                raise SdpcertError(f"unknown method {method!r}; choose one of {', '.join(METHODS)}")
        X, y = _check_data(self.net, X, y)
        t0 = time.perf_counter()
        base, magnitude, predicted = _logit_margins(self.net, X, y)
        shared = time.perf_counter() - t0
        out = {}
        for method in methods:
            if method == "lp":  # Wong-Kolter LP bound: per example, not a growth matrix (lp_bound.py)
                from .lp_bound import lp_worst_margins  # here: lp_bound imports check_eps from this module

                for eps in eps_values:
                    t3 = time.perf_counter()
                    worst, worst_class = lp_worst_margins(self.net, X, y, eps, return_class=True)
                    t4 = time.perf_counter()
                    out[(eps, method)] = CertificationResult(
                        method=method, eps=eps, labels=y, predicted=predicted, worst_margin=worst,
                        worst_class=worst_class, seconds=shared + (t4 - t3), timings={"bounds": 0.0,
                                                                                      "examples": shared + (t4 - t3)})
                continue
            t1 = time.perf_counter()
            G = self.growth(method)
            t2 = time.perf_counter()
            for eps in eps_values:
                t3 = time.perf_counter()
                worst, worst_class = _worst_margins(base, magnitude, y, eps, G)
                t4 = time.perf_counter()
                out[(eps, method)] = CertificationResult(
                    method=method, eps=eps, labels=y, predicted=predicted, worst_margin=worst,
                    worst_class=worst_class, seconds=shared + (t2 - t1) + (t4 - t3),
                    timings={"bounds": t2 - t1, "examples": shared + (t4 - t3)})
        return out


def _logit_margins(net: TwoLayerNet, X: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(base, magnitude, predicted): base[n, j] >= f_j(x) - f_y(x) exactly (float64 margins plus both logits'
    rounding-error bounds and the subtraction's rounding); magnitude[n, j] is the sum of the magnitudes of base's
    terms, which bounds the rounding of the final mixed-sign sum in _worst_margins."""
    hidden = net.hidden(X)
    logits = hidden @ net.V.T + net.b2
    err = forward_error_bound(net, X, hidden)
    rows = np.arange(len(y))
    margins = logits - logits[rows, y][:, None]
    slack = err + err[rows, y][:, None] + UNIT_ROUNDOFF * np.abs(margins)
    return margins + slack, np.abs(margins) + slack, np.argmax(logits, axis=1)


def _worst_margins(base: np.ndarray, magnitude: np.ndarray, y: np.ndarray, eps: float,
                   G: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(worst, worst_class): the proven bound max_{j != y} base[n, j] + eps G[j, y], and its j. The sum mixes signs,
    so its rounding is bounded by gamma_5 times the magnitudes of its terms (not of the result)."""
    rows = np.arange(len(y))
    growth = round_up(eps * G[:, y].T, 1) if eps > 0 else np.zeros_like(base)
    upper = np.nextafter(base + growth + gamma(5) * (magnitude + growth), np.inf)
    upper[rows, y] = -np.inf
    worst_class = np.argmax(upper, axis=1)
    return upper[rows, worst_class], worst_class.astype(np.int64)


def certify_with_growth(net: TwoLayerNet, X: Any, y: Any, eps: float, G: Any, method: str = "custom"
                        ) -> CertificationResult:
    """Per-example certificates from any proven (k, k) growth matrix G (see bounds.py), e.g. the SDP growth of dual
    variables met during training. The result is a certificate only if G is a proven bound."""
    eps = check_eps(eps)
    X, y = _check_data(net, X, y)
    G = np.asarray(G, dtype=np.float64)
    if G.shape != (net.k, net.k):
        raise ShapeError(f"G must have shape ({net.k}, {net.k}); got {G.shape}")
    if not np.all(np.isfinite(G[~np.eye(net.k, dtype=bool)])):
        raise NonFiniteError("G contains non-finite off-diagonal values")
    t0 = time.perf_counter()
    base, magnitude, predicted = _logit_margins(net, X, y)
    worst, worst_class = _worst_margins(base, magnitude, y, eps, G)
    return CertificationResult(method=method, eps=eps, labels=y, predicted=predicted, worst_margin=worst,
                               worst_class=worst_class, seconds=time.perf_counter() - t0)
