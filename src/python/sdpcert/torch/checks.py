"""Argument checks of the torch side: weight tensors and the (W, V, c, pairs) of one eigen solve.

Shared by :mod:`.eigen`, :mod:`.penalty` and :mod:`.regularizer`; the class pairs go through
:func:`sdpcert._checks.check_pairs` (one wording for the whole package).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from .._checks import check_pairs
from ..errors import NonFiniteError, SdpcertError, ShapeError

__all__ = ["check_tensor", "check_inputs", "FLOAT_DTYPES"]

FLOAT_DTYPES = (torch.float32, torch.float64)


def check_tensor(name: str, t: Any, ndim: int, values: bool = True) -> torch.Tensor:
    """``t`` itself, once it is a float32/float64 tensor with ``ndim`` dimensions (and, with ``values``, finite)."""
    if not isinstance(t, torch.Tensor):
        raise SdpcertError(f"{name} must be a torch.Tensor; got {type(t).__name__}")
    if t.dtype not in FLOAT_DTYPES:
        raise SdpcertError(f"{name} must be float32 or float64; got {t.dtype}")
    if t.ndim != ndim:
        raise ShapeError(f"{name} must be a {ndim}-D tensor; got shape {tuple(t.shape)}")
    # A NaN or inf entry makes the sum NaN or inf, so a finite sum proves every entry finite; the elementwise
    # isfinite (1.7 ms for a 500 x 784 W, a quarter of a training step) runs only when the sum is not finite.
    if values and not bool(torch.isfinite(t.detach().sum())):
        n_bad = int((~torch.isfinite(t.detach())).sum())
        if n_bad:
            raise NonFiniteError(f"{name} holds {n_bad} NaN/inf entr{'y' if n_bad == 1 else 'ies'}")
    return t


def check_inputs(W: Any, V: Any, c: Any, pairs: Any, values: bool = True) -> tuple[np.ndarray, int, int, int]:
    """``(pairs (P, 2), m, d, k)`` once W (m, d), V (k, m), c (P, 1 + m + d) and pairs fit together."""
    W = check_tensor("W", W, 2, values)
    V = check_tensor("V", V, 2, values)
    c = check_tensor("c", c, 2, values)
    m, d = W.shape
    if m < 1 or d < 1:
        raise ShapeError(f"W must have shape (m, d) with m, d >= 1; got {tuple(W.shape)}")
    if V.shape[1] != m:
        raise ShapeError(f"V must have shape (k, m) with m = W.shape[0] = {m}; got {tuple(V.shape)}")
    k = V.shape[0]
    if k < 2:
        raise ShapeError(f"V has shape {tuple(V.shape)}: need k >= 2 classes")
    pairs_np = check_pairs(pairs, k)
    D = 1 + m + d
    if tuple(c.shape) != (pairs_np.shape[0], D):
        raise ShapeError(f"c must have shape (P, D) = ({pairs_np.shape[0]}, {D}); got {tuple(c.shape)}")
    if not (W.dtype == V.dtype == c.dtype):
        raise SdpcertError(f"W, V and c must share one dtype; got {W.dtype}, {V.dtype}, {c.dtype}")
    if not (W.device == V.device == c.device):
        raise SdpcertError(f"W, V and c must be on one device; got {W.device}, {V.device}, {c.device}")
    return pairs_np, m, d, k
