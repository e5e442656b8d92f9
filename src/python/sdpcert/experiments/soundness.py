"""The soundness check of every report: certified points that an attack fooled anyway.

A certified point has a proof that no input within eps changes its label; an attack that finds a misclassified
input within eps of it ("certified but fooled") shows that the certificate is wrong. ``sdpcert demo``, ``sdpcert
attack --check-certificates``, the error-vs-eps rows of :mod:`.error_vs_eps` and ``sdpcert reproduce`` all count
them here, and all treat a non-zero count as a bug (``UnsoundCertificateError``, exit code 3).
"""

from __future__ import annotations

from typing import Any, Mapping, Optional

import numpy as np

from ..errors import ShapeError

__all__ = ["broken_points", "count_broken", "soundness_entry"]


def broken_points(certified: Any, fooled: Any) -> np.ndarray:
    """Indices of the points that are certified and yet fooled by an attack (sound certificates: none)."""
    certified, fooled = np.asarray(certified, dtype=bool), np.asarray(fooled, dtype=bool)
    if certified.shape != fooled.shape:
        raise ShapeError(f"certified and fooled must have one shape (one flag per point); got {certified.shape} "
                         f"and {fooled.shape}")
    return np.flatnonzero(certified & fooled)


def count_broken(certified: Any, fooled: Any) -> int:
    """How many points are certified and yet fooled by an attack (sound certificates: 0)."""
    return int(len(broken_points(certified, fooled)))


def soundness_entry(result: Any, fooled: Any, by_attack: Optional[Mapping[str, Any]] = None,
                    max_indices: Optional[int] = None) -> dict:
    """One certification method against the attacks, for a report: ``certified_error`` and ``certified`` (count)
    of the :class:`~sdpcert.certify.CertificationResult`, ``broken`` (certified points in ``fooled``), with
    ``by_attack`` ({attack: fooled flags}) ``broken_by`` ({attack: count}), and ``broken_indices`` (the first
    ``max_indices`` of them; all when None)."""
    broken = broken_points(result.certified, fooled)
    entry: dict[str, Any] = {"certified_error": result.certified_error, "certified": int(result.certified.sum()),
                             "broken": int(len(broken))}
    if by_attack is not None:
        entry["broken_by"] = {name: count_broken(result.certified, flags) for name, flags in by_attack.items()}
    entry["broken_indices"] = [int(i) for i in (broken if max_indices is None else broken[:max_indices])]
    return entry
