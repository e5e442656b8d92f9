"""What a certification returns: ``CertificationResult``, per-example proven bounds for one method and radius."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional

import numpy as np

from ..model.network import immutable_copy

__all__ = ["CertificationResult", "freeze_fields", "domain_summary"]


def freeze_fields(result: Any, names: tuple[str, ...]) -> None:
    """Replace the named array fields of a frozen dataclass by immutable copies (see ``model.immutable_copy``)."""
    for name in names:
        object.__setattr__(result, name, immutable_copy(getattr(result, name)))


@dataclass(frozen=True)
class CertificationResult:
    """Per-example certificates for one method and radius.

    ``worst_margin[n]`` is a proven upper bound on max_{j != y} max_{x' in ball} f_j(x') - f_y(x'); the example is
    ``certified`` iff it is < 0. ``worst_class[n]`` is the j attaining it (the maximising pair is (j, y)).
    Its arrays are immutable, like those of ``PairBounds``.

    ``input_domain``: the set the bounds are proven for: None for the whole l_inf ball, or ``(lo, hi)`` (two (d,)
    arrays) for the ball intersected with the box [lo, hi]. A method that cannot use a box (the per-model growth
    bounds sdp, spectral, frobenius) proves the whole ball, which contains the box, and records None.
    ``certified_by``: for the ``best`` cascade, per example the method that certified it ("" when none did);
    its ``worst_margin`` is the smallest bound the cascade computed for the example; ``cascade``: the methods it
    tried, in order.
    """

    method: str
    eps: float
    labels: np.ndarray
    predicted: np.ndarray
    worst_margin: np.ndarray
    worst_class: np.ndarray
    seconds: float = 0.0
    timings: dict = field(default_factory=dict)
    input_domain: Optional[tuple] = None
    certified_by: Optional[np.ndarray] = None
    cascade: tuple = ()

    def __post_init__(self) -> None:
        freeze_fields(self, ("labels", "predicted", "worst_margin", "worst_class"))
        if self.input_domain is not None:
            object.__setattr__(self, "input_domain", tuple(immutable_copy(np.asarray(end, dtype=np.float64))
                                                          for end in self.input_domain))
        if self.certified_by is not None:
            freeze_fields(self, ("certified_by",))

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

    def certified_by_counts(self) -> dict:
        """{method: number of examples it certified} for the ``best`` cascade (methods in cascade order, each one
        that ran); {} for a single method."""
        if self.certified_by is None:
            return {}
        counts = {str(name): 0 for name in self.cascade}
        for name in self.certified_by[self.certified_by != ""]:
            counts[str(name)] = counts.get(str(name), 0) + 1
        return counts

    def summary(self) -> dict:
        out = {
            "method": self.method,
            "eps": self.eps,
            "n": int(len(self.labels)),
            "clean_error": self.clean_error,
            "certified_error": self.certified_error,
            "input_domain": domain_summary(self.input_domain),
            "seconds": self.seconds,
            **{f"seconds_{k}": v for k, v in self.timings.items()},
        }
        if self.certified_by is not None:
            out["certified_by"] = self.certified_by_counts()
        return out


def domain_summary(domain: Optional[tuple]) -> Any:
    """A JSON-friendly description of an input domain: None (the whole ball), [lo, hi] when every coordinate has
    the same ends, else {"lo": [...], "hi": [...]}."""
    if domain is None:
        return None
    lo, hi = (np.asarray(end) for end in domain)
    if lo.size and np.all(lo == lo.flat[0]) and np.all(hi == hi.flat[0]):
        return [float(lo.flat[0]), float(hi.flat[0])]
    return {"lo": lo.tolist(), "hi": hi.tolist()}
