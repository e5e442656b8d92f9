"""What a certification returns: ``CertificationResult``, per-example proven bounds for one method and radius."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..model.network import immutable_copy

__all__ = ["CertificationResult", "freeze_fields"]


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
        freeze_fields(self, ("labels", "predicted", "worst_margin", "worst_class"))

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
