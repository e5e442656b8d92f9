"""Pair SDP values S_ij of a model (docs/design.md §2-3), solved by the C++ core, and their process-wide cache.

``pair_sdp_values(net, ...)`` solves the k(k-1)/2 pair SDPs and returns a ``PairBounds``: for each pair a primal
lower bound and a PROVEN upper bound on S_ij (the core's dual bound, rounding included), with the dual vectors that
prove them. ``PAIR_BOUNDS_CACHE`` keeps the values of the most recently used models, so that each (model, solver
settings) is solved once per process; ``Certifier.pair_bounds`` looks there first.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Callable, Optional

import numpy as np

from .._checks import positive_int
from ..errors import SdpcertError, core_arguments
from ..model.network import TwoLayerNet, immutable_copy
from .result import freeze_fields

__all__ = ["PairBounds", "PairBoundsCache", "PairSdpCache", "PAIR_BOUNDS_CACHE", "pair_sdp_values"]


@dataclass(frozen=True)
class PairBounds:
    """Pair SDP values S_ij of one model: ``lower <= S_ij <= upper`` (upper proven under rounding).

    Arrays are (k, k), symmetric (S_ij = S_ji), zero on the diagonal. ``pairs`` lists the solved
    (i < j) pairs in the order of ``dual`` (the dual vectors c of the bounds), ``lambda_bound`` (proven
    lambda_max(M_ij - diag c) bounds), ``sweeps``, ``status`` and ``seconds``.

    Every array it holds or returns is immutable (``model.immutable_copy``): one PairBounds is shared by every
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
        freeze_fields(self, ("lower", "upper", "pairs", "dual", "lambda_bound", "sweeps"))
        object.__setattr__(self, "status", tuple(self.status))

    @property
    def gap(self) -> np.ndarray:
        return immutable_copy(self.upper - self.lower)

    @property
    def relative_gap(self) -> np.ndarray:
        with np.errstate(invalid="ignore", divide="ignore"):
            rel = np.where(self.upper > 0, self.gap / np.abs(self.upper), 0.0)
        return immutable_copy(rel)


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
        self.max_entries = positive_int("max_entries", max_entries)
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


#: Another name for ``PairBoundsCache`` (the name in the layout plan).
PairSdpCache = PairBoundsCache

#: The process-wide cache of pair SDP values that every Certifier shares.
PAIR_BOUNDS_CACHE = PairBoundsCache()


def pair_sdp_values(net: TwoLayerNet, rel_tol: float, seed: int, max_sweeps: int, threads: int,
                    progress: Optional[Callable[[int, int], None]] = None) -> PairBounds:
    """Solve the k(k-1)/2 pair SDPs of ``net`` in the C++ core (no cache; arguments already checked, as by
    ``Certifier``). ``progress(done, total)`` is called as pairs finish."""
    from .. import _core  # the compiled core is loaded on first use: importing sdpcert does not need it

    k = net.k
    pairs = np.array([(i, j) for i in range(k) for j in range(i + 1, k)], dtype=np.int64)
    W, V = np.asarray(net.W), np.asarray(net.V)
    start = time.perf_counter()
    # Progress is reported between chunks of 16 pairs: two full groups of 8 for the core (solve_pairs), one a thread.
    chunk = 16 if progress is not None else len(pairs)
    parts = []
    for lo in range(0, len(pairs), chunk):
        with core_arguments("the pair SDP solver refused its arguments"):
            part = _core.solve_pair_sdps(W, V, pairs[lo:lo + chunk], rel_tol=rel_tol, max_sweeps=max_sweeps,
                                         seed=seed, threads=threads)
        parts.append(part)
        if progress is not None:
            progress(min(lo + chunk, len(pairs)), len(pairs))
    cat = {key: (np.concatenate([p[key] for p in parts]) if key != "status"
                 else tuple(s for p in parts for s in p[key])) for key in parts[0]}
    lower = np.zeros((k, k))
    upper = np.zeros((k, k))
    for p, (i, j) in enumerate(pairs):
        lower[i, j] = lower[j, i] = cat["lower"][p]
        upper[i, j] = upper[j, i] = cat["upper"][p]
    return PairBounds(lower=lower, upper=upper, pairs=pairs, dual=cat["dual"], lambda_bound=cat["lambda_bound"],
                      sweeps=cat["sweeps"], status=cat["status"], seconds=time.perf_counter() - start,
                      rel_tol=rel_tol)
