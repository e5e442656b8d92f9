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
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, Callable, Optional

import numpy as np

from . import bounds
from ._rounding import TINY, UNIT_ROUNDOFF, gamma, round_up
from .errors import NonFiniteError, SdpcertError, ShapeError, core_arguments
from .network import TwoLayerNet, _as_numeric_array, check_exact_float64, immutable_copy

__all__ = ["Certifier", "PairBounds", "PairBoundsCache", "CertificationResult", "forward_error_bound",
           "certify_with_growth", "METHODS", "methods_for", "check_eps"]

METHODS = ("sdp", "spectral", "frobenius", "lp")  # "lp": Wong-Kolter, per example (lp_bound.py)


def methods_for(net: TwoLayerNet) -> tuple[str, ...]:
    """The certification methods that apply to ``net`` (the LP bound is for ReLU nets only)."""
    return METHODS if net.activation == "relu" else tuple(m for m in METHODS if m != "lp")


@dataclass(frozen=True)
class PairBounds:
    """Pair SDP values S_ij of one model: ``lower <= S_ij <= upper`` (upper proven under rounding).

    Arrays are (k, k), symmetric (S_ij = S_ji), zero on the diagonal. ``pairs`` lists the solved
    (i < j) pairs in the order of ``dual`` (the dual vectors c of the bounds), ``lambda_bound`` (proven
    lambda_max(M_ij - diag c) bounds), ``sweeps``, ``status`` and ``seconds``.

    Every array it holds or returns is immutable (``network.immutable_copy``): one PairBounds is shared by every
    Certifier of the model through the cache, so an in-place edit would otherwise change later certificates.
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

    def __post_init__(self) -> None:
        _freeze_fields(self, ("lower", "upper", "pairs", "dual", "lambda_bound", "sweeps"))
        object.__setattr__(self, "status", tuple(self.status))

    @property
    def gap(self) -> np.ndarray:
        return immutable_copy(self.upper - self.lower)

    @property
    def relative_gap(self) -> np.ndarray:
        with np.errstate(invalid="ignore", divide="ignore"):
            rel = np.where(self.upper > 0, self.gap / np.abs(self.upper), 0.0)
        return immutable_copy(rel)


def _freeze_fields(result: Any, names: tuple[str, ...]) -> None:
    """Replace the named array fields of a frozen dataclass by immutable copies (see ``network.immutable_copy``)."""
    for name in names:
        object.__setattr__(result, name, immutable_copy(getattr(result, name)))


@dataclass(frozen=True)
class CertificationResult:
    """Per-example certificates for one method and radius.

    ``worst_margin[n]`` is a proven upper bound on max_{j != y} max_{x' in ball} f_j(x') - f_y(x'); the example is
    ``certified`` iff it is < 0. ``worst_class[n]`` is the j attaining it (the maximising pair is (j, y)).
    Its arrays are immutable, like those of ``PairBounds``.
    """

    method: str
    eps: float
    labels: np.ndarray
    predicted: np.ndarray
    worst_margin: np.ndarray
    worst_class: np.ndarray
    seconds: float = 0.0
    timings: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        _freeze_fields(self, ("labels", "predicted", "worst_margin", "worst_class"))

    @property
    def correct(self) -> np.ndarray:
        return immutable_copy(self.predicted == self.labels)

    @property
    def certified(self) -> np.ndarray:
        return immutable_copy(self.worst_margin < 0)

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


def _as_array(name: str, value: Any) -> np.ndarray:
    if hasattr(value, "detach") and hasattr(value, "cpu"):  # a torch tensor
        value = value.detach().cpu().numpy()
    try:
        return np.asarray(value)
    except (ValueError, TypeError) as exc:  # ragged nested lists and the like
        raise ShapeError(f"{name} cannot be turned into an array: {exc}") from exc


def _check_data(net: TwoLayerNet, X: Any, y: Any) -> tuple[np.ndarray, np.ndarray]:
    X = _as_array("X", X)
    if X.ndim != 2 or X.shape[1] != net.d:
        raise ShapeError(f"X must have shape (n, {net.d}) for this network; got {X.shape}")
    if X.dtype.kind not in "iuf":
        raise SdpcertError(f"X must hold real numbers; got dtype {X.dtype}")
    if not np.all(np.isfinite(X)):
        raise NonFiniteError(f"X contains {int((~np.isfinite(X)).sum())} non-finite values (NaN/inf)")
    check_exact_float64("X", X)
    y = _as_array("y", y)
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

    Rounding model (Higham, Accuracy and Stability, §2.1): fl(a op b) = (a op b)(1 + delta) + eta with |delta| <= u
    and |eta| <= 2^-1075, eta = 0 for sums (see _rounding.py). An n-term inner product computed in floats is then off
    by at most gamma_n |a|^T |b| + n TINY (TINY = 2^-1074 covers one product's underflow, <= 2^-1075, carried
    through the additions with a factor <= 1 + gamma_n). Without the n TINY term, logits that round into the
    subnormal range (tiny V) could be certified on the wrong side of 0.

    z = fl(W x + b): |z_hat - z| <= gamma_{d+1} (|W||x| + |b|) + d TINY
                                 <= gamma_{d+1} (||x||_inf ||W_k||_1 + |b_k|) + d TINY
    (inner product plus the bias addition; the looser second form avoids a second n x d x m product).
    h = sigma(z): |h_hat - h| <= L |z_hat - z| + e_sigma, e_sigma = 0 for relu (exact), 8u for sigmoid/tanh (libm
    exp/tanh are within a few ulps, outputs in (-1, 1); an exp that underflows is off by far less than 8u).
    f = fl(V h_hat + b2): |f_hat - f| <= gamma_{m+1} (|V||h_hat| + |b2|) + m TINY + |V| |h_hat - h|.

    Summation order and BLAS threads: gamma_n bounds an n-term sum for every order and grouping of its terms (each
    term passes through at most n - 1 additions whatever the summation tree; Higham §3.1), a fused multiply-add is a
    single rounding, and each product underflows at most once; so the bound holds for any BLAS kernel, blocking and
    thread count. The computed logits do differ between thread counts (in the last bits, for MNIST-sized d), but every
    version of them lies within e of the same exact value.

    Evaluating the bound: every intermediate bound (||W_k||_1, ez, eh) is rounded up, underflow allowance included,
    before it is multiplied by a possibly larger factor (|x|, L, |V|), so each is >= its exact value as a real
    number when it is used; an underflowed intermediate is never amplified. Overflow gives +inf (NaN becomes +inf).
    """
    d, m = net.d, net.m
    x_inf = np.max(np.abs(X), axis=1, keepdims=True) if X.shape[1] else np.zeros((len(X), 1))
    e_sigma = 0.0 if net.activation == "relu" else 8.0 * UNIT_ROUNDOFF
    absV = np.abs(net.V)
    with np.errstate(over="ignore", invalid="ignore"):
        row_l1 = round_up(np.abs(net.W).sum(axis=1), d, products=0)      # >= ||W_k||_1 (a sum: no underflow)
        # one product (||x||_inf ||W_k||_1, may underflow), a sum, a product by gamma <= 1; plus the d underflows
        ez = round_up(gamma(d + 1) * (x_inf * row_l1 + np.abs(net.b)) + d * TINY, 4)
        eh = round_up(net.lipschitz * ez + e_sigma, 2)                   # L = 1/4 rounds a subnormal ez
        # m products in |V||h_hat| (then scaled by gamma <= 1) and m in |V| eh; m TINY: the logits' own underflows
        ef = gamma(m + 1) * (np.abs(hidden) @ absV.T + np.abs(net.b2)) + m * TINY + eh @ absV.T
        return round_up(ef, d + m + 4, products=2 * m + 2)


class PairBoundsCache:
    """The pair SDP values of the most recently used models, so that each (model, solver settings) is solved once
    per process: ``Certifier.pair_bounds`` looks here first. Bounded (``max_entries`` entries, least recently used
    out first) because a PairBounds holds the dual vectors of every pair; thread-safe.

    Keys are ``(fingerprint, rel_tol, seed, max_sweeps)``: a model's fingerprint names its exact weights, which can
    never change (``TwoLayerNet`` keeps them immutable), and the settings are those that change the values. The
    values are immutable ``PairBounds``. ``clear()`` empties it (e.g. to time the solves); so does
    ``Certifier.clear_cache()``.
    """

    def __init__(self, max_entries: int = 16) -> None:
        if isinstance(max_entries, bool) or not isinstance(max_entries, (int, np.integer)) or max_entries < 1:
            raise SdpcertError(f"max_entries must be a positive integer; got {max_entries!r}")
        self.max_entries = int(max_entries)
        self._entries: OrderedDict[tuple, PairBounds] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: tuple) -> Optional[PairBounds]:
        """The cached PairBounds for ``key`` (now the most recently used), or None."""
        with self._lock:
            value = self._entries.get(key)
            if value is not None:
                self._entries.move_to_end(key)
            return value

    def put(self, key: tuple, value: PairBounds) -> None:
        if not isinstance(value, PairBounds):
            raise SdpcertError(f"the pair bounds cache holds PairBounds; got {type(value).__name__}")
        with self._lock:
            self._entries[key] = value
            self._entries.move_to_end(key)
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)

    def clear(self) -> None:
        """Forget every cached value: the next ``pair_bounds()`` of each model solves its SDPs again."""
        with self._lock:
            self._entries.clear()

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)

    def __contains__(self, key: object) -> bool:
        with self._lock:
            return key in self._entries


#: The process-wide cache of pair SDP values that every Certifier shares.
PAIR_BOUNDS_CACHE = PairBoundsCache()

_INT32_MAX = 2 ** 31 - 1


def _int_setting(name: str, value: Any, low: int, high: int) -> int:
    """An integer argument in [low, high]; floats (even 3.0), bools and strings are refused, nothing is truncated."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)) or not low <= value <= high:
        raise SdpcertError(f"{name} must be an integer in [{low}, {high}]; got {value!r}")
    return int(value)


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
        self._threads = _int_setting("threads", threads, 0, _INT32_MAX)
        self._seed = _int_setting("seed", seed, 0, 2 ** 64 - 1)  # the core's seed is an unsigned 64-bit integer
        self._max_sweeps = _int_setting("max_sweeps", max_sweeps, 1, _INT32_MAX)
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
        from . import _core

        k = self._net.k
        pairs = np.array([(i, j) for i in range(k) for j in range(i + 1, k)], dtype=np.int64)
        W, V = np.asarray(self._net.W), np.asarray(self._net.V)
        start = time.perf_counter()
        # Progress is reported between chunks of 16 pairs: two full groups of 8 for the core (solve_pairs), one a thread.
        chunk = 16 if progress is not None else len(pairs)
        parts = []
        for lo in range(0, len(pairs), chunk):
            with core_arguments("the pair SDP solver refused its arguments"):
                part = _core.solve_pair_sdps(W, V, pairs[lo:lo + chunk], rel_tol=self._rel_tol,
                                             max_sweeps=self._max_sweeps, seed=self._seed, threads=self._threads)
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
                            rel_tol=self._rel_tol)
        PAIR_BOUNDS_CACHE.put(key, result)
        self._pair_bounds[key] = result
        return result

    def growth(self, method: str = "sdp") -> np.ndarray:
        """(k, k) proven growth coefficients G of ``method`` (see bounds.py); an immutable array."""
        if not isinstance(method, str) or method not in METHODS:
            raise SdpcertError(f"unknown method {method!r}; choose one of {', '.join(METHODS)}")
        if method == "lp":
            raise SdpcertError("method 'lp' bounds each example separately and has no (k, k) growth matrix; "
                               "use certify(X, y, eps, method='lp')")
        # The SDP growth depends on the solver settings through the pair values; the norm bounds only on the model.
        key = (method, *self._solver_key()) if method == "sdp" else (method, self._net.fingerprint())
        if key not in self._growth:
            if method == "sdp":
                G = bounds.sdp_growth(self._net, self.pair_bounds().upper)
            elif method == "spectral":
                G = bounds.spectral_growth(self._net)
            else:
                G = bounds.frobenius_growth(self._net)
            self._growth[key] = immutable_copy(G, np.float64)
        return self._growth[key]

    # ---------------------------------------------------------------------------------------- certificates
    def certify(self, X: Any, y: Any, eps: float, method: str = "sdp") -> CertificationResult:
        """Per-example certificates at l_inf radius ``eps`` (see the module docstring)."""
        eps = check_eps(eps)
        return self.certify_grid(X, y, [eps], [method])[(eps, method)]

    def certify_grid(self, X: Any, y: Any, eps_values: Any, methods: Any = ("sdp",)) -> dict:
        """Certificates for every (eps, method) combination, sharing one forward pass and one rounding-error bound:
        ``{(eps, method): CertificationResult}``."""
        eps_values = [check_eps(e) for e in _as_list("eps_values", eps_values)]
        methods = _as_list("methods", methods)
        for method in methods:
            if not isinstance(method, str) or method not in METHODS:
                raise SdpcertError(f"unknown method {method!r}; choose one of {', '.join(METHODS)}")
        X, y = _check_data(self._net, X, y)
        t0 = time.perf_counter()
        base, magnitude, predicted = _logit_margins(self._net, X, y)
        shared = time.perf_counter() - t0
        out = {}
        for method in methods:
            if method == "lp":  # Wong-Kolter LP bound: per example, not a growth matrix (lp_bound.py)
                from .lp_bound import lp_worst_margins  # here: lp_bound imports check_eps from this module

                for eps in eps_values:
                    t3 = time.perf_counter()
                    worst, worst_class = lp_worst_margins(self._net, X, y, eps, return_class=True)
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


def _as_list(name: str, values: Any) -> list:
    """A sequence argument as a list: one string is one item (not its letters); a lone number is refused."""
    if isinstance(values, str):
        return [values]
    try:
        return list(values)
    except TypeError:
        raise SdpcertError(f"{name} must be a sequence (e.g. a list); got {values!r}") from None


def _logit_margins(net: TwoLayerNet, X: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(base, magnitude, predicted): base[n, j] >= f_j(x) - f_y(x) exactly (float64 margins plus both logits'
    rounding-error bounds and the subtraction's rounding); magnitude[n, j] is the sum of the magnitudes of base's
    terms, which bounds the rounding of the final mixed-sign sum in _worst_margins.

    Refuses (NonFiniteError) inputs on which the float64 logits overflow to inf/NaN: predictions and margins taken
    from such rows would be meaningless."""
    with np.errstate(over="ignore", invalid="ignore"):
        hidden = net.hidden(X)
        logits = hidden @ net.V.T + net.b2
    overflowed = ~np.all(np.isfinite(logits), axis=1)
    if overflowed.any():
        raise NonFiniteError(
            f"the network's logits overflow to inf/NaN on {int(overflowed.sum())} of the {len(X)} inputs (first: "
            f"index {int(np.argmax(overflowed))}): the weights are too large for float64 on this data")
    err = forward_error_bound(net, X, hidden)
    rows = np.arange(len(y))
    with np.errstate(over="ignore", invalid="ignore"):
        # The difference of two finite logits is one rounding (relative, exact in the subnormal range; it may
        # overflow to inf, and then the bound is +inf or NaN, which _worst_margins turns into +inf). u |margin| is
        # a product that may underflow: the slack is rounded up with its absolute allowance.
        margins = logits - logits[rows, y][:, None]
        slack = round_up(err + err[rows, y][:, None] + UNIT_ROUNDOFF * np.abs(margins), 3)
        return margins + slack, np.abs(margins) + slack, np.argmax(logits, axis=1)


def _worst_margins(base: np.ndarray, magnitude: np.ndarray, y: np.ndarray, eps: float,
                   G: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(worst, worst_class): the proven bound max_{j != y} base[n, j] + eps G[j, y], and its j. The sum mixes signs,
    so its rounding is bounded by gamma_5 times the magnitudes of its terms (not of the result).

    eps G and gamma_5 (magnitude + growth) are single products that may underflow: both are rounded up with the
    absolute allowance. An infinite G (a pair that could not be bounded) or an overflow gives +inf, and NaN (inf - inf
    from overflowed terms) becomes +inf: "not certified", never a smaller number."""
    rows = np.arange(len(y))
    with np.errstate(over="ignore", invalid="ignore"):
        growth = round_up(eps * G[:, y].T, 1) if eps > 0 else np.zeros_like(base)
        rounding = round_up(gamma(5) * (magnitude + growth), 2)
        upper = np.nextafter(base + growth + rounding, np.inf)
    upper = np.where(np.isnan(upper), np.inf, upper)
    upper[rows, y] = -np.inf
    worst_class = np.argmax(upper, axis=1)
    return upper[rows, worst_class], worst_class.astype(np.int64)


def certify_with_growth(net: TwoLayerNet, X: Any, y: Any, eps: float, G: Any, method: str = "custom"
                        ) -> CertificationResult:
    """Per-example certificates from any proven (k, k) growth matrix G (see bounds.py), e.g. the SDP growth of dual
    variables met during training. The result is a certificate only if G is a proven bound."""
    if not isinstance(net, TwoLayerNet):
        raise SdpcertError(f"certify_with_growth needs a TwoLayerNet; got {type(net).__name__}")
    eps = check_eps(eps)
    X, y = _check_data(net, X, y)
    G = _as_numeric_array("G", G)
    if G.shape != (net.k, net.k):
        raise ShapeError(f"G must have shape ({net.k}, {net.k}); got {G.shape}")
    off = G[~np.eye(net.k, dtype=bool)]  # the diagonal is never used: a class is not its own adversary
    if not np.all(np.isfinite(off)):
        raise NonFiniteError("G contains non-finite off-diagonal values")
    check_exact_float64("G", off)
    if np.any(off < 0):
        raise SdpcertError(f"G must be >= 0 off the diagonal (a growth bound times eps is an increase of a margin); "
                           f"got minimum {off.min()}")
    G = immutable_copy(G, np.float64)
    t0 = time.perf_counter()
    base, magnitude, predicted = _logit_margins(net, X, y)
    worst, worst_class = _worst_margins(base, magnitude, y, eps, G)
    return CertificationResult(method=method, eps=eps, labels=y, predicted=predicted, worst_margin=worst,
                               worst_class=worst_class, seconds=time.perf_counter() - t0)
